//! Everything resolution reads for one reconcile, fetched once: the target's pod template, the
//! TriggerAuthentications from the watch caches, and the Secrets and ConfigMaps that they and
//! the pod template name. What is read is recorded, so a change to any of it reconciles again.

use std::collections::BTreeSet;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{ConfigMap, PodTemplateSpec, Secret};
use kube::api::Api;
use kube::runtime::reflector::ObjectRef;

use super::Context;
use super::deps::Dependency;
use super::not_ready::Halt;
use super::not_ready::NotReady;
use crate::crd::{AuthenticationRefKind, ScaledObject};
use crate::resolve::Snapshot;
use crate::runtime::ObjectKey;
use crate::target::Target;

/// Reads what `so` references into a [`Snapshot`].
pub(super) async fn gather(
    ctx: &Context,
    key: &ObjectKey,
    so: &ScaledObject,
    target: &Target,
) -> Result<Snapshot, Halt> {
    let namespace = key.namespace.as_str();
    let mut snapshot = Snapshot::default();
    let mut deps: Vec<Dependency> = Vec::new();
    let mut secrets: BTreeSet<(String, String)> = BTreeSet::new();
    let mut config_maps: BTreeSet<(String, String)> = BTreeSet::new();
    // A target kind without a pod template (or one that cannot be read) has no env to resolve.
    if let Some(template) = target.pod_template().await.ok().flatten() {
        referenced_by_template(namespace, &template, &mut secrets, &mut config_maps);
        snapshot.insert_workload(
            namespace,
            target.api_version(),
            target.kind(),
            target.name(),
            template,
        );
    }
    for r in so
        .spec
        .triggers
        .iter()
        .filter_map(|t| t.authentication_ref.as_ref())
    {
        let (spec, objects_ns) = match r.kind() {
            AuthenticationRefKind::TriggerAuthentication => {
                deps.push((
                    "TriggerAuthentication",
                    namespace.to_owned(),
                    r.name.clone(),
                ));
                let found = ctx
                    .trigger_auths
                    .get(&ObjectRef::new(&r.name).within(namespace));
                let Some(ta) = found else { continue };
                snapshot.insert_trigger_authentication(namespace, &r.name, Arc::new((*ta).clone()));
                (ta.spec.clone(), namespace.to_owned())
            }
            AuthenticationRefKind::ClusterTriggerAuthentication => {
                deps.push((
                    "ClusterTriggerAuthentication",
                    String::new(),
                    r.name.clone(),
                ));
                let found = ctx.cluster_trigger_auths.get(&ObjectRef::new(&r.name));
                let Some(cta) = found else { continue };
                snapshot.insert_cluster_trigger_authentication(&r.name, Arc::new((*cta).clone()));
                (
                    cta.spec.0.clone(),
                    ctx.settings.resolve.cluster_object_namespace.clone(),
                )
            }
        };
        for s in spec.secret_target_ref.iter().flatten() {
            secrets.insert((objects_ns.clone(), s.name.clone()));
        }
        for c in spec.config_map_target_ref.iter().flatten() {
            config_maps.insert((objects_ns.clone(), c.name.clone()));
        }
    }
    // Recorded before the reads, so a Secret that cannot be read yet still reconciles the
    // object when it changes.
    deps.extend(
        secrets
            .iter()
            .map(|(ns, n)| ("Secret", ns.clone(), n.clone())),
    );
    deps.extend(
        config_maps
            .iter()
            .map(|(ns, n)| ("ConfigMap", ns.clone(), n.clone())),
    );
    ctx.deps.record(key, deps);
    for (ns, name) in &secrets {
        let api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
        match api.get_opt(name).await {
            Ok(Some(s)) => snapshot.insert_secret(ns, name, Arc::new(s)),
            Ok(None) => {}
            Err(e) => return Err(read_failure("Secret", ns, name, e)),
        }
    }
    for (ns, name) in &config_maps {
        let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
        match api.get_opt(name).await {
            Ok(Some(c)) => snapshot.insert_config_map(ns, name, Arc::new(c)),
            Ok(None) => {}
            Err(e) => return Err(read_failure("ConfigMap", ns, name, e)),
        }
    }
    Ok(snapshot)
}

/// A refused read (401/403: RBAC, an admission policy) needs a person to act, so it is the
/// object's `Ready=False`, naming what could not be read; anything else may pass and is retried.
fn read_failure(kind: &'static str, namespace: &str, name: &str, error: kube::Error) -> Halt {
    match error {
        kube::Error::Api(s) if matches!(s.code, 401 | 403) => NotReady::Unreadable {
            kind,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            message: s.message.clone(),
        }
        .into(),
        e => e.into(),
    }
}

fn referenced_by_template(
    namespace: &str,
    template: &PodTemplateSpec,
    secrets: &mut BTreeSet<(String, String)>,
    config_maps: &mut BTreeSet<(String, String)>,
) {
    for c in template.spec.iter().flat_map(|s| s.containers.iter()) {
        for f in c.env_from.iter().flatten() {
            if let Some(r) = &f.secret_ref {
                secrets.insert((namespace.to_owned(), r.name.clone()));
            }
            if let Some(r) = &f.config_map_ref {
                config_maps.insert((namespace.to_owned(), r.name.clone()));
            }
        }
        for e in c.env.iter().flatten() {
            let Some(from) = &e.value_from else { continue };
            if let Some(r) = &from.secret_key_ref {
                secrets.insert((namespace.to_owned(), r.name.clone()));
            }
            if let Some(r) = &from.config_map_key_ref {
                config_maps.insert((namespace.to_owned(), r.name.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_error(code: u16) -> kube::Error {
        kube::Error::Api(
            kube::core::Status::failure("secrets \"creds\" is forbidden", "Forbidden")
                .with_code(code)
                .boxed(),
        )
    }

    #[test]
    fn a_refused_read_is_not_ready_naming_the_object_and_others_are_retried() {
        match read_failure("Secret", "shop", "creds", api_error(403)) {
            Halt::NotReady(n) => assert_eq!(
                n.to_string(),
                "cannot read Secret shop/creds: secrets \"creds\" is forbidden"
            ),
            Halt::Retry(e) => panic!("403 must not be retried: {e}"),
        }
        assert!(matches!(
            read_failure("ConfigMap", "shop", "cfg", api_error(500)),
            Halt::Retry(_)
        ));
    }
}
