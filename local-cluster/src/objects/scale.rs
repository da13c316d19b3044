//! The `scale` subresource: an `autoscaling/v1` Scale view of `spec.replicas`, the observed
//! replicas and the label selector, at the CRD's paths or natively for workloads.

use serde_json::{Value, json};

use super::{
    Subresource, WriteOptions, commit_update, meta, meta_str, not_found, ns_key, prepare_update,
    render, run_post,
};
use crate::error::{ApiError, ApiResult, Cause};
use crate::patch::{self, PatchType};
use crate::resources::ResourceType;
use crate::selectors::label_selector_string;
use crate::state::State;

fn path_segments(path: &str) -> Vec<&str> {
    path.trim_start_matches('.')
        .split('.')
        .filter(|s| !s.is_empty())
        .collect()
}

/// Read a `.a.b` path.
pub fn get_path<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    path_segments(path)
        .into_iter()
        .try_fold(obj, |cur, seg| cur.get(seg))
}

fn set_path(obj: &mut Value, path: &str, value: Value) {
    let segs = path_segments(path);
    let mut cur = obj;
    for (i, seg) in segs.iter().enumerate() {
        if !cur.is_object() {
            *cur = json!({});
        }
        if i == segs.len() - 1 {
            cur[*seg] = value;
            return;
        }
        cur = &mut cur[*seg];
    }
}

/// The `autoscaling/v1` Scale of an object.
pub fn scale_of(rt: &ResourceType, obj: &Value) -> ApiResult<Value> {
    let paths = rt.scale.as_ref().ok_or_else(|| {
        ApiError::not_found(
            &rt.group,
            &format!("{}/scale", rt.plural),
            meta_str(obj, "name").unwrap_or_default(),
        )
    })?;
    let spec_replicas = get_path(obj, &paths.spec_replicas)
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let status_replicas = get_path(obj, &paths.status_replicas)
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let selector = match &paths.label_selector {
        Some(p) => get_path(obj, p).and_then(Value::as_str).map(str::to_string),
        None => obj.pointer("/spec/selector").map(label_selector_string),
    };
    let m = meta(obj);
    let pick = |k: &str| m.and_then(|m| m.get(k)).cloned().unwrap_or(Value::Null);
    let mut metadata = json!({
        "name": pick("name"),
        "uid": pick("uid"),
        "resourceVersion": pick("resourceVersion"),
        "creationTimestamp": pick("creationTimestamp"),
    });
    if rt.namespaced {
        metadata["namespace"] = pick("namespace");
    }
    let mut status = json!({"replicas": status_replicas});
    if let Some(sel) = selector.filter(|s| !s.is_empty()) {
        status["selector"] = json!(sel);
    }
    Ok(json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": metadata,
        "spec": {"replicas": spec_replicas},
        "status": status,
    }))
}

/// GET /scale.
pub fn get_scale(
    state: &State,
    rt: &ResourceType,
    namespace: Option<&str>,
    name: &str,
) -> ApiResult<Value> {
    // Read in place: a Scale only takes a few fields, and rendering changes none of them.
    let txn = state.store.txn();
    let obj = txn
        .get(&rt.group_resource(), ns_key(rt, namespace), name)
        .ok_or_else(|| not_found(rt, name))?;
    scale_of(rt, obj)
}

/// PUT /scale: only `spec.replicas` is taken from the body.
pub fn update_scale(
    state: &State,
    rt: &ResourceType,
    namespace: Option<&str>,
    name: &str,
    scale: &Value,
    opts: &WriteOptions,
) -> ApiResult<Value> {
    let paths = rt
        .scale
        .clone()
        .ok_or_else(|| ApiError::not_found(&rt.group, &format!("{}/scale", rt.plural), name))?;
    let replicas = scale.pointer("/spec/replicas").map(|r| r.as_i64());
    let replicas = match replicas {
        None => 0,
        Some(Some(r)) if r >= 0 => r,
        Some(_) => {
            return Err(ApiError::invalid(
                "autoscaling",
                "Scale",
                name,
                vec![Cause {
                    reason: "FieldValueInvalid",
                    field: "spec.replicas".into(),
                    message: "Invalid value: must be greater than or equal to 0".into(),
                }],
            ));
        }
    };
    let mut txn = state.store.txn();
    let gr = rt.group_resource();
    let old = txn
        .get_shared(&gr, ns_key(rt, namespace), name)
        .cloned()
        .ok_or_else(|| not_found(rt, name))?;
    if let Some(rv) = scale
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        && !rv.is_empty()
        && Some(rv) != meta_str(&old, "resourceVersion")
    {
        return Err(ApiError::conflict(&rt.group, &rt.plural, name));
    }
    let mut body = (*old).clone();
    set_path(&mut body, &paths.spec_replicas, json!(replicas));
    if let Some(m) = body.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
    }
    let (new, _) = prepare_update(state, rt, &old, render(rt, &body), Subresource::Main, opts)?;
    if opts.dry_run {
        return scale_of(rt, &new);
    }
    let mut post = Vec::new();
    let stored = commit_update(state, &mut txn, rt, &old, new, &mut post);
    drop(txn);
    run_post(state, post);
    scale_of(rt, &stored)
}

/// PATCH /scale (kubectl scale and kube-rs `patch_scale` send merge patches).
pub fn patch_scale(
    state: &State,
    rt: &ResourceType,
    namespace: Option<&str>,
    name: &str,
    patch_type: PatchType,
    body: &Value,
    opts: &WriteOptions,
) -> ApiResult<Value> {
    let current = get_scale(state, rt, namespace, name)?;
    let patched = patch::apply_patch(&current, body, patch_type, true)?;
    update_scale(state, rt, namespace, name, &patched, opts)
}
