//! `ScaledObject` (`keda.sh/v1alpha1`, namespaced, short name `so`).
//!
//! Mirrors KEDA's `apis/keda/v1alpha1/scaledobject_types.go` and `scaletriggers_types.go`: every
//! field keeps KEDA's JSON name, and everything KEDA marks optional is an `Option` that is omitted
//! when unset, so manifests written for KEDA deserialize and round-trip unchanged.

use std::collections::BTreeMap;

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscalerBehavior;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Default `pollingInterval`, in seconds.
pub const DEFAULT_POLLING_INTERVAL: i32 = 30;
/// Default `cooldownPeriod`, in seconds.
pub const DEFAULT_COOLDOWN_PERIOD: i32 = 300;
/// Default `initialCooldownPeriod`, in seconds.
pub const DEFAULT_INITIAL_COOLDOWN_PERIOD: i32 = 0;
/// Default `minReplicaCount`.
pub const DEFAULT_MIN_REPLICA_COUNT: i32 = 0;
/// Default `maxReplicaCount`.
pub const DEFAULT_MAX_REPLICA_COUNT: i32 = 100;
/// Default `scaleTargetRef.apiVersion`.
pub const DEFAULT_SCALE_TARGET_API_VERSION: &str = "apps/v1";
/// Default `scaleTargetRef.kind`.
pub const DEFAULT_SCALE_TARGET_KIND: &str = "Deployment";
/// Prefix of the HPA name when `advanced.horizontalPodAutoscalerConfig.name` is unset.
pub const HPA_NAME_PREFIX: &str = "keda-hpa-";

/// Annotation that pauses autoscaling of a ScaledObject (`"true"`).
pub const PAUSED_ANNOTATION: &str = "autoscaling.keda.sh/paused";
/// Annotation that pauses a ScaledObject at a fixed replica count.
pub const PAUSED_REPLICAS_ANNOTATION: &str = "autoscaling.keda.sh/paused-replicas";
/// Annotation that blocks scale-down only.
pub const PAUSED_SCALE_DOWN_ANNOTATION: &str = "autoscaling.keda.sh/paused-scale-down";
/// Annotation that transfers ownership of an existing HPA to the ScaledObject.
pub const TRANSFER_HPA_OWNERSHIP_ANNOTATION: &str = "scaledobject.keda.sh/transfer-hpa-ownership";
/// Annotation that disables the HPA ownership validation.
pub const VALIDATIONS_HPA_OWNERSHIP_ANNOTATION: &str = "validations.keda.sh/hpa-ownership";
/// Annotation listing labels not to copy onto the HPA.
pub const HPA_EXCLUDED_LABELS_ANNOTATION: &str = "scaledobject.keda.sh/hpa-excluded-labels";

/// Name of the composite metric produced by `advanced.scalingModifiers`.
pub const COMPOSITE_METRIC_NAME: &str = "composite-metric";

/// ScaledObjectSpec is the spec for a ScaledObject resource.
// kube's `printcolumn(...)` lists repeat `name = `/`type_ = `, which clippy mistakes for
// duplicated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "keda.sh",
    version = "v1alpha1",
    kind = "ScaledObject",
    plural = "scaledobjects",
    singular = "scaledobject",
    namespaced,
    shortname = "so",
    status = "ScaledObjectStatus",
    derive = "PartialEq",
    doc = "ScaledObject is a specification for a ScaledObject resource",
    printcolumn(
        name = "ScaleTargetKind",
        type_ = "string",
        json_path = ".status.scaleTargetKind"
    ),
    printcolumn(
        name = "ScaleTargetName",
        type_ = "string",
        json_path = ".spec.scaleTargetRef.name"
    ),
    printcolumn(name = "Min", type_ = "integer", json_path = ".spec.minReplicaCount"),
    printcolumn(name = "Max", type_ = "integer", json_path = ".spec.maxReplicaCount"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#
    ),
    printcolumn(
        name = "Active",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Active")].status"#
    ),
    printcolumn(
        name = "Fallback",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Fallback")].status"#
    ),
    printcolumn(
        name = "Paused",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Paused")].status"#
    ),
    printcolumn(
        name = "Triggers",
        type_ = "string",
        json_path = ".status.triggersTypes"
    ),
    printcolumn(
        name = "Authentications",
        type_ = "string",
        json_path = ".status.authenticationsTypes"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new(
    "!has(self.minReplicaCount) || self.minReplicaCount <= (has(self.maxReplicaCount) ? self.maxReplicaCount : 100)"
).message("minReplicaCount must be less than or equal to maxReplicaCount"))]
#[serde(rename_all = "camelCase")]
pub struct ScaledObjectSpec {
    /// Workload to scale (must be in the ScaledObject's namespace and expose /scale).
    pub scale_target_ref: ScaleTarget,

