//! Resolving what a trigger needs from the cluster: the scale target's container environment
//! (for `<param>FromEnv` and TriggerAuthentication `env`) and the auth params of its
//! TriggerAuthentication or ClusterTriggerAuthentication.
//!
//! Resolution is pure over an [`ObjectSource`], so `kedge check` (objects from files) and the
//! operator (objects from watches) share it.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{ConfigMap, Container, PodTemplateSpec, Secret as K8sSecret};
use scaler_core::Secret;

use crate::crd::{
    AuthenticationRefKind, ClusterTriggerAuthentication, ScaleTarget, ScaleTriggers,
    TriggerAuthentication, TriggerAuthenticationSpec,
};

/// Where resolution finds the objects a ScaledObject references.
pub trait ObjectSource {
    /// A Secret.
    fn secret(&self, namespace: &str, name: &str) -> Option<Arc<K8sSecret>>;
    /// A ConfigMap.
    fn config_map(&self, namespace: &str, name: &str) -> Option<Arc<ConfigMap>>;
    /// A TriggerAuthentication.
    fn trigger_authentication(
        &self,
        namespace: &str,
        name: &str,
    ) -> Option<Arc<TriggerAuthentication>>;
    /// A ClusterTriggerAuthentication.
    fn cluster_trigger_authentication(
        &self,
        name: &str,
    ) -> Option<Arc<ClusterTriggerAuthentication>>;
    /// The pod template of the scale target, for kinds that have one.
    fn pod_template(&self, namespace: &str, target: &ScaleTarget) -> Option<PodTemplateSpec>;
}

/// Settings of resolution that come from the operator's environment.
#[derive(Clone, Debug)]
pub struct ResolveSettings {
    /// Namespace whose Secrets and ConfigMaps ClusterTriggerAuthentications read
    /// (`KEDA_CLUSTER_OBJECT_NAMESPACE`, else the operator's namespace).
    pub cluster_object_namespace: String,
}

impl Default for ResolveSettings {
    fn default() -> Self {
        Self {
            cluster_object_namespace: "keda".to_owned(),
        }
    }
}

/// A resolution failure that makes the ScaledObject unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ResolveError(pub String);

/// The resolved environment of the scale target's env-source container.
#[derive(Clone, Debug, Default)]
pub struct ResolvedEnv {
    /// Variable name → value, after `envFrom` then `env` (later entries win, as in a pod).
    pub vars: BTreeMap<String, Secret>,
    /// Problems that do not stop the ScaledObject but a user should know about.
    pub warnings: Vec<String>,
}

/// Resolves the environment of the container named by `scaleTargetRef.envSourceContainerName`
/// (else the first container). A target without a pod template (e.g. a custom resource) has an
/// empty environment.
pub fn resolve_env(
    source: &dyn ObjectSource,
    namespace: &str,
    target: &ScaleTarget,
) -> Result<ResolvedEnv, ResolveError> {
    let Some(template) = source.pod_template(namespace, target) else {
        return Ok(ResolvedEnv::default());
    };
    let containers = template.spec.map(|s| s.containers).unwrap_or_default();
    let container = match &target.env_source_container_name {
        Some(name) if !name.is_empty() => containers
            .into_iter()
            .find(|c| &c.name == name)
            .ok_or_else(|| {
                ResolveError(format!(
                    "envSourceContainerName {name:?} is not a container of {} {}",
                    target.kind(),
                    target.name
                ))
            })?,
        _ => match containers.into_iter().next() {
            Some(c) => c,
            None => return Ok(ResolvedEnv::default()),
        },
    };
    container_env(source, namespace, &container)
}

