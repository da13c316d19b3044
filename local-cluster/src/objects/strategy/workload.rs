//! Deployments, StatefulSets and ReplicaSets: `spec.replicas` defaults to 1 and a non-empty
//! selector is required.

use serde_json::{Value, json};

use super::Strategy;
use crate::error::{ApiError, ApiResult, Cause};
use crate::objects::meta_str;
use crate::resources::ResourceType;
use crate::selectors::label_selector_string;
use crate::state::State;

pub(super) struct Workload;

impl Strategy for Workload {
    fn apply_defaults(&self, obj: &mut Value) {
        if !obj.get("spec").is_some_and(Value::is_object) {
            obj["spec"] = json!({});
        }
        if obj["spec"].get("replicas").is_none_or(Value::is_null) {
            obj["spec"]["replicas"] = json!(1);
        }
    }

    fn validate(&self, _state: &State, rt: &ResourceType, obj: &Value) -> ApiResult<()> {
        let mut causes = Vec::new();
        match obj["spec"]["replicas"].as_i64() {
            Some(r) if (0..=i64::from(i32::MAX)).contains(&r) => {}
            _ => causes.push(Cause {
                reason: "FieldValueInvalid",
                field: "spec.replicas".into(),
                message: format!(
                    "Invalid value: {}: must be greater than or equal to 0",
                    obj["spec"]["replicas"]
                ),
            }),
        }
        let selector = &obj["spec"]["selector"];
        if selector.is_null() {
            causes.push(Cause {
                reason: "FieldValueRequired",
                field: "spec.selector".into(),
                message: "Required value".into(),
            });
        } else if label_selector_string(selector).is_empty() {
            causes.push(Cause {
                reason: "FieldValueInvalid",
                field: "spec.selector".into(),
                message: format!(
                    "Invalid value: {selector}: empty selector is invalid for {}",
                    rt.kind.to_ascii_lowercase()
                ),
            });
        }
        if causes.is_empty() {
            Ok(())
        } else {
            let name = meta_str(obj, "name").unwrap_or_default();
            Err(ApiError::invalid(&rt.group, &rt.kind, name, causes))
        }
    }
}
