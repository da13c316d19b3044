//! Workload status: what the Deployment/StatefulSet/ReplicaSet controllers and kubelets would
//! report if the pods existed. `status.replicas` follows `spec.replicas` at once; ready and
//! available replicas follow after the configured delay when scaling up, at once when scaling
//! down.

use std::collections::HashMap;
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

/// Run until the task is aborted.
pub async fn run(state: Arc<State>, ready_delay: Duration) {
    let mut events = state.store.txn().subscribe();
    // uid → (desired replicas, when that desire was first seen)
    let mut since: HashMap<String, (i64, Instant)> = HashMap::new();
    loop {
        let next_due = reconcile_all(&state, ready_delay, &mut since);
        let wake = async {
            match next_due {
                Some(due) => tokio::time::sleep_until(due).await,
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            ev = events.recv() => match ev {
                Ok(ev) if ev.gr.group == "apps" => {}
                Ok(_) => continue,
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = wake => {}
        }
    }
}

fn workload_types(state: &State) -> Vec<Arc<ResourceType>> {
    ["deployments", "statefulsets", "replicasets"]
        .iter()
        .filter_map(|p| state.registry.find("apps", "v1", p))
        .collect()
}

/// Bring every workload's status up to date; returns when the next delayed update is due.
fn reconcile_all(
    state: &State,
    delay: Duration,
    since: &mut HashMap<String, (i64, Instant)>,
) -> Option<Instant> {
    let now = Instant::now();
    let mut next_due: Option<Instant> = None;
    let mut seen = Vec::new();
    for rt in workload_types(state) {
        if rt.special != Special::Workload {
            continue;
        }
        let (items, _) = objects::select(
            state,
            &rt,
            None,
            &LabelSelector::default(),
            &FieldSelector::default(),
        );
        for obj in items {
            let uid = obj
                .pointer("/metadata/uid")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            seen.push(uid.clone());
            let desired = obj
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            let ready_now = obj
                .pointer("/status/readyReplicas")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            let entry = since.entry(uid).or_insert((desired, now));
            if entry.0 != desired {
                *entry = (desired, now);
            }
            let due = entry.1 + delay;
            let ready = if desired <= ready_now || now >= due {
                desired
            } else {
                next_due = Some(next_due.map_or(due, |n: Instant| n.min(due)));
                ready_now
            };
            let status = desired_status(&rt, &obj, desired, ready);
            if obj.get("status") != Some(&status) {
                let (ns, name) = crate::store::key_of(&obj);
                let _ = objects::modify(state, &rt, &ns, &name, |o| o["status"] = status);
            }
        }
    }
    since.retain(|uid, _| seen.contains(uid));
    next_due
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
