//! What kube-apiserver's registry strategies do around storage: defaulting and validation,
//! metadata bookkeeping (uid, generation, timestamps, managedFields), resourceVersion
//! preconditions, status/scale subresources, finalizers, namespace lifecycle, garbage collection of
//! dependents, and CRD registration. Every operation runs in one store transaction.

mod admission;
mod delete;
mod scale;

use std::collections::HashSet;

use serde_json::{Map, Value, json};

use admission::{
    admit, check_crd, check_namespace_writable, check_type_meta, crd_status, random_suffix,
};
use delete::remove_final;
pub use delete::{delete, delete_collection};
pub use scale::{get_scale, patch_scale, update_scale};

use crate::error::{ApiError, ApiResult, Cause};
use crate::patch::{self, PatchType};
use crate::resources::{ResourceType, Special, types_from_crd};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::state::State;
use crate::store::{Txn, key_of};

/// The `fieldValidation` query parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldValidation {
    /// Drop unknown fields silently.
    Ignore,
    /// Drop them and say so in a `Warning` header (the server default).
    #[default]
    Warn,
    /// Reject the request.
    Strict,
}

/// Options common to writes.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// `dryRun=All`: validate, answer, do not store.
    pub dry_run: bool,
    /// `fieldManager`, recorded in managedFields.
    pub field_manager: Option<String>,
    /// `fieldValidation`.
    pub field_validation: FieldValidation,
    /// Whether this is a server-side apply (recorded as operation `Apply` in managedFields).
    pub apply: bool,
}

/// The result of a write.
#[derive(Debug)]
pub struct Written {
    /// The object as stored (or as it would be, for dry runs).
    pub object: Value,
    /// Whether it was created (201) rather than changed (200).
    pub created: bool,
    /// `Warning` headers to send.
    pub warnings: Vec<String>,
}

/// Which part of an object a write addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subresource {
    /// The object itself (status changes ignored when there is a status subresource).
    Main,
    /// `/status`: only status changes.
    Status,
}

/// `propagationPolicy` of a delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Propagation {
    /// Dependents are deleted after the owner (also used for `Foreground`, see the README).
    #[default]
    Background,
    /// Dependents lose their owner reference and stay.
    Orphan,
}

/// Options of a delete.
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    /// Dependents policy.
    pub propagation: Propagation,
    /// `preconditions.uid`.
    pub uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub resource_version: Option<String>,
    /// `dryRun=All`.
    pub dry_run: bool,
}

/// Work to do once the store lock is released.
enum PostCommit {
    /// A CRD was written (Some) or removed (None): refresh the served resource types.
    Crd(String, Option<Value>),
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn meta(obj: &Value) -> Option<&Map<String, Value>> {
    obj.get("metadata").and_then(Value::as_object)
}

fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.is_object() {
        *obj = json!({});
    }
    let entry = match obj {
        Value::Object(root) => root.entry("metadata").or_insert_with(|| json!({})),
        _ => unreachable!("replaced by an object above"),
    };
    if !entry.is_object() {
        *entry = json!({});
    }
    match entry {
        Value::Object(m) => m,
        _ => unreachable!("replaced by an object above"),
    }
}

fn meta_str<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    meta(obj).and_then(|m| m.get(key)).and_then(Value::as_str)
}

/// The object with `apiVersion`/`kind` of the version it is read through.
pub fn render(rt: &ResourceType, obj: &Value) -> Value {
    let mut out = if rt.special == Special::EventV1 {
        crate::convert::event_from_core(obj)
    } else {
        obj.clone()
    };
    if let Some(map) = out.as_object_mut() {
        map.insert("apiVersion".into(), Value::String(rt.api_version()));
        map.insert("kind".into(), Value::String(rt.kind.clone()));
    }
    out
}

/// A request body in the form the storage keeps (only Events differ between versions).
fn to_storage(rt: &ResourceType, obj: Value) -> Value {
    if rt.special == Special::EventV1 {
        crate::convert::event_to_core(&obj)
    } else {
        obj
    }
}

fn ns_key<'a>(rt: &ResourceType, namespace: Option<&'a str>) -> &'a str {
    if rt.namespaced {
        namespace.unwrap_or_default()
    } else {
        ""
    }
}

