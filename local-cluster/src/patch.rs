//! PATCH bodies: JSON merge patch (RFC 7386), JSON patch (RFC 6902), strategic merge patch (the
//! subset kubectl and kedge produce), and server-side apply (treated as a merge).

use serde_json::{Map, Value};

use crate::error::{ApiError, ApiResult, Reason};

/// The patch flavour, from the request's Content-Type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// `application/json-patch+json`
    Json,
    /// `application/merge-patch+json`
    Merge,
    /// `application/strategic-merge-patch+json`
    Strategic,
    /// `application/apply-patch+yaml` (and `+cbor`, which we cannot decode)
    Apply,
}

impl PatchType {
    /// Map a Content-Type to a patch type; 415 otherwise.
    pub fn from_content_type(ct: &str) -> ApiResult<Self> {
        let base = ct.split(';').next().unwrap_or_default().trim();
        match base {
            "application/json-patch+json" => Ok(PatchType::Json),
            "application/merge-patch+json" => Ok(PatchType::Merge),
            "application/strategic-merge-patch+json" => Ok(PatchType::Strategic),
            "application/apply-patch+yaml" => Ok(PatchType::Apply),
            other => Err(ApiError::new(
                Reason::UnsupportedMediaType,
                format!(
                    "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {other:?})"
                ),
            )),
        }
    }
}

/// Decode a patch body: JSON, or YAML for apply patches (kubectl and kube-rs send JSON, which is
/// also YAML; hand-written YAML must work too).
pub fn decode_body(body: &[u8], patch_type: PatchType) -> ApiResult<Value> {
    match serde_json::from_slice(body) {
        Ok(v) => Ok(v),
        Err(json_err) if patch_type == PatchType::Apply => {
            let text = std::str::from_utf8(body)
                .map_err(|e| ApiError::bad_request(format!("invalid UTF-8 body: {e}")))?;
            serde_saphyr::from_str::<Value>(text).map_err(|e| {
                ApiError::bad_request(format!("error decoding YAML: {e} (as JSON: {json_err})"))
            })
        }
        Err(e) => Err(ApiError::bad_request(format!("error decoding patch: {e}"))),
    }
}

/// Apply a patch to `target`. `strategic` says whether list merge keys apply (built-in kinds);
/// for custom resources kube-apiserver rejects strategic merge patches, and so do we.
pub fn apply_patch(
    target: &Value,
    patch: &Value,
    patch_type: PatchType,
    strategic: bool,
) -> ApiResult<Value> {
    match patch_type {
        PatchType::Json => {
            let ops: json_patch::Patch = serde_json::from_value(patch.clone())
                .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
            let mut doc = target.clone();
            for op in ops.0 {
                // kube-apiserver (evanphx/json-patch) treats a missing path as null in `test`;
                // kube-rs' finalizer helper relies on that to add the first finalizer.
                if let json_patch::PatchOperation::Test(t) = &op
                    && t.value.is_null()
                    && doc.pointer(t.path.as_str()).is_none()
                {
                    continue;
                }
                json_patch::patch(&mut doc, &[op]).map_err(|e| {
                    ApiError::new(
                        Reason::Invalid,
                        format!(
                            "the server rejected our request due to an error in our request: {e}"
                        ),
                    )
                })?;
            }
            Ok(doc)
        }
        PatchType::Merge => {
            require_object(patch)?;
            let mut doc = target.clone();
            json_patch::merge(&mut doc, patch);
            Ok(doc)
        }
        PatchType::Strategic => {
            if !strategic {
                return Err(ApiError::new(
                    Reason::UnsupportedMediaType,
                    "strategic merge patch is not supported for custom resources; use --type merge or --type json",
                ));
            }
            require_object(patch)?;
            Ok(strategic_merge(target, patch, ""))
        }
        PatchType::Apply => {
            require_object(patch)?;
            if strategic {
                Ok(strategic_merge(target, patch, ""))
            } else {
                let mut doc = target.clone();
                json_patch::merge(&mut doc, patch);
                Ok(doc)
            }
        }
    }
}

fn require_object(patch: &Value) -> ApiResult<()> {
    if patch.is_object() {
        Ok(())
    } else {
        Err(ApiError::bad_request("the patch must be a JSON object"))
    }
}

/// Merge keys of the list fields kubectl and kedge patch (from the Go struct tags of k8s.io/api).
fn merge_key(field: &str, items: &[Value]) -> Option<&'static str> {
    Some(match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets" => "name",
        "volumeMounts" => "mountPath",
        "volumeDevices" => "devicePath",
        "conditions" => "type",
        "ownerReferences" => "uid",
        "hostAliases" => "ip",
        "topologySpreadConstraints" => "topologyKey",
        "resourceClaims" => "name",
        "ports" => {
            // Container ports merge on containerPort, Service ports on port.
            if items.iter().any(|i| i.get("containerPort").is_some()) {
                "containerPort"
            } else {
                "port"
            }
        }
        _ => return None,
    })
}

/// Primitive lists whose patch strategy is "merge" (set union) rather than replace.
fn is_merged_primitive_list(path: &str) -> bool {
    path == "metadata.finalizers"
}

