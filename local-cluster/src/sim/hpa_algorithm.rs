//! The HorizontalPodAutoscaler replica calculation of kube-controller-manager
//! (pkg/controller/podautoscaler), as pure functions of the inputs, the recorded history and the
//! time: external-metric proposals with tolerance, the legacy normalisation for HPAs without
//! `behavior`, and the behavior-based one (stabilization windows, scaling policies, selectPolicy).

use std::time::{Duration, Instant};

use serde_json::Value;

/// `Pods` or `Percent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    /// Change by a number of pods per period.
    Pods,
    /// Change by a percentage of the replicas at the start of the period.
    Percent,
}

/// One scaling policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Kind.
    pub kind: PolicyKind,
    /// Amount.
    pub value: i32,
    /// Window the amount applies to.
    pub period: Duration,
}

/// `selectPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Select {
    /// The policy allowing the largest change (the default).
    Max,
    /// The policy allowing the smallest change.
    Min,
    /// No scaling in this direction.
    Disabled,
}

/// Rules for one direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    /// Stabilization window.
    pub stabilization: Duration,
    /// How to combine policies.
    pub select: Select,
    /// Policies.
    pub policies: Vec<Policy>,
}

/// `spec.behavior`, with API-server defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Behavior {
    /// Scaling up.
    pub scale_up: Rules,
    /// Scaling down.
    pub scale_down: Rules,
}

impl Behavior {
    /// Parse `spec.behavior`; missing parts get the upstream defaults (scale up: no
    /// stabilization, max of +4 pods and +100% per 15 s; scale down: `default_down_window`,
    /// -100% per 15 s).
    pub fn from_spec(behavior: &Value, default_down_window: Duration) -> Behavior {
        let up_default = Rules {
            stabilization: Duration::ZERO,
            select: Select::Max,
            policies: vec![
                Policy {
                    kind: PolicyKind::Pods,
                    value: 4,
                    period: Duration::from_secs(15),
                },
                Policy {
                    kind: PolicyKind::Percent,
                    value: 100,
                    period: Duration::from_secs(15),
                },
            ],
        };
        let down_default = Rules {
            stabilization: default_down_window,
            select: Select::Max,
            policies: vec![Policy {
                kind: PolicyKind::Percent,
                value: 100,
                period: Duration::from_secs(15),
            }],
        };
        Behavior {
            scale_up: parse_rules(behavior.get("scaleUp"), up_default),
            scale_down: parse_rules(behavior.get("scaleDown"), down_default),
        }
    }
}

fn parse_rules(v: Option<&Value>, mut rules: Rules) -> Rules {
    let Some(v) = v.filter(|v| v.is_object()) else {
        return rules;
    };
    if let Some(w) = v.get("stabilizationWindowSeconds").and_then(Value::as_u64) {
        rules.stabilization = Duration::from_secs(w);
    }
    match v.get("selectPolicy").and_then(Value::as_str) {
        Some("Min") => rules.select = Select::Min,
        Some("Disabled") => rules.select = Select::Disabled,
        Some("Max") => rules.select = Select::Max,
        _ => {}
    }
    if let Some(policies) = v.get("policies").and_then(Value::as_array) {
        rules.policies = policies
            .iter()
            .filter_map(|p| {
                let kind = match p.get("type")?.as_str()? {
                    "Pods" => PolicyKind::Pods,
                    "Percent" => PolicyKind::Percent,
                    _ => return None,
                };
                let value = i32::try_from(p.get("value")?.as_i64()?).ok()?;
                let period = Duration::from_secs(p.get("periodSeconds")?.as_u64()?);
                Some(Policy {
                    kind,
                    value,
                    period,
                })
            })
            .collect();
    }
    rules
}

/// Replicas proposed by an External metric with a `Value` target
/// (`GetExternalMetricReplicas`): the usage ratio applied to the current replicas, unless within
/// tolerance; from 0 replicas, ceil(ratio).
pub fn value_replicas(current: i32, usage_milli: i128, target_milli: i128, tolerance: f64) -> i32 {
    let ratio = usage_milli as f64 / target_milli as f64;
    if current == 0 {
        return ratio.ceil() as i32;
    }
    if (1.0 - ratio).abs() <= tolerance {
        return current;
    }
    (ratio * f64::from(current)).ceil() as i32
}

