//! KEDA's admission rules for ScaledObjects (its validating webhook), as pure functions.
//!
//! kedge has no webhook: the operator applies these rules at reconcile (a violation is a
//! `Ready=False` condition and an Event) and `kedge check` applies them offline. Messages follow
//! KEDA's where KEDA has one.

use std::collections::BTreeSet;

use crate::crd::{FallbackBehavior, ScaledObject};
use crate::policy::modifiers::Formula;

/// Longest name Kubernetes accepts for a label value, and so for a ScaledObject or HPA name.
const MAX_NAME_LEN: usize = 63;

/// The most triggers one ScaledObject may have. Each is a scaler polled at every interval and
/// a metric of the HPA, and a tenant's count must not set kedge's load; KEDA's examples have a
/// handful.
pub const MAX_TRIGGERS: usize = 100;

/// The longest trigger metadata value, in bytes. Values go into requests, metric names and
/// messages; queries and addresses are far shorter, and certificates come from
/// TriggerAuthentications.
pub const MAX_METADATA_VALUE_BYTES: usize = 64 * 1024;

/// The longest trigger metadata key and trigger name, in bytes (both are echoed in messages).
pub const MAX_METADATA_KEY_BYTES: usize = 256;

/// What the rules found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Findings {
    /// Violations: the ScaledObject must not be acted on.
    pub errors: Vec<String>,
    /// KEDA's admission warnings: settings that have no effect.
    pub warnings: Vec<String>,
}

/// The minimum replica count the bounds check uses: 0 when `minReplicaCount` is unset, else the
/// HPA's minimum (which is never below 1).
fn effective_min(so: &ScaledObject) -> i32 {
    match so.spec.min_replica_count {
        None => 0,
        Some(min) => min.max(1),
    }
}

/// The rules that look at one ScaledObject alone.
pub fn validate(so: &ScaledObject) -> Findings {
    validate_and_compile(so).0
}

