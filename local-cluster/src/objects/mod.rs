//! What kube-apiserver's registry strategies do around storage: defaulting and validation,
//! metadata bookkeeping (uid, generation, timestamps, managedFields), resourceVersion
//! preconditions, status/scale subresources, finalizers, namespace lifecycle, garbage collection of
//! dependents, and CRD registration. Every operation runs in one store transaction. What differs
//! by kind is in [`strategy`]; the metadata every kind shares is in [`metadata`].

mod admission;
mod delete;
mod metadata;
mod scale;
mod strategy;

use std::sync::Arc;

use serde_json::{Map, Value, json};

use admission::{admit, check_namespace_writable, check_type_meta};
use delete::remove_final;
pub use delete::{delete, delete_collection};
pub use scale::{get_scale, patch_scale, update_scale};

use crate::error::{ApiError, ApiResult, Cause, Reason};
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

/// [`render`] without the copy: serializes a stored object as read through `rt`, to the same
/// bytes `serde_json::to_vec(&render(rt, obj))` gives.
pub struct Rendered<'a> {
    /// The version it is read through.
    pub rt: &'a ResourceType,
    /// The stored object.
    pub obj: &'a Value,
}

impl serde::Serialize for Rendered<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let map = match self.obj.as_object() {
            Some(map) if self.rt.special != Special::EventV1 => map,
            _ => return render(self.rt, self.obj).serialize(serializer),
        };
        let api_version = self.rt.api_version();
        // Keys in the order a `serde_json::Map` (sorted) would hold them once `apiVersion` and
        // `kind` are set: the two overrides merged into the stored keys.
        let mut overrides = [
            ("apiVersion", api_version.as_str()),
            ("kind", self.rt.kind.as_str()),
        ]
        .into_iter()
        .peekable();
        let kept = map.len() + 2
            - usize::from(map.contains_key("apiVersion"))
            - usize::from(map.contains_key("kind"));
        let mut out = serializer.serialize_map(Some(kept))?;
        for (k, v) in map {
            while let Some((ok, ov)) = overrides.next_if(|(ok, _)| *ok <= k.as_str()) {
                out.serialize_entry(ok, ov)?;
            }
            if k != "apiVersion" && k != "kind" {
                out.serialize_entry(k, v)?;
            }
        }
        for (ok, ov) in overrides {
            out.serialize_entry(ok, ov)?;
        }
        out.end()
    }
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
    let obj = state
        .store
        .txn()
        .get_shared(&rt.group_resource(), ns_key(rt, namespace), name)
        .cloned()
        .ok_or_else(|| not_found(rt, name))?;
    // Rendered after the lock is released: the stored object is immutable.
    Ok(render(rt, &obj))
}

/// Stored objects matching a query (in storage form, shared), with the resourceVersion they
/// were read at. The lock is held only to take references; selectors run after it is released.
pub fn select_shared(
    state: &State,
    rt: &ResourceType,
    namespace: Option<&str>,
    labels: &LabelSelector,
    fields: &FieldSelector,
) -> (Vec<Arc<Value>>, u64) {
    let (all, rv) = {
        let txn = state.store.txn();
        let ns = if rt.namespaced { namespace } else { None };
        let all: Vec<Arc<Value>> = txn.list_shared(&rt.group_resource(), ns).cloned().collect();
        (all, txn.resource_version())
    };
    let items = all
        .into_iter()
        .filter(|o| matches_rendered(rt, o, labels, fields))
        .collect();
    (items, rv)
}

/// Whether the object, as read through `rt`, satisfies the selectors. Rendering changes only
/// `apiVersion`, `kind` and (for events.k8s.io Events) top-level field names, never
/// `metadata.labels`, so only field selectors need the rendered form.
fn matches_rendered(
    rt: &ResourceType,
    obj: &Value,
    labels: &LabelSelector,
    fields: &FieldSelector,
) -> bool {
    labels.matches(obj) && (fields.is_empty() || fields.matches(&render(rt, obj)))
}

/// Objects matching a query, with the resourceVersion they were read at.
pub fn select(
    state: &State,
    rt: &ResourceType,
    namespace: Option<&str>,
    labels: &LabelSelector,
    fields: &FieldSelector,
) -> (Vec<Value>, u64) {
    let (items, rv) = select_shared(state, rt, namespace, labels, fields);
    (items.iter().map(|o| render(rt, o)).collect(), rv)
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
    let strategy = strategy::of(rt);
    // Reviews are answered before their name is looked at: kube-apiserver even requires their
    // metadata to be empty.
    if strategy.answer(&mut obj, &state.token) {
        return Ok(Written {
            object: render(rt, &obj),
            created: true,
            warnings: Vec::new(),
        });
    }
    metadata::prepare_for_create(rt, namespace, &mut obj)?;
    let (ns, name) = key_of(&obj);
    strategy.prepare_for_create(rt, &mut obj);
    let mut warnings = admit(state, rt, strategy, &mut obj, opts)?;
    metadata::stamp_created(&mut obj);
    metadata::set_managed_fields(&mut obj, rt, opts, None);

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
    run_post(state, strategy.after_write(&stored).into_iter().collect());
    warnings.dedup();
    Ok(Written {
        object: render(rt, &stored),
        created: true,
        warnings,
    })
}