/// Replicas proposed by an External metric with an `AverageValue` target
/// (`GetExternalPerPodMetricReplicas`): ceil(usage / target), unless the per-replica usage is
/// within tolerance of the target.
pub fn average_value_replicas(
    status_replicas: i32,
    usage_milli: i128,
    target_milli: i128,
    tolerance: f64,
) -> i32 {
    let ratio = usage_milli as f64 / (target_milli as f64 * f64::from(status_replicas));
    if (1.0 - ratio).abs() > tolerance {
        (usage_milli as f64 / target_milli as f64).ceil() as i32
    } else {
        status_replicas
    }
}

#[derive(Debug, Clone, Copy)]
struct Recommendation {
    at: Instant,
    replicas: i32,
}

#[derive(Debug, Clone, Copy)]
struct ScaleEvent {
    at: Instant,
    change: i32,
    outdated: bool,
}

/// The outcome of normalisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalized {
    /// Replicas to scale to.
    pub desired: i32,
    /// Reason of the ScalingLimited condition (`DesiredWithinRange`, `ScaleUpLimit`, ...).
    pub reason: &'static str,
    /// Its message.
    pub message: &'static str,
    /// Whether the result differs from the metric proposal (ScalingLimited=True).
    pub limited: bool,
    /// Set when the stabilization window held the proposal back: the AbleToScale reason.
    pub stabilized: Option<&'static str>,
}

/// What the HPA controller remembers per HPA between syncs.
#[derive(Debug, Default, Clone)]
pub struct History {
    recommendations: Vec<Recommendation>,
    scale_up: Vec<ScaleEvent>,
    scale_down: Vec<ScaleEvent>,
}

fn within(at: Instant, now: Instant, window: Duration) -> bool {
    now.saturating_duration_since(at) < window
}

fn older(at: Instant, now: Instant, window: Duration) -> bool {
    now.saturating_duration_since(at) > window
}

fn change_in_period(events: &[ScaleEvent], now: Instant, period: Duration) -> i32 {
    events
        .iter()
        .filter(|e| within(e.at, now, period))
        .map(|e| e.change)
        .sum()
}

impl History {
    /// `recordInitialRecommendation`: the first sync remembers the current size.
    pub fn record_initial(&mut self, now: Instant, current: i32) {
        if self.recommendations.is_empty() {
            self.recommendations.push(Recommendation {
                at: now,
                replicas: current,
            });
        }
    }

    fn store_recommendation(&mut self, now: Instant, replicas: i32, old_index: Option<usize>) {
        let rec = Recommendation { at: now, replicas };
        match old_index {
            Some(i) => self.recommendations[i] = rec,
            None => self.recommendations.push(rec),
        }
    }

    /// `normalizeDesiredReplicas`, for HPAs without `behavior`: the highest recommendation of the
    /// downscale window, then min/max and a scale-up limit of max(2 × current, 4).
    pub fn normalize_legacy(
        &mut self,
        now: Instant,
        window: Duration,
        current: i32,
        proposed: i32,
        min: i32,
        max: i32,
    ) -> Normalized {
        let mut stabilized = proposed;
        let mut old = None;
        for (i, r) in self.recommendations.iter().enumerate() {
            if older(r.at, now, window) {
                old = Some(i);
            } else if r.replicas > stabilized {
                stabilized = r.replicas;
            }
        }
        self.store_recommendation(now, proposed, old);

        let scale_up_limit = current.saturating_mul(2).max(4);
        let (max_allowed, reason, message) = if max > scale_up_limit {
            (
                scale_up_limit,
                "ScaleUpLimit",
                "the desired replica count is increasing faster than the maximum scale rate",
            )
        } else {
            (
                max,
                "TooManyReplicas",
                "the desired replica count is more than the maximum replica count",
            )
        };
        let (desired, reason, message) = if stabilized < min {
            (
                min,
                "TooFewReplicas",
                "the desired replica count is less than the minimum replica count",
            )
        } else if stabilized > max_allowed {
            (max_allowed, reason, message)
        } else {
            (
                stabilized,
                "DesiredWithinRange",
                "the desired count is within the acceptable range",
            )
        };
        Normalized {
            desired,
            reason,
            message,
            limited: desired != stabilized,
            stabilized: (stabilized != proposed).then_some("ScaleDownStabilized"),
        }
    }

