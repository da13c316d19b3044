//! HorizontalPodAutoscalers: API-server defaulting of autoscaling/v2 (minReplicas, behavior) and
//! the required fields.

use serde_json::{Value, json};

use super::Strategy;
use crate::error::{ApiError, ApiResult, Cause};
use crate::objects::meta_str;
use crate::resources::ResourceType;
use crate::state::State;

pub(super) struct HorizontalPodAutoscaler;

impl Strategy for HorizontalPodAutoscaler {
    fn apply_defaults(&self, obj: &mut Value) {
        if !obj.get("spec").is_some_and(Value::is_object) {
            obj["spec"] = json!({});
        }
        let spec = &mut obj["spec"];
        if spec.get("minReplicas").is_none_or(Value::is_null) {
            spec["minReplicas"] = json!(1);
        }
        if let Some(behavior) = spec.get_mut("behavior").filter(|b| b.is_object()) {
            let up = behavior.get("scaleUp").cloned().unwrap_or(Value::Null);
            let down = behavior.get("scaleDown").cloned().unwrap_or(Value::Null);
            behavior["scaleUp"] = fill_rules(
                &up,
                Some(0),
                json!([{"type": "Pods", "value": 4, "periodSeconds": 15}, {"type": "Percent", "value": 100, "periodSeconds": 15}]),
            );
            behavior["scaleDown"] = fill_rules(
                &down,
                None,
                json!([{"type": "Percent", "value": 100, "periodSeconds": 15}]),
            );
        }
    }

    fn validate(&self, _state: &State, rt: &ResourceType, obj: &Value) -> ApiResult<()> {
        let spec = &obj["spec"];
        let mut causes = Vec::new();
        let max = spec.get("maxReplicas").and_then(Value::as_i64);
        let min = spec.get("minReplicas").and_then(Value::as_i64).unwrap_or(1);
        match max {
            None => causes.push(Cause {
                reason: "FieldValueRequired",
                field: "spec.maxReplicas".into(),
                message: "Required value".into(),
            }),
            Some(m) if m < 1 || m < min => causes.push(Cause {
                reason: "FieldValueInvalid",
                field: "spec.maxReplicas".into(),
                message: format!(
                    "Invalid value: {m}: must be greater than or equal to `minReplicas` and at least 1"
                ),
            }),
            _ => {}
        }
        if spec.pointer("/scaleTargetRef/kind").is_none()
            || spec.pointer("/scaleTargetRef/name").is_none()
        {
            causes.push(Cause {
                reason: "FieldValueRequired",
                field: "spec.scaleTargetRef".into(),
                message: "Required value".into(),
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

fn fill_rules(given: &Value, window: Option<i64>, policies: Value) -> Value {
    let mut out = given.as_object().cloned().unwrap_or_default();
    out.entry("selectPolicy").or_insert_with(|| json!("Max"));
    out.entry("policies").or_insert(policies);
    if let Some(w) = window {
        out.entry("stabilizationWindowSeconds")
            .or_insert_with(|| json!(w));
    }
    Value::Object(out)
}