/// `a == b` once the `skip` keys are removed from both (when they are objects), without
/// copying either.
fn eq_without(a: &Value, b: &Value, skip: &[&str]) -> bool {
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return a == b;
    };
    // Both maps iterate in key order, so the filtered sequences compare pairwise.
    let kept = |(k, _): &(&String, &Value)| !skip.contains(&k.as_str());
    a.iter().filter(kept).eq(b.iter().filter(kept))
}

/// Whether two versions differ in what bumps `metadata.generation`: everything but metadata
/// (and status, when status has its own subresource).
fn generation_changed(rt: &ResourceType, new: &Value, old: &Value) -> bool {
    let skip: &[&str] = if rt.status_subresource {
        &["metadata", "apiVersion", "kind", "status"]
    } else {
        &["metadata", "apiVersion", "kind"]
    };
    !eq_without(new, old, skip)
}

/// Whether two versions are equal but for resourceVersion, managedFields and type metadata
/// (such an update is a no-op: no new resourceVersion, no event).
fn same_but_volatile(a: &Value, b: &Value) -> bool {
    if !(a.is_object() && b.is_object()) {
        return a == b;
    }
    let meta_equal = match (a.get("metadata"), b.get("metadata")) {
        (None, None) => true,
        (Some(x), Some(y)) => eq_without(x, y, &["resourceVersion", "managedFields"]),
        _ => false,
    };
    meta_equal && eq_without(a, b, &["metadata", "apiVersion", "kind"])
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
    let strategy = strategy::of(rt);
    metadata::check_preconditions(rt, old, &new)?;
    strategy.prepare_for_update(rt, old, &mut new, sub);
    metadata::keep_server_set(old, &mut new);
    metadata::check_finalizers(rt, old, &new)?;
    let warnings = admit(state, rt, strategy, &mut new, opts)?;
    metadata::bump_generation(rt, old, &mut new);
    let subresource = (sub == Subresource::Status).then_some("status");
    metadata::set_managed_fields(&mut new, rt, opts, subresource);
    Ok((new, warnings))
}

/// Store a prepared update: no-op when nothing changed (no new resourceVersion, no event),
/// removal when the last finalizer of a deleting object went away.
fn commit_update(
    state: &State,
    txn: &mut Txn<'_>,
    rt: &ResourceType,
    old: &Arc<Value>,
    new: Value,
    post: &mut Vec<PostCommit>,
) -> Arc<Value> {
    if same_but_volatile(&new, old) {
        return old.clone();
    }
    let gr = rt.group_resource();
    let deleting = meta(&new).is_some_and(|m| m.contains_key("deletionTimestamp"));
    let finalizers_left = new
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| !f.is_empty());
    if deleting && !finalizers_left {
        // Store the final state first so watchers see the finalizer removal, then delete.
        let stored = txn.put(&gr, new);
        return remove_final(state, txn, &gr, &stored, Propagation::Background, post)
            .unwrap_or(stored);
    }
    let stored = txn.put(&gr, new);
    post.extend(strategy::of(rt).after_write(&stored));
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
        .get_shared(&gr, ns_key(rt, namespace), name)
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
    let Some(old) = txn.get_shared(&gr, ns_key(rt, namespace), name).cloned() else {
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
        .get_shared(&gr, ns_key(rt, Some(namespace)), name)
        .cloned()
        .ok_or_else(|| not_found(rt, name))?;
    let mut new = (*old).clone();
    f(&mut new);
    let generation = meta(&old)
        .and_then(|m| m.get("generation"))
        .and_then(Value::as_i64)
        .unwrap_or(1);
    if generation_changed(rt, &new, &old) {
        meta_mut(&mut new).insert("generation".into(), json!(generation + 1));
    }
    let mut post = Vec::new();
    let stored = commit_update(state, &mut txn, rt, &old, new, &mut post);
    drop(txn);
    run_post(state, post);
    Ok(render(rt, &stored))
}