fn container_env(
    source: &dyn ObjectSource,
    namespace: &str,
    container: &Container,
) -> Result<ResolvedEnv, ResolveError> {
    let mut env = ResolvedEnv::default();
    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        if let Some(r) = &from.config_map_ref {
            match source.config_map(namespace, &r.name) {
                Some(cm) => {
                    for (k, v) in cm.data.iter().flatten() {
                        env.vars
                            .insert(format!("{prefix}{k}"), Secret::new(v.clone()));
                    }
                }
                None if r.optional == Some(true) => {}
                None => {
                    return Err(ResolveError(format!(
                        "container {:?}: envFrom ConfigMap {namespace}/{} not found",
                        container.name, r.name
                    )));
                }
            }
        }
        if let Some(r) = &from.secret_ref {
            match source.secret(namespace, &r.name) {
                Some(secret) => {
                    for (k, v) in secret_entries(&secret) {
                        env.vars.insert(format!("{prefix}{k}"), v);
                    }
                }
                None if r.optional == Some(true) => {}
                None => {
                    return Err(ResolveError(format!(
                        "container {:?}: envFrom Secret {namespace}/{} not found",
                        container.name, r.name
                    )));
                }
            }
        }
    }
    for var in container.env.iter().flatten() {
        if let Some(value) = &var.value {
            env.vars
                .insert(var.name.clone(), Secret::new(value.clone()));
            continue;
        }
        let Some(from) = &var.value_from else {
            env.vars.insert(var.name.clone(), Secret::default());
            continue;
        };
        if let Some(r) = &from.secret_key_ref {
            let value = source
                .secret(namespace, &r.name)
                .and_then(|s| secret_entries(&s).remove(&r.key));
            match value {
                Some(v) => {
                    env.vars.insert(var.name.clone(), v);
                }
                None if r.optional == Some(true) => {}
                None => {
                    return Err(ResolveError(format!(
                        "container {:?}: env {} refers to key {:?} of Secret {namespace}/{}, which was not found",
                        container.name, var.name, r.key, r.name
                    )));
                }
            }
        } else if let Some(r) = &from.config_map_key_ref {
            let value = source
                .config_map(namespace, &r.name)
                .and_then(|cm| cm.data.as_ref().and_then(|d| d.get(&r.key).cloned()));
            match value {
                Some(v) => {
                    env.vars.insert(var.name.clone(), Secret::new(v));
                }
                None if r.optional == Some(true) => {}
                None => {
                    return Err(ResolveError(format!(
                        "container {:?}: env {} refers to key {:?} of ConfigMap {namespace}/{}, which was not found",
                        container.name, var.name, r.key, r.name
                    )));
                }
            }
        } else {
            // fieldRef / resourceFieldRef describe the running pod; there is no pod to read.
            env.warnings.push(format!(
                "container {:?}: env {} uses a field reference, which kedge cannot resolve; it is empty",
                container.name, var.name
            ));
        }
    }
    Ok(env)
}

/// A Secret's entries, from `data` (base64-decoded by the API types) and `stringData` (as
/// written in a manifest; the API server folds it into `data`).
pub fn secret_entries(secret: &K8sSecret) -> BTreeMap<String, Secret> {
    let mut out = BTreeMap::new();
    for (k, v) in secret.data.iter().flatten() {
        out.insert(
            k.clone(),
            Secret::new(String::from_utf8_lossy(&v.0).into_owned()),
        );
    }
    for (k, v) in secret.string_data.iter().flatten() {
        out.insert(k.clone(), Secret::new(v.clone()));
    }
    out
}

/// The auth params of one trigger, and what a user should know about them.
#[derive(Clone, Debug, Default)]
pub struct ResolvedAuth {
    /// Parameter → value.
    pub params: BTreeMap<String, Secret>,
    /// `podIdentity.provider`, if the TriggerAuthentication sets one other than `none`.
    pub pod_identity: Option<String>,
    /// Problems that leave some params empty.
    pub warnings: Vec<String>,
}

