//! Events written through `events.k8s.io/v1`: kube-apiserver's `ValidateEventCreate`.

use serde_json::Value;

use super::Strategy;
use crate::error::{ApiError, ApiResult, Cause};
use crate::objects::meta_str;
use crate::resources::ResourceType;
use crate::state::State;

pub(super) struct EventV1;

impl Strategy for EventV1 {
    /// Checks the stored core form (`note` is stored as `message`, `reportingController` as
    /// `reportingComponent`); errors name the `events.k8s.io/v1` fields.
    fn validate(&self, _state: &State, rt: &ResourceType, obj: &Value) -> ApiResult<()> {
        let text = |core: &str| obj.get(core).and_then(Value::as_str).unwrap_or_default();
        let mut causes = Vec::new();
        let mut cause = |reason: &'static str, field: &str, message: String| {
            causes.push(Cause {
                reason,
                field: field.into(),
                message,
            })
        };
        // (Upstream also checks that reportingController is a qualified name.)
        for (core, field, limit) in [
            ("reportingComponent", "reportingController", usize::MAX),
            ("reportingInstance", "reportingInstance", 128),
            ("action", "action", 128),
            ("reason", "reason", 128),
        ] {
            match text(core).len() {
                0 => cause("FieldValueRequired", field, "Required value".into()),
                n if n > limit => cause(
                    "FieldValueInvalid",
                    field,
                    format!("Invalid value: \"\": can have at most {limit} characters"),
                ),
                _ => {}
            }
        }
        // NoteLengthLimit: a longer note is rejected, not truncated.
        if text("message").len() > 1024 {
            cause(
                "FieldValueInvalid",
                "note",
                "Invalid value: \"\": can have at most 1024 characters".into(),
            );
        }
        if obj.get("eventTime").is_none_or(Value::is_null) {
            cause("FieldValueRequired", "eventTime", "Required value".into());
        }
        let type_ = text("type");
        if type_ != "Normal" && type_ != "Warning" {
            cause(
                "FieldValueNotSupported",
                "type",
                format!("Unsupported value: {type_:?}: supported values: \"Normal\", \"Warning\""),
            );
        }
        if let Some(count) = obj.pointer("/series/count").and_then(Value::as_i64)
            && count < 2
        {
            cause(
                "FieldValueInvalid",
                "series.count",
                format!("Invalid value: {count}: should be at least 2"),
            );
        }
        if causes.is_empty() {
            Ok(())
        } else {
            let name = meta_str(obj, "name").unwrap_or_default();
            Err(ApiError::invalid(&rt.group, &rt.kind, name, causes))
        }
    }
}
