//! Deletion: preconditions, finalizers (deletionTimestamp until they are gone), namespace
//! termination, CRD removal with its objects, and garbage collection of dependents through
//! ownerReferences.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::{Value, json};

use super::{
    DeleteOptions, PostCommit, Propagation, meta, meta_mut, meta_str, not_found, now, ns_key,
    render, run_post, select,
};
use crate::error::{ApiError, ApiResult, Reason};
use crate::resources::{GroupResource, ResourceType};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::state::State;
use crate::store::{Txn, key_of};

/// DELETE one object. Returns the body to answer: the object while finalizers are pending, a
/// success `Status` once it is gone.
pub fn delete(
    state: &State,
    rt: &ResourceType,
    namespace: Option<&str>,
    name: &str,
    opts: &DeleteOptions,
) -> ApiResult<Value> {
    let mut txn = state.store.txn();
    let gr = rt.group_resource();
    let old = txn
        .get(&gr, ns_key(rt, namespace), name)
        .cloned()
        .ok_or_else(|| not_found(rt, name))?;
    if let Some(uid) = &opts.uid
        && Some(uid.as_str()) != meta_str(&old, "uid")
    {
        return Err(ApiError::new(
            Reason::Conflict,
            format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                meta_str(&old, "uid").unwrap_or_default()
            ),
        ));
    }
    if let Some(rv) = &opts.resource_version
        && Some(rv.as_str()) != meta_str(&old, "resourceVersion")
    {
        return Err(ApiError::conflict(&rt.group, &rt.plural, name));
    }
    let success = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {"name": name, "group": rt.group, "kind": rt.plural, "uid": meta_str(&old, "uid")},
    });
    if opts.dry_run {
        return Ok(success);
    }
    let mut post = Vec::new();
    let pending = delete_in_txn(state, &mut txn, &gr, &old, opts.propagation, &mut post);
    drop(txn);
    run_post(state, post);
    Ok(match pending {
        Some(obj) => render(rt, &obj),
        None => success,
    })
}

/// Start deleting: mark for deletion when finalizers (or namespace contents) remain, else remove.
/// Returns the object when it still exists.
fn delete_in_txn(
    state: &State,
    txn: &mut Txn<'_>,
    gr: &GroupResource,
    obj: &Value,
    propagation: Propagation,
    post: &mut Vec<PostCommit>,
) -> Option<Value> {
    let has_finalizers = obj
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| !f.is_empty());
    let is_namespace = gr.group.is_empty() && gr.resource == "namespaces";
    if !has_finalizers && !is_namespace {
        remove_final(state, txn, gr, obj, propagation, post);
        return None;
    }
    let mut marked = obj.clone();
    let already = meta(obj).is_some_and(|m| m.contains_key("deletionTimestamp"));
    if !already {
        let m = meta_mut(&mut marked);
        m.insert("deletionTimestamp".into(), json!(now()));
        m.insert("deletionGracePeriodSeconds".into(), json!(0));
        if is_namespace {
            marked["status"] = json!({"phase": "Terminating"});
        }
        marked = (*txn.put(gr, marked)).clone();
    }
    if is_namespace {
        let ns = meta_str(obj, "name").unwrap_or_default().to_string();
        let contents: Vec<(GroupResource, Value)> = txn
            .all()
            .into_iter()
            .filter(|(g, o)| {
                !(g.group.is_empty() && g.resource == "namespaces")
                    && meta_str(o, "namespace") == Some(ns.as_str())
            })
            .map(|(g, o)| (g, o.clone()))
            .collect();
        for (g, o) in contents {
            if txn
                .get(&g, &ns, meta_str(&o, "name").unwrap_or_default())
                .is_some()
            {
                delete_in_txn(state, txn, &g, &o, Propagation::Background, post);
            }
        }
        return if finish_namespace(state, txn, &ns, post) {
            None
        } else {
            txn.get(gr, "", &ns).cloned()
        };
    }
    Some(marked)
}

