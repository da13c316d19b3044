//! Everything resolution reads for one reconcile, fetched once: the target's pod template, the
//! TriggerAuthentications from the watch caches, and the Secrets and ConfigMaps that they and
//! the pod template name. What is read is recorded, so a change to any of it reconciles again.

use std::collections::BTreeMap;
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
    let mut secrets = References::new();
    let mut config_maps = References::new();
    // Whether a trigger reads the target's env (`<param>FromEnv`, a TriggerAuthentication's
    // `env`): restricted to one namespace's Secrets, kedge resolves the env only then.
    let mut uses_env = so
        .spec
        .triggers
        .iter()
        .any(|t| t.metadata.keys().any(|k| k.ends_with("FromEnv")));
    let template = target.pod_template().await.ok().flatten();
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
        uses_env |= spec.env.as_ref().is_some_and(|e| !e.is_empty());
        // What a TriggerAuthentication names must exist (the pod template may mark its own
        // references optional; resolution judges those).
        let by = format!(
            "{} {}",
            r.kind().as_str(),
            qualified(&objects_ns, &r.name, r.kind())
        );
        for s in spec.secret_target_ref.iter().flatten() {
            secrets.insert((objects_ns.clone(), s.name.clone()), Some(by.clone()));
        }
        for c in spec.config_map_target_ref.iter().flatten() {
            config_maps.insert((objects_ns.clone(), c.name.clone()), Some(by.clone()));
        }
    }
    // A target kind without a pod template (or one that cannot be read) has no env to resolve.
    if let Some(template) = template {
        let (mut template_secrets, mut template_config_maps) =
            (References::new(), References::new());
        referenced_by_template(
            namespace,
            &template,
            &mut template_secrets,
            &mut template_config_maps,
        );
        let unread = template_secrets
            .keys()
            .any(|(ns, _)| !ctx.settings.reads_secrets_in(ns));
        // Restricted, and no trigger reads the env: it is left unresolved rather than failing
        // on Secrets kedge may not read and nothing needs.
        if !unread || uses_env {
            for (k, v) in template_secrets {
                secrets.entry(k).or_insert(v);
            }
            for (k, v) in template_config_maps {
                config_maps.entry(k).or_insert(v);
            }
            snapshot.insert_workload(
                namespace,
                target.api_version(),
                target.kind(),
                target.name(),
                template,
            );
        }
    }
    // Recorded before the reads, so a Secret that cannot be read yet still reconciles the
    // object when it changes.
    deps.extend(
        secrets
            .keys()
            .map(|(ns, n)| ("Secret", ns.clone(), n.clone())),
    );
    deps.extend(
        config_maps
            .keys()
            .map(|(ns, n)| ("ConfigMap", ns.clone(), n.clone())),
    );
    ctx.deps.record(key, deps);
    // Restricted, a Secret elsewhere is not asked for (the read would be refused): the object
    // is not ready, naming it.
    if let Some((ns, name)) = secrets
        .keys()
        .find(|(ns, _)| !ctx.settings.reads_secrets_in(ns))
    {
        return Err(NotReady::Unreadable {
            kind: "Secret",
            namespace: ns.clone(),
            name: name.clone(),
            message: super::secrets::restricted_message(
                &ctx.settings.resolve.cluster_object_namespace,
            ),
        }
        .into());
    }
    for (ns, name, secret) in read::<Secret>(ctx, "Secret", &secrets).await? {
        snapshot.insert_secret(&ns, &name, secret);
    }
    for (ns, name, cm) in read::<ConfigMap>(ctx, "ConfigMap", &config_maps).await? {
        snapshot.insert_config_map(&ns, &name, cm);
    }
    Ok(snapshot)
}

/// Referenced objects by (namespace, name), with who requires them to exist: the
/// TriggerAuthentication naming it, or `None` for the pod template's references.
type References = BTreeMap<(String, String), Option<String>>;

/// `ns/name` for a TriggerAuthentication, `name` for a cluster-scoped one.
fn qualified(namespace: &str, name: &str, kind: AuthenticationRefKind) -> String {
    match kind {
        AuthenticationRefKind::TriggerAuthentication => format!("{namespace}/{name}"),
        AuthenticationRefKind::ClusterTriggerAuthentication => name.to_owned(),
    }
}

/// Reads every object of `refs` that exists; a required one that does not is [`NotReady`].
async fn read<K>(
    ctx: &Context,
    kind: &'static str,
    refs: &References,
) -> Result<Vec<(String, String, Arc<K>)>, Halt>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let mut found = Vec::with_capacity(refs.len());
    for ((ns, name), required_by) in refs {
        match Api::<K>::namespaced(ctx.client.clone(), ns)
            .get_opt(name)
            .await
        {
            Ok(Some(obj)) => found.push((ns.clone(), name.clone(), Arc::new(obj))),
            Ok(None) => {
                if let Some(by) = required_by {
                    return Err(NotReady::Missing {
                        kind,
                        namespace: ns.clone(),
                        name: name.clone(),
                        referenced_by: by.clone(),
                    }
                    .into());
                }
            }
            Err(e) => return Err(read_failure(kind, ns, name, e)),
        }
    }
    Ok(found)
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
    secrets: &mut References,
    config_maps: &mut References,
) {
    for c in template.spec.iter().flat_map(|s| s.containers.iter()) {
        for f in c.env_from.iter().flatten() {
            if let Some(r) = &f.secret_ref {
                secrets
                    .entry((namespace.to_owned(), r.name.clone()))
                    .or_insert(None);
            }
            if let Some(r) = &f.config_map_ref {
                config_maps
                    .entry((namespace.to_owned(), r.name.clone()))
                    .or_insert(None);
            }
        }
        for e in c.env.iter().flatten() {
            let Some(from) = &e.value_from else { continue };
            if let Some(r) = &from.secret_key_ref {
                secrets
                    .entry((namespace.to_owned(), r.name.clone()))
                    .or_insert(None);
            }
            if let Some(r) = &from.config_map_key_ref {
                config_maps
                    .entry((namespace.to_owned(), r.name.clone()))
                    .or_insert(None);
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
