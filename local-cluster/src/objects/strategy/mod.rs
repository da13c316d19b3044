//! Per-kind strategies: what kube-apiserver's `rest.RESTCreateStrategy` and
//! `rest.RESTUpdateStrategy` of each registry decide (PrepareForCreate, PrepareForUpdate, name
//! rules, Validate), plus the defaulting, answers and after-write work of the kinds that need
//! them. `create` and `update` look the strategy up once and call its hooks; the defaults are
//! those of plain storage.

mod crd;
mod event;
mod hpa;
mod namespace;
mod rbac;
mod review;
mod secret;
mod workload;

use serde_json::Value;

use super::admission::is_dns_subdomain;
use super::{PostCommit, Subresource};
use crate::error::ApiResult;
use crate::resources::{ResourceType, Special};
use crate::state::State;

/// The hooks of one kind, in the order writes call them. Every default is what plain storage
/// does.
pub(super) trait Strategy {
    /// Create-only kinds answered instead of stored (the reviews): fill in the answer and say
    /// so.
    fn answer(&self, _obj: &mut Value, _token: &str) -> bool {
        false
    }

    /// PrepareForCreate: drop what a create may not set, set what the server owns.
    fn prepare_for_create(&self, rt: &ResourceType, obj: &mut Value) {
        drop_status_with_subresource(rt, obj);
    }

    /// PrepareForUpdate: keep from `old` what a write through `sub` may not change.
    fn prepare_for_update(
        &self,
        rt: &ResourceType,
        old: &Value,
        new: &mut Value,
        sub: Subresource,
    ) {
        keep_unaddressed_part(rt, old, new, sub);
    }

    /// Why `name` cannot name an object of this kind (kube's `ValidateNameFunc`).
    fn name_problem(&self, name: &str) -> Option<String> {
        rfc1123_problem(is_dns_subdomain(name), "subdomain")
    }

    /// Defaulting of the kind's fields, on create and update (upstream defaults while decoding).
    fn apply_defaults(&self, _obj: &mut Value) {}

    /// Validate and ValidateUpdate, which no kind here tells apart.
    fn validate(&self, _state: &State, _rt: &ResourceType, _obj: &Value) -> ApiResult<()> {
        Ok(())
    }

    /// Work once the written object is stored and the store lock released.
    fn after_write(&self, _stored: &Value) -> Option<PostCommit> {
        None
    }
}

/// Plain storage.
struct Generic;

impl Strategy for Generic {}

/// The strategy of the objects `rt` addresses.
pub(super) fn of(rt: &ResourceType) -> &'static dyn Strategy {
    match rt.special {
        Special::Namespace => &namespace::Namespace,
        Special::Secret => &secret::Secret,
        Special::CustomResourceDefinition => &crd::CustomResourceDefinition,
        Special::Workload => &workload::Workload,
        Special::HorizontalPodAutoscaler => &hpa::HorizontalPodAutoscaler,
        Special::Review => &review::Review,
        Special::EventV1 => &event::EventV1,
        Special::None | Special::Pod if rt.group == rbac::GROUP => &rbac::Rbac,
        Special::None | Special::Pod => &Generic,
    }
}

/// The complaint about a name that is not an RFC 1123 `what` (label or subdomain).
fn rfc1123_problem(valid: bool, what: &str) -> Option<String> {
    (!valid).then(|| format!("a lowercase RFC 1123 {what} must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"))
}

/// A create may not set the status of a kind whose status has its own subresource.
fn drop_status_with_subresource(rt: &ResourceType, obj: &mut Value) {
    if rt.status_subresource
        && let Some(map) = obj.as_object_mut()
    {
        map.remove("status");
    }
}

/// With a status subresource, the main resource keeps the stored status and `/status` keeps
/// everything else.
fn keep_unaddressed_part(rt: &ResourceType, old: &Value, new: &mut Value, sub: Subresource) {
    match sub {
        Subresource::Main if rt.status_subresource => copy_status(old, new),
        Subresource::Main => {}
        Subresource::Status => {
            let mut merged = old.clone();
            copy_status(new, &mut merged);
            *new = merged;
        }
    }
}

