//! CustomResourceDefinitions: names checked against the served APIs, the status the
//! apiextensions controllers would set (none run here), and the served types refreshed after
//! each write.

use serde_json::{Value, json};

use super::{Strategy, keep_unaddressed_part};
use crate::error::{ApiError, ApiResult, Cause};
use crate::objects::{PostCommit, Subresource, meta_str, now};
use crate::resources::{ResourceType, types_from_crd};
use crate::state::State;

pub(super) struct CustomResourceDefinition;

impl Strategy for CustomResourceDefinition {
    fn prepare_for_create(&self, _rt: &ResourceType, obj: &mut Value) {
        obj["status"] = accepted_status(obj);
    }

    fn prepare_for_update(
        &self,
        rt: &ResourceType,
        old: &Value,
        new: &mut Value,
        sub: Subresource,
    ) {
        keep_unaddressed_part(rt, old, new, sub);
        let mut status = accepted_status(new);
        // Keep transition times stable across updates.
        if let Some(old_conditions) = old.pointer("/status/conditions") {
            status["conditions"] = old_conditions.clone();
        }
        new["status"] = status;
    }

    fn validate(&self, state: &State, _rt: &ResourceType, crd: &Value) -> ApiResult<()> {
        let name = meta_str(crd, "name").unwrap_or_default();
        let invalid = |field: &str, message: String| {
            ApiError::invalid(
                "apiextensions.k8s.io",
                "CustomResourceDefinition",
                name,
                vec![Cause {
                    reason: "FieldValueInvalid",
                    field: field.into(),
                    message,
                }],
            )
        };
        let types = types_from_crd(crd).map_err(|e| invalid("spec", e))?;
        let group = crd
            .pointer("/spec/group")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let plural = crd
            .pointer("/spec/names/plural")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if name != format!("{plural}.{group}") {
            return Err(invalid(
                "metadata.name",
                format!("Invalid value: {name:?}: must be spec.names.plural+\".\"+spec.group"),
            ));
        }
        if types.is_empty() {
            return Err(invalid(
                "spec.versions",
                "Invalid value: must have at least one served version".into(),
            ));
        }
        if state.registry.custom_conflicts(name, group, plural) {
            return Err(invalid(
                "spec.names.plural",
                format!("Invalid value: {plural:?}: already served by another API"),
            ));
        }
        Ok(())
    }

    fn after_write(&self, stored: &Value) -> Option<PostCommit> {
        let name = meta_str(stored, "name").unwrap_or_default().to_string();
        Some(PostCommit::Crd(name, Some(stored.clone())))
    }
}

/// Status of a CRD as the apiextensions controllers would set it once the names are accepted.
fn accepted_status(crd: &Value) -> Value {
    let t = now();
    let mut names = crd.pointer("/spec/names").cloned().unwrap_or(json!({}));
    if let Some(kind) = names
        .get("kind")
        .and_then(Value::as_str)
        .map(str::to_string)
    {
        names.as_object_mut().map(|n| {
            n.entry("singular")
                .or_insert_with(|| json!(kind.to_ascii_lowercase()));
            n.entry("listKind")
                .or_insert_with(|| json!(format!("{kind}List")))
        });
    }
    let stored: Vec<Value> = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(|vs| {
            vs.iter()
                .filter(|v| v.get("storage") == Some(&json!(true)))
                .filter_map(|v| v.get("name").cloned())
                .collect()
        })
        .unwrap_or_default();
    json!({
        "acceptedNames": names,
        "storedVersions": stored,
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "lastTransitionTime": t, "reason": "NoConflicts", "message": "no conflicts found"},
            {"type": "Established", "status": "True", "lastTransitionTime": t, "reason": "InitialNamesAccepted", "message": "the initial names have been accepted"}
        ]
    })
}