/// Remove a terminating namespace once it is empty and has no finalizers of its own.
fn finish_namespace(
    state: &State,
    txn: &mut Txn<'_>,
    ns: &str,
    post: &mut Vec<PostCommit>,
) -> bool {
    let namespaces = GroupResource::new("", "namespaces");
    let Some(n) = txn.get(&namespaces, "", ns).cloned() else {
        return true;
    };
    let terminating = meta(&n).is_some_and(|m| m.contains_key("deletionTimestamp"));
    let finalizers = n
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| !f.is_empty());
    let empty = !txn
        .all()
        .iter()
        .any(|(g, o)| *g != namespaces && meta_str(o, "namespace") == Some(ns));
    if terminating && !finalizers && empty {
        remove_final(state, txn, &namespaces, &n, Propagation::Background, post);
        true
    } else {
        false
    }
}

/// Remove an object for good and collect its garbage: dependents whose owners are all gone,
/// the objects of a deleted CRD, and a terminating namespace that became empty.
pub(super) fn remove_final(
    state: &State,
    txn: &mut Txn<'_>,
    gr: &GroupResource,
    obj: &Value,
    propagation: Propagation,
    post: &mut Vec<PostCommit>,
) -> Option<Arc<Value>> {
    let (ns, name) = key_of(obj);
    let removed = txn.remove(gr, &ns, &name);
    let uid = meta_str(obj, "uid").unwrap_or_default().to_string();

    if gr.group == "apiextensions.k8s.io" && gr.resource == "customresourcedefinitions" {
        let group = obj
            .pointer("/spec/group")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let plural = obj
            .pointer("/spec/names/plural")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let crs = GroupResource::new(group, plural);
        let keys: Vec<(String, String)> = txn.list(&crs, None).into_iter().map(key_of).collect();
        for (cns, cname) in keys {
            txn.remove(&crs, &cns, &cname);
        }
        post.push(PostCommit::Crd(name.clone(), None));
    }

    let owned_by = |o: &Value, uid: &str| {
        o.pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .is_some_and(|refs| {
                refs.iter()
                    .any(|r| r.get("uid").and_then(Value::as_str) == Some(uid))
            })
    };
    let dependents: Vec<(GroupResource, Value)> = txn
        .all()
        .into_iter()
        .filter(|(_, o)| owned_by(o, &uid))
        .map(|(g, o)| (g, o.clone()))
        .collect();
    if !dependents.is_empty() {
        let live: HashSet<String> = txn
            .all()
            .into_iter()
            .filter_map(|(_, o)| meta_str(o, "uid").map(str::to_string))
            .collect();
        for (g, dep) in dependents {
            match propagation {
                Propagation::Orphan => {
                    let mut orphan = dep.clone();
                    if let Some(refs) = orphan
                        .pointer_mut("/metadata/ownerReferences")
                        .and_then(Value::as_array_mut)
                    {
                        refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(uid.as_str()));
                    }
                    txn.put(&g, orphan);
                }
                Propagation::Background => {
                    let other_owner_alive = dep
                        .pointer("/metadata/ownerReferences")
                        .and_then(Value::as_array)
                        .is_some_and(|refs| {
                            refs.iter()
                                .filter_map(|r| r.get("uid").and_then(Value::as_str))
                                .any(|u| u != uid && live.contains(u))
                        });
                    let (dns, dname) = key_of(&dep);
                    if !other_owner_alive && txn.get(&g, &dns, &dname).is_some() {
                        delete_in_txn(state, txn, &g, &dep, Propagation::Background, post);
                    }
                }
            }
        }
    }

    if !ns.is_empty() {
        let terminating = txn
            .get(&GroupResource::new("", "namespaces"), "", &ns)
            .is_some_and(|n| meta(n).is_some_and(|m| m.contains_key("deletionTimestamp")));
        if terminating {
            finish_namespace(state, txn, &ns, post);
        }
    }
    removed
}

/// DELETE on a collection: delete every matching object; answers the list of them.
pub fn delete_collection(
    state: &State,
    rt: &ResourceType,
    namespace: Option<&str>,
    labels: &LabelSelector,
    fields: &FieldSelector,
    opts: &DeleteOptions,
) -> ApiResult<Value> {
    let (items, _) = select(state, rt, namespace, labels, fields);
    let mut deleted = Vec::new();
    for item in items {
        let (ns, name) = key_of(&item);
        match delete(state, rt, Some(ns.as_str()), &name, opts) {
            Ok(_) => deleted.push(item),
            Err(e) if e.reason == Reason::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    let rv = state.store.txn().resource_version();
    Ok(
        json!({"kind": rt.list_kind, "apiVersion": rt.api_version(), "metadata": {"resourceVersion": rv.to_string()}, "items": deleted}),
    )
}
