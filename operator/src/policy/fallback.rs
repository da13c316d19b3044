//! `spec.fallback`: per-metric health tracking, when the fallback applies, and the replica count
//! and synthetic metric value it stands for.
//!
//! # KEDA's rules (`pkg/fallback/fallback.go`)
//!
//! - **Enablement** ([`FallbackSettings::from_spec`]): only when `spec.fallback` is set and valid:
//!   `failureThreshold >= 0`, `replicas >= 0`, and, with `scalingModifiers`, a `target` that parses
//!   as an *integer* greater than 0. Without a valid fallback, `status.health` is left alone.
//! - **Health** ([`record_metric`]): per metric name in `status.health`; a successful read sets
//!   `{numberOfFailures: 0, status: Happy}`, an error increments `numberOfFailures` and sets
//!   `status: Failing`.
//! - **When it applies** ([`is_fallback_active`]): once a metric's consecutive failures are
//!   **strictly greater** than `failureThreshold`. Until then the error propagates (the HPA sees an
//!   error and holds its replicas).
//! - **Replicas** ([`fallback_replicas`]): `static` → `fallback.replicas`; `currentReplicas` → the
//!   target's current replicas; `currentReplicasIfHigher` → `max(current, fallback.replicas)`;
//!   `currentReplicasIfLower` → `min(current, fallback.replicas)`. With `scalingModifiers` the
//!   failing trigger is `nil` in the formula instead, and `fallback.replicas` is used only when
//!   the formula yields nothing.
//! - **Metric value** ([`fallback_metric_value`]): for an `AverageValue` target, `target × replicas`
//!   (so the HPA computes exactly `replicas`); for a `Value` target, `target × replicas / readyPods`
//!   (ready and Running pods of the target), which fails when no pod is ready.
//! - **Condition** ([`fallback_condition`]): `Fallback=True/FallbackExists` while some health entry
//!   is `Failing` with failures above the threshold, else `Fallback=False/NoFallbackFound`.
//! - **Events** ([`transition_event`]): `ScaledObjectFallbackActivated` /
//!   `ScaledObjectFallbackDeactivated` when the condition flips.
//!
//! What the fallback means for scaling to and from zero is decided in [`super::decision`], which
//! documents where kedge departs from KEDA there.

use std::collections::BTreeMap;

use super::conditions::{
    ConditionChange, ConditionStatus, MESSAGE_FALLBACK_EXISTS, MESSAGE_NO_FALLBACK_FOUND,
    REASON_FALLBACK_EXISTS, REASON_NO_FALLBACK_FOUND,
};
use super::event::{
    EVENT_FALLBACK_ACTIVATED, EVENT_FALLBACK_DEACTIVATED, Event, MESSAGE_FALLBACK_ACTIVATED,
    MESSAGE_FALLBACK_DEACTIVATED,
};
use crate::crd::{FallbackBehavior, HealthStatus, MetricType, ScaledObjectSpec};

/// `status.health[].status` of a metric whose last read succeeded.
pub const HEALTH_STATUS_HAPPY: &str = "Happy";
/// `status.health[].status` of a metric whose last read failed.
pub const HEALTH_STATUS_FAILING: &str = "Failing";

/// A valid `spec.fallback`, as the scale loop uses it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FallbackSettings {
    /// Consecutive failures a metric may have before the fallback applies (strictly more).
    pub failure_threshold: i32,
    /// `fallback.replicas`.
    pub replicas: i32,
    /// `fallback.behavior` (default `static`).
    pub behavior: FallbackBehavior,
}