/// Resolves the auth params of `trigger` from its TriggerAuthentication or
/// ClusterTriggerAuthentication, as KEDA does: a missing reference leaves the params empty (the
/// scaler then reports what it lacks), later sources overwrite earlier ones.
pub fn resolve_auth(
    source: &dyn ObjectSource,
    settings: &ResolveSettings,
    namespace: &str,
    trigger: &ScaleTriggers,
    env: &ResolvedEnv,
) -> ResolvedAuth {
    let mut out = ResolvedAuth::default();
    let Some(auth_ref) = &trigger.authentication_ref else {
        return out;
    };
    let (spec, objects_ns, what): (TriggerAuthenticationSpec, &str, String) = match auth_ref.kind()
    {
        AuthenticationRefKind::TriggerAuthentication => {
            match source.trigger_authentication(namespace, &auth_ref.name) {
                Some(ta) => (
                    ta.spec.clone(),
                    namespace,
                    format!("TriggerAuthentication {namespace}/{}", auth_ref.name),
                ),
                None => {
                    out.warnings.push(format!(
                        "TriggerAuthentication {namespace}/{} not found; its parameters are empty",
                        auth_ref.name
                    ));
                    return out;
                }
            }
        }
        AuthenticationRefKind::ClusterTriggerAuthentication => {
            match source.cluster_trigger_authentication(&auth_ref.name) {
                Some(cta) => (
                    cta.spec.0.clone(),
                    settings.cluster_object_namespace.as_str(),
                    format!("ClusterTriggerAuthentication {}", auth_ref.name),
                ),
                None => {
                    out.warnings.push(format!(
                        "ClusterTriggerAuthentication {} not found; its parameters are empty",
                        auth_ref.name
                    ));
                    return out;
                }
            }
        }
    };

    if let Some(pod_identity) = &spec.pod_identity {
        let provider = pod_identity.provider.as_str();
        if provider != "none" {
            out.pod_identity = Some(provider.to_owned());
            out.warnings.push(format!(
                "{what}: podIdentity provider {provider:?} is recorded, but kedge resolves no cloud identity outside its cloud; the scaler uses its default credential chain"
            ));
        }
        if let Some(role) = pod_identity.role_arn.as_ref().filter(|r| !r.is_empty()) {
            out.params
                .insert("awsRoleArn".to_owned(), Secret::new(role.clone()));
        }
    }
    for e in spec.env.iter().flatten() {
        // KEDA reads from the env-source container; a containerName other than it is a
        // separate lookup we do not have here, so the value may be empty.
        let value = env.vars.get(&e.name).cloned().unwrap_or_default();
        out.params.insert(e.parameter.clone(), value);
    }
    for r in spec.config_map_target_ref.iter().flatten() {
        let value = source
            .config_map(objects_ns, &r.name)
            .and_then(|cm| cm.data.as_ref().and_then(|d| d.get(&r.key).cloned()));
        if value.is_none() {
            out.warnings.push(format!(
                "{what}: key {:?} of ConfigMap {objects_ns}/{} not found; parameter {} is empty",
                r.key, r.name, r.parameter
            ));
        }
        out.params
            .insert(r.parameter.clone(), Secret::new(value.unwrap_or_default()));
    }
    for r in spec.secret_target_ref.iter().flatten() {
        let value = source
            .secret(objects_ns, &r.name)
            .and_then(|s| secret_entries(&s).remove(&r.key));
        if value.is_none() {
            out.warnings.push(format!(
                "{what}: key {:?} of Secret {objects_ns}/{} not found; parameter {} is empty",
                r.key, r.name, r.parameter
            ));
        }
        out.params
            .insert(r.parameter.clone(), value.unwrap_or_default());
    }
    let unsupported = [
        ("hashiCorpVault", spec.hashi_corp_vault.is_some()),
        ("azureKeyVault", spec.azure_key_vault.is_some()),
        ("gcpSecretManager", spec.gcp_secret_manager.is_some()),
        ("awsSecretManager", spec.aws_secret_manager.is_some()),
        ("awsParameterStore", spec.aws_parameter_store.is_some()),
        ("akeyless", spec.akeyless.is_some()),
        (
            "boundServiceAccountToken",
            spec.bound_service_account_token.is_some(),
        ),
        ("filePath", spec.file_path.is_some()),
        ("oauth2", spec.oauth2.is_some()),
    ];
    for (source_name, used) in unsupported {
        if used {
            out.warnings.push(format!(
                "{what}: {source_name} is not resolved by kedge yet; parameters from it are empty"
            ));
        }
    }
    out
}

/// Objects held in memory, keyed by namespace and name: what `kedge check` read from files, or
/// what the operator fetched for one reconcile.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    secrets: BTreeMap<(String, String), Arc<K8sSecret>>,
    config_maps: BTreeMap<(String, String), Arc<ConfigMap>>,
    trigger_auths: BTreeMap<(String, String), Arc<TriggerAuthentication>>,
    cluster_trigger_auths: BTreeMap<String, Arc<ClusterTriggerAuthentication>>,
    /// (namespace, kind, name) → (apiVersion, pod template)
    workloads: BTreeMap<(String, String, String), (String, PodTemplateSpec)>,
}

fn key(namespace: &str, name: &str) -> (String, String) {
    (namespace.to_owned(), name.to_owned())
}

fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("")
}

