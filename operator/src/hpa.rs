//! The HPA kedge owns for a ScaledObject, planned exactly as KEDA shapes it: name, replica
//! bounds and metrics (External metrics from the scalers, Resource metrics for cpu/memory
//! triggers, or one `composite-metric` with scalingModifiers).

use std::collections::BTreeMap;

use k8s_openapi::api::autoscaling::v2::{self, HorizontalPodAutoscaler};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as K8sQuantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use scaler_core::{MetricSpec, MetricTarget, MetricTargetType};
use serde::Serialize;

use crate::crd::{MetricType, ScaleTriggers, ScaledObject};

/// Name of the single External metric of a ScaledObject using `scalingModifiers`.
pub const COMPOSITE_METRIC_NAME: &str = "composite-metric";

/// One metric of the planned HPA.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedMetric {
    /// Metric name: `s<i>-...` for External metrics, `cpu`/`memory` for Resource metrics.
    pub name: String,
    /// `External` or `Resource` (`ContainerResource` when a container is named).
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// `AverageValue`, `Value` or `Utilization`.
    pub target_type: String,
    /// The target as a Kubernetes quantity (or a percentage for `Utilization`).
    pub target: String,
    /// The container of a `ContainerResource` metric.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
}

impl PlannedMetric {
    /// An External metric from a scaler's spec.
    pub fn external(spec: &MetricSpec) -> Self {
        Self {
            name: spec.name.clone(),
            kind: "External",
            target_type: spec.target.target_type.to_string(),
            target: spec.target.value.to_string(),
            container: None,
        }
    }
}

/// The HPA kedge would create.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HpaPlan {
    /// `keda-hpa-<name>` unless `advanced.horizontalPodAutoscalerConfig.name` is set.
    pub name: String,
    /// `max(minReplicaCount, 1)`: kedge itself scales between 0 and 1.
    pub min_replicas: i32,
    /// `maxReplicaCount` (default 100).
    pub max_replicas: i32,
    /// The metrics, sorted by type as KEDA sorts them.
    pub metrics: Vec<PlannedMetric>,
}

/// The Resource metric of a `cpu` or `memory` trigger.
///
/// The target type comes from `triggers[].metricType` (or the deprecated `metadata.type`) and
/// must be `Utilization` (a whole percentage in `value`) or `AverageValue` (a quantity).
pub fn resource_metric(trigger: &ScaleTriggers) -> Result<PlannedMetric, String> {
    let resource = trigger.type_.as_str();
    let target_type = match (trigger.metric_type, trigger.metadata.get("type")) {
        (Some(MetricType::Utilization), _) => "Utilization",
        (Some(MetricType::AverageValue), _) => "AverageValue",
        (Some(MetricType::Value), _) => {
            return Err(format!(
                "{resource}: metricType Value is not supported for {resource}, use Utilization or AverageValue"
            ));
        }
        (None, Some(t)) if t == "Utilization" || t == "AverageValue" => t.as_str(),
        (None, _) => {
            return Err(format!(
                "{resource}: no metricType given: set triggers[].metricType to Utilization or AverageValue"
            ));
        }
    };
    let value = trigger
        .metadata
        .get("value")
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| format!("{resource}: missing required parameter \"value\""))?;
    if target_type == "Utilization" && value.parse::<i32>().is_err() {
        return Err(format!(
            "{resource}: value {value:?} must be a whole percentage for metricType Utilization"
        ));
    }
    let container = trigger
        .metadata
        .get("containerName")
        .filter(|c| !c.is_empty())
        .cloned();
    Ok(PlannedMetric {
        name: resource.to_owned(),
        kind: if container.is_some() {
            "ContainerResource"
        } else {
            "Resource"
        },
        target_type: target_type.to_owned(),
        target: value.to_owned(),
        container,
    })
}