impl FallbackSettings {
    /// The fallback of `spec` if it is set and valid (KEDA's `HasValidFallback`), else `None`.
    ///
    /// Valid means `failureThreshold >= 0`, `replicas >= 0` and, when `scalingModifiers` are used,
    /// a `target` that parses as an integer greater than 0 (KEDA uses `ParseInt` here, so `"1.5"`
    /// disables the fallback even though it is a valid target for the HPA).
    pub fn from_spec(spec: &ScaledObjectSpec) -> Option<Self> {
        let fallback = spec.fallback.as_ref()?;
        let modifiers_ok = match spec.scaling_modifiers() {
            None => true,
            Some(m) => m
                .target
                .as_deref()
                .and_then(|t| t.parse::<i64>().ok())
                .is_some_and(|t| t > 0),
        };
        (fallback.failure_threshold >= 0 && fallback.replicas >= 0 && modifiers_ok).then(|| Self {
            failure_threshold: fallback.failure_threshold,
            replicas: fallback.replicas,
            behavior: fallback.behavior(),
        })
    }

    /// Whether a metric with `failures` consecutive failures is replaced by the fallback.
    pub fn is_active_for(&self, failures: i32) -> bool {
        is_fallback_active(self.failure_threshold, failures)
    }

    /// The replica count this fallback stands for when the target has `current_replicas`.
    pub fn replicas_for(&self, current_replicas: i32) -> i32 {
        fallback_replicas(self.behavior, self.replicas, current_replicas)
    }
}

/// Record one read of `metric_name` in `status.health`: success resets it to
/// `{0, Happy}`, failure increments `numberOfFailures` and marks it `Failing`.
///
/// Returns the consecutive failures after this read. Call it only when
/// [`FallbackSettings::from_spec`] is `Some`: KEDA leaves `status.health` untouched otherwise.
pub fn record_metric(
    health: &mut BTreeMap<String, HealthStatus>,
    metric_name: &str,
    succeeded: bool,
) -> i32 {
    let entry = health.entry(metric_name.to_owned()).or_default();
    let failures = if succeeded {
        entry.status = Some(HEALTH_STATUS_HAPPY.to_owned());
        0
    } else {
        entry.status = Some(HEALTH_STATUS_FAILING.to_owned());
        // Saturate: a counter that overflowed would read as "healthy" again.
        entry.number_of_failures.unwrap_or(0).saturating_add(1)
    };
    entry.number_of_failures = Some(failures);
    failures
}

/// Consecutive failures recorded for `metric_name` (0 when there is no entry).
pub fn failures(health: &BTreeMap<String, HealthStatus>, metric_name: &str) -> i32 {
    health
        .get(metric_name)
        .and_then(|h| h.number_of_failures)
        .unwrap_or(0)
}

/// Whether a metric with `failures` consecutive failures falls back: strictly more failures than
/// `failure_threshold` (so a threshold of 3 falls back on the 4th failure in a row).
pub fn is_fallback_active(failure_threshold: i32, failures: i32) -> bool {
    failures > failure_threshold
}

/// Whether any metric in `health` is `Failing` beyond `failure_threshold` (KEDA's
/// `fallbackExceededThreshold`, which drives the Fallback condition).
pub fn any_fallback_active(
    health: &BTreeMap<String, HealthStatus>,
    failure_threshold: i32,
) -> bool {
    health.values().any(|h| {
        h.status.as_deref() == Some(HEALTH_STATUS_FAILING)
            && is_fallback_active(failure_threshold, h.number_of_failures.unwrap_or(0))
    })
}

/// The replica count the fallback stands for, by `behavior`.
///
/// For [`FallbackBehavior::ScalingModifiers`] this is `fallback_replicas`: the formula handles the
/// failing triggers itself, and this count applies only when the formula yields nothing.
pub fn fallback_replicas(
    behavior: FallbackBehavior,
    fallback_replicas: i32,
    current_replicas: i32,
) -> i32 {
    match behavior {
        FallbackBehavior::Static | FallbackBehavior::ScalingModifiers => fallback_replicas,
        FallbackBehavior::CurrentReplicas => current_replicas,
        FallbackBehavior::CurrentReplicasIfHigher => current_replicas.max(fallback_replicas),
        FallbackBehavior::CurrentReplicasIfLower => current_replicas.min(fallback_replicas),
    }
}

