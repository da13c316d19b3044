//! Workload status: what the Deployment/StatefulSet/ReplicaSet controllers and kubelets would
//! report if the pods existed. `status.replicas` follows `spec.replicas` at once; ready and
//! available replicas follow after the configured delay when scaling up, at once when scaling
//! down.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::broadcast;
use tokio::time::Instant;

use super::set_condition;
use crate::objects;
use crate::resources::{ResourceType, Special};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::state::State;
use crate::store::{EventType, key_of};

/// A workload: resource (plural), namespace, name.
type Key = (String, String, String);

/// What the simulator remembers between wake-ups.
#[derive(Default)]
struct Sim {
    /// uid → (desired replicas, when that desire was first seen).
    since: HashMap<String, (i64, Instant)>,
    /// Workloads whose ready replicas lag behind, and when they catch up.
    pending: HashMap<Key, Instant>,
}

/// Run until the task is aborted.
///
/// Every workload is brought up to date at start and whenever the event stream lagged; after
/// that, only the workloads an event names and those whose ready delay is due are looked at, so
/// a change costs the same with 10 workloads or 10,000.
pub async fn run(state: Arc<State>, ready_delay: Duration) {
    let mut events = state.store.txn().subscribe();
    let mut sim = Sim::default();
    let mut full = true;
    let mut changed: HashSet<Key> = HashSet::new();
    loop {
        if full {
            reconcile_all(&state, ready_delay, &mut sim);
            full = false;
        } else {
            let now = Instant::now();
            changed.extend(
                sim.pending
                    .iter()
                    .filter(|(_, due)| **due <= now)
                    .map(|(k, _)| k.clone()),
            );
            let types = workload_types(&state);
            for key in changed.drain() {
                if let Some(rt) = types.iter().find(|rt| rt.plural == key.0) {
                    reconcile_one(&state, rt, &key, ready_delay, &mut sim);
                }
            }
        }
        let next_due = sim.pending.values().min().copied();
        let wake = async {
            match next_due {
                Some(due) => tokio::time::sleep_until(due).await,
                None => std::future::pending::<()>().await,
            }
        };
        let mut first = tokio::select! {
            ev = events.recv() => Some(ev),
            _ = wake => None,
        };
        // Take whatever else is already queued, so a burst of events is one pass.
        while let Some(ev) = first.take().or_else(|| match events.try_recv() {
            Err(broadcast::error::TryRecvError::Empty) => None,
            Ok(ev) => Some(Ok(ev)),
            Err(broadcast::error::TryRecvError::Lagged(n)) => {
                Some(Err(broadcast::error::RecvError::Lagged(n)))
            }
            Err(broadcast::error::TryRecvError::Closed) => {
                Some(Err(broadcast::error::RecvError::Closed))
            }
        }) {
            match ev {
                Ok(ev) if ev.gr.group == "apps" => {
                    let (ns, name) = key_of(&ev.object);
                    let key = (ev.gr.resource.clone(), ns, name);
                    if ev.kind == EventType::Deleted {
                        if let Some(uid) =
                            ev.object.pointer("/metadata/uid").and_then(Value::as_str)
                        {
                            sim.since.remove(uid);
                        }
                        sim.pending.remove(&key);
                    } else {
                        changed.insert(key);
                    }
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(_)) => full = true,
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }
}

fn workload_types(state: &State) -> Vec<Arc<ResourceType>> {
    ["deployments", "statefulsets", "replicasets"]
        .iter()
        .filter_map(|p| state.registry.find("apps", "v1", p))
        .filter(|rt| rt.special == Special::Workload)
        .collect()
}

/// Bring every workload's status up to date.
fn reconcile_all(state: &State, delay: Duration, sim: &mut Sim) {
    let mut seen = HashSet::new();
    sim.pending.clear();
    for rt in workload_types(state) {
        let (items, _) = objects::select_shared(
            state,
            &rt,
            None,
            &LabelSelector::default(),
            &FieldSelector::default(),
        );
        for obj in items {
            let (ns, name) = key_of(&obj);
            let key = (rt.plural.clone(), ns, name);
            seen.insert(update(state, &rt, &key, &obj, delay, sim));
        }
    }
    sim.since.retain(|uid, _| seen.contains(uid));
}

/// Bring one workload's status up to date (it may be gone by now).
fn reconcile_one(state: &State, rt: &ResourceType, key: &Key, delay: Duration, sim: &mut Sim) {
    let obj = state
        .store
        .txn()
        .get_shared(&rt.group_resource(), &key.1, &key.2)
        .cloned();
    match obj {
        Some(obj) => {
            update(state, rt, key, &obj, delay, sim);
        }
        None => {
            sim.pending.remove(key);
        }
    }
}

/// Write the status `obj` should have now; returns its uid.
fn update(
    state: &State,
    rt: &ResourceType,
    key: &Key,
    obj: &Value,
    delay: Duration,
    sim: &mut Sim,
) -> String {
    let now = Instant::now();
    let uid = obj
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let desired = obj
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let ready_now = obj
        .pointer("/status/readyReplicas")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let entry = sim.since.entry(uid.clone()).or_insert((desired, now));
    if entry.0 != desired {
        *entry = (desired, now);
    }
    let due = entry.1 + delay;
    let ready = if desired <= ready_now || now >= due {
        sim.pending.remove(key);
        desired
    } else {
        sim.pending.insert(key.clone(), due);
        ready_now
    };
    let status = desired_status(rt, obj, desired, ready);
    if obj.get("status") != Some(&status) {
        let _ = objects::modify(state, rt, &key.1, &key.2, |o| o["status"] = status);
    }
    uid
}

fn desired_status(rt: &ResourceType, obj: &Value, replicas: i64, ready: i64) -> Value {
    let mut status = obj
        .get("status")
        .cloned()
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}));
    let generation = obj
        .pointer("/metadata/generation")
        .cloned()
        .unwrap_or(json!(1));
    status["observedGeneration"] = generation;
    // kube-controller-manager omits zero counts (omitempty), and clients rely on that.
    let mut set = |key: &str, n: i64| {
        if n == 0 {
            if let Some(m) = status.as_object_mut() {
                m.remove(key);
            }
        } else {
            status[key] = json!(n);
        }
    };
    set("replicas", replicas);
    set("updatedReplicas", replicas);
    set("readyReplicas", ready);
    set("availableReplicas", ready);
    if rt.kind == "StatefulSet" {
        set("currentReplicas", replicas);
    }
    if rt.kind == "ReplicaSet" {
        set("fullyLabeledReplicas", replicas);
    }
    if rt.kind == "Deployment" {
        let mut conditions = status
            .get("conditions")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let (s, reason, message) = if ready >= replicas {
            (
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.",
            )
        } else {
            (
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
            )
        };
        set_condition(&mut conditions, "Available", s, reason, message);
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        set_condition(
            &mut conditions,
            "Progressing",
            "True",
            "NewReplicaSetAvailable",
            &format!("ReplicaSet \"{name}\" has successfully progressed."),
        );
        status["conditions"] = Value::Array(conditions);
    }
    status
}