fn not_found(rt: &ResourceType, name: &str) -> ApiError {
    ApiError::not_found(&rt.group, &rt.plural, name)
}

/// GET one object.
pub fn get(
    state: &State,
    rt: &ResourceType,
    namespace: Option<&str>,
    name: &str,
) -> ApiResult<Value> {
    let txn = state.store.txn();
    let obj = txn
        .get(&rt.group_resource(), ns_key(rt, namespace), name)
        .ok_or_else(|| not_found(rt, name))?;
    Ok(render(rt, obj))
}

/// Objects matching a query, with the resourceVersion they were read at.
pub fn select(
    state: &State,
    rt: &ResourceType,
    namespace: Option<&str>,
    labels: &LabelSelector,
    fields: &FieldSelector,
) -> (Vec<Value>, u64) {
    let txn = state.store.txn();
    let ns = if rt.namespaced { namespace } else { None };
    let items = txn
        .list(&rt.group_resource(), ns)
        .into_iter()
        .map(|o| render(rt, o))
        .filter(|o| labels.matches(o) && fields.matches(o))
        .collect();
    (items, txn.resource_version())
}

/// LIST: a `<Kind>List` object.
pub fn list(
    state: &State,
    rt: &ResourceType,
    namespace: Option<&str>,
    labels: &LabelSelector,
    fields: &FieldSelector,
) -> Value {
    let (items, rv) = select(state, rt, namespace, labels, fields);
    json!({
        "kind": rt.list_kind,
        "apiVersion": rt.api_version(),
        "metadata": {"resourceVersion": rv.to_string()},
        "items": items,
    })
}

fn set_managed_fields(
    obj: &mut Value,
    manager: Option<&str>,
    operation: &str,
    api_version: &str,
    subresource: Option<&str>,
) {
    let Some(manager) = manager else { return };
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
        "apiVersion": api_version,
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

fn run_post(state: &State, post: Vec<PostCommit>) {
    for p in post {
        match p {
            PostCommit::Crd(name, Some(crd)) => {
                let types = types_from_crd(&crd).unwrap_or_default();
                state.registry.set_custom(&name, types);
            }
            PostCommit::Crd(name, None) => state.registry.set_custom(&name, Vec::new()),
        }
    }
}

/// POST: create an object.
pub fn create(
    state: &State,
    rt: &ResourceType,
    namespace: Option<&str>,
    obj: Value,
    opts: &WriteOptions,
) -> ApiResult<Written> {
    check_type_meta(rt, &obj)?;
    let mut obj = to_storage(rt, obj);
    // Reviews (TokenReview, SubjectAccessReview) are answered, never stored, and need no name:
    // kube-apiserver even requires their metadata to be empty.
    if rt.special == Special::Review {
        admission::answer_review(&mut obj, &state.token);
        return Ok(Written {
            object: render(rt, &obj),
            created: true,
            warnings: Vec::new(),
        });
    }
    {
        let m = meta_mut(&mut obj);
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
        for k in [
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ] {
            m.remove(k);
        }
    }
    let name = meta_str(&obj, "name").unwrap_or_default().to_string();
    let ns = meta_str(&obj, "namespace").unwrap_or_default().to_string();
    if rt.status_subresource
        && rt.special != Special::Namespace
        && let Some(map) = obj.as_object_mut()
    {
        map.remove("status");
    }
    let mut warnings = admit(rt, &mut obj, opts, &state.token)?;
    if rt.special == Special::Review {
        return Ok(Written {
            object: render(rt, &obj),
            created: true,
            warnings,
        });
    }
    if rt.special == Special::CustomResourceDefinition {
        check_crd(state, &obj)?;
        obj["status"] = crd_status(&obj);
    }
    if rt.special == Special::Namespace {
        obj["spec"] = json!({"finalizers": ["kubernetes"]});
        obj["status"] = json!({"phase": "Active"});
        let labels = meta_mut(&mut obj)
            .entry("labels")
            .or_insert_with(|| json!({}));
        if labels.is_object() {
            labels["kubernetes.io/metadata.name"] = json!(name);
        }
    }
    {
        let m = meta_mut(&mut obj);
        m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
        m.insert("creationTimestamp".into(), json!(now()));
        m.insert("generation".into(), json!(1));
    }
    set_managed_fields(
        &mut obj,
        opts.field_manager.as_deref(),
        if opts.apply { "Apply" } else { "Update" },
        &rt.api_version(),
        None,
    );

    let mut txn = state.store.txn();
    check_namespace_writable(&txn, rt, &ns)?;
    let gr = rt.group_resource();
    if txn.get(&gr, &ns, &name).is_some() {
        return Err(ApiError::already_exists(&rt.group, &rt.plural, &name));
    }
    if opts.dry_run {
        return Ok(Written {
            object: render(rt, &obj),
            created: true,
            warnings,
        });
    }
    let stored = txn.put(&gr, obj);
    drop(txn);
    if rt.special == Special::CustomResourceDefinition {
        run_post(state, vec![PostCommit::Crd(name, Some(stored.clone()))]);
    }
    warnings.dedup();
    Ok(Written {
        object: render(rt, &stored),
        created: true,
        warnings,
    })
}

/// Everything but metadata (and status, when status has its own subresource): changes to this
/// bump `metadata.generation`.
fn generation_relevant(rt: &ResourceType, obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(map) = v.as_object_mut() {
        map.remove("metadata");
        map.remove("apiVersion");
        map.remove("kind");
        if rt.status_subresource {
            map.remove("status");
        }
    }
    v
}

fn without_volatile(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
        m.remove("managedFields");
    }
    if let Some(map) = v.as_object_mut() {
        map.remove("apiVersion");
        map.remove("kind");
    }
    v
}

