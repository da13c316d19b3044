//! Writing ScaledObject status: one writer per object, only what changed, conditions in KEDA's
//! order with KEDA's reasons.

use kube::api::{Api, Patch, PatchParams};
use serde_json::{Map, Value};
use tokio::sync::Mutex;

use crate::crd::{Condition, ScaledObject, ScaledObjectStatus};

/// Condition types, in the order KEDA keeps them.
pub const CONDITION_ORDER: [&str; 5] = ["Ready", "Active", "Fallback", "Paused", "HPAActive"];

/// KEDA's initial conditions: Ready/Active/Fallback Unknown, Paused False.
pub fn initial_conditions() -> Vec<Condition> {
    ["Ready", "Active", "Fallback"]
        .into_iter()
        .map(|t| Condition {
            type_: t.to_owned(),
            status: "Unknown".to_owned(),
            reason: None,
            message: None,
        })
        .chain([Condition {
            type_: "Paused".to_owned(),
            status: "False".to_owned(),
            reason: None,
            message: None,
        }])
        .collect()
}

/// Sets condition `type_` (adding the initial set first if missing). Returns true when the
/// status of the condition changed (the moment KEDA emits a transition Event).
pub fn set_condition(
    status: &mut ScaledObjectStatus,
    type_: &str,
    value: &str,
    reason: &str,
    message: &str,
) -> bool {
    let conditions = status.conditions.get_or_insert_with(initial_conditions);
    let existing = conditions.iter_mut().find(|c| c.type_ == type_);
    let transitioned = existing.as_ref().is_none_or(|c| c.status != value);
    let new = Condition {
        type_: type_.to_owned(),
        status: value.to_owned(),
        reason: Some(reason.to_owned()),
        message: Some(message.to_owned()),
    };
    match existing {
        Some(c) => *c = new,
        None => conditions.push(new),
    }
    conditions.sort_by_key(|c| {
        CONDITION_ORDER
            .iter()
            .position(|t| *t == c.type_)
            .unwrap_or(CONDITION_ORDER.len())
    });
    transitioned
}

/// The status of condition `type_`, if set.
pub fn condition_status<'a>(status: &'a ScaledObjectStatus, type_: &str) -> Option<&'a str> {
    status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == type_)
        .map(|c| c.status.as_str())
}

/// A JSON merge patch turning `old` into `new`, or `None` when they are equal. Removed keys
/// become `null`, so the server deletes them.
pub fn merge_diff(old: &Value, new: &Value) -> Option<Value> {
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            let mut patch = Map::new();
            for (k, nv) in n {
                match o.get(k) {
                    Some(ov) => {
                        if let Some(d) = merge_diff(ov, nv) {
                            patch.insert(k.clone(), d);
                        }
                    }
                    None => {
                        patch.insert(k.clone(), nv.clone());
                    }
                }
            }
            for k in o.keys() {
                if !n.contains_key(k) {
                    patch.insert(k.clone(), Value::Null);
                }
            }
            (!patch.is_empty()).then_some(Value::Object(patch))
        }
        (o, n) if o == n => None,
        (_, n) => Some(n.clone()),
    }
}

/// The single writer of one ScaledObject's status. The reconciler and the scale loop both go
/// through it, so their writes never overwrite each other, and a write happens only when the
/// status actually changed.
pub struct StatusWriter {
    api: Api<ScaledObject>,
    name: String,
    written: Mutex<ScaledObjectStatus>,
}

impl StatusWriter {
    /// A writer starting from the status the object had when it was read.
    pub fn new(api: Api<ScaledObject>, name: String, current: ScaledObjectStatus) -> Self {
        Self {
            api,
            name,
            written: Mutex::new(current),
        }
    }

    /// The status as last written.
    pub async fn current(&self) -> ScaledObjectStatus {
        self.written.lock().await.clone()
    }

    /// Applies `change` to the status and writes the difference, if any. Returns what `change`
    /// returned.
    pub async fn update<R>(
        &self,
        change: impl FnOnce(&mut ScaledObjectStatus) -> R,
    ) -> Result<R, kube::Error> {
        let mut written = self.written.lock().await;
        let mut next = written.clone();
        let result = change(&mut next);
        let old = serde_json::to_value(&*written).unwrap_or(Value::Null);
        let new = serde_json::to_value(&next).unwrap_or(Value::Null);
        if let Some(diff) = merge_diff(&old, &new) {
            let patch = serde_json::json!({ "status": diff });
            self.api
                .patch_status(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
            *written = next;
        }
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_diff_writes_only_changes_and_nulls_removals() {
        let old = json!({"a": 1, "b": {"x": 1, "y": 2}, "c": [1], "gone": true});
        let new = json!({"a": 1, "b": {"x": 1, "y": 3}, "c": [1, 2], "new": "v"});
        assert_eq!(
            merge_diff(&old, &new),
            Some(json!({"b": {"y": 3}, "c": [1, 2], "new": "v", "gone": null}))
        );
        assert_eq!(merge_diff(&old, &old), None);
    }

    #[test]
    fn conditions_keep_keda_order_and_report_transitions() {
        let mut s = ScaledObjectStatus::default();
        assert!(set_condition(
            &mut s,
            "Active",
            "True",
            "ScalerActive",
            "Scaling is performed because triggers are active"
        ));
        assert!(!set_condition(
            &mut s,
            "Active",
            "True",
            "ScalerActive",
            "again"
        ));
        assert!(set_condition(
            &mut s,
            "Ready",
            "True",
            "ScaledObjectReady",
            "ScaledObject is defined correctly and is ready for scaling"
        ));
        let types: Vec<&str> = s
            .conditions
            .iter()
            .flatten()
            .map(|c| c.type_.as_str())
            .collect();
        assert_eq!(types, ["Ready", "Active", "Fallback", "Paused"]);
        assert_eq!(condition_status(&s, "Fallback"), Some("Unknown"));
    }
}