    /// Seconds between polls of the triggers. Default 30.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub polling_interval: Option<i32>,

    /// Seconds after creation before the first scale to zero may happen. Default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub initial_cooldown_period: Option<i32>,

    /// Seconds to wait after the last active trigger before scaling to zero. Default 300.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub cooldown_period: Option<i32>,

    /// Replicas while no trigger is active; must be below minReplicaCount. Default unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub idle_replica_count: Option<i32>,

    /// Minimum number of replicas. Default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub min_replica_count: Option<i32>,

    /// Maximum number of replicas. Default 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_replica_count: Option<i32>,

    /// Advanced options: HPA config, restore on delete, scaling modifiers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advanced: Option<AdvancedConfig>,

    /// Event sources that drive the scaling (at least one).
    #[schemars(length(min = 1))]
    pub triggers: Vec<ScaleTriggers>,

    /// Replicas to fall back to when a scaler keeps failing. Default disabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<Fallback>,
}

impl ScaledObjectSpec {
    /// `pollingInterval` in seconds, or KEDA's default (30).
    pub fn polling_interval(&self) -> i32 {
        self.polling_interval.unwrap_or(DEFAULT_POLLING_INTERVAL)
    }

    /// `cooldownPeriod` in seconds, or KEDA's default (300).
    pub fn cooldown_period(&self) -> i32 {
        self.cooldown_period.unwrap_or(DEFAULT_COOLDOWN_PERIOD)
    }

    /// `initialCooldownPeriod` in seconds, or KEDA's default (0).
    pub fn initial_cooldown_period(&self) -> i32 {
        self.initial_cooldown_period
            .unwrap_or(DEFAULT_INITIAL_COOLDOWN_PERIOD)
    }

    /// `minReplicaCount`, or KEDA's default (0).
    pub fn min_replica_count(&self) -> i32 {
        self.min_replica_count.unwrap_or(DEFAULT_MIN_REPLICA_COUNT)
    }

    /// `maxReplicaCount`, or KEDA's default (100).
    pub fn max_replica_count(&self) -> i32 {
        self.max_replica_count.unwrap_or(DEFAULT_MAX_REPLICA_COUNT)
    }

    /// Name of the HPA for the ScaledObject `so_name`: `advanced.horizontalPodAutoscalerConfig.name`
    /// when set and non-empty, otherwise `keda-hpa-<so_name>`.
    pub fn hpa_name(&self, so_name: &str) -> String {
        self.advanced
            .as_ref()
            .and_then(|a| a.horizontal_pod_autoscaler_config.as_ref())
            .and_then(|h| h.name.as_deref())
            .filter(|n| !n.is_empty())
            .map_or_else(|| format!("{HPA_NAME_PREFIX}{so_name}"), str::to_owned)
    }

    /// `advanced.restoreToOriginalReplicaCount`, or KEDA's default (false).
    pub fn restore_to_original_replica_count(&self) -> bool {
        self.advanced
            .as_ref()
            .and_then(|a| a.restore_to_original_replica_count)
            .unwrap_or(false)
    }

    /// The HPA behavior from `advanced.horizontalPodAutoscalerConfig.behavior`, if any.
    pub fn hpa_behavior(&self) -> Option<&HorizontalPodAutoscalerBehavior> {
        self.advanced
            .as_ref()
            .and_then(|a| a.horizontal_pod_autoscaler_config.as_ref())
            .and_then(|h| h.behavior.as_ref())
    }