impl Snapshot {
    /// Adds a Secret.
    pub fn insert_secret(&mut self, namespace: &str, name: &str, secret: Arc<K8sSecret>) {
        self.secrets.insert(key(namespace, name), secret);
    }
    /// Adds a ConfigMap.
    pub fn insert_config_map(&mut self, namespace: &str, name: &str, cm: Arc<ConfigMap>) {
        self.config_maps.insert(key(namespace, name), cm);
    }
    /// Adds a TriggerAuthentication.
    pub fn insert_trigger_authentication(
        &mut self,
        namespace: &str,
        name: &str,
        ta: Arc<TriggerAuthentication>,
    ) {
        self.trigger_auths.insert(key(namespace, name), ta);
    }
    /// Adds a ClusterTriggerAuthentication.
    pub fn insert_cluster_trigger_authentication(
        &mut self,
        name: &str,
        cta: Arc<ClusterTriggerAuthentication>,
    ) {
        self.cluster_trigger_auths.insert(name.to_owned(), cta);
    }
    /// Adds a workload's pod template.
    pub fn insert_workload(
        &mut self,
        namespace: &str,
        api_version: &str,
        kind: &str,
        name: &str,
        template: PodTemplateSpec,
    ) {
        self.workloads.insert(
            (namespace.to_owned(), kind.to_owned(), name.to_owned()),
            (api_version.to_owned(), template),
        );
    }
}

impl ObjectSource for Snapshot {
    fn secret(&self, namespace: &str, name: &str) -> Option<Arc<K8sSecret>> {
        self.secrets.get(&key(namespace, name)).cloned()
    }

    fn config_map(&self, namespace: &str, name: &str) -> Option<Arc<ConfigMap>> {
        self.config_maps.get(&key(namespace, name)).cloned()
    }

    fn trigger_authentication(
        &self,
        namespace: &str,
        name: &str,
    ) -> Option<Arc<TriggerAuthentication>> {
        self.trigger_auths.get(&key(namespace, name)).cloned()
    }

    fn cluster_trigger_authentication(
        &self,
        name: &str,
    ) -> Option<Arc<ClusterTriggerAuthentication>> {
        self.cluster_trigger_auths.get(name).cloned()
    }

    fn pod_template(&self, namespace: &str, target: &ScaleTarget) -> Option<PodTemplateSpec> {
        let k = (
            namespace.to_owned(),
            target.kind().to_owned(),
            target.name.clone(),
        );
        self.workloads
            .get(&k)
            .filter(|(api_version, _)| group_of(api_version) == group_of(target.api_version()))
            .map(|(_, template)| template.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Inventory;
    use crate::crd::ScaledObject;

    const OBJECTS: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: sidecar
          image: envoy
          env: [{name: ONLY_IN_SIDECAR, value: x}]
        - name: app
          image: app
          envFrom:
            - configMapRef: {name: app-config}
            - secretRef: {name: app-secrets}
              prefix: S_
          env:
            - {name: PLAIN, value: " literal "}
            - name: FROM_SECRET
              valueFrom: {secretKeyRef: {name: app-secrets, key: token}}
            - name: FROM_CM
              valueFrom: {configMapKeyRef: {name: app-config, key: QUEUE}}
            - name: QUEUE
              value: overrides-envFrom
---
apiVersion: v1
kind: ConfigMap
metadata: {name: app-config, namespace: shop}
data: {QUEUE: jobs, HOST: rabbit}
---
apiVersion: v1
kind: Secret
metadata: {name: app-secrets, namespace: shop}
data: {token: czNjcjN0}
---
apiVersion: keda.sh/v1alpha1
kind: TriggerAuthentication
metadata: {name: ta, namespace: shop}
spec:
  podIdentity: {provider: aws, roleArn: "arn:aws:iam::1:role/r"}
  env: [{parameter: host, name: HOST}]
  configMapTargetRef: [{parameter: queue, name: app-config, key: QUEUE}]
  secretTargetRef:
    - {parameter: password, name: app-secrets, key: token}
    - {parameter: missing, name: app-secrets, key: nope}
---
apiVersion: keda.sh/v1alpha1
kind: ClusterTriggerAuthentication
metadata: {name: cta}
spec:
  secretTargetRef: [{parameter: password, name: shared, key: pw}]
---
apiVersion: v1
kind: Secret
metadata: {name: shared, namespace: keda}
stringData: {pw: from-keda-namespace}
"#;

    fn inventory() -> Inventory {
        let mut inv = Inventory::default();
        if let Err(e) = inv.add_file("objects.yaml", OBJECTS) {
            panic!("{e}");
        }
        inv
    }

    fn target(container: Option<&str>) -> ScaleTarget {
        ScaleTarget {
            name: "web".into(),
            env_source_container_name: container.map(str::to_owned),
            ..Default::default()
        }
    }

    fn get<'a>(m: &'a BTreeMap<String, Secret>, k: &str) -> Option<&'a str> {
        m.get(k).map(Secret::expose)
    }