    /// `normalizeDesiredReplicasWithBehaviors`: stabilize within both windows, then limit the
    /// rate by the policies, then min/max.
    #[allow(clippy::too_many_arguments)]
    pub fn normalize_with_behavior(
        &mut self,
        now: Instant,
        behavior: &Behavior,
        current: i32,
        proposed: i32,
        min: i32,
        max: i32,
    ) -> Normalized {
        // stabilizeRecommendationWithBehaviors
        let (mut up, mut down) = (proposed, proposed);
        let mut old = None;
        let up_window = behavior.scale_up.stabilization;
        let down_window = behavior.scale_down.stabilization;
        for (i, r) in self.recommendations.iter().enumerate() {
            if within(r.at, now, up_window) {
                up = up.min(r.replicas);
            }
            if within(r.at, now, down_window) {
                down = down.max(r.replicas);
            }
            if older(r.at, now, up_window) && older(r.at, now, down_window) {
                old = Some(i);
            }
        }
        let stabilized = current.max(up).min(down);
        self.store_recommendation(now, proposed, old);
        let stabilized_reason = if stabilized == proposed {
            None
        } else if stabilized < proposed {
            Some("ScaleUpStabilized")
        } else {
            Some("ScaleDownStabilized")
        };

        // convertDesiredReplicasWithBehaviorRate
        let (desired, reason, message) = if stabilized > current {
            let limit = scale_up_limit(
                current,
                &self.scale_up,
                &self.scale_down,
                &behavior.scale_up,
                now,
            )
            .max(current);
            let (allowed, reason, message) = if max > limit {
                (
                    limit,
                    "ScaleUpLimit",
                    "the desired replica count is increasing faster than the maximum scale rate",
                )
            } else {
                (
                    max,
                    "TooManyReplicas",
                    "the desired replica count is more than the maximum replica count",
                )
            };
            if stabilized > allowed {
                (allowed, reason, message)
            } else {
                within_range(stabilized)
            }
        } else if stabilized < current {
            let limit = scale_down_limit(
                current,
                &self.scale_up,
                &self.scale_down,
                &behavior.scale_down,
                now,
            )
            .min(current);
            let (allowed, reason, message) = if min < limit {
                (
                    limit,
                    "ScaleDownLimit",
                    "the desired replica count is decreasing faster than the maximum scale rate",
                )
            } else {
                (
                    min,
                    "TooFewReplicas",
                    "the desired replica count is less than the minimum replica count",
                )
            };
            if stabilized < allowed {
                (allowed, reason, message)
            } else {
                within_range(stabilized)
            }
        } else {
            within_range(stabilized)
        };
        Normalized {
            desired,
            reason,
            message,
            limited: desired != stabilized,
            stabilized: stabilized_reason,
        }
    }

    /// `storeScaleEvent`: remember a rescale for the policies' periods (only with `behavior`).
    pub fn record_scale(
        &mut self,
        now: Instant,
        behavior: Option<&Behavior>,
        previous: i32,
        new: i32,
    ) {
        let Some(behavior) = behavior else { return };
        let (events, rules, change) = if new > previous {
            (
                &mut self.scale_up,
                &behavior.scale_up,
                new.saturating_sub(previous),
            )
        } else {
            (
                &mut self.scale_down,
                &behavior.scale_down,
                previous.saturating_sub(new),
            )
        };
        let longest = rules
            .policies
            .iter()
            .map(|p| p.period)
            .max()
            .unwrap_or_default();
        for e in events.iter_mut() {
            if older(e.at, now, longest) {
                e.outdated = true;
            }
        }
        let event = ScaleEvent {
            at: now,
            change,
            outdated: false,
        };
        match events.iter().rposition(|e| e.outdated) {
            Some(i) => events[i] = event,
            None => events.push(event),
        }
    }
}

fn within_range(replicas: i32) -> (i32, &'static str, &'static str) {
    (
        replicas,
        "DesiredWithinRange",
        "the desired count is within the acceptable range",
    )
}