    /// The scaling modifiers, if `advanced.scalingModifiers` sets a formula or a target.
    pub fn scaling_modifiers(&self) -> Option<&ScalingModifiers> {
        self.advanced
            .as_ref()
            .and_then(|a| a.scaling_modifiers.as_ref())
            .filter(|m| !m.is_empty())
    }

    /// The `scalingModifiers` formula when one is set and not blank: then the triggers compose
    /// into one `composite-metric` and the formula alone decides activity.
    pub fn scaling_formula(&self) -> Option<&str> {
        self.scaling_modifiers()
            .and_then(|m| m.formula.as_deref())
            .filter(|f| !f.trim().is_empty())
    }

    /// Whether every trigger is `cpu`/`memory` (and there is at least one): the HPA alone
    /// scales such an object, and KEDA forces it active.
    pub fn only_resource_triggers(&self) -> bool {
        !self.triggers.is_empty() && self.triggers.iter().all(ScaleTriggers::is_resource)
    }
}

/// ScaleTarget holds the reference to the scale target Object.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScaleTarget {
    /// Name of the target resource.
    #[schemars(length(min = 1))]
    pub name: String,

    /// API version of the target resource. Default apps/v1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,

    /// Kind of the target resource. Default Deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,

    /// Container whose environment resolves trigger parameters. Default the first container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env_source_container_name: Option<String>,
}

impl ScaleTarget {
    /// `apiVersion`, or KEDA's default (`apps/v1`) when unset or empty.
    pub fn api_version(&self) -> &str {
        self.api_version
            .as_deref()
            .filter(|v| !v.is_empty())
            .unwrap_or(DEFAULT_SCALE_TARGET_API_VERSION)
    }

    /// `kind`, or KEDA's default (`Deployment`) when unset or empty.
    pub fn kind(&self) -> &str {
        self.kind
            .as_deref()
            .filter(|k| !k.is_empty())
            .unwrap_or(DEFAULT_SCALE_TARGET_KIND)
    }
}

/// AdvancedConfig specifies advanced scaling options.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdvancedConfig {
    /// Options for the HPA that KEDA manages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub horizontal_pod_autoscaler_config: Option<HorizontalPodAutoscalerConfig>,

    /// Restore the target's original replica count when the ScaledObject is deleted. Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_to_original_replica_count: Option<bool>,

    /// Combine the triggers' metrics with a formula into one composite metric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaling_modifiers: Option<ScalingModifiers>,
}

/// ScalingModifiers describes advanced scaling logic options like formula.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScalingModifiers {
    /// Expression (expr-lang) over the named triggers' metrics; required with target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub formula: Option<String>,

    /// Target value of the composite metric; required with formula.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,

    /// Activation target of the composite metric. Default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activation_target: Option<String>,

    /// Metric type of the composite metric. Default AverageValue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = crate::crd::strip_null_from_enum)]
    pub metric_type: Option<ModifierMetricType>,
}

impl ScalingModifiers {
    /// True when no field is set (KEDA then ignores the section).
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }

    /// `metricType`, or KEDA's default (`AverageValue`).
    pub fn metric_type(&self) -> ModifierMetricType {
        self.metric_type.unwrap_or_default()
    }
}

/// HorizontalPodAutoscalerConfig specifies horizontal scale config.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HorizontalPodAutoscalerConfig {
    /// Scaling behavior copied into the HPA's spec.behavior.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub behavior: Option<HorizontalPodAutoscalerBehavior>,

    /// Name of the HPA. Default keda-hpa-<scaledobject name>.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Fallback is the spec for fallback options.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Fallback {
    /// Consecutive scaler failures before the fallback applies.
    #[schemars(range(min = 0))]
    pub failure_threshold: i32,

    /// Replicas to scale to while the fallback applies.
    #[schemars(range(min = 0))]
    pub replicas: i32,

    /// How the fallback replica count is computed. Default static.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "static"))]
    #[schemars(transform = crate::crd::strip_null_from_enum)]
    pub behavior: Option<FallbackBehavior>,
}