/// Plans the HPA of `so` from the scalers' External metric specs (all triggers, in order) and
/// the Resource metrics of its cpu/memory triggers.
pub fn plan(
    so: &ScaledObject,
    external: &[MetricSpec],
    resource: Vec<PlannedMetric>,
) -> Result<HpaPlan, String> {
    let name = so.metadata.name.as_deref().unwrap_or_default();
    let spec = &so.spec;
    let mut metrics = resource;
    let composite = spec
        .scaling_modifiers()
        .filter(|_| spec.scaling_formula().is_some())
        .and_then(|m| {
            let target = m.target.as_deref()?.trim().parse::<f64>().ok()?;
            Some((m.metric_type(), target))
        });
    match composite {
        Some((metric_type, target)) => {
            let target_type = match MetricType::from(metric_type) {
                MetricType::Value => MetricTargetType::Value,
                _ => MetricTargetType::AverageValue,
            };
            metrics.push(PlannedMetric::external(&MetricSpec {
                name: COMPOSITE_METRIC_NAME.to_owned(),
                target: MetricTarget::new(target_type, target),
            }));
        }
        None => {
            let mut seen = std::collections::BTreeSet::new();
            for m in external {
                if !seen.insert(m.name.as_str()) {
                    return Err(format!(
                        "metricName {} defined multiple times in ScaledObject {name}, please refer the documentation how to define metricName manually",
                        m.name
                    ));
                }
                metrics.push(PlannedMetric::external(m));
            }
        }
    }
    if metrics.is_empty() {
        return Err("no metric specs returned from scalers".to_owned());
    }
    // KEDA sorts by type so that the spec is stable between reconciles.
    metrics.sort_by(|a, b| a.kind.cmp(b.kind));
    Ok(HpaPlan {
        name: spec.hpa_name(name),
        min_replicas: spec.min_replica_count().max(1),
        max_replicas: spec.max_replica_count(),
        metrics,
    })
}

/// Label every ScaledObject carries and every External metric selects on.
pub const SCALED_OBJECT_NAME_LABEL: &str = "scaledobject.keda.sh/name";
/// Annotation listing ScaledObject labels not copied to the HPA.
pub const HPA_EXCLUDED_LABELS_ANNOTATION: &str = "scaledobject.keda.sh/hpa-excluded-labels";

/// Where the HPA points: the scale target as resolved at reconcile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetRef {
    /// `group/version` (or `v1`).
    pub api_version: String,
    /// Kind.
    pub kind: String,
    /// Name.
    pub name: String,
}

/// KEDA's label value for the HPA name: at most 63 characters, trailing non-alphanumerics trimmed.
fn label_value(s: &str) -> String {
    let cut: String = s.chars().take(63).collect();
    cut.trim_end_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_owned()
}

fn external_metric(m: &PlannedMetric, so_name: &str) -> v2::MetricSpec {
    let q = Some(K8sQuantity(m.target.clone()));
    let target = match m.target_type.as_str() {
        "Value" => v2::MetricTarget {
            type_: "Value".into(),
            value: q,
            ..Default::default()
        },
        _ => v2::MetricTarget {
            type_: "AverageValue".into(),
            average_value: q,
            ..Default::default()
        },
    };
    v2::MetricSpec {
        type_: "External".into(),
        external: Some(v2::ExternalMetricSource {
            metric: v2::MetricIdentifier {
                name: m.name.clone(),
                selector: Some(LabelSelector {
                    match_labels: Some(BTreeMap::from([(
                        SCALED_OBJECT_NAME_LABEL.to_owned(),
                        so_name.to_owned(),
                    )])),
                    ..Default::default()
                }),
            },
            target,
        }),
        ..Default::default()
    }
}

fn resource_target(m: &PlannedMetric) -> v2::MetricTarget {
    if m.target_type == "Utilization" {
        v2::MetricTarget {
            type_: "Utilization".into(),
            average_utilization: m.target.parse().ok(),
            ..Default::default()
        }
    } else {
        v2::MetricTarget {
            type_: "AverageValue".into(),
            average_value: Some(K8sQuantity(m.target.clone())),
            ..Default::default()
        }
    }
}

fn metric_spec(m: &PlannedMetric, so_name: &str) -> v2::MetricSpec {
    match m.kind {
        "Resource" => v2::MetricSpec {
            type_: "Resource".into(),
            resource: Some(v2::ResourceMetricSource {
                name: m.name.clone(),
                target: resource_target(m),
            }),
            ..Default::default()
        },
        "ContainerResource" => v2::MetricSpec {
            type_: "ContainerResource".into(),
            container_resource: Some(v2::ContainerResourceMetricSource {
                name: m.name.clone(),
                container: m.container.clone().unwrap_or_default(),
                target: resource_target(m),
            }),
            ..Default::default()
        },
        _ => external_metric(m, so_name),
    }
}

