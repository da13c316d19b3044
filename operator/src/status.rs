//! Writing ScaledObject status: one writer per object, only what changed. What the conditions
//! say is [`crate::policy::conditions`]' business.

use kube::api::{Api, Patch, PatchParams};
use serde_json::{Map, Value};
use tokio::sync::Mutex;

use crate::crd::{ScaledObject, ScaledObjectStatus};

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
}