impl Fallback {
    /// `behavior`, or KEDA's default (`static`).
    pub fn behavior(&self) -> FallbackBehavior {
        self.behavior.unwrap_or_default()
    }
}

/// How the fallback replica count is computed.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "camelCase")]
// The variants carry `//` comments: doc comments would turn the schema's `enum` into a
// `oneOf` and change the CRD.
#[allow(missing_docs)]
pub enum FallbackBehavior {
    // Use `fallback.replicas`.
    #[default]
    Static,
    // Keep the current replica count.
    CurrentReplicas,
    // The current replica count if higher than `fallback.replicas`, else `fallback.replicas`.
    CurrentReplicasIfHigher,
    // The current replica count if lower than `fallback.replicas`, else `fallback.replicas`.
    CurrentReplicasIfLower,
    // Let the scaling modifiers' formula handle the failing triggers.
    ScalingModifiers,
}

/// MetricType is the type of the metric target: AverageValue, Value or Utilization.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
// The variants carry `//` comments: doc comments would turn the schema's `enum` into a
// `oneOf` and change the CRD.
#[allow(missing_docs)]
pub enum MetricType {
    // Target per replica (the HPA divides the metric by the replica count).
    #[default]
    AverageValue,
    // Target for the metric as a whole.
    Value,
    // Percentage of the pods' resource requests (cpu and memory triggers only).
    Utilization,
}

/// Metric type of the composite metric of scalingModifiers: AverageValue or Value.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
// The variants carry `//` comments: doc comments would turn the schema's `enum` into a
// `oneOf` and change the CRD.
#[allow(missing_docs)]
pub enum ModifierMetricType {
    // Target per replica.
    #[default]
    AverageValue,
    // Target for the metric as a whole.
    Value,
}

impl From<ModifierMetricType> for MetricType {
    fn from(t: ModifierMetricType) -> Self {
        match t {
            ModifierMetricType::AverageValue => MetricType::AverageValue,
            ModifierMetricType::Value => MetricType::Value,
        }
    }
}

/// ScaleTriggers reference the scaler that will be used.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScaleTriggers {
    /// Scaler type, e.g. cron, kafka, prometheus.
    #[serde(rename = "type")]
    pub type_: String,

    /// Name of the trigger, unique within the ScaledObject; required by scalingModifiers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,

    /// Serve the HPA the metric cached at the last poll. Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_cached_metrics: Option<bool>,

    /// Scaler-specific parameters.
    pub metadata: BTreeMap<String, String>,

    /// TriggerAuthentication or ClusterTriggerAuthentication supplying secrets to the scaler.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication_ref: Option<AuthenticationRef>,

    /// Metric target type. Default AverageValue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = crate::crd::strip_null_from_enum)]
    pub metric_type: Option<MetricType>,
}

impl ScaleTriggers {
    /// A `cpu`/`memory` trigger: a Resource metric of the HPA, with no scaler behind it.
    pub fn is_resource(&self) -> bool {
        matches!(self.type_.as_str(), "cpu" | "memory")
    }

    /// `metricType`, or KEDA's default (`AverageValue`).
    pub fn metric_type(&self) -> MetricType {
        self.metric_type.unwrap_or_default()
    }

    /// `useCachedMetrics`, or KEDA's default (false).
    pub fn use_cached_metrics(&self) -> bool {
        self.use_cached_metrics.unwrap_or(false)
    }
}

/// AuthenticationRef points to the TriggerAuthentication or ClusterTriggerAuthentication object
/// that is used to authenticate the scaler with the environment.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthenticationRef {
    /// Name of the TriggerAuthentication or ClusterTriggerAuthentication.
    pub name: String,

    /// Kind of the referenced resource. Default TriggerAuthentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = crate::crd::strip_null_from_enum)]
    pub kind: Option<AuthenticationRefKind>,
}

impl AuthenticationRef {
    /// `kind`, or KEDA's default (`TriggerAuthentication`).
    pub fn kind(&self) -> AuthenticationRefKind {
        self.kind.unwrap_or_default()
    }
}

