//! Simulated controllers: what kube-controller-manager (and the aggregator's availability
//! controller) would do for the kinds kedge drives.

mod apiservices;
mod hpa;
pub mod hpa_algorithm;
mod workloads;

use std::sync::Arc;

use serde_json::{Value, json};
use tokio::task::JoinHandle;

use crate::Config;
use crate::state::State;

/// Start the enabled simulators.
pub fn spawn(state: Arc<State>, config: &Config) -> Vec<JoinHandle<()>> {
    let mut tasks = vec![tokio::spawn(apiservices::run(state.clone()))];
    if config.simulate_workloads {
        tasks.push(tokio::spawn(workloads::run(
            state.clone(),
            config.workload_ready_delay,
        )));
    }
    if config.simulate_hpa {
        let hpa_config = hpa::HpaConfig {
            sync_period: config
                .hpa_sync_period
                .max(std::time::Duration::from_millis(100)),
            downscale_stabilization: config.hpa_downscale_stabilization,
            tolerance: config.hpa_tolerance,
        };
        tasks.push(tokio::spawn(hpa::run(state, hpa_config)));
    }
    tasks
}

/// Set a status condition, keeping `lastTransitionTime` unless the status changes (so an
/// unchanged condition list compares equal and causes no write).
pub fn set_condition(
    conditions: &mut Vec<Value>,
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
) {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    match conditions.iter_mut().find(|c| c.get("type").and_then(Value::as_str) == Some(type_)) {
        Some(c) => {
            if c.get("status").and_then(Value::as_str) != Some(status) {
                c["lastTransitionTime"] = json!(now);
            }
            c["status"] = json!(status);
            c["reason"] = json!(reason);
            c["message"] = json!(message);
        }
        None => conditions.push(json!({
            "type": type_, "status": status, "lastTransitionTime": now, "reason": reason, "message": message,
        })),
    }
}
