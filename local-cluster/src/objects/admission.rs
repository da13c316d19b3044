//! Admission: what kube-apiserver's strategies and admission plugins check and default before an
//! object is stored — names, type metadata, namespace lifecycle, per-kind defaulting and
//! validation, CRD schemas, and the answers of the create-only review kinds.

use serde_json::{Value, json};

use super::{FieldValidation, WriteOptions, meta, meta_str, now};
use crate::error::{ApiError, ApiResult, Cause, Reason};
use crate::resources::{GroupResource, ResourceType, Special, types_from_crd};
use crate::schema;
use crate::selectors::label_selector_string;
use crate::state::State;
use crate::store::Txn;

pub(super) fn random_suffix() -> String {
    // The alphabet of k8s.io/apimachinery/pkg/util/rand (no vowels, no ambiguous characters).
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    uuid::Uuid::new_v4().as_bytes()[..5]
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

pub(super) fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

pub(super) fn is_dns_label(s: &str) -> bool {
    s.len() <= 63 && !s.contains('.') && is_dns_subdomain(s)
}

pub(super) fn check_type_meta(rt: &ResourceType, obj: &Value) -> ApiResult<()> {
    if !obj.is_object() {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ));
    }
    if let Some(kind) = obj.get("kind").and_then(Value::as_str)
        && kind != rt.kind
    {
        return Err(ApiError::bad_request(format!(
            "the kind of the object ({kind}) does not match the kind of the resource ({})",
            rt.kind
        )));
    }
    if let Some(av) = obj.get("apiVersion").and_then(Value::as_str) {
        let group = av.rsplit_once('/').map(|(g, _)| g).unwrap_or_default();
        if group != rt.group {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({av}) does not match the expected API version ({})",
                rt.api_version()
            )));
        }
    }
    Ok(())
}

pub(super) fn check_namespace_writable(
    txn: &Txn<'_>,
    rt: &ResourceType,
    ns: &str,
) -> ApiResult<()> {
    if !rt.namespaced {
        return Ok(());
    }
    let namespaces = GroupResource::new("", "namespaces");
    match txn.get(&namespaces, "", ns) {
        None => Err(ApiError::not_found("", "namespaces", ns)),
        Some(n) if meta(n).is_some_and(|m| m.contains_key("deletionTimestamp")) => {
            Err(ApiError::new(
                Reason::Forbidden,
                format!(
                    "{} \"{}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                    rt.plural,
                    meta_str(n, "name").unwrap_or_default()
                ),
            ))
        }
        Some(_) => Ok(()),
    }
}

/// Defaulting and validation shared by create and update; returns warnings.
pub(super) fn admit(
    rt: &ResourceType,
    obj: &mut Value,
    opts: &WriteOptions,
    token: &str,
) -> ApiResult<Vec<String>> {
    let name = meta_str(obj, "name").unwrap_or_default().to_string();
    // RBAC objects take any path-segment name (`system:auth-delegator`), as upstream's
    // `ValidatePathSegmentName`; everything else here an RFC 1123 subdomain or label.
    let invalid_name = if rt.group == "rbac.authorization.k8s.io" {
        (name.is_empty() || name == "." || name == ".." || name.contains(['/', '%']))
            .then_some("may not be '.' or '..' and may not contain '/' or '%'".to_owned())
    } else {
        let (valid, what) = if rt.special == Special::Namespace {
            (is_dns_label(&name), "label")
        } else {
            (is_dns_subdomain(&name), "subdomain")
        };
        (!valid).then(|| format!("a lowercase RFC 1123 {what} must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"))
    };
    if let Some(why) = invalid_name {
        return Err(ApiError::invalid(
            &rt.group,
            &rt.kind,
            &name,
            vec![Cause {
                reason: "FieldValueInvalid",
                field: "metadata.name".into(),
                message: format!("Invalid value: {name:?}: {why}"),
            }],
        ));
    }
    let mut warnings = Vec::new();
    match rt.special {
        Special::Secret => fold_string_data(obj),
        Special::Workload => default_workload(rt, obj, &name)?,
        Special::HorizontalPodAutoscaler => default_hpa(rt, obj, &name)?,
        Special::Review => answer_review(obj, token),
        Special::EventV1 => validate_event_v1(rt, obj, &name)?,
        _ => {}
    }
    if let Some(schema) = &rt.schema {
        let report = schema::process(schema, obj);
        if !report.causes.is_empty() {
            return Err(ApiError::invalid(&rt.group, &rt.kind, &name, report.causes));
        }
        if !report.unknown_fields.is_empty() {
            match opts.field_validation {
                FieldValidation::Strict => {
                    let list: Vec<String> = report
                        .unknown_fields
                        .iter()
                        .map(|f| format!("unknown field \"{f}\""))
                        .collect();
                    return Err(ApiError::bad_request(format!(
                        "{} in version \"{}\" cannot be handled as a {}: strict decoding error: {}",
                        rt.kind,
                        rt.api_version(),
                        rt.kind,
                        list.join(", ")
                    )));
                }
                FieldValidation::Warn => {
                    warnings.extend(
                        report
                            .unknown_fields
                            .iter()
                            .map(|f| format!("unknown field \"{f}\"")),
                    );
                }
                FieldValidation::Ignore => {}
            }
        }
    }
    Ok(warnings)
}