/// The HorizontalPodAutoscaler object for `plan`, shaped as KEDA shapes it: labels (the
/// ScaledObject's, minus `hpa-excluded-labels`, plus `app.kubernetes.io/*`), the ScaledObject's
/// annotations, External metrics selecting `scaledobject.keda.sh/name=<so>`, `behavior` passed
/// through with `paused-scale-in`/`-out` mapped to `selectPolicy: Disabled`, and the
/// ScaledObject as controlling owner.
pub fn to_hpa(
    plan: &HpaPlan,
    so: &ScaledObject,
    target: &TargetRef,
    paused_scale_in: bool,
    paused_scale_out: bool,
) -> HorizontalPodAutoscaler {
    let so_name = so.metadata.name.clone().unwrap_or_default();
    let annotations = so.metadata.annotations.clone().unwrap_or_default();
    let excluded: Vec<&str> = annotations
        .get(HPA_EXCLUDED_LABELS_ANNOTATION)
        .map(|v| v.split(',').map(str::trim).collect())
        .unwrap_or_default();
    let mut labels: BTreeMap<String, String> = so
        .metadata
        .labels
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| !excluded.contains(&k.as_str()))
        .collect();
    labels.insert("app.kubernetes.io/name".into(), label_value(&plan.name));
    labels.insert(
        "app.kubernetes.io/version".into(),
        env!("CARGO_PKG_VERSION").into(),
    );
    labels.insert("app.kubernetes.io/part-of".into(), so_name.clone());
    // KEDA's value, kept so existing dashboards and selectors keep matching.
    labels.insert(
        "app.kubernetes.io/managed-by".into(),
        "keda-operator".into(),
    );

    let mut behavior = so.spec.hpa_behavior().cloned();
    if paused_scale_in || paused_scale_out {
        let b = behavior.get_or_insert_with(Default::default);
        if paused_scale_in {
            b.scale_down
                .get_or_insert_with(Default::default)
                .select_policy = Some("Disabled".into());
        }
        if paused_scale_out {
            b.scale_up
                .get_or_insert_with(Default::default)
                .select_policy = Some("Disabled".into());
        }
    }

    HorizontalPodAutoscaler {
        metadata: ObjectMeta {
            name: Some(plan.name.clone()),
            namespace: so.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            owner_references: Some(vec![OwnerReference {
                api_version: crate::crd::API_VERSION.into(),
                kind: "ScaledObject".into(),
                name: so_name.clone(),
                uid: so.metadata.uid.clone().unwrap_or_default(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..Default::default()
        },
        spec: v2::HorizontalPodAutoscalerSpec {
            scale_target_ref: v2::CrossVersionObjectReference {
                api_version: Some(target.api_version.clone()),
                kind: target.kind.clone(),
                name: target.name.clone(),
            },
            min_replicas: Some(plan.min_replicas),
            max_replicas: plan.max_replicas,
            metrics: Some(
                plan.metrics
                    .iter()
                    .map(|m| metric_spec(m, &so_name))
                    .collect(),
            ),
            behavior,
        },
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn so(extra: &str, triggers: &str) -> ScaledObject {
        let yaml = format!(
            "apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {{name: web}}\nspec:\n  scaleTargetRef: {{name: web}}\n{extra}  triggers:\n{triggers}"
        );
        match serde_saphyr::from_str(&yaml) {
            Ok(so) => so,
            Err(e) => panic!("{e}"),
        }
    }

    fn ext(name: &str, t: MetricTargetType, v: f64) -> MetricSpec {
        MetricSpec {
            name: name.into(),
            target: MetricTarget::new(t, v),
        }
    }

    const CRON: &str = "    - {type: cron, metadata: {}}\n";

    #[test]
    fn defaults_follow_keda() {
        let plan = plan(
            &so("", CRON),
            &[ext("s0-x", MetricTargetType::AverageValue, 2.5)],
            vec![],
        );
        let plan = plan.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(plan.name, "keda-hpa-web");
        assert_eq!((plan.min_replicas, plan.max_replicas), (1, 100));
        assert_eq!(plan.metrics[0].target, "2500m");
    }

    #[test]
    fn custom_name_bounds_and_resource_metrics_sorted_by_type() {
        let s = so(
            "  minReplicaCount: 3\n  maxReplicaCount: 9\n  advanced: {horizontalPodAutoscalerConfig: {name: custom}}\n",
            "    - {type: cron, metadata: {}}\n    - {type: memory, metricType: AverageValue, metadata: {value: 512Mi, containerName: app}}\n",
        );
        let mem = resource_metric(&s.spec.triggers[1]).unwrap_or_else(|e| panic!("{e}"));
        let plan = plan(&s, &[ext("s0-x", MetricTargetType::Value, 1.0)], vec![mem])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(plan.name, "custom");
        assert_eq!((plan.min_replicas, plan.max_replicas), (3, 9));
        let kinds: Vec<&str> = plan.metrics.iter().map(|m| m.kind).collect();
        assert_eq!(kinds, ["ContainerResource", "External"]);
        assert_eq!(plan.metrics[0].container.as_deref(), Some("app"));
    }

    #[test]
    fn scaling_modifiers_give_one_composite_metric() {
        let s = so(
            "  advanced: {scalingModifiers: {formula: \"a + b\", target: \"2.5\", metricType: Value}}\n",
            "    - {type: cron, name: a, metadata: {}}\n    - {type: cron, name: b, metadata: {}}\n",
        );
        let specs = [
            ext("s0-a", MetricTargetType::AverageValue, 1.0),
            ext("s1-b", MetricTargetType::AverageValue, 1.0),
        ];
        let plan = plan(&s, &specs, vec![]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(plan.metrics.len(), 1);
        assert_eq!(plan.metrics[0].name, "composite-metric");
        assert_eq!(plan.metrics[0].target_type, "Value");
        assert_eq!(plan.metrics[0].target, "2500m");
    }

    #[test]
    fn duplicate_metric_names_are_an_error() {
        let specs = [
            ext("s0-x", MetricTargetType::AverageValue, 1.0),
            ext("s0-x", MetricTargetType::AverageValue, 1.0),
        ];
        let err = plan(&so("", CRON), &specs, vec![])
            .err()
            .unwrap_or_default();
        assert!(
            err.starts_with("metricName s0-x defined multiple times"),
            "{err}"
        );
    }

    #[test]
    fn hpa_object_is_shaped_as_keda_shapes_it() {
        let mut s = so(
            "  maxReplicaCount: 7\n  advanced: {horizontalPodAutoscalerConfig: {behavior: {scaleDown: {stabilizationWindowSeconds: 60}}}}\n",
            CRON,
        );
        s.metadata.namespace = Some("shop".into());
        s.metadata.uid = Some("uid-1".into());
        s.metadata.labels = Some(BTreeMap::from([
            ("team".to_owned(), "a".to_owned()),
            ("secret-label".to_owned(), "x".to_owned()),
        ]));
        s.metadata.annotations = Some(BTreeMap::from([(
            HPA_EXCLUDED_LABELS_ANNOTATION.to_owned(),
            "secret-label".to_owned(),
        )]));
        let p = plan(&s, &[ext("s0-x", MetricTargetType::Value, 3.0)], vec![])
            .unwrap_or_else(|e| panic!("{e}"));
        let target = TargetRef {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            name: "web".into(),
        };
        let hpa = to_hpa(&p, &s, &target, true, false);
        let v = serde_json::to_value(&hpa).unwrap_or_default();
        assert_eq!(v["metadata"]["name"], "keda-hpa-web");
        assert_eq!(v["metadata"]["labels"]["team"], "a");
        assert_eq!(v["metadata"]["labels"].get("secret-label"), None);
        assert_eq!(v["metadata"]["labels"]["app.kubernetes.io/part-of"], "web");
        assert_eq!(v["metadata"]["ownerReferences"][0]["kind"], "ScaledObject");
        assert_eq!(v["metadata"]["ownerReferences"][0]["controller"], true);
        assert_eq!(v["spec"]["minReplicas"], 1);
        assert_eq!(v["spec"]["maxReplicas"], 7);
        let m = &v["spec"]["metrics"][0];
        assert_eq!(m["type"], "External");
        assert_eq!(m["external"]["metric"]["name"], "s0-x");
        assert_eq!(
            m["external"]["metric"]["selector"]["matchLabels"]["scaledobject.keda.sh/name"],
            "web"
        );
        assert_eq!(
            m["external"]["target"],
            serde_json::json!({"type": "Value", "value": "3"})
        );
        assert_eq!(
            v["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"],
            60
        );
        assert_eq!(
            v["spec"]["behavior"]["scaleDown"]["selectPolicy"],
            "Disabled"
        );
        assert_eq!(v["spec"]["behavior"].get("scaleUp"), None);
    }

    #[test]
    fn resource_metric_rules() {
        let s = so(
            "",
            "    - {type: cpu, metadata: {type: Utilization, value: \"60\"}}\n    - {type: cpu, metricType: Utilization, metadata: {value: \"sixty\"}}\n    - {type: cpu, metadata: {value: \"60\"}}\n",
        );
        assert_eq!(
            resource_metric(&s.spec.triggers[0]).map(|m| m.target_type),
            Ok("Utilization".to_owned())
        );
        assert!(resource_metric(&s.spec.triggers[1]).is_err());
        assert!(resource_metric(&s.spec.triggers[2]).is_err());
    }
}