fn scale_up_limit(
    current: i32,
    ups: &[ScaleEvent],
    downs: &[ScaleEvent],
    rules: &Rules,
    now: Instant,
) -> i32 {
    let (mut result, pick): (i32, fn(i32, i32) -> i32) = match rules.select {
        Select::Disabled => return current,
        Select::Min => (i32::MAX, std::cmp::min),
        Select::Max => (i32::MIN, std::cmp::max),
    };
    for p in &rules.policies {
        let start = current
            .saturating_sub(change_in_period(ups, now, p.period))
            .saturating_add(change_in_period(downs, now, p.period));
        let proposed = match p.kind {
            PolicyKind::Pods => start.saturating_add(p.value),
            PolicyKind::Percent => {
                (f64::from(start) * (1.0 + f64::from(p.value) / 100.0)).ceil() as i32
            }
        };
        result = pick(result, proposed);
    }
    result
}

fn scale_down_limit(
    current: i32,
    ups: &[ScaleEvent],
    downs: &[ScaleEvent],
    rules: &Rules,
    now: Instant,
) -> i32 {
    let (mut result, pick): (i32, fn(i32, i32) -> i32) = match rules.select {
        Select::Disabled => return current,
        Select::Min => (i32::MIN, std::cmp::max),
        Select::Max => (i32::MAX, std::cmp::min),
    };
    for p in &rules.policies {
        let start = current
            .saturating_sub(change_in_period(ups, now, p.period))
            .saturating_add(change_in_period(downs, now, p.period));
        let proposed = match p.kind {
            PolicyKind::Pods => start.saturating_sub(p.value),
            PolicyKind::Percent => (f64::from(start) * (1.0 - f64::from(p.value) / 100.0)) as i32,
        };
        result = pick(result, proposed);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn metric_proposals() {
        // Value: ceil(current × value / target), tolerance 10 %.
        assert_eq!(value_replicas(2, 10_000, 2_000, 0.1), 10);
        assert_eq!(value_replicas(4, 2_100, 2_000, 0.1), 4, "within tolerance");
        assert_eq!(value_replicas(4, 1_000, 2_000, 0.1), 2);
        assert_eq!(
            value_replicas(0, 3_000, 2_000, 0.1),
            2,
            "from zero: ceil(ratio)"
        );
        // AverageValue: ceil(value / target).
        assert_eq!(average_value_replicas(1, 25_000, 5_000, 0.1), 5);
        assert_eq!(
            average_value_replicas(5, 25_500, 5_000, 0.1),
            5,
            "within tolerance"
        );
        assert_eq!(average_value_replicas(5, 0, 5_000, 0.1), 0);
        assert_eq!(average_value_replicas(0, 1_500, 1_000, 0.1), 2);
    }

    #[test]
    fn default_behavior_matches_upstream() {
        let b = Behavior::from_spec(&json!({}), Duration::from_secs(300));
        assert_eq!(b.scale_up.stabilization, Duration::ZERO);
        assert_eq!(b.scale_up.policies.len(), 2);
        assert_eq!(b.scale_down.stabilization, Duration::from_secs(300));
        let custom = Behavior::from_spec(
            &json!({"scaleDown": {"stabilizationWindowSeconds": 3, "selectPolicy": "Min"}}),
            Duration::from_secs(300),
        );
        assert_eq!(
            (custom.scale_down.stabilization, custom.scale_down.select),
            (3 * S, Select::Min)
        );
        assert_eq!(custom.scale_down.policies[0].kind, PolicyKind::Percent);
    }

    #[test]
    fn default_scale_up_is_max_of_4_pods_and_double_per_15s() {
        let b = Behavior::from_spec(&json!({}), Duration::from_secs(300));
        let t0 = Instant::now();
        let mut h = History::default();
        h.record_initial(t0, 1);
        let n = h.normalize_with_behavior(t0, &b, 1, 100, 1, 100);
        assert_eq!((n.desired, n.reason, n.limited), (5, "ScaleUpLimit", true));
        h.record_scale(t0, Some(&b), 1, 5);
        // Within the same 15 s period the budget (start 1 → 5) is used up.
        let n = h.normalize_with_behavior(t0 + 5 * S, &b, 5, 100, 1, 100);
        assert_eq!(n.desired, 5);
        // After the period: max(5 + 4, 5 × 2) = 10.
        let n = h.normalize_with_behavior(t0 + 16 * S, &b, 5, 100, 1, 100);
        assert_eq!(n.desired, 10);
        // maxReplicas wins when lower than the rate limit.
        let n = h.normalize_with_behavior(t0 + 16 * S, &b, 5, 100, 1, 7);
        assert_eq!((n.desired, n.reason), (7, "TooManyReplicas"));
    }

    #[test]
    fn scale_down_waits_for_the_stabilization_window() {
        let b = Behavior::from_spec(
            &json!({"scaleDown": {"stabilizationWindowSeconds": 10}}),
            Duration::from_secs(300),
        );
        let t0 = Instant::now();
        let mut h = History::default();
        h.record_initial(t0, 8);
        assert_eq!(h.normalize_with_behavior(t0, &b, 8, 8, 1, 10).desired, 8);
        let n = h.normalize_with_behavior(t0 + 2 * S, &b, 8, 1, 1, 10);
        assert_eq!((n.desired, n.stabilized), (8, Some("ScaleDownStabilized")));
        assert_eq!(
            h.normalize_with_behavior(t0 + 9 * S, &b, 8, 1, 1, 10)
                .desired,
            8
        );
        // Once the high recommendations are older than 10 s, the low one wins (-100 % allowed).
        assert_eq!(
            h.normalize_with_behavior(t0 + 11 * S, &b, 8, 1, 1, 10)
                .desired,
            1
        );
    }

    #[test]
    fn scale_down_policies_limit_the_rate() {
        let b = Behavior::from_spec(
            &json!({"scaleDown": {"stabilizationWindowSeconds": 0, "policies": [{"type": "Pods", "value": 2, "periodSeconds": 10}]}}),
            Duration::from_secs(300),
        );
        let t0 = Instant::now();
        let mut h = History::default();
        let n = h.normalize_with_behavior(t0, &b, 8, 1, 1, 10);
        assert_eq!((n.desired, n.reason), (6, "ScaleDownLimit"));
        h.record_scale(t0, Some(&b), 8, 6);
        assert_eq!(
            h.normalize_with_behavior(t0 + S, &b, 6, 1, 1, 10).desired,
            6,
            "budget used up"
        );
        assert_eq!(
            h.normalize_with_behavior(t0 + 11 * S, &b, 6, 1, 1, 10)
                .desired,
            4
        );
        // Percent policies round down when scaling down; Disabled never scales.
        let pct = Behavior::from_spec(
            &json!({"scaleDown": {"stabilizationWindowSeconds": 0, "policies": [{"type": "Percent", "value": 50, "periodSeconds": 10}]}}),
            Duration::from_secs(300),
        );
        assert_eq!(
            History::default()
                .normalize_with_behavior(t0, &pct, 5, 1, 1, 10)
                .desired,
            2
        );
        let off = Behavior::from_spec(
            &json!({"scaleUp": {"selectPolicy": "Disabled"}}),
            Duration::from_secs(300),
        );
        assert_eq!(
            History::default()
                .normalize_with_behavior(t0, &off, 3, 9, 1, 10)
                .desired,
            3
        );
    }

    #[test]
    fn legacy_normalization_without_behavior() {
        let t0 = Instant::now();
        let mut h = History::default();
        h.record_initial(t0, 1);
        let n = h.normalize_legacy(t0, 300 * S, 1, 20, 1, 50);
        assert_eq!((n.desired, n.reason), (4, "ScaleUpLimit"), "max(2 × 1, 4)");
        assert_eq!(h.normalize_legacy(t0 + S, 300 * S, 4, 20, 1, 50).desired, 8);
        assert_eq!(
            h.normalize_legacy(t0 + 2 * S, 300 * S, 8, 2, 1, 50).desired,
            16,
            "downscale stabilized at the max"
        );
        assert_eq!(
            h.normalize_legacy(t0 + 400 * S, 300 * S, 16, 2, 1, 50)
                .desired,
            2
        );
        assert_eq!(
            h.normalize_legacy(t0 + 401 * S, 300 * S, 2, 0, 1, 50)
                .desired,
            2,
            "highest of the last 300 s"
        );
    }
}