/// kube-apiserver's `ValidateEventCreate` for Events written through `events.k8s.io/v1`, on the
/// stored core form (`note` is stored as `message`, `reportingController` as
/// `reportingComponent`); errors name the `events.k8s.io/v1` fields.
fn validate_event_v1(rt: &ResourceType, obj: &Value, name: &str) -> ApiResult<()> {
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
        Err(ApiError::invalid(&rt.group, &rt.kind, name, causes))
    }
}

pub(super) fn fold_string_data(obj: &mut Value) {
    use base64::Engine as _;
    let Some(map) = obj.as_object_mut() else {
        return;
    };
    let Some(Value::Object(string_data)) = map.remove("stringData") else {
        return;
    };
    let data = map.entry("data").or_insert_with(|| json!({}));
    if !data.is_object() {
        *data = json!({});
    }
    for (k, v) in string_data {
        let text = v.as_str().unwrap_or_default();
        data[k.as_str()] = Value::String(base64::engine::general_purpose::STANDARD.encode(text));
    }
}

pub(super) fn default_workload(rt: &ResourceType, obj: &mut Value, name: &str) -> ApiResult<()> {
    if !obj.get("spec").is_some_and(Value::is_object) {
        obj["spec"] = json!({});
    }
    if obj["spec"].get("replicas").is_none_or(Value::is_null) {
        obj["spec"]["replicas"] = json!(1);
    }
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
        Err(ApiError::invalid(&rt.group, &rt.kind, name, causes))
    }
}

/// API-server defaulting of autoscaling/v2 (minReplicas, behavior) and the required fields.
pub(super) fn default_hpa(rt: &ResourceType, obj: &mut Value, name: &str) -> ApiResult<()> {
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
        Err(ApiError::invalid(&rt.group, &rt.kind, name, causes))
    }
}

pub(super) fn fill_rules(given: &Value, window: Option<i64>, policies: Value) -> Value {
    let mut out = given.as_object().cloned().unwrap_or_default();
    out.entry("selectPolicy").or_insert_with(|| json!("Max"));
    out.entry("policies").or_insert(policies);
    if let Some(w) = window {
        out.entry("stabilizationWindowSeconds")
            .or_insert_with(|| json!(w));
    }
    Value::Object(out)
}

pub(super) fn answer_review(obj: &mut Value, token: &str) {
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
    obj["status"] = if kind == "TokenReview" {
        let ok = obj.pointer("/spec/token").and_then(Value::as_str) == Some(token);
        if ok {
            json!({"authenticated": true, "user": {"username": "kedge-local-admin", "groups": ["system:masters", "system:authenticated"]}})
        } else {
            json!({"authenticated": false, "error": "invalid bearer token"})
        }
    } else {
        json!({"allowed": true, "reason": "local-cluster authorizes every authenticated request"})
    };
}

/// Status of a CRD as the apiextensions controllers would set it once the names are accepted.
pub(super) fn crd_status(crd: &Value) -> Value {
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

pub(super) fn check_crd(state: &State, crd: &Value) -> ApiResult<()> {
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