/// Kind of resource an authenticationRef points to.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
// The variants carry `//` comments: doc comments would turn the schema's `enum` into a
// `oneOf` and change the CRD.
#[allow(missing_docs)]
pub enum AuthenticationRefKind {
    // A TriggerAuthentication in the ScaledObject's namespace.
    #[default]
    TriggerAuthentication,
    // A cluster-scoped ClusterTriggerAuthentication.
    ClusterTriggerAuthentication,
}

impl AuthenticationRefKind {
    /// The kind as written in YAML.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TriggerAuthentication => "TriggerAuthentication",
            Self::ClusterTriggerAuthentication => "ClusterTriggerAuthentication",
        }
    }
}

/// ScaledObjectStatus is the status for a ScaledObject resource.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScaledObjectStatus {
    /// Kind of the scale target, as group/version.kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_target_kind: Option<String>,

    /// Group, version, kind and resource of the scale target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(rename = "scaleTargetGVKR")]
    pub scale_target_gvkr: Option<GroupVersionKindResource>,

    /// Replica count of the target before the ScaledObject took over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_replica_count: Option<i32>,

    /// Last time a trigger was active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_active_time: Option<Time>,

    /// External metric names served for this ScaledObject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_metric_names: Option<Vec<String>>,

    /// Resource metric names (cpu, memory) used by this ScaledObject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_metric_names: Option<Vec<String>>,

    /// Name of the composite scaler when scalingModifiers are used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub composite_scaler_name: Option<String>,

    /// Ready, Active, Fallback and Paused conditions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<Condition>>,

    /// Health of each metric, keyed by metric name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<BTreeMap<String, HealthStatus>>,

    /// Activity of each trigger, keyed by trigger name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub triggers_activity: Option<BTreeMap<String, TriggerActivityStatus>>,

    /// Replica count the ScaledObject is paused at, if paused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_replica_count: Option<i32>,

    /// Name of the HPA managed for this ScaledObject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hpa_name: Option<String>,

    /// Comma-separated trigger types.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub triggers_types: Option<String>,

    /// Comma-separated names of the referenced authentications.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentications_types: Option<String>,
}

/// GroupVersionKindResource provides unified structure for schema.GroupVersionKind and Resource.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GroupVersionKindResource {
    /// API group, empty for the core group.
    pub group: String,
    /// API version.
    pub version: String,
    /// Kind.
    pub kind: String,
    /// Plural resource name.
    pub resource: String,
}

/// HealthStatus is the status for a ScaledObject's health.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthStatus {
    /// Consecutive failures to read the metric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number_of_failures: Option<i32>,

    /// Happy or Failing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

/// TriggerActivityStatus represents the activity status of an external trigger.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TriggerActivityStatus {
    /// Whether the trigger is active.
    #[serde(default)]
    pub is_active: bool,
}