/// [`validate`], and the `scalingModifiers` formula it compiled (when there is a valid one), so
/// the reconciler does not compile it twice.
pub fn validate_and_compile(so: &ScaledObject) -> (Findings, Option<Formula>) {
    let mut f = Findings::default();
    let mut compiled = None;
    let spec = &so.spec;
    let name = so.metadata.name.as_deref().unwrap_or_default();

    // Replica bounds (CheckReplicaCountBoundsAreValid).
    let min = effective_min(so);
    let max = spec.max_replica_count();
    if min > max {
        f.errors.push(format!(
            "MinReplicaCount={min} must be less than MaxReplicaCount={max}"
        ));
    }
    if let Some(idle) = spec.idle_replica_count.filter(|idle| *idle >= min) {
        f.errors.push(format!(
            "IdleReplicaCount={idle} must be less than MinReplicaCount={min}"
        ));
    }

    // Names: both end up as label values.
    if name.len() > MAX_NAME_LEN {
        f.errors.push(format!(
            "ScaledObject name {name:?} is longer than {MAX_NAME_LEN} characters"
        ));
    }
    let hpa_name = spec.hpa_name(name);
    if hpa_name.len() > MAX_NAME_LEN {
        f.errors.push(format!(
            "HPA name {hpa_name:?} is longer than {MAX_NAME_LEN} characters"
        ));
    }
    if spec.scale_target_ref.name.is_empty() {
        f.errors.push("scaleTargetRef.name is required".to_owned());
    }

    // Triggers (ValidateTriggers).
    if spec.triggers.is_empty() {
        f.errors
            .push("no triggers defined in the ScaledObject/ScaledJob".to_owned());
    }
    if spec.triggers.len() > MAX_TRIGGERS {
        f.errors.push(format!(
            "triggers: {} are defined; at most {MAX_TRIGGERS} are allowed",
            spec.triggers.len()
        ));
    }
    // Sizes are checked before anything reads the values; nothing here echoes them.
    for (i, trigger) in spec.triggers.iter().enumerate().take(MAX_TRIGGERS) {
        if trigger
            .name
            .as_ref()
            .is_some_and(|n| n.len() > MAX_METADATA_KEY_BYTES)
        {
            f.errors.push(format!(
                "triggers[{i}].name: longer than {MAX_METADATA_KEY_BYTES} bytes"
            ));
        }
        for (key, value) in &trigger.metadata {
            if key.len() > MAX_METADATA_KEY_BYTES {
                f.errors.push(format!(
                    "triggers[{i}].metadata: a key is {} bytes long; at most {MAX_METADATA_KEY_BYTES} are allowed",
                    key.len()
                ));
            } else if value.len() > MAX_METADATA_VALUE_BYTES {
                f.errors.push(format!(
                    "triggers[{i}].metadata.{key}: {} bytes long; at most {MAX_METADATA_VALUE_BYTES} are allowed",
                    value.len()
                ));
            }
        }
    }
    let mut names = BTreeSet::new();
    for trigger in &spec.triggers {
        if trigger.use_cached_metrics() && (trigger.is_resource() || trigger.type_ == "cron") {
            f.errors.push(format!(
                "property \"useCachedMetrics\" is not supported for {:?} scaler",
                trigger.type_
            ));
        }
        let name = trigger.name.as_deref().filter(|n| !n.is_empty());
        if let Some(n) = name.filter(|n| !names.insert(*n)) {
            f.errors.push(format!(
                "triggerName {n:?} is defined multiple times in the ScaledObject, but it must be unique"
            ));
        }
    }
    if spec.only_resource_triggers() && spec.min_replica_count.unwrap_or(0) < 1 {
        f.errors.push(format!(
            "ScaledObject {name} has only cpu/memory triggers AND minReplicaCount is 0 (scale to zero doesn't work in this case)"
        ));
    }

    // scalingModifiers.
    let modifiers = spec.scaling_modifiers();
    if let Some(m) = modifiers {
        if spec.scaling_formula().is_none() {
            f.errors
                .push("error validating formula in ScalingModifiers: formula is empty".to_owned());
        }
        match m.target.as_deref().map(str::trim) {
            None | Some("") => f
                .errors
                .push("error validating target in ScalingModifiers: target is empty".to_owned()),
            Some(t) => match t.parse::<f64>() {
                Ok(v) if v > 0.0 => {}
                _ => f.errors.push(format!(
                    "error validating target in ScalingModifiers: target {t:?} must be a number greater than 0"
                )),
            },
        }
        for trigger in spec.triggers.iter().filter(|t| !t.is_resource()) {
            if trigger.name.as_deref().unwrap_or_default().is_empty() {
                f.errors.push(format!(
                    "error validating formula in ScalingModifiers: trigger of type {:?} has no name, and formulas refer to triggers by name",
                    trigger.type_
                ));
            }
        }
        // Compiled and run once with dummy values, as KEDA's webhook does, within the cost
        // bounds of `check_cost`: a formula that would fail at every poll is refused here.
        if let Some(formula) = spec.scaling_formula() {
            let names = crate::policy::modifiers::formula_trigger_names(&spec.triggers);
            match crate::policy::modifiers::compile(formula, &names) {
                Ok(formula) => compiled = Some(formula),
                Err(e) => f.errors.push(e),
            }
        }
    }

    // Fallback (CheckFallbackValid).
    if let Some(fallback) = &spec.fallback {
        if fallback.failure_threshold < 0 || fallback.replicas < 0 {
            f.errors.push(format!(
                "FailureThreshold={} or Replicas={} should not be negative",
                fallback.failure_threshold, fallback.replicas
            ));
        }
        if fallback.behavior() == FallbackBehavior::ScalingModifiers && modifiers.is_none() {
            f.errors.push(
                "fallback behavior scalingModifiers requires advanced.scalingModifiers.formula"
                    .to_owned(),
            );
        }
        if modifiers.is_none() && spec.only_resource_triggers() {
            f.errors.push(
                "type is cpu/memory, which is not supported by fallback: at least one trigger of another type is needed"
                    .to_owned(),
            );
        }
    }

    // Admission warnings: settings that do nothing.
    let scales_to_zero =
        spec.min_replica_count.unwrap_or(0) == 0 || spec.idle_replica_count.is_some();
    if !scales_to_zero {
        let cached = spec.triggers.iter().any(|t| t.use_cached_metrics());
        if spec.polling_interval.is_some() && !cached {
            f.warnings.push(
                "pollingInterval has no effect on scaling while minReplicaCount > 0 and no trigger uses useCachedMetrics: the HPA queries metrics itself"
                    .to_owned(),
            );
        }
        if spec.cooldown_period.is_some() {
            f.warnings.push(
                "cooldownPeriod has no effect while minReplicaCount > 0: it only delays scaling to zero or idleReplicaCount"
                    .to_owned(),
            );
        }
    }
    (f, compiled)
}