/// Create the namespaces every cluster starts with and, with a front proxy, what kube-apiserver
/// publishes for extension API servers.
pub fn bootstrap(state: &State, client_ca_pem: Option<&str>) -> ApiResult<()> {
    let namespaces = core_type(state, "namespaces")?;
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        create(
            state,
            &namespaces,
            None,
            json!({"metadata": {"name": ns}}),
            &WriteOptions::default(),
        )?;
    }
    // As kube's `ClusterAuthenticationTrustController`: which CA signs the front proxy's client
    // certificate, which names it may carry, and which headers carry the user.
    let Some(fp) = state.front_proxy.as_ref() else {
        return Ok(());
    };
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
    let configmaps = core_type(state, "configmaps")?;
    create(
        state,
        &configmaps,
        Some("kube-system"),
        json!({"metadata": {"name": "extension-apiserver-authentication", "namespace": "kube-system"}, "data": data}),
        &WriteOptions::default(),
    )?;
    Ok(())
}

/// A built-in core `v1` resource type, which every registry serves.
fn core_type(state: &State, plural: &str) -> ApiResult<Arc<ResourceType>> {
    state.registry.find("", "v1", plural).ok_or_else(|| {
        ApiError::new(
            Reason::NotFound,
            format!("the server does not serve the resource v1 {plural}"),
        )
    })
}

#[cfg(test)]
mod compare_tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::resources::Registry;

    /// The copies the comparisons used to make, as the reference.
    fn without(obj: &Value, top: &[&str], in_meta: &[&str]) -> Value {
        let mut v = obj.clone();
        if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            for k in in_meta {
                m.remove(*k);
            }
        }
        if let Some(map) = v.as_object_mut() {
            for k in top {
                map.remove(*k);
            }
        }
        v
    }

    #[test]
    fn comparisons_match_comparing_copies() {
        let registry = Registry::default();
        let deploy = registry.find("apps", "v1", "deployments").unwrap();
        let cm = registry.find("", "v1", "configmaps").unwrap();
        let base = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "a", "resourceVersion": "1", "managedFields": [1], "labels": {"x": "y"}},
            "spec": {"replicas": 1}, "status": {"replicas": 1}});
        let variants = [
            json!({"metadata": {"name": "a", "resourceVersion": "2", "labels": {"x": "y"}}, "spec": {"replicas": 1}, "status": {"replicas": 1}}),
            json!({"metadata": {"name": "a", "labels": {"x": "z"}}, "spec": {"replicas": 1}, "status": {"replicas": 1}}),
            json!({"metadata": {"name": "a", "labels": {"x": "y"}}, "spec": {"replicas": 2}, "status": {"replicas": 1}}),
            json!({"metadata": {"name": "a", "labels": {"x": "y"}}, "spec": {"replicas": 1}, "status": {"replicas": 3}}),
            json!({"metadata": {"name": "a", "labels": {"x": "y"}}, "spec": {"replicas": 1}}),
            json!({"metadata": "odd", "spec": {"replicas": 1}, "status": {"replicas": 1}}),
            json!({"spec": {"replicas": 1}, "status": {"replicas": 1}}),
            json!({"kind": "Other", "metadata": {"name": "a", "managedFields": [], "labels": {"x": "y"}}, "spec": {"replicas": 1}, "status": {"replicas": 1}}),
            json!("not an object"),
            base.clone(),
        ];
        for v in &variants {
            for (a, b) in [(v, &base), (&base, v), (v, v)] {
                let volatile = without(
                    a,
                    &["apiVersion", "kind"],
                    &["resourceVersion", "managedFields"],
                ) == without(
                    b,
                    &["apiVersion", "kind"],
                    &["resourceVersion", "managedFields"],
                );
                assert_eq!(same_but_volatile(a, b), volatile, "{a} vs {b}");
                for rt in [&deploy, &cm] {
                    let mut top = vec!["metadata", "apiVersion", "kind"];
                    if rt.status_subresource {
                        top.push("status");
                    }
                    let changed = without(a, &top, &[]) != without(b, &top, &[]);
                    assert_eq!(generation_changed(rt, a, b), changed, "{a} vs {b}");
                }
            }
        }
    }

    #[test]
    fn rendered_serializes_like_render() {
        let registry = Registry::default();
        let objects = [
            json!({"metadata": {"name": "a"}, "spec": {}}),
            json!({"apiVersion": "old/v0", "kind": "Old", "metadata": {"name": "a"}, "zzz": 1}),
            json!({"Z": 1, "a": 2, "apiVersionX": 3, "b": 4, "kind": "K", "kinds": 5}),
            json!({}),
            json!({"metadata": {"name": "e"}, "involvedObject": {"kind": "Pod"}, "message": "m", "count": 2}),
        ];
        for (group, plural) in [
            ("apps", "deployments"),
            ("", "configmaps"),
            ("events.k8s.io", "events"),
            ("", "events"),
        ] {
            let rt = registry.find(group, "v1", plural).unwrap();
            for obj in &objects {
                assert_eq!(
                    serde_json::to_string(&Rendered { rt: &rt, obj }).unwrap(),
                    serde_json::to_string(&render(&rt, obj)).unwrap(),
                    "{plural} {obj}"
                );
            }
        }
    }
}