    #[test]
    fn env_of_the_named_container_with_env_from_and_overrides() {
        let inv = inventory().objects;
        let env = resolve_env(&inv, "shop", &target(Some("app"))).unwrap_or_default();
        let v = &env.vars;
        assert_eq!(get(v, "PLAIN"), Some(" literal "));
        assert_eq!(get(v, "FROM_SECRET"), Some("s3cr3t"));
        assert_eq!(get(v, "FROM_CM"), Some("jobs"));
        assert_eq!(get(v, "HOST"), Some("rabbit"));
        assert_eq!(get(v, "S_token"), Some("s3cr3t"));
        assert_eq!(get(v, "QUEUE"), Some("overrides-envFrom"));
        assert_eq!(get(v, "ONLY_IN_SIDECAR"), None);
    }

    #[test]
    fn first_container_by_default_and_unknown_container_is_an_error() {
        let inv = inventory().objects;
        let env = resolve_env(&inv, "shop", &target(None)).unwrap_or_default();
        assert_eq!(get(&env.vars, "ONLY_IN_SIDECAR"), Some("x"));
        let err = resolve_env(&inv, "shop", &target(Some("nope"))).err();
        assert_eq!(
            err.map(|e| e.0),
            Some("envSourceContainerName \"nope\" is not a container of Deployment web".to_owned())
        );
        // A target that is not in the source has no env, and that is not an error.
        assert!(resolve_env(&inv, "elsewhere", &target(None)).is_ok());
    }

    fn trigger(auth: &str) -> crate::crd::ScaleTriggers {
        let so: ScaledObject = match serde_saphyr::from_str(&format!(
            "apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {{name: so}}\nspec:\n  scaleTargetRef: {{name: web}}\n  triggers: [{{type: rabbitmq, metadata: {{}}, authenticationRef: {auth}}}]\n"
        )) {
            Ok(so) => so,
            Err(e) => panic!("{e}"),
        };
        so.spec.triggers[0].clone()
    }

    #[test]
    fn trigger_authentication_sources() {
        let inv = inventory().objects;
        let env = resolve_env(&inv, "shop", &target(Some("app"))).unwrap_or_default();
        let auth = resolve_auth(
            &inv,
            &ResolveSettings::default(),
            "shop",
            &trigger("{name: ta}"),
            &env,
        );
        assert_eq!(get(&auth.params, "host"), Some("rabbit"));
        assert_eq!(get(&auth.params, "queue"), Some("jobs"));
        assert_eq!(get(&auth.params, "password"), Some("s3cr3t"));
        assert_eq!(
            get(&auth.params, "awsRoleArn"),
            Some("arn:aws:iam::1:role/r")
        );
        assert_eq!(get(&auth.params, "missing"), Some(""));
        assert_eq!(auth.pod_identity.as_deref(), Some("aws"));
        assert!(
            auth.warnings
                .iter()
                .any(|w| w.contains("key \"nope\" of Secret shop/app-secrets not found"))
        );
        assert!(
            !format!("{auth:?}").contains("s3cr3t"),
            "secrets never print"
        );
    }

    #[test]
    fn cluster_trigger_authentication_reads_the_cluster_object_namespace() {
        let inv = inventory().objects;
        let env = ResolvedEnv::default();
        let t = trigger("{name: cta, kind: ClusterTriggerAuthentication}");
        let auth = resolve_auth(&inv, &ResolveSettings::default(), "shop", &t, &env);
        assert_eq!(get(&auth.params, "password"), Some("from-keda-namespace"));
        let other = ResolveSettings {
            cluster_object_namespace: "kedge".into(),
        };
        let auth = resolve_auth(&inv, &other, "shop", &t, &env);
        assert_eq!(get(&auth.params, "password"), Some(""));
    }

    #[test]
    fn missing_trigger_authentication_leaves_params_empty_with_a_warning() {
        let inv = inventory().objects;
        let auth = resolve_auth(
            &inv,
            &ResolveSettings::default(),
            "shop",
            &trigger("{name: nope}"),
            &ResolvedEnv::default(),
        );
        assert!(auth.params.is_empty());
        assert_eq!(
            auth.warnings,
            ["TriggerAuthentication shop/nope not found; its parameters are empty"]
        );
    }
}