/// The rules that compare a ScaledObject with the others in its namespace: one ScaledObject
/// per workload, one per HPA name.
pub fn validate_against(so: &ScaledObject, others: &[&ScaledObject]) -> Vec<String> {
    let name = so.metadata.name.as_deref().unwrap_or_default();
    let namespace = so.metadata.namespace.as_deref();
    let target = &so.spec.scale_target_ref;
    let hpa_name = so.spec.hpa_name(name);
    let mut errors = Vec::new();
    for other in others {
        let other_name = other.metadata.name.as_deref().unwrap_or_default();
        if other_name == name || other.metadata.namespace.as_deref() != namespace {
            continue;
        }
        let other_target = &other.spec.scale_target_ref;
        if other_target.name == target.name
            && other_target.kind() == target.kind()
            && group_of(other_target.api_version()) == group_of(target.api_version())
        {
            errors.push(format!(
                "workload '{}' of type '{}' is already managed by ScaledObject '{other_name}'",
                target.name,
                gvk_string(target.api_version(), target.kind())
            ));
        }
        if other.spec.hpa_name(other_name) == hpa_name {
            errors.push(format!(
                "HPA '{hpa_name}' is already managed by ScaledObject '{other_name}'"
            ));
        }
    }
    errors
}

fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("")
}

/// KEDA's `GVKString`: `apps/v1.Deployment`.
pub fn gvk_string(api_version: &str, kind: &str) -> String {
    format!("{api_version}.{kind}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn so(yaml: &str) -> ScaledObject {
        match serde_saphyr::from_str(yaml) {
            Ok(so) => so,
            Err(e) => panic!("test fixture: {e}"),
        }
    }

    const BASE: &str = r#"
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: web, namespace: default}
spec:
  scaleTargetRef: {name: web}
  triggers:
    - type: cron
      metadata: {timezone: Etc/UTC, start: "0 8 * * *", end: "0 9 * * *", desiredReplicas: "3"}