/// Turn a PUT/PATCH body into the object to store, given the stored one.
fn prepare_update(
    state: &State,
    rt: &ResourceType,
    old: &Value,
    new: Value,
    sub: Subresource,
    opts: &WriteOptions,
) -> ApiResult<(Value, Vec<String>)> {
    check_type_meta(rt, &new)?;
    let mut new = to_storage(rt, new);
    let name = meta_str(old, "name").unwrap_or_default().to_string();
    if let Some(body_name) = meta_str(&new, "name")
        && body_name != name
    {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    if let Some(rv) = meta_str(&new, "resourceVersion")
        && !rv.is_empty()
        && Some(rv) != meta_str(old, "resourceVersion")
    {
        return Err(ApiError::conflict(&rt.group, &rt.plural, &name));
    }
    if let Some(uid) = meta_str(&new, "uid")
        && !uid.is_empty()
        && Some(uid) != meta_str(old, "uid")
    {
        return Err(ApiError::conflict(&rt.group, &rt.plural, &name));
    }
    match sub {
        Subresource::Main if rt.status_subresource => match old.get("status") {
            Some(status) => new["status"] = status.clone(),
            None => {
                if let Some(map) = new.as_object_mut() {
                    map.remove("status");
                }
            }
        },
        Subresource::Main => {}
        Subresource::Status => {
            let mut merged = old.clone();
            match new.get("status") {
                Some(status) => merged["status"] = status.clone(),
                None => {
                    if let Some(map) = merged.as_object_mut() {
                        map.remove("status");
                    }
                }
            }
            new = merged;
        }
    }
    // Identity and lifecycle metadata are the server's.
    let old_meta = meta(old).cloned().unwrap_or_default();
    {
        let m = meta_mut(&mut new);
        for k in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ] {
            match old_meta.get(k) {
                Some(v) => m.insert(k.into(), v.clone()),
                None => m.remove(k),
            };
        }
        m.remove("resourceVersion");
    }
    if old_meta.contains_key("deletionTimestamp") {
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
        if !finalizers(&new).is_subset(&finalizers(old)) {
            return Err(ApiError::invalid(
                &rt.group,
                &rt.kind,
                &name,
                vec![Cause {
                    reason: "FieldValueForbidden",
                    field: "metadata.finalizers".into(),
                    message:
                        "Forbidden: no new finalizers can be added if the object is being deleted"
                            .into(),
                }],
            ));
        }
    }
    let warnings = admit(rt, &mut new, opts, &state.token)?;
    if rt.special == Special::CustomResourceDefinition {
        check_crd(state, &new)?;
        let mut status = crd_status(&new);
        // Keep transition times stable across updates.
        if let Some(old_conditions) = old.pointer("/status/conditions") {
            status["conditions"] = old_conditions.clone();
        }
        new["status"] = status;
    }
    if rt.special == Special::Namespace {
        new["spec"] = old.get("spec").cloned().unwrap_or(json!({}));
        if sub == Subresource::Main {
            new["status"] = old
                .get("status")
                .cloned()
                .unwrap_or(json!({"phase": "Active"}));
        }
    }
    let generation = old_meta
        .get("generation")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let bumped = if generation_relevant(rt, &new) != generation_relevant(rt, old) {
        generation + 1
    } else {
        generation
    };
    meta_mut(&mut new).insert("generation".into(), json!(bumped));
    let subresource = (sub == Subresource::Status).then_some("status");
    set_managed_fields(
        &mut new,
        opts.field_manager.as_deref(),
        if opts.apply { "Apply" } else { "Update" },
        &rt.api_version(),
        subresource,
    );
    Ok((new, warnings))
}

