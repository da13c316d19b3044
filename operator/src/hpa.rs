//! The HPA kedge owns for a ScaledObject, planned exactly as KEDA shapes it: name, replica
//! bounds and metrics (External metrics from the scalers, Resource metrics for cpu/memory
//! triggers, or one `composite-metric` with scalingModifiers).

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
        .filter(|m| m.formula.as_deref().is_some_and(|f| !f.trim().is_empty()))
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