"#;

    fn with(spec_extra: &str) -> ScaledObject {
        so(&format!("{BASE}{spec_extra}").replace("\n  extra:\n", "\n"))
    }

    #[test]
    fn valid_object_has_no_findings() {
        assert_eq!(validate(&so(BASE)), Findings::default());
    }

    #[test]
    fn tenant_sized_inputs_are_bounded_and_not_echoed() {
        let mut many = so(BASE);
        let cron = many.spec.triggers[0].clone();
        many.spec.triggers = vec![cron.clone(); MAX_TRIGGERS];
        assert_eq!(validate(&many).errors, Vec::<String>::new());
        many.spec.triggers.push(cron);
        assert_eq!(
            validate(&many).errors,
            ["triggers: 101 are defined; at most 100 are allowed"]
        );

        let mut big = so(BASE);
        let metadata = &mut big.spec.triggers[0].metadata;
        metadata.insert("padding".into(), "x".repeat(MAX_METADATA_VALUE_BYTES));
        assert_eq!(validate(&big).errors, Vec::<String>::new());
        let metadata = &mut big.spec.triggers[0].metadata;
        metadata.insert("padding".into(), "x".repeat(1 << 20));
        metadata.insert("k".repeat(1 << 20), "v".into());
        big.spec.triggers[0].name = Some("n".repeat(MAX_METADATA_KEY_BYTES + 1));
        assert_eq!(
            validate(&big).errors,
            [
                "triggers[0].name: longer than 256 bytes",
                "triggers[0].metadata: a key is 1048576 bytes long; at most 256 are allowed",
                "triggers[0].metadata.padding: 1048576 bytes long; at most 65536 are allowed",
            ]
        );
    }

    #[test]
    fn replica_bounds() {
        let f = validate(&with("  minReplicaCount: 5\n  maxReplicaCount: 2\n"));
        assert_eq!(
            f.errors,
            ["MinReplicaCount=5 must be less than MaxReplicaCount=2"]
        );
        // idle needs minReplicaCount set: with it unset the effective minimum is 0.
        let f = validate(&with("  idleReplicaCount: 0\n"));
        assert_eq!(
            f.errors,
            ["IdleReplicaCount=0 must be less than MinReplicaCount=0"]
        );
        assert!(
            validate(&with("  idleReplicaCount: 0\n  minReplicaCount: 0\n"))
                .errors
                .is_empty()
        );
        assert!(
            validate(&with("  idleReplicaCount: 0\n  minReplicaCount: 2\n"))
                .errors
                .is_empty()
        );
    }

    #[test]
    fn trigger_rules() {
        let s = so(&BASE.replace(
            "    - type: cron",
            "    - type: cron\n      name: a\n      useCachedMetrics: true\n      metadata: {}\n    - type: cron\n      name: a",
        ));
        let f = validate(&s);
        assert!(
            f.errors.contains(
                &"property \"useCachedMetrics\" is not supported for \"cron\" scaler".to_owned()
            ),
            "{f:?}"
        );
        assert!(
            f.errors
                .iter()
                .any(|e| e.starts_with("triggerName \"a\" is defined multiple times")),
            "{f:?}"
        );
    }

    #[test]
    fn cpu_only_needs_min_one() {
        let s = so(&BASE.replace(
            "    - type: cron\n      metadata: {timezone: Etc/UTC, start: \"0 8 * * *\", end: \"0 9 * * *\", desiredReplicas: \"3\"}",
            "    - type: cpu\n      metricType: Utilization\n      metadata: {value: \"50\"}",
        ));
        assert_eq!(validate(&s).errors.len(), 1);
        let mut ok = s.clone();
        ok.spec.min_replica_count = Some(1);
        assert!(validate(&ok).errors.is_empty());
    }

    #[test]
    fn modifiers_and_fallback() {
        let f = validate(&with(
            "  advanced:\n    scalingModifiers:\n      target: \"0\"\n  fallback:\n    failureThreshold: -1\n    replicas: 2\n",
        ));
        assert!(
            f.errors.iter().any(|e| e.contains("formula is empty")),
            "{f:?}"
        );
        assert!(
            f.errors
                .iter()
                .any(|e| e.contains("must be a number greater than 0")),
            "{f:?}"
        );
        assert!(f.errors.iter().any(|e| e.contains("has no name")), "{f:?}");
        assert!(
            f.errors.iter().any(|e| e.contains("FailureThreshold=-1")),
            "{f:?}"
        );
    }

    #[test]
    fn formulas_are_compiled_at_admission_within_their_cost_bounds() {
        let named = BASE.replace(
            "    - type: cron\n",
            "    - type: cron\n      name: office\n",
        );
        let with_formula = |formula: &str| {
            so(&format!(
                "{named}  advanced:\n    scalingModifiers:\n      target: \"2\"\n      formula: '{formula}'\n"
            ))
        };
        assert!(validate(&with_formula("office * 2")).errors.is_empty());
        let bomb = validate(&with_formula("count(1..2000000000, {# > 0})"));
        assert!(
            bomb.errors
                .iter()
                .any(|e| e.contains("advanced.scalingModifiers.formula: ranges")),
            "{bomb:?}"
        );
        let unknown = validate(&with_formula("nobody + 1"));
        assert!(
            unknown.errors.iter().any(|e| e.contains("formula")),
            "{unknown:?}"
        );
    }

    #[test]
    fn warnings_for_settings_without_effect() {
        let f = validate(&with(
            "  minReplicaCount: 1\n  pollingInterval: 5\n  cooldownPeriod: 10\n",
        ));
        assert!(f.errors.is_empty());
        assert_eq!(f.warnings.len(), 2);
    }

    #[test]
    fn one_scaled_object_per_workload_and_hpa() {
        let a = so(BASE);
        let mut b = so(BASE);
        b.metadata.name = Some("web-2".into());
        let errors = validate_against(&b, &[&a, &b]);
        assert_eq!(
            errors,
            [
                "workload 'web' of type 'apps/v1.Deployment' is already managed by ScaledObject 'web'"
            ]
        );
        let mut c = b.clone();
        c.spec.scale_target_ref.name = "other".into();
        c.spec.advanced = a.spec.advanced.clone();
        let mut hpa = c.clone();
        hpa.spec.advanced = Some(crate::crd::AdvancedConfig {
            horizontal_pod_autoscaler_config: Some(crate::crd::HorizontalPodAutoscalerConfig {
                name: Some("keda-hpa-web".into()),
                behavior: None,
            }),
            ..Default::default()
        });
        assert_eq!(
            validate_against(&hpa, &[&a]),
            ["HPA 'keda-hpa-web' is already managed by ScaledObject 'web'"]
        );
        let mut elsewhere = b.clone();
        elsewhere.metadata.namespace = Some("other".into());
        assert!(validate_against(&elsewhere, &[&a]).is_empty());
    }
}