/// Strategic merge patch: JSON merge patch, except that lists with a merge key are merged
/// element-wise by that key, and the `$patch`, `$deleteFromPrimitiveList` and `$setElementOrder`
/// directives are understood.
pub fn strategic_merge(target: &Value, patch: &Value, path: &str) -> Value {
    let Some(patch_map) = patch.as_object() else {
        return patch.clone();
    };
    match patch_map.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            let mut replaced = patch_map.clone();
            replaced.remove("$patch");
            return Value::Object(replaced);
        }
        Some("delete") => return Value::Null,
        _ => {}
    }
    let mut out: Map<String, Value> = target.as_object().cloned().unwrap_or_default();
    for (key, pv) in patch_map {
        if key == "$patch" || key == "$retainKeys" || key.starts_with("$setElementOrder/") {
            continue;
        }
        if let Some(field) = key.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(list)), Some(remove)) = (out.get_mut(field), pv.as_array()) {
                list.retain(|v| !remove.contains(v));
            }
            continue;
        }
        let child_path = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        match pv {
            Value::Null => {
                out.remove(key);
            }
            Value::Object(_) => {
                let merged = strategic_merge(out.get(key).unwrap_or(&Value::Null), pv, &child_path);
                if merged.is_null() {
                    out.remove(key);
                } else {
                    out.insert(key.clone(), merged);
                }
            }
            Value::Array(items) => {
                let current = out
                    .get(key)
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let merged = merge_list(key, &child_path, &current, items);
                out.insert(key.clone(), Value::Array(merged));
            }
            other => {
                out.insert(key.clone(), other.clone());
            }
        }
    }
    Value::Object(out)
}

fn merge_list(field: &str, path: &str, current: &[Value], patch: &[Value]) -> Vec<Value> {
    if patch.iter().all(|v| !v.is_object()) {
        if is_merged_primitive_list(path) {
            let mut out = current.to_vec();
            for v in patch {
                if !out.contains(v) {
                    out.push(v.clone());
                }
            }
            return out;
        }
        return patch.to_vec();
    }
    // A `{"$patch": "replace"}` element replaces the whole list with the other elements.
    if patch
        .iter()
        .any(|v| v.get("$patch").and_then(Value::as_str) == Some("replace"))
    {
        return patch
            .iter()
            .filter(|v| v.get("$patch").is_none())
            .cloned()
            .collect();
    }
    let all: Vec<Value> = current.iter().chain(patch.iter()).cloned().collect();
    let Some(key) = merge_key(field, &all) else {
        return patch.to_vec();
    };
    let mut out = current.to_vec();
    for item in patch {
        let id = item.get(key);
        let pos = id.and_then(|id| out.iter().position(|o| o.get(key) == Some(id)));
        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
        match (pos, delete) {
            (Some(i), true) => {
                out.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => {
                out[i] = strategic_merge(&out[i], item, path);
            }
            (None, false) => out.push(strategic_merge(&Value::Null, item, path)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn strategic_merges_containers_by_name() {
        let target = json!({"spec": {"containers": [{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}]}});
        let patch = json!({"spec": {"containers": [{"name": "b", "image": "b:2"}, {"name": "c", "image": "c:1"}]}});
        let out = strategic_merge(&target, &patch, "");
        assert_eq!(
            out,
            json!({"spec": {"containers": [{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:2"}, {"name": "c", "image": "c:1"}]}})
        );
    }

    #[test]
    fn strategic_directives() {
        let target = json!({"metadata": {"finalizers": ["x"], "labels": {"a": "1"}}, "status": {"conditions": [{"type": "Ready", "status": "False"}]}});
        let patch = json!({
            "metadata": {"finalizers": ["y"], "labels": {"$patch": "replace", "b": "2"}},
            "status": {"conditions": [{"type": "Ready", "$patch": "delete"}]}
        });
        let out = strategic_merge(&target, &patch, "");
        assert_eq!(out["metadata"]["finalizers"], json!(["x", "y"]));
        assert_eq!(out["metadata"]["labels"], json!({"b": "2"}));
        assert_eq!(out["status"]["conditions"], json!([]));
        let del = json!({"$deleteFromPrimitiveList/finalizers": ["x"]});
        assert_eq!(
            strategic_merge(&json!({"finalizers": ["x", "z"]}), &del, "metadata"),
            json!({"finalizers": ["z"]})
        );
    }

    #[test]
    fn merge_and_json_patches() {
        let target = json!({"spec": {"replicas": 1, "x": 1}});
        let merged = apply_patch(
            &target,
            &json!({"spec": {"replicas": 3, "x": null}}),
            PatchType::Merge,
            false,
        )
        .unwrap();
        assert_eq!(merged, json!({"spec": {"replicas": 3}}));
        let ops = json!([{"op": "replace", "path": "/spec/replicas", "value": 5}]);
        assert_eq!(
            apply_patch(&target, &ops, PatchType::Json, false).unwrap()["spec"]["replicas"],
            5
        );
        let bad = json!([{"op": "test", "path": "/spec/replicas", "value": 9}]);
        let missing_is_null = json!([{"op": "test", "path": "/metadata/finalizers", "value": null}, {"op": "add", "path": "/metadata", "value": {}}]);
        assert!(apply_patch(&target, &missing_is_null, PatchType::Json, false).is_ok());
        assert_eq!(
            apply_patch(&target, &bad, PatchType::Json, false)
                .unwrap_err()
                .reason,
            Reason::Invalid
        );
        assert!(apply_patch(&target, &json!({}), PatchType::Strategic, false).is_err());
    }

    #[test]
    fn apply_bodies_may_be_yaml() {
        let v = decode_body(b"spec:\n  replicas: 2\n", PatchType::Apply).unwrap();
        assert_eq!(v, json!({"spec": {"replicas": 2}}));
        assert!(decode_body(b"spec: [", PatchType::Merge).is_err());
    }
}
