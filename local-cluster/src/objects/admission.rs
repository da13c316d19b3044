//! Admission: what kube-apiserver checks and defaults before an object of any kind is stored —
//! type metadata, namespace lifecycle, names, CRD schemas — calling the kind's
//! [`Strategy`](super::strategy::Strategy) for its own rules.

use serde_json::Value;

use super::strategy::Strategy;
use super::{FieldValidation, WriteOptions, meta, meta_str};
use crate::error::{ApiError, ApiResult, Cause, Reason};
use crate::resources::{GroupResource, ResourceType};
use crate::schema;
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

/// Name rules, defaulting and validation shared by create and update; returns warnings.
pub(super) fn admit(
    state: &State,
    rt: &ResourceType,
    strategy: &dyn Strategy,
    obj: &mut Value,
    opts: &WriteOptions,
) -> ApiResult<Vec<String>> {
    let name = meta_str(obj, "name").unwrap_or_default().to_string();
    if let Some(why) = strategy.name_problem(&name) {
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
    strategy.apply_defaults(obj);
    strategy.validate(state, rt, obj)?;
    let mut warnings = Vec::new();
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
