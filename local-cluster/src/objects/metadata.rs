//! The metadata bookkeeping every kind's writes share (kube-apiserver's `rest.BeforeCreate`,
//! `rest.BeforeUpdate` and `ValidateObjectMetaUpdate`): names and namespaces, server-owned
//! fields, preconditions, finalizers of deleting objects, generation and managedFields.

use std::collections::HashSet;

use serde_json::{Value, json};

use super::admission::random_suffix;
use super::{WriteOptions, generation_changed, meta, meta_mut, meta_str, now};
use crate::error::{ApiError, ApiResult, Cause};
use crate::resources::ResourceType;

/// Fields only the server sets.
const SERVER_SET: [&str; 6] = [
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
];

/// Name (or one generated from `generateName`) and namespace of a created object, with the
/// fields only the server sets removed.
pub(super) fn prepare_for_create(
    rt: &ResourceType,
    namespace: Option<&str>,
    obj: &mut Value,
) -> ApiResult<()> {
    let m = meta_mut(obj);
    if m.get("name")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        match m.get("generateName").and_then(Value::as_str) {
            Some(prefix) if !prefix.is_empty() => {
                let name = format!("{prefix}{}", random_suffix());
                m.insert("name".into(), json!(name));
            }
            _ => {
                return Err(ApiError::invalid(
                    &rt.group,
                    &rt.kind,
                    "",
                    vec![Cause {
                        reason: "FieldValueRequired",
                        field: "metadata.name".into(),
                        message: "Required value: name or generateName is required".into(),
                    }],
                ));
            }
        }
    }
    if rt.namespaced {
        let url_ns = namespace.unwrap_or("default");
        match m.get("namespace").and_then(Value::as_str) {
            Some(ns) if !ns.is_empty() && ns != url_ns => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            _ => {
                m.insert("namespace".into(), json!(url_ns));
            }
        }
    } else {
        m.remove("namespace");
    }
    for k in SERVER_SET {
        m.remove(k);
    }
    Ok(())
}

/// What the server sets on every created object.
pub(super) fn stamp_created(obj: &mut Value) {
    let m = meta_mut(obj);
    m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
    m.insert("creationTimestamp".into(), json!(now()));
    m.insert("generation".into(), json!(1));
}

/// The body of an update must name the stored object and, when it says, its resourceVersion
/// and uid.
pub(super) fn check_preconditions(rt: &ResourceType, old: &Value, new: &Value) -> ApiResult<()> {
    let name = meta_str(old, "name").unwrap_or_default();
    if let Some(body_name) = meta_str(new, "name")
        && body_name != name
    {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    for key in ["resourceVersion", "uid"] {
        if let Some(given) = meta_str(new, key)
            && !given.is_empty()
            && Some(given) != meta_str(old, key)
        {
            return Err(ApiError::conflict(&rt.group, &rt.plural, name));
        }
    }
    Ok(())
}

/// Identity and lifecycle metadata are the server's: an update keeps the stored ones.
pub(super) fn keep_server_set(old: &Value, new: &mut Value) {
    let old_meta = meta(old);
    let m = meta_mut(new);
    for k in [
        "name",
        "namespace",
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
    ] {
        match old_meta.and_then(|om| om.get(k)) {
            Some(v) => m.insert(k.into(), v.clone()),
            None => m.remove(k),
        };
    }
    m.remove("resourceVersion");
}

/// An object being deleted may lose finalizers but not gain any.
pub(super) fn check_finalizers(rt: &ResourceType, old: &Value, new: &Value) -> ApiResult<()> {
    if !meta(old).is_some_and(|m| m.contains_key("deletionTimestamp")) {
        return Ok(());
    }
    let finalizers = |o: &Value| -> HashSet<String> {
        o.pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    if finalizers(new).is_subset(&finalizers(old)) {
        return Ok(());
    }
    Err(ApiError::invalid(
        &rt.group,
        &rt.kind,
        meta_str(old, "name").unwrap_or_default(),
        vec![Cause {
            reason: "FieldValueForbidden",
            field: "metadata.finalizers".into(),
            message: "Forbidden: no new finalizers can be added if the object is being deleted"
                .into(),
        }],
    ))
}

/// `metadata.generation`: the stored one (1 when missing), plus one when more than metadata
/// changed.
pub(super) fn bump_generation(rt: &ResourceType, old: &Value, new: &mut Value) {
    let generation = meta(old)
        .and_then(|m| m.get("generation"))
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let bumped = if generation_changed(rt, new, old) {
        generation + 1
    } else {
        generation
    };
    meta_mut(new).insert("generation".into(), json!(bumped));
}

/// Record the write's field manager in `managedFields`, replacing its previous entry for the
/// same operation and subresource.
pub(super) fn set_managed_fields(
    obj: &mut Value,
    rt: &ResourceType,
    opts: &WriteOptions,
    subresource: Option<&str>,
) {
    let Some(manager) = opts.field_manager.as_deref() else {
        return;
    };
    let operation = if opts.apply { "Apply" } else { "Update" };
    let m = meta_mut(obj);
    let mut fields: Vec<Value> = m
        .get("managedFields")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    fields.retain(|f| {
        !(f.get("manager").and_then(Value::as_str) == Some(manager)
            && f.get("operation").and_then(Value::as_str) == Some(operation)
            && f.get("subresource").and_then(Value::as_str) == subresource)
    });
    let mut entry = json!({
        "manager": manager,
        "operation": operation,
        "apiVersion": rt.api_version(),
        "time": now(),
        "fieldsType": "FieldsV1",
        "fieldsV1": {},
    });
    if let Some(sub) = subresource {
        entry["subresource"] = json!(sub);
    }
    fields.push(entry);
    m.insert("managedFields".into(), Value::Array(fields));
}
