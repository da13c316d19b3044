//! APIService availability: `Available` is True when the service reference resolves to a
//! backend — a registered local one, or the Service's Endpoints (kube-apiserver's availability
//! controller probes the endpoints; here resolving them stands for the probe). Local APIServices
//! (no `spec.service`) are always available.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use super::set_condition;
use crate::objects;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::state::State;

/// Re-evaluated on every APIService change and every second (backends are registered outside
/// the API, so there is no event for them).
pub async fn run(state: Arc<State>) {
    let mut events = state.store.txn().subscribe();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        reconcile(&state);
        tokio::select! {
            ev = events.recv() => {
                if matches!(ev, Err(tokio::sync::broadcast::error::RecvError::Closed)) {
                    return;
                }
            }
            _ = tick.tick() => {}
        }
    }
}

fn reconcile(state: &State) {
    let Some(rt) = state
        .registry
        .find("apiregistration.k8s.io", "v1", "apiservices")
    else {
        return;
    };
    let (items, _) = objects::select(
        state,
        &rt,
        None,
        &LabelSelector::default(),
        &FieldSelector::default(),
    );
    for svc in items {
        let (status, reason, message) = match svc.pointer("/spec/service").filter(|s| s.is_object())
        {
            None => (
                "True",
                "Local",
                "Local APIServices are always available".to_string(),
            ),
            Some(s) => {
                let ns = s
                    .get("namespace")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let name = s.get("name").and_then(Value::as_str).unwrap_or_default();
                let service_exists = state
                    .registry
                    .find("", "v1", "services")
                    .is_some_and(|rt| objects::get(state, &rt, Some(ns), name).is_ok());
                if state.backends.lookup(ns, name).is_some() {
                    ("True", "Passed", "all checks passed".to_string())
                } else if !service_exists {
                    (
                        "False",
                        "ServiceNotFound",
                        format!("service/{name} in \"{ns}\" is not present"),
                    )
                } else {
                    match crate::aggregation::resolve(state, &svc) {
                        Ok(_) => ("True", "Passed", "all checks passed".to_string()),
                        Err(e) => ("False", "MissingEndpoints", e.message),
                    }
                }
            }
        };
        let mut conditions = svc
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        set_condition(&mut conditions, "Available", status, reason, &message);
        if svc.pointer("/status/conditions") != Some(&Value::Array(conditions.clone())) {
            let (_, name) = crate::store::key_of(&svc);
            let _ = objects::modify(state, &rt, "", &name, |o| {
                o["status"] = json!({"conditions": conditions})
            });
        }
    }
}