/// Condition to store the condition state.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Type of condition: Ready, Active, Fallback or Paused.
    #[serde(rename = "type")]
    pub type_: String,

    /// Status of the condition, one of True, False, Unknown.
    pub status: String,

    /// The reason for the condition's last transition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,

    /// A human readable message indicating details about the transition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn spec() -> ScaledObjectSpec {
        ScaledObjectSpec {
            scale_target_ref: ScaleTarget {
                name: "web".into(),
                ..Default::default()
            },
            polling_interval: None,
            initial_cooldown_period: None,
            cooldown_period: None,
            idle_replica_count: None,
            min_replica_count: None,
            max_replica_count: None,
            advanced: None,
            triggers: vec![ScaleTriggers {
                type_: "cron".into(),
                ..Default::default()
            }],
            fallback: None,
        }
    }

    #[test]
    fn defaults_when_unset() {
        let s = spec();
        assert_eq!(s.polling_interval(), 30);
        assert_eq!(s.cooldown_period(), 300);
        assert_eq!(s.initial_cooldown_period(), 0);
        assert_eq!(s.min_replica_count(), 0);
        assert_eq!(s.max_replica_count(), 100);
        assert_eq!(s.hpa_name("web-so"), "keda-hpa-web-so");
        assert!(!s.restore_to_original_replica_count());
        assert!(s.hpa_behavior().is_none());
        assert!(s.scaling_modifiers().is_none());
        assert_eq!(s.scale_target_ref.api_version(), "apps/v1");
        assert_eq!(s.scale_target_ref.kind(), "Deployment");
        assert_eq!(s.triggers[0].metric_type(), MetricType::AverageValue);
        assert!(!s.triggers[0].use_cached_metrics());
    }

    #[test]
    fn explicit_values_win() {
        let mut s = spec();
        s.polling_interval = Some(5);
        s.cooldown_period = Some(60);
        s.initial_cooldown_period = Some(120);
        s.min_replica_count = Some(2);
        s.max_replica_count = Some(7);
        s.advanced = Some(AdvancedConfig {
            horizontal_pod_autoscaler_config: Some(HorizontalPodAutoscalerConfig {
                name: Some("custom-hpa".into()),
                behavior: None,
            }),
            restore_to_original_replica_count: Some(true),
            scaling_modifiers: None,
        });
        s.scale_target_ref.api_version = Some("apps/v1".into());
        s.scale_target_ref.kind = Some("StatefulSet".into());
        assert_eq!(s.polling_interval(), 5);
        assert_eq!(s.cooldown_period(), 60);
        assert_eq!(s.initial_cooldown_period(), 120);
        assert_eq!(s.min_replica_count(), 2);
        assert_eq!(s.max_replica_count(), 7);
        assert_eq!(s.hpa_name("web-so"), "custom-hpa");
        assert!(s.restore_to_original_replica_count());
        assert_eq!(s.scale_target_ref.kind(), "StatefulSet");
    }

    #[test]
    fn empty_strings_fall_back_to_defaults() {
        let mut s = spec();
        s.advanced = Some(AdvancedConfig {
            horizontal_pod_autoscaler_config: Some(HorizontalPodAutoscalerConfig {
                name: Some(String::new()),
                behavior: None,
            }),
            restore_to_original_replica_count: None,
            scaling_modifiers: Some(ScalingModifiers::default()),
        });
        s.scale_target_ref.api_version = Some(String::new());
        s.scale_target_ref.kind = Some(String::new());
        assert_eq!(s.hpa_name("x"), "keda-hpa-x");
        assert!(!s.restore_to_original_replica_count());
        assert!(s.scaling_modifiers().is_none());
        assert_eq!(s.scale_target_ref.api_version(), "apps/v1");
        assert_eq!(s.scale_target_ref.kind(), "Deployment");
    }

    #[test]
    fn auth_ref_kind_defaults_to_trigger_authentication() {
        let r: AuthenticationRef = serde_json::from_str(r#"{"name":"a"}"#).unwrap();
        assert_eq!(r.kind(), AuthenticationRefKind::TriggerAuthentication);
        assert_eq!(r.kind().as_str(), "TriggerAuthentication");
        let r: AuthenticationRef =
            serde_json::from_str(r#"{"name":"a","kind":"ClusterTriggerAuthentication"}"#).unwrap();
        assert_eq!(
            r.kind(),
            AuthenticationRefKind::ClusterTriggerAuthentication
        );
    }

    #[test]
    fn fallback_and_metric_type_defaults() {
        let f: Fallback = serde_json::from_str(r#"{"failureThreshold":3,"replicas":6}"#).unwrap();
        assert_eq!(f.behavior(), FallbackBehavior::Static);
        let f: Fallback = serde_json::from_str(
            r#"{"failureThreshold":3,"replicas":6,"behavior":"currentReplicasIfHigher"}"#,
        )
        .unwrap();
        assert_eq!(f.behavior(), FallbackBehavior::CurrentReplicasIfHigher);
        let m = ScalingModifiers::default();
        assert_eq!(m.metric_type(), ModifierMetricType::AverageValue);
        assert_eq!(
            MetricType::from(ModifierMetricType::Value),
            MetricType::Value
        );
    }
}