/// `to.status = from.status`, removing it when `from` has none.
fn copy_status(from: &Value, to: &mut Value) {
    match from.get("status") {
        Some(status) => to["status"] = status.clone(),
        None => {
            if let Some(map) = to.as_object_mut() {
                map.remove("status");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::resources::Registry;

    fn strategy(
        group: &str,
        version: &str,
        plural: &str,
    ) -> (Arc<ResourceType>, &'static dyn Strategy) {
        let rt = Registry::default().find(group, version, plural).unwrap();
        let strategy = of(&rt);
        (rt, strategy)
    }

    #[test]
    fn names_follow_the_kind() {
        let (_, rbac) = strategy("rbac.authorization.k8s.io", "v1", "clusterrolebindings");
        let (_, namespace) = strategy("", "v1", "namespaces");
        let (_, configmap) = strategy("", "v1", "configmaps");
        assert_eq!(rbac.name_problem("system:auth-delegator"), None);
        assert!(rbac.name_problem("a/b").is_some());
        assert!(configmap.name_problem("system:auth-delegator").is_some());
        assert_eq!(configmap.name_problem("a.b"), None);
        assert!(
            namespace
                .name_problem("a.b")
                .unwrap()
                .contains("RFC 1123 label")
        );
        assert!(
            configmap
                .name_problem("A")
                .unwrap()
                .contains("RFC 1123 subdomain")
        );
    }

    #[test]
    fn only_reviews_are_answered_and_only_crds_have_work_after_writes() {
        for (group, plural) in [
            ("authentication.k8s.io", "tokenreviews"),
            ("authorization.k8s.io", "subjectaccessreviews"),
        ] {
            let (_, review) = strategy(group, "v1", plural);
            let mut obj = json!({"kind": "TokenReview", "spec": {"token": "t"}});
            assert!(review.answer(&mut obj, "t"), "{plural}");
            assert!(obj.get("status").is_some(), "{plural}");
        }
        let (_, crd) = strategy("apiextensions.k8s.io", "v1", "customresourcedefinitions");
        assert!(
            crd.after_write(&json!({"metadata": {"name": "a.b"}}))
                .is_some()
        );
        for (group, version, plural) in [
            ("", "v1", "namespaces"),
            ("", "v1", "secrets"),
            ("apps", "v1", "deployments"),
            ("autoscaling", "v2", "horizontalpodautoscalers"),
            ("events.k8s.io", "v1", "events"),
            ("rbac.authorization.k8s.io", "v1", "roles"),
            ("", "v1", "configmaps"),
        ] {
            let (_, s) = strategy(group, version, plural);
            assert!(!s.answer(&mut json!({}), "t"), "{plural}");
            assert!(
                s.after_write(&json!({"metadata": {"name": "a"}})).is_none(),
                "{plural}"
            );
        }
    }

    #[test]
    fn creates_drop_the_status_of_a_subresource_and_namespaces_start_active() {
        let body = json!({"metadata": {"name": "a"}, "spec": {"x": 1}, "status": {"y": 2}});
        let (deploy_rt, deploy) = strategy("apps", "v1", "deployments");
        let mut obj = body.clone();
        deploy.prepare_for_create(&deploy_rt, &mut obj);
        assert_eq!(obj, json!({"metadata": {"name": "a"}, "spec": {"x": 1}}));

        let (cm_rt, cm) = strategy("", "v1", "configmaps");
        let mut obj = body.clone();
        cm.prepare_for_create(&cm_rt, &mut obj);
        assert_eq!(obj, body);

        let (ns_rt, ns) = strategy("", "v1", "namespaces");
        let mut obj = body.clone();
        ns.prepare_for_create(&ns_rt, &mut obj);
        assert_eq!(
            obj,
            json!({"metadata": {"name": "a", "labels": {"kubernetes.io/metadata.name": "a"}},
                "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}})
        );
    }

    #[test]
    fn updates_change_only_the_addressed_part() {
        let old = json!({"metadata": {"name": "a"}, "spec": {"x": 1}, "status": {"y": 1}});
        let body = json!({"metadata": {"name": "a"}, "spec": {"x": 2}, "status": {"y": 2}});
        let (deploy_rt, deploy) = strategy("apps", "v1", "deployments");
        let mut new = body.clone();
        deploy.prepare_for_update(&deploy_rt, &old, &mut new, Subresource::Main);
        assert_eq!(
            new,
            json!({"metadata": {"name": "a"}, "spec": {"x": 2}, "status": {"y": 1}})
        );
        let mut new = body.clone();
        deploy.prepare_for_update(&deploy_rt, &old, &mut new, Subresource::Status);
        assert_eq!(
            new,
            json!({"metadata": {"name": "a"}, "spec": {"x": 1}, "status": {"y": 2}})
        );
        let mut new = json!({"metadata": {"name": "a"}, "spec": {"x": 2}});
        deploy.prepare_for_update(&deploy_rt, &old, &mut new, Subresource::Status);
        assert_eq!(new, json!({"metadata": {"name": "a"}, "spec": {"x": 1}}));

        let (cm_rt, cm) = strategy("", "v1", "configmaps");
        let mut new = body.clone();
        cm.prepare_for_update(&cm_rt, &old, &mut new, Subresource::Main);
        assert_eq!(new, body);

        // A namespace's spec (its finalizers) is the server's, through either part.
        let (ns_rt, ns) = strategy("", "v1", "namespaces");
        let mut new = body.clone();
        ns.prepare_for_update(&ns_rt, &old, &mut new, Subresource::Main);
        assert_eq!(new, old);
        let mut new = body.clone();
        ns.prepare_for_update(&ns_rt, &old, &mut new, Subresource::Status);
        assert_eq!(
            new,
            json!({"metadata": {"name": "a"}, "spec": {"x": 1}, "status": {"y": 2}})
        );
        let mut new = body.clone();
        ns.prepare_for_update(
            &ns_rt,
            &json!({"metadata": {"name": "a"}}),
            &mut new,
            Subresource::Main,
        );
        assert_eq!(
            new,
            json!({"metadata": {"name": "a"}, "spec": {}, "status": {"phase": "Active"}})
        );
    }
}