/// Why no fallback metric value can be produced.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FallbackValueError {
    /// A `Value` target divides by the ready pods, and none is ready.
    #[error("readyReplicas is zero, cannot do fallback")]
    NoReadyPods,
    /// Fallback does not apply to `Utilization` targets (cpu/memory triggers).
    #[error("fallback is not supported for metric type {0:?}")]
    UnsupportedMetricType(MetricType),
}

/// The synthetic value that replaces a failing metric so the HPA lands on `replicas`.
///
/// `AverageValue`: `target × replicas`; `Value`: `target × replicas / ready_pods` (an error when
/// `ready_pods` is 0). The caller converts it to a milli-quantity (`MetricValue::new` truncates as
/// KEDA's `NewMilliQuantity(int64(target * 1000 * replicas))` does). With `scalingModifiers`,
/// `target_type` and `target_value` are the modifiers' `metricType` and `target`.
pub fn fallback_metric_value(
    target_type: MetricType,
    target_value: f64,
    replicas: i32,
    ready_pods: i32,
) -> Result<f64, FallbackValueError> {
    let replicas = f64::from(replicas);
    match target_type {
        MetricType::AverageValue => Ok(target_value * replicas),
        MetricType::Value if ready_pods <= 0 => Err(FallbackValueError::NoReadyPods),
        // KEDA divides the replicas first, then multiplies by the target.
        MetricType::Value => Ok(target_value * (replicas / f64::from(ready_pods))),
        MetricType::Utilization => Err(FallbackValueError::UnsupportedMetricType(target_type)),
    }
}

/// The Fallback condition for the current `health`.
///
/// With a valid fallback: `True/FallbackExists` when [`any_fallback_active`], else
/// `False/NoFallbackFound`. Without one (`settings` is `None`): `False/NoFallbackFound`.
pub fn fallback_condition(
    settings: Option<&FallbackSettings>,
    health: &BTreeMap<String, HealthStatus>,
) -> ConditionChange {
    match settings {
        Some(s) if any_fallback_active(health, s.failure_threshold) => ConditionChange::set(
            ConditionStatus::True,
            REASON_FALLBACK_EXISTS,
            MESSAGE_FALLBACK_EXISTS,
        ),
        _ => ConditionChange::set(
            ConditionStatus::False,
            REASON_NO_FALLBACK_FOUND,
            MESSAGE_NO_FALLBACK_FOUND,
        ),
    }
}