/// Store a prepared update: no-op when nothing changed (no new resourceVersion, no event),
/// removal when the last finalizer of a deleting object went away.
fn commit_update(
    state: &State,
    txn: &mut Txn<'_>,
    rt: &ResourceType,
    old: &Value,
    new: Value,
    post: &mut Vec<PostCommit>,
) -> Value {
    if without_volatile(&new) == without_volatile(old) {
        return old.clone();
    }
    let gr = rt.group_resource();
    let deleting = meta(&new).is_some_and(|m| m.contains_key("deletionTimestamp"));
    let finalizers_left = new
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| !f.is_empty());
    if deleting && !finalizers_left {
        let (ns, name) = key_of(&new);
        // Store the final state first so watchers see the finalizer removal, then delete.
        txn.put(&gr, new);
        let stored = txn.get(&gr, &ns, &name).cloned().unwrap_or_default();
        return remove_final(state, txn, &gr, &stored, Propagation::Background, post)
            .unwrap_or(stored);
    }
    let stored = txn.put(&gr, new);
    if rt.special == Special::CustomResourceDefinition {
        post.push(PostCommit::Crd(
            meta_str(&stored, "name").unwrap_or_default().to_string(),
            Some(stored.clone()),
        ));
    }
    stored
}

/// PUT: replace an object (or its status).
pub fn update(
    state: &State,
    rt: &ResourceType,
    namespace: Option<&str>,
    name: &str,
    body: Value,
    sub: Subresource,
    opts: &WriteOptions,
) -> ApiResult<Written> {
    let mut txn = state.store.txn();
    let gr = rt.group_resource();
    let old = txn
        .get(&gr, ns_key(rt, namespace), name)
        .cloned()
        .ok_or_else(|| not_found(rt, name))?;
    let (new, warnings) = prepare_update(state, rt, &old, body, sub, opts)?;
    if opts.dry_run {
        return Ok(Written {
            object: render(rt, &new),
            created: false,
            warnings,
        });
    }
    let mut post = Vec::new();
    let stored = commit_update(state, &mut txn, rt, &old, new, &mut post);
    drop(txn);
    run_post(state, post);
    Ok(Written {
        object: render(rt, &stored),
        created: false,
        warnings,
    })
}

