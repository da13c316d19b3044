//! `keda.sh/v1alpha1` custom resources.
//!
//! [`ScaledObject`], [`TriggerAuthentication`] and [`ClusterTriggerAuthentication`] with KEDA's
//! field names, optionality, printer columns and main schema constraints, so manifests written
//! for KEDA apply unchanged. [`all`] returns the three CRDs; the YAML in `deploy/crds/` is
//! generated from them ([`write_dir`]) and checked by `operator/tests/crds.rs`.

use std::path::{Path, PathBuf};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

pub mod scaled_object;
pub mod trigger_authentication;

pub use scaled_object::{
    AdvancedConfig, AuthenticationRef, AuthenticationRefKind, Condition, Fallback,
    FallbackBehavior, GroupVersionKindResource, HealthStatus, HorizontalPodAutoscalerConfig,
    MetricType, ModifierMetricType, ScaleTarget, ScaleTriggers, ScaledObject, ScaledObjectSpec,
    ScaledObjectStatus, ScalingModifiers, TriggerActivityStatus,
};
pub use trigger_authentication::{
    AuthConfigMapTargetRef, AuthEnvironment, AuthPodIdentity, AuthSecretTargetRef, AuthTargetRef,
    BoundServiceAccountToken, ClusterTriggerAuthentication, ClusterTriggerAuthenticationSpec,
    HashiCorpVault, IdentityOwner, PodIdentityProvider, TriggerAuthentication,
    TriggerAuthenticationSpec, TriggerAuthenticationStatus,
};

/// API group of KEDA's resources.
pub const GROUP: &str = "keda.sh";
/// API version of KEDA's resources.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` of KEDA's resources.
pub const API_VERSION: &str = "keda.sh/v1alpha1";

/// Schema transform for `Option<enum>` fields: schemars lists `null` among the `enum` values of an
/// optional enum; drop it (the field stays `nullable`) so the CRD lists only KEDA's values.
pub(crate) fn strip_null_from_enum(schema: &mut schemars::Schema) {
    if let Some(serde_json::Value::Array(values)) = schema.get_mut("enum") {
        values.retain(|v| !v.is_null());
    }
}

/// The CRDs, in a fixed order: ScaledObject, TriggerAuthentication, ClusterTriggerAuthentication.
pub fn all() -> Vec<CustomResourceDefinition> {
    vec![
        ScaledObject::crd(),
        TriggerAuthentication::crd(),
        ClusterTriggerAuthentication::crd(),
    ]
    .into_iter()
    .map(bound_int32)
    .collect()
}

/// Gives every `format: int32` integer of `crd`'s schemas the int32 range as `minimum` and
/// `maximum` (unless it has its own). kube-apiserver ignores `format` on integers but enforces
/// bounds: without them it stores a `pollingInterval` of 2^31, which no client of the typed
/// object (kedge, KEDA) can read, and that one object fails every list and watch of them all.
fn bound_int32(crd: CustomResourceDefinition) -> CustomResourceDefinition {
    fn walk(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                if m.get("type").and_then(|t| t.as_str()) == Some("integer")
                    && m.get("format").and_then(|f| f.as_str()) == Some("int32")
                {
                    m.entry("minimum").or_insert(f64::from(i32::MIN).into());
                    m.entry("maximum").or_insert(f64::from(i32::MAX).into());
                }
                m.values_mut().for_each(walk);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(walk),
            _ => {}
        }
    }
    // A CRD is plain data: it converts to JSON and back.
    #[allow(clippy::expect_used)]
    let mut json = serde_json::to_value(&crd).expect("a CustomResourceDefinition is JSON");
    walk(&mut json);
    #[allow(clippy::expect_used)]
    serde_json::from_value(json).expect("still a CustomResourceDefinition")
}

/// Deterministic multi-document YAML of `crds`, documents separated by `---\n`.
pub fn to_yaml(crds: &[CustomResourceDefinition]) -> String {
    // A CRD is plain data (strings, numbers, maps, sequences): serializing it cannot fail.
    #[allow(clippy::expect_used)]
    serde_saphyr::to_string_multiple(crds).expect("a CustomResourceDefinition serializes to YAML")
}

/// YAML of all CRDs (see [`all`]).
pub fn crds_yaml() -> String {
    to_yaml(&all())
}

/// File name of a CRD in `deploy/crds/`: `<plural>.<group>.yaml`, e.g. `scaledobjects.keda.sh.yaml`.
pub fn file_name(crd: &CustomResourceDefinition) -> String {
    let name = crd.metadata.name.clone().unwrap_or_else(|| {
        format!(
            "{}.{}",
            crd.spec.names.plural.as_str(),
            crd.spec.group.as_str()
        )
    });
    format!("{name}.yaml")
}

/// Files `(path, contents)` that [`write_dir`] writes into `dir`, one per CRD.
pub fn files(dir: &Path) -> Vec<(PathBuf, String)> {
    all()
        .into_iter()
        .map(|crd| {
            (
                dir.join(file_name(&crd)),
                to_yaml(std::slice::from_ref(&crd)),
            )
        })
        .collect()
}

/// Write one `<plural>.<group>.yaml` per CRD into `dir` (created if missing).
pub fn write_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for (path, yaml) in files(dir) {
        std::fs::write(path, yaml)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn int32_schemas(
        v: &serde_json::Value,
        path: &str,
        out: &mut Vec<(String, serde_json::Value)>,
    ) {
        match v {
            serde_json::Value::Object(m) => {
                if m.get("format").and_then(|f| f.as_str()) == Some("int32") {
                    out.push((path.to_owned(), v.clone()));
                }
                for (k, v) in m {
                    int32_schemas(v, &format!("{path}.{k}"), out);
                }
            }
            serde_json::Value::Array(a) => {
                for (i, v) in a.iter().enumerate() {
                    int32_schemas(v, &format!("{path}[{i}]"), out);
                }
            }
            _ => {}
        }
    }

    #[test]
    fn every_int32_is_bounded_so_the_api_server_refuses_what_the_types_cannot_hold() {
        let mut found = Vec::new();
        for crd in all() {
            int32_schemas(&serde_json::to_value(crd).unwrap(), "", &mut found);
        }
        let polling = found
            .iter()
            .find(|(p, _)| p.ends_with(".spec.properties.pollingInterval"))
            .unwrap();
        assert_eq!(polling.1["minimum"], 1.0, "its own minimum is kept");
        assert_eq!(polling.1["maximum"], 2_147_483_647.0);
        for (path, schema) in &found {
            let (min, max) = (schema["minimum"].as_f64(), schema["maximum"].as_f64());
            assert!(
                min.is_some_and(|m| m >= f64::from(i32::MIN))
                    && max.is_some_and(|m| m <= f64::from(i32::MAX)),
                "{path}: {schema}"
            );
        }
    }
}