/// The Event for a change of the Fallback condition: `was_active` is whether `Fallback=True`
/// before this poll, `is_active` whether it is now. `None` when nothing changed.
pub fn transition_event(was_active: bool, is_active: bool) -> Option<Event> {
    match (was_active, is_active) {
        (false, true) => Some(Event::normal(
            EVENT_FALLBACK_ACTIVATED,
            MESSAGE_FALLBACK_ACTIVATED,
        )),
        (true, false) => Some(Event::normal(
            EVENT_FALLBACK_DEACTIVATED,
            MESSAGE_FALLBACK_DEACTIVATED,
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::crd::{AdvancedConfig, Fallback, ScaleTarget, ScaleTriggers, ScalingModifiers};
    use crate::policy::event::EventType;

    fn spec(fallback: Option<Fallback>, modifiers_target: Option<&str>) -> ScaledObjectSpec {
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
            advanced: modifiers_target.map(|t| AdvancedConfig {
                scaling_modifiers: Some(ScalingModifiers {
                    formula: Some("a".into()),
                    target: Some(t.into()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            triggers: vec![ScaleTriggers {
                type_: "kafka".into(),
                ..Default::default()
            }],
            fallback,
        }
    }

    fn fb(threshold: i32, replicas: i32, behavior: Option<FallbackBehavior>) -> Fallback {
        Fallback {
            failure_threshold: threshold,
            replicas,
            behavior,
        }
    }

    #[test]
    fn settings_from_valid_spec() {
        let s = FallbackSettings::from_spec(&spec(Some(fb(3, 6, None)), None)).unwrap();
        assert_eq!(
            s,
            FallbackSettings {
                failure_threshold: 3,
                replicas: 6,
                behavior: FallbackBehavior::Static
            }
        );
        let s = FallbackSettings::from_spec(&spec(
            Some(fb(0, 0, Some(FallbackBehavior::CurrentReplicasIfHigher))),
            None,
        ))
        .unwrap();
        assert_eq!(s.behavior, FallbackBehavior::CurrentReplicasIfHigher);
    }

    #[test]
    fn settings_absent_or_invalid() {
        assert_eq!(FallbackSettings::from_spec(&spec(None, None)), None);
        assert_eq!(
            FallbackSettings::from_spec(&spec(Some(fb(-1, 6, None)), None)),
            None
        );
        assert_eq!(
            FallbackSettings::from_spec(&spec(Some(fb(3, -1, None)), None)),
            None
        );
    }

    #[test]
    fn settings_with_modifiers_need_an_integer_target() {
        let f = || Some(fb(3, 6, None));
        assert!(FallbackSettings::from_spec(&spec(f(), Some("5"))).is_some());
        // KEDA's ParseInt: a float target disables the fallback.
        assert!(FallbackSettings::from_spec(&spec(f(), Some("1.5"))).is_none());
        assert!(FallbackSettings::from_spec(&spec(f(), Some("0"))).is_none());
        assert!(FallbackSettings::from_spec(&spec(f(), Some("x"))).is_none());
    }

    #[test]
    fn record_metric_counts_failures_and_resets_on_success() {
        let mut health = BTreeMap::new();
        assert_eq!(record_metric(&mut health, "s0-lag", false), 1);
        assert_eq!(record_metric(&mut health, "s0-lag", false), 2);
        assert_eq!(
            health["s0-lag"],
            HealthStatus {
                number_of_failures: Some(2),
                status: Some("Failing".into())
            }
        );
        assert_eq!(failures(&health, "s0-lag"), 2);
        assert_eq!(record_metric(&mut health, "s0-lag", true), 0);
        assert_eq!(
            health["s0-lag"],
            HealthStatus {
                number_of_failures: Some(0),
                status: Some("Happy".into())
            }
        );
        assert_eq!(failures(&health, "s1-missing"), 0);
    }

    #[test]
    fn record_metric_saturates() {
        let mut health = BTreeMap::from([(
            "m".to_owned(),
            HealthStatus {
                number_of_failures: Some(i32::MAX),
                status: Some(HEALTH_STATUS_FAILING.into()),
            },
        )]);
        assert_eq!(record_metric(&mut health, "m", false), i32::MAX);
    }

    #[test]
    fn fallback_is_active_strictly_above_threshold() {
        assert!(!is_fallback_active(3, 0));
        assert!(!is_fallback_active(3, 3));
        assert!(is_fallback_active(3, 4));
        assert!(is_fallback_active(0, 1));
        assert!(!is_fallback_active(0, 0));
        let s = FallbackSettings {
            failure_threshold: 2,
            replicas: 1,
            behavior: FallbackBehavior::Static,
        };
        assert!(!s.is_active_for(2));
        assert!(s.is_active_for(3));
    }

    #[test]
    fn any_fallback_active_needs_failing_status() {
        let entry = |n, s: &str| HealthStatus {
            number_of_failures: Some(n),
            status: Some(s.into()),
        };
        let mut health = BTreeMap::from([("a".to_owned(), entry(5, HEALTH_STATUS_HAPPY))]);
        assert!(!any_fallback_active(&health, 3));
        health.insert("b".into(), entry(3, HEALTH_STATUS_FAILING));
        assert!(!any_fallback_active(&health, 3));
        health.insert("c".into(), entry(4, HEALTH_STATUS_FAILING));
        assert!(any_fallback_active(&health, 3));
    }

    #[test]
    fn replicas_by_behavior() {
        use FallbackBehavior::*;
        assert_eq!(fallback_replicas(Static, 6, 2), 6);
        assert_eq!(fallback_replicas(CurrentReplicas, 6, 2), 2);
        assert_eq!(fallback_replicas(CurrentReplicasIfHigher, 6, 2), 6);
        assert_eq!(fallback_replicas(CurrentReplicasIfHigher, 3, 6), 6);
        assert_eq!(fallback_replicas(CurrentReplicasIfLower, 6, 3), 3);
        assert_eq!(fallback_replicas(CurrentReplicasIfLower, 3, 6), 3);
        assert_eq!(fallback_replicas(ScalingModifiers, 4, 9), 4);
        // At zero replicas only static and IfHigher stand for a positive count.
        assert_eq!(fallback_replicas(CurrentReplicas, 6, 0), 0);
        assert_eq!(fallback_replicas(CurrentReplicasIfLower, 6, 0), 0);
        assert_eq!(fallback_replicas(CurrentReplicasIfHigher, 6, 0), 6);
        let s = FallbackSettings {
            failure_threshold: 1,
            replicas: 5,
            behavior: CurrentReplicasIfLower,
        };
        assert_eq!(s.replicas_for(2), 2);
    }

    #[test]
    fn metric_value_average_value() {
        // The HPA divides by the replicas it runs: target × replicas lands on `replicas`.
        assert_eq!(
            fallback_metric_value(MetricType::AverageValue, 5.0, 6, 0),
            Ok(30.0)
        );
        assert_eq!(
            fallback_metric_value(MetricType::AverageValue, 0.5, 3, 7),
            Ok(1.5)
        );
    }

    #[test]
    fn metric_value_value() {
        assert_eq!(
            fallback_metric_value(MetricType::Value, 10.0, 6, 3),
            Ok(20.0)
        );
        assert_eq!(fallback_metric_value(MetricType::Value, 3.0, 1, 2), Ok(1.5));
        assert_eq!(
            fallback_metric_value(MetricType::Value, 10.0, 6, 0),
            Err(FallbackValueError::NoReadyPods)
        );
        assert_eq!(
            FallbackValueError::NoReadyPods.to_string(),
            "readyReplicas is zero, cannot do fallback"
        );
    }

    #[test]
    fn metric_value_utilization_unsupported() {
        assert_eq!(
            fallback_metric_value(MetricType::Utilization, 50.0, 2, 2),
            Err(FallbackValueError::UnsupportedMetricType(
                MetricType::Utilization
            ))
        );
    }

    #[test]
    fn condition_follows_health() {
        let s = FallbackSettings {
            failure_threshold: 1,
            replicas: 2,
            behavior: FallbackBehavior::Static,
        };
        let mut health = BTreeMap::new();
        record_metric(&mut health, "m", false);
        assert_eq!(
            fallback_condition(Some(&s), &health),
            ConditionChange::set(
                ConditionStatus::False,
                "NoFallbackFound",
                "No fallbacks are active on this scaled object"
            )
        );
        record_metric(&mut health, "m", false);
        assert_eq!(
            fallback_condition(Some(&s), &health),
            ConditionChange::set(
                ConditionStatus::True,
                "FallbackExists",
                "At least one trigger is falling back on this scaled object"
            )
        );
        // No (valid) fallback: never FallbackExists.
        assert_eq!(
            fallback_condition(None, &health),
            ConditionChange::set(
                ConditionStatus::False,
                REASON_NO_FALLBACK_FOUND,
                MESSAGE_NO_FALLBACK_FOUND
            )
        );
    }

    #[test]
    fn events_on_transitions_only() {
        assert_eq!(transition_event(false, false), None);
        assert_eq!(transition_event(true, true), None);
        let on = transition_event(false, true).unwrap();
        assert_eq!(on.type_, EventType::Normal);
        assert_eq!(on.reason, "ScaledObjectFallbackActivated");
        assert_eq!(on.message, "ScaledObject fallback is active");
        let off = transition_event(true, false).unwrap();
        assert_eq!(off.reason, "ScaledObjectFallbackDeactivated");
        assert_eq!(off.message, "ScaledObject fallback is no longer active");
    }
}