/// PATCH an object (or its status). Apply patches create missing objects.
#[allow(clippy::too_many_arguments)]
pub fn patch(
    state: &State,
    rt: &ResourceType,
    namespace: Option<&str>,
    name: &str,
    patch_type: PatchType,
    body: &Value,
    sub: Subresource,
    opts: &WriteOptions,
) -> ApiResult<Written> {
    if patch_type == PatchType::Apply && opts.field_manager.is_none() {
        return Err(ApiError::invalid(
            &rt.group,
            &rt.kind,
            name,
            vec![Cause {
                reason: "FieldValueRequired",
                field: "fieldManager".into(),
                message: "Required value: is required for apply patch".into(),
            }],
        ));
    }
    let apply_opts = WriteOptions {
        apply: patch_type == PatchType::Apply,
        ..opts.clone()
    };
    let opts = &apply_opts;
    let gr = rt.group_resource();
    // One transaction from read to write, so the patch applies to exactly the stored object.
    let mut txn = state.store.txn();
    let Some(old) = txn.get(&gr, ns_key(rt, namespace), name).cloned() else {
        drop(txn);
        if patch_type == PatchType::Apply && sub == Subresource::Main {
            let mut obj = body.clone();
            meta_mut(&mut obj).insert("name".into(), json!(name));
            return create(state, rt, namespace, obj, opts);
        }
        return Err(not_found(rt, name));
    };
    let patched = patch::apply_patch(&render(rt, &old), body, patch_type, !rt.custom)?;
    let (new, warnings) = prepare_update(state, rt, &old, patched, sub, opts)?;
    if opts.dry_run {
        return Ok(Written {
            object: render(rt, &new),
            created: false,
            warnings,
        });
    }
    let mut post = Vec::new();
    let stored = commit_update(state, &mut txn, rt, &old, new, &mut post);
    drop(txn);
    run_post(state, post);
    Ok(Written {
        object: render(rt, &stored),
        created: false,
        warnings,
    })
}

/// Read-modify-write by the simulated controllers: no conflicts, no admission of user input.
pub fn modify(
    state: &State,
    rt: &ResourceType,
    namespace: &str,
    name: &str,
    f: impl FnOnce(&mut Value),
) -> ApiResult<Value> {
    let mut txn = state.store.txn();
    let gr = rt.group_resource();
    let old = txn
        .get(&gr, ns_key(rt, Some(namespace)), name)
        .cloned()
        .ok_or_else(|| not_found(rt, name))?;
    let mut new = old.clone();
    f(&mut new);
    let generation = meta(&old)
        .and_then(|m| m.get("generation"))
        .and_then(Value::as_i64)
        .unwrap_or(1);
    if generation_relevant(rt, &new) != generation_relevant(rt, &old) {
        meta_mut(&mut new).insert("generation".into(), json!(generation + 1));
    }
    let mut post = Vec::new();
    let stored = commit_update(state, &mut txn, rt, &old, new, &mut post);
    drop(txn);
    run_post(state, post);
    Ok(render(rt, &stored))
}

/// Create the namespaces every cluster starts with.
pub fn bootstrap(state: &State, client_ca_pem: Option<&str>) {
    let Some(rt) = state.registry.find("", "v1", "namespaces") else {
        return;
    };
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        let _ = create(
            state,
            &rt,
            None,
            json!({"metadata": {"name": ns}}),
            &WriteOptions::default(),
        );
    }
    // What kube-apiserver publishes for extension API servers (kube's
    // `ClusterAuthenticationTrustController`): which CA signs the front proxy's client
    // certificate, which names it may carry, and which headers carry the user.
    if let (Some(fp), Some(cms)) = (
        state.front_proxy.as_ref(),
        state.registry.find("", "v1", "configmaps"),
    ) {
        let mut data = serde_json::Map::new();
        if let Some(ca) = client_ca_pem {
            data.insert("client-ca-file".into(), json!(ca));
        }
        data.insert("requestheader-client-ca-file".into(), json!(fp.ca_pem));
        data.insert(
            "requestheader-allowed-names".into(),
            json!(format!("[\"{}\"]", crate::tls::FRONT_PROXY_CLIENT_NAME)),
        );
        data.insert(
            "requestheader-username-headers".into(),
            json!("[\"X-Remote-User\"]"),
        );
        data.insert(
            "requestheader-group-headers".into(),
            json!("[\"X-Remote-Group\"]"),
        );
        data.insert(
            "requestheader-extra-headers-prefix".into(),
            json!("[\"X-Remote-Extra-\"]"),
        );
        let _ = create(
            state,
            &cms,
            Some("kube-system"),
            json!({"metadata": {"name": "extension-apiserver-authentication", "namespace": "kube-system"}, "data": data}),
            &WriteOptions::default(),
        );
    }
}
