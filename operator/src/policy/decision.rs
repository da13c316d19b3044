//! The scale decision of one poll: [`decide`] turns what a poll saw into what to do.
//!
//! It is a pure function: no clock (the poll's time is [`PollInput::now`]), no Kubernetes client,
//! no I/O. The scale loop gathers the input (trigger results, current replicas, status, spec,
//! annotations), calls [`decide`], writes the replicas through `/scale` if [`Decision::action`]
//! says so, then writes the status fields and emits the Events of the [`Decision`].
//!
//! # KEDA's rules (`pkg/scaling/scale_handler.go`, `pkg/scaling/executor/scale_scaledobjects.go`)
//!
//! **Activity.** The ScaledObject is active when any trigger reports active (OR). A trigger that
//! errored is not active, and any error marks the poll as erroneous. `cpu`/`memory` triggers only
//! feed the HPA and are skipped; if *all* triggers are `cpu`/`memory` and none errored, the object
//! is forced active (it could never scale back from zero). With `scalingModifiers` the per-trigger
//! activity is discarded: the object is active iff no trigger errored and the composite value is
//! strictly greater than `activationTarget`. The `autoscaling.keda.sh/force-activation`
//! annotation makes it active regardless.
//!
//! **Pause.** `autoscaling.keda.sh/paused` (Go `ParseBool`, a non-boolean value counts as `true`)
//! or the presence of `autoscaling.keda.sh/paused-replicas` pauses the object: nothing but the
//! `Paused` condition changes, and with `paused-replicas: N` the target is set to `N`.
//! `paused-scale-in` / `paused-scale-out` (same parsing) only block one direction and also set
//! `Paused=True`.
//!
//! **The table** (`min` = `minReplicaCount` or 0; first matching row wins):
//!
//! | state | case | action |
//! |---|---|---|
//! | active | (`idleReplicaCount` set and current < min) or current == 0 | [`ScaleKind::Activate`] to `min` if > 0 else 1 (not with `paused-scale-out`); `lastActiveTime = now` |
//! | active | some trigger errored | `Ready=Unknown/PartialTriggerError` |
//! | active | otherwise | `lastActiveTime = now`; the HPA scales 1..max |
//! | inactive | errored and `fallback` set with `replicas != 0` | nothing (leave the HPA to apply the fallback) |
//! | inactive | errored and no `fallback` | `Ready=False/TriggerError`, nothing |
//! | inactive | (`idleReplicaCount` set and current > idle) or (current > 0 and min == 0) | [`ScaleKind::Deactivate`] to idle (or min) once the cooldown is over (not with `paused-scale-in`); `Active=False/ScalerCooldown` until then |
//! | inactive | `idleReplicaCount` unset and current < min | [`ScaleKind::ToMin`] at once, no cooldown |
//! | inactive | otherwise | nothing |
//!
//! **Cooldown.** Scale-in to idle/zero happens only when `lastActiveTime` is unset and
//! `creationTimestamp + initialCooldownPeriod < now`, or `lastActiveTime + cooldownPeriod < now`:
//! strictly after, so at exactly the boundary the object is still cooling down.
//!
//! **Conditions and Events.** Each poll sets `Ready=True/ScaledObjectReady` unless a row above
//! says otherwise; `Active=True/ScalerActive` (with a different message when forced) or
//! `Active=False/ScalerNotActive` (`ScalerCooldown` while cooling down); `KEDAScaleTargetActivated`
//! (`Scaled <kind> <ns>/<name> from X to Y, triggered by <triggers>`) and
//! `KEDAScaleTargetDeactivated` (`Deactivated <kind> <ns>/<name> from X to Y`) after a successful
//! write, their `...Failed` Warnings otherwise ([`Decision::scale_failed`]).
//!
//! # Where kedge differs from KEDA, and why
//!
//! Each of these is the safe side of a failure mode KEDA users know well (a data source that is
//! down must not take a workload away); the first three have tests named `difference_<n>_*`.
//!
//! 1. **An errored trigger never scales a workload in.** KEDA does nothing when the object is
//!    inactive and a trigger errored, *except* when a fallback is configured with
//!    `replicas: 0`: then the error falls through to the scale-in rows and, after the cooldown, the
//!    workload goes to zero because its source is down. kedge does nothing on an inactive poll
//!    with an error, whatever the fallback says, until the fallback itself applies (difference 3
//!    covers what happens then). In the same spirit a `scalingModifiers` formula that cannot be
//!    evaluated counts as an error (KEDA drops the composite metric and reads that as "inactive",
//!    which scales to zero), unless a trigger's fallback explains the missing value.
//! 2. **An active poll always refreshes `lastActiveTime`.** When some trigger is active and
//!    another errored, KEDA sets `Ready=Unknown/PartialTriggerError` but keeps the old
//!    `lastActiveTime`, so the first inactive poll after a long partial outage finds the cooldown
//!    long over and scales to zero at once. Any active trigger proves demand: kedge refreshes it.
//! 3. **The fallback applies at zero replicas.** KEDA's table above never lets the fallback act at
//!    zero or idle replicas (kedacore/keda#7411, #7239): the HPA is idle there, and an erroring trigger
//!    is "inactive". KEDA's main branch since #7244 counts a trigger whose fallback applies as
//!    active, whatever the fallback stands for. kedge counts it active only when the fallback
//!    stands for at least one replica ([`FallbackSettings::replicas_for`] at the current replica
//!    count, or `fallback.replicas` when a `scalingModifiers` formula yields nothing): the object
//!    is then activated to `max(min, 1)`, the HPA takes over and applies the fallback value. An
//!    explicit fallback of zero replicas (`replicas: 0`, or `currentReplicas` at zero) is an
//!    explicit request for zero, so such a trigger counts neither as active nor as an error.
//! 4. Smaller ones: a `fallback` section that KEDA would reject as invalid is treated as absent,
//!    so the `Ready` condition says `TriggerError` instead of staying `True` for a fallback that
//!    can never apply; a negative `paused-replicas` pauses without scaling; an activation never
//!    exceeds `maxReplicaCount` (only an invalid spec, which admission rejects, could ask for it).

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::conditions::{
    ConditionChange, ConditionStatus, MESSAGE_PARTIAL_TRIGGER_ERROR, MESSAGE_READY,
    MESSAGE_SCALER_ACTIVE, MESSAGE_SCALER_ACTIVE_FORCED, MESSAGE_SCALER_COOLDOWN,
    MESSAGE_SCALER_NOT_ACTIVE, MESSAGE_TRIGGER_ERROR, REASON_PARTIAL_TRIGGER_ERROR, REASON_READY,
    REASON_SCALER_ACTIVE, REASON_SCALER_COOLDOWN, REASON_SCALER_NOT_ACTIVE, REASON_TRIGGER_ERROR,
};
use super::event::{
    EVENT_SCALE_TARGET_ACTIVATED, EVENT_SCALE_TARGET_ACTIVATION_FAILED,
    EVENT_SCALE_TARGET_DEACTIVATED, EVENT_SCALE_TARGET_DEACTIVATION_FAILED, Event,
};
use super::fallback::FallbackSettings;
use super::modifiers;
use super::pause::Pause;
use crate::crd::FallbackBehavior;

/// The "trigger" KEDA names in the activation Event when `scalingModifiers` decided activity.
pub const MODIFIERS_TRIGGER_NAME: &str = "ModifiersTrigger";

/// Everything one poll of a ScaledObject saw, as plain data.
#[derive(Clone, Debug, PartialEq)]
pub struct PollInput {
    /// The time of the poll: the only clock [`decide`] reads.
    pub now: DateTime<Utc>,
    /// `metadata.creationTimestamp`; `None` counts as `now` (as KEDA does for a zero timestamp).
    pub creation_timestamp: Option<DateTime<Utc>>,
    /// `status.lastActiveTime` as read before the poll.
    pub last_active_time: Option<DateTime<Utc>>,
    /// The target's current `spec.replicas`.
    pub current_replicas: i32,
    /// `spec.minReplicaCount` as written (unset means 0).
    pub min_replica_count: Option<i32>,
    /// `spec.idleReplicaCount` as written (unset disables idle mode).
    pub idle_replica_count: Option<i32>,
    /// `spec.maxReplicaCount` with its default (100) applied.
    pub max_replica_count: i32,
    /// `spec.cooldownPeriod` with its default (300 s) applied.
    pub cooldown: TimeDelta,
    /// `spec.initialCooldownPeriod` with its default (0 s) applied.
    pub initial_cooldown: TimeDelta,
    /// One entry per trigger (per metric of a trigger), in spec order.
    pub triggers: Vec<TriggerOutcome>,
    /// The valid `spec.fallback`, if any ([`FallbackSettings::from_spec`]).
    pub fallback: Option<FallbackSettings>,
    /// The `scalingModifiers` result when the object uses them.
    pub composite: Option<CompositeOutcome>,
    /// The pause and force-activation annotations ([`Pause::from_annotations`]).
    pub pause: Pause,
    /// Whether `status.conditions` has `Paused=True` before this poll (for the un-pause transition).
    pub previously_paused: bool,
    /// `status.scaleTargetKind` (e.g. `apps/v1.Deployment`), for Event messages.
    pub scale_target_kind: String,
    /// The ScaledObject's namespace, for Event messages.
    pub namespace: String,
    /// `spec.scaleTargetRef.name`, for Event messages.
    pub scale_target_name: String,
}

/// What one trigger (one of its metrics) reported in this poll.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TriggerOutcome {
    /// The trigger's name as KEDA reports it (`triggers[].name`, or the scaler type when unnamed);
    /// listed in the activation Event.
    pub name: String,
    /// The metric name (`s<i>-...`): the key of `status.health` and `status.triggersActivity`.
    pub metric_name: String,
    /// Whether the scaler reported the metric above its activation threshold.
    pub active: bool,
    /// The scaler's error, if the read failed (then `active` is ignored).
    pub error: Option<String>,
    /// A `cpu`/`memory` trigger: it only feeds the HPA and is skipped for activity.
    pub resource: bool,
    /// Consecutive failures of the metric including this poll (`status.health` after
    /// [`super::fallback::record_metric`]); 0 when healthy or without fallback.
    pub consecutive_failures: i32,
}

/// The `scalingModifiers` composite metric of this poll.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CompositeOutcome {
    /// The formula's value, or `None` when it could not be evaluated.
    pub value: Option<f64>,
    /// `scalingModifiers.activationTarget` (default 0).
    pub activation_target: f64,
}

/// What to do with the scale target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Leave the replicas alone (the HPA, if any, keeps scaling between 1 and max).
    None,
    /// Write `replicas` to the target's `/scale` subresource.
    ScaleTo {
        /// The new `spec.replicas`.
        replicas: i32,
        /// Why: decides the Event and how a failed write is reported.
        kind: ScaleKind,
    },
}

/// Why kedge scales the target itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScaleKind {
    /// From zero/idle to `minReplicaCount` (or 1): Event `KEDAScaleTargetActivated`.
    Activate,
    /// To `idleReplicaCount` (or `minReplicaCount`, i.e. zero) after the cooldown: Event
    /// `KEDAScaleTargetDeactivated`.
    Deactivate,
    /// Up to `minReplicaCount` while inactive and below it without idle mode; immediate, no Event.
    ToMin,
    /// To the `paused-replicas` count; no Event.
    Paused,
}

/// What the poll decided.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// What to do with the target's replicas.
    pub action: Action,
    /// Whether the object is active (triggers, fallback, formula or force-activation).
    pub active: bool,
    /// Whether some trigger failed without a fallback standing in for it (or the formula failed).
    pub trigger_error: bool,
    /// The value to store in `status.lastActiveTime` (unchanged unless the poll proved demand).
    pub last_active_time: Option<DateTime<Utc>>,
    /// `status.triggersActivity`: per metric name, whether it read successfully and active.
    pub triggers_activity: BTreeMap<String, bool>,
    /// The `Ready` condition.
    pub ready: ConditionChange,
    /// The `Active` condition.
    pub active_condition: ConditionChange,
    /// The `Paused` condition.
    pub paused: ConditionChange,
    /// Events to record. A `KEDAScaleTarget*` Event here assumes the `/scale` write succeeds; see
    /// [`Decision::scale_failed`].
    pub events: Vec<Event>,
}

impl Decision {
    /// The decision to persist when writing [`Decision::action`] to `/scale` failed: the
    /// `KEDAScaleTargetActivated`/`Deactivated` Event becomes its `...Failed` Warning ("Failed to
    /// scale ..." / "Failed to deactivate ..."), and a failed activation keeps the previous
    /// `lastActiveTime` (KEDA only records it after a successful scale from zero).
    pub fn scale_failed(mut self, input: &PollInput) -> Self {
        let Action::ScaleTo { replicas, kind } = self.action else {
            return self;
        };
        let target = target_ref(input);
        let from = input.current_replicas;
        let failure = match kind {
            ScaleKind::Activate => {
                self.last_active_time = input.last_active_time;
                Some(Event::warning(
                    EVENT_SCALE_TARGET_ACTIVATION_FAILED,
                    format!("Failed to scale {target} from {from} to {replicas}"),
                ))
            }
            ScaleKind::Deactivate => Some(Event::warning(
                EVENT_SCALE_TARGET_DEACTIVATION_FAILED,
                format!("Failed to deactivate {target} from {from} to {replicas}"),
            )),
            ScaleKind::ToMin | ScaleKind::Paused => None,
        };
        self.events.retain(|e| {
            e.reason != EVENT_SCALE_TARGET_ACTIVATED && e.reason != EVENT_SCALE_TARGET_DEACTIVATED
        });
        self.events.extend(failure);
        self
    }

    /// The scale write was refused because the target changed after the poll read it: nothing
    /// failed, and the next poll decides again on fresh replicas. As [`Decision::scale_failed`],
    /// without its warning.
    pub fn superseded(self, input: &PollInput) -> Self {
        let mut d = self.scale_failed(input);
        d.events.retain(|e| {
            e.reason != EVENT_SCALE_TARGET_ACTIVATION_FAILED
                && e.reason != EVENT_SCALE_TARGET_DEACTIVATION_FAILED
        });
        d
    }
}

/// How the triggers, the formula, the fallback and the annotations combine into activity.
struct Activity {
    active: bool,
    trigger_error: bool,
    /// Names for the activation Event, in spec order.
    active_triggers: Vec<String>,
    per_metric: BTreeMap<String, bool>,
}

fn activity(input: &PollInput) -> Activity {
    let fallback = input.fallback.as_ref();
    let falls_back = |t: &TriggerOutcome| {
        // Fallback never covers cpu/memory (KEDA only replaces External metrics).
        t.error.is_some()
            && !t.resource
            && fallback.is_some_and(|f| f.is_active_for(t.consecutive_failures))
    };

    let mut active = false;
    let mut trigger_error = false;
    let mut active_triggers = Vec::new();
    let mut falling_back = Vec::new();
    let mut per_metric = BTreeMap::new();
    for t in &input.triggers {
        per_metric.insert(t.metric_name.clone(), t.error.is_none() && t.active);
        if t.error.is_some() {
            if falls_back(t) {
                falling_back.push(t.name.clone());
            } else {
                trigger_error = true;
            }
        } else if t.active && !t.resource {
            active = true;
            push_unique(&mut active_triggers, &t.name);
        }
    }

    // With scalingModifiers the formula alone decides activity.
    let mut formula_failed = false;
    if let Some(composite) = &input.composite {
        active = false;
        active_triggers.clear();
        match composite.value {
            Some(v) if !trigger_error && modifiers::is_active(v, composite.activation_target) => {
                active = true;
                active_triggers.push(MODIFIERS_TRIGGER_NAME.to_owned());
            }
            Some(_) => {}
            None => {
                formula_failed = true;
                // kedge difference 1: an unevaluable formula is an error, not "inactive", unless a
                // trigger's fallback explains the missing value (the fallback then decides below).
                if falling_back.is_empty() {
                    trigger_error = true;
                }
            }
        }
    }

    // Only cpu/memory triggers: KEDA forces activity, or the object could never leave zero.
    if input.triggers.iter().all(|t| t.resource) && !trigger_error {
        active = true;
    }

    // kedge difference 3: a trigger whose fallback applies and stands for at least one replica
    // proves (assumed) demand, so the object is active and the HPA can apply the fallback.
    if let Some(f) = fallback
        && !falling_back.is_empty()
    {
        let stands_for = match f.behavior {
            // The formula handles failing triggers with `??`; its fallback count is used only
            // when the formula yields nothing.
            FallbackBehavior::ScalingModifiers if !formula_failed => 0,
            FallbackBehavior::ScalingModifiers => f.replicas,
            _ => f.replicas_for(input.current_replicas),
        };
        if stands_for > 0 {
            active = true;
            for name in &falling_back {
                push_unique(&mut active_triggers, name);
            }
        }
    }

    if input.pause.force_activation {
        active = true;
    }

    Activity {
        active,
        trigger_error,
        active_triggers,
        per_metric,
    }
}

fn push_unique(names: &mut Vec<String>, name: &str) {
    if !names.iter().any(|n| n == name) {
        names.push(name.to_owned());
    }
}

fn target_ref(input: &PollInput) -> String {
    format!(
        "{} {}/{}",
        input.scale_target_kind, input.namespace, input.scale_target_name
    )
}

/// Whether the (initial) cooldown is over, as KEDA compares: strictly after.
fn cooldown_elapsed(input: &PollInput) -> bool {
    let (since, period) = match input.last_active_time {
        Some(last) => (last, input.cooldown),
        None => (
            input.creation_timestamp.unwrap_or(input.now),
            input.initial_cooldown,
        ),
    };
    // An end beyond chrono's range is never reached.
    since
        .checked_add_signed(period)
        .is_some_and(|end| end < input.now)
}

/// Decide what one poll of a ScaledObject does. See the module docs for the rules.
pub fn decide(input: &PollInput) -> Decision {
    let activity = activity(input);
    let mut decision = Decision {
        action: Action::None,
        active: activity.active,
        trigger_error: activity.trigger_error,
        last_active_time: input.last_active_time,
        triggers_activity: activity.per_metric,
        ready: ConditionChange::set(ConditionStatus::True, REASON_READY, MESSAGE_READY),
        active_condition: ConditionChange::Keep,
        paused: ConditionChange::Keep,
        events: Vec::new(),
    };
    let pause = &input.pause;
    let current = input.current_replicas;

    let plan = pause.plan(input.previously_paused, Some(current));
    decision.paused = plan.paused;
    decision.events = plan.events;
    if let Some(ready) = plan.ready {
        // Fully paused: only the Paused condition (and the paused-replicas count) change.
        decision.ready = ready;
        if let Some(replicas) = plan.scale_to {
            decision.action = Action::ScaleTo {
                replicas,
                kind: ScaleKind::Paused,
            };
        }
        return decision;
    }

    let min = input.min_replica_count.unwrap_or(0);
    let idle = input.idle_replica_count;

    if activity.active {
        let message = if pause.force_activation {
            MESSAGE_SCALER_ACTIVE_FORCED
        } else {
            MESSAGE_SCALER_ACTIVE
        };
        decision.active_condition =
            ConditionChange::set(ConditionStatus::True, REASON_SCALER_ACTIVE, message);

        if (idle.is_some() && current < min) || current == 0 {
            if pause.paused_scale_out {
                return decision;
            }
            let wanted = if min > 0 { min } else { 1 };
            let replicas = wanted.min(input.max_replica_count.max(1));
            decision.action = Action::ScaleTo {
                replicas,
                kind: ScaleKind::Activate,
            };
            decision.last_active_time = Some(input.now);
            let target = target_ref(input);
            let message = if pause.force_activation {
                format!(
                    "Scaled {target} from {current} to {replicas}, caused by forced activation annotation"
                )
            } else {
                format!(
                    "Scaled {target} from {current} to {replicas}, triggered by {}",
                    activity.active_triggers.join(";")
                )
            };
            decision
                .events
                .push(Event::normal(EVENT_SCALE_TARGET_ACTIVATED, message));
        } else {
            if activity.trigger_error {
                decision.ready = ConditionChange::set(
                    ConditionStatus::Unknown,
                    REASON_PARTIAL_TRIGGER_ERROR,
                    MESSAGE_PARTIAL_TRIGGER_ERROR,
                );
            }
            // kedge difference 2: refreshed even with a partial trigger error (KEDA keeps the old
            // value then).
            decision.last_active_time = Some(input.now);
        }
        return decision;
    }

    decision.active_condition = ConditionChange::set(
        ConditionStatus::False,
        REASON_SCALER_NOT_ACTIVE,
        MESSAGE_SCALER_NOT_ACTIVE,
    );

    if activity.trigger_error {
        // kedge difference 1: an error never falls through to the scale-in rows, whatever the
        // fallback (KEDA falls through when `fallback.replicas` is 0).
        if input.fallback.is_none() {
            decision.ready = ConditionChange::set(
                ConditionStatus::False,
                REASON_TRIGGER_ERROR,
                MESSAGE_TRIGGER_ERROR,
            );
        }
        return decision;
    }

    if idle.is_some_and(|idle| current > idle) || (current > 0 && min == 0) {
        if pause.paused_scale_in {
            return decision;
        }
        if cooldown_elapsed(input) {
            let replicas = idle.unwrap_or(min);
            decision.action = Action::ScaleTo {
                replicas,
                kind: ScaleKind::Deactivate,
            };
            decision.events.push(Event::normal(
                EVENT_SCALE_TARGET_DEACTIVATED,
                format!(
                    "Deactivated {} from {current} to {replicas}",
                    target_ref(input)
                ),
            ));
        } else {
            decision.active_condition = ConditionChange::set(
                ConditionStatus::False,
                REASON_SCALER_COOLDOWN,
                MESSAGE_SCALER_COOLDOWN,
            );
        }
    } else if idle.is_none() && current < min {
        decision.action = Action::ScaleTo {
            replicas: min,
            kind: ScaleKind::ToMin,
        };
    }
    decision
}

/// `metav1.Time` (as read from the ScaledObject) as a `DateTime<Utc>`; `None` only for a time
/// outside chrono's nanosecond range (about 1677..2262).
pub fn from_k8s_time(time: &Time) -> Option<DateTime<Utc>> {
    let nanos = i64::try_from(time.0.as_nanosecond()).ok()?;
    Some(DateTime::from_timestamp_nanos(nanos))
}

/// A `DateTime<Utc>` as `metav1.Time` (for `status.lastActiveTime`); `None` only out of range.
pub fn to_k8s_time(time: DateTime<Utc>) -> Option<Time> {
    let nanos = time.timestamp_nanos_opt()?;
    k8s_openapi::jiff::Timestamp::from_nanosecond(i128::from(nanos))
        .ok()
        .map(Time)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::crd::scaled_object::{PAUSED_ANNOTATION, PAUSED_REPLICAS_ANNOTATION};
    use crate::policy::conditions::*;
    use crate::policy::event::EVENT_SCALE_TARGET_ACTIVATED;
    use crate::policy::pause::*;

    /// The controlled clock: every test reads time from here.
    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap()
    }

    fn secs(n: i64) -> TimeDelta {
        TimeDelta::seconds(n)
    }

    fn trigger(name: &str, active: bool) -> TriggerOutcome {
        TriggerOutcome {
            name: name.into(),
            metric_name: format!("s0-{name}"),
            active,
            ..Default::default()
        }
    }

    fn failing(name: &str, failures: i32) -> TriggerOutcome {
        TriggerOutcome {
            error: Some("connection refused".into()),
            consecutive_failures: failures,
            ..trigger(name, false)
        }
    }

    fn resource(name: &str) -> TriggerOutcome {
        TriggerOutcome {
            resource: true,
            ..trigger(name, false)
        }
    }

    /// An object created an hour ago, last active 10 minutes ago (cooldown 300 s is over).
    fn input(current: i32, triggers: Vec<TriggerOutcome>) -> PollInput {
        PollInput {
            now: t0(),
            creation_timestamp: Some(t0() - secs(3600)),
            last_active_time: Some(t0() - secs(600)),
            current_replicas: current,
            min_replica_count: None,
            idle_replica_count: None,
            max_replica_count: 100,
            cooldown: secs(300),
            initial_cooldown: secs(0),
            triggers,
            fallback: None,
            composite: None,
            pause: Pause::default(),
            previously_paused: false,
            scale_target_kind: "apps/v1.Deployment".into(),
            namespace: "ns".into(),
            scale_target_name: "web".into(),
        }
    }

    fn active() -> Vec<TriggerOutcome> {
        vec![trigger("queue", true)]
    }

    fn inactive() -> Vec<TriggerOutcome> {
        vec![trigger("queue", false)]
    }

    fn scale(replicas: i32, kind: ScaleKind) -> Action {
        Action::ScaleTo { replicas, kind }
    }

    fn cond(status: ConditionStatus, reason: &'static str, message: &str) -> ConditionChange {
        ConditionChange::set(status, reason, message)
    }

    fn ready() -> ConditionChange {
        cond(ConditionStatus::True, REASON_READY, MESSAGE_READY)
    }

    fn scaler_active() -> ConditionChange {
        cond(
            ConditionStatus::True,
            REASON_SCALER_ACTIVE,
            MESSAGE_SCALER_ACTIVE,
        )
    }

    fn scaler_not_active() -> ConditionChange {
        cond(
            ConditionStatus::False,
            REASON_SCALER_NOT_ACTIVE,
            MESSAGE_SCALER_NOT_ACTIVE,
        )
    }

    fn cooling_down() -> ConditionChange {
        cond(
            ConditionStatus::False,
            REASON_SCALER_COOLDOWN,
            MESSAGE_SCALER_COOLDOWN,
        )
    }

    fn fallback(
        threshold: i32,
        replicas: i32,
        behavior: FallbackBehavior,
    ) -> Option<FallbackSettings> {
        Some(FallbackSettings {
            failure_threshold: threshold,
            replicas,
            behavior,
        })
    }

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    // ---- §3.3, active rows ------------------------------------------------------------------

    #[test]
    fn active_at_zero_activates_to_one() {
        let d = decide(&input(0, active()));
        assert_eq!(d.action, scale(1, ScaleKind::Activate));
        assert!(d.active);
        assert_eq!(d.last_active_time, Some(t0()));
        assert_eq!(d.active_condition, scaler_active());
        assert_eq!(d.ready, ready());
        assert_eq!(
            d.events,
            [Event::normal(
                "KEDAScaleTargetActivated",
                "Scaled apps/v1.Deployment ns/web from 0 to 1, triggered by queue"
            )]
        );
    }

    #[test]
    fn active_at_zero_activates_to_min() {
        let mut i = input(0, active());
        i.min_replica_count = Some(3);
        assert_eq!(decide(&i).action, scale(3, ScaleKind::Activate));
    }

    #[test]
    fn active_event_lists_every_active_trigger() {
        let i = input(
            0,
            vec![trigger("a", true), trigger("b", false), trigger("c", true)],
        );
        assert_eq!(
            decide(&i).events[0].message,
            "Scaled apps/v1.Deployment ns/web from 0 to 1, triggered by a;c"
        );
    }

    #[test]
    fn active_below_min_in_idle_mode_activates_to_min() {
        let mut i = input(2, active());
        i.min_replica_count = Some(5);
        i.idle_replica_count = Some(0);
        let d = decide(&i);
        assert_eq!(d.action, scale(5, ScaleKind::Activate));
        assert_eq!(
            d.events[0].message,
            "Scaled apps/v1.Deployment ns/web from 2 to 5, triggered by queue"
        );
    }

    #[test]
    fn active_below_min_without_idle_mode_is_left_to_the_hpa() {
        let mut i = input(2, active());
        i.min_replica_count = Some(5);
        let d = decide(&i);
        assert_eq!(d.action, Action::None);
        assert_eq!(d.last_active_time, Some(t0()));
    }

    #[test]
    fn active_with_replicas_refreshes_last_active_time() {
        let d = decide(&input(4, active()));
        assert_eq!(d.action, Action::None);
        assert_eq!(d.last_active_time, Some(t0()));
        assert_eq!(d.active_condition, scaler_active());
        assert_eq!(d.ready, ready());
        assert!(d.events.is_empty());
    }

    #[test]
    fn active_with_trigger_error_is_partial_trigger_error() {
        let d = decide(&input(4, vec![trigger("a", true), failing("b", 1)]));
        assert_eq!(d.action, Action::None);
        assert!(d.active);
        assert!(d.trigger_error);
        assert_eq!(
            d.ready,
            cond(
                ConditionStatus::Unknown,
                "PartialTriggerError",
                "Some triggers defined in ScaledObject are not working correctly"
            )
        );
    }

    #[test]
    fn active_at_zero_with_trigger_error_still_activates() {
        // The activation row comes first in KEDA's table.
        let d = decide(&input(0, vec![trigger("a", true), failing("b", 1)]));
        assert_eq!(d.action, scale(1, ScaleKind::Activate));
        assert_eq!(d.ready, ready());
        assert_eq!(
            d.events[0].message,
            "Scaled apps/v1.Deployment ns/web from 0 to 1, triggered by a"
        );
    }

    #[test]
    fn activation_never_exceeds_max() {
        let mut i = input(0, active());
        i.min_replica_count = Some(10);
        i.max_replica_count = 4;
        assert_eq!(decide(&i).action, scale(4, ScaleKind::Activate));
    }

    // ---- §3.3, inactive rows ----------------------------------------------------------------

    #[test]
    fn inactive_error_without_fallback_is_trigger_error() {
        let d = decide(&input(3, vec![failing("a", 1)]));
        assert_eq!(d.action, Action::None);
        assert!(!d.active);
        assert_eq!(d.last_active_time, Some(t0() - secs(600)));
        assert_eq!(
            d.ready,
            cond(
                ConditionStatus::False,
                "TriggerError",
                "Triggers defined in ScaledObject are not working correctly"
            )
        );
        assert_eq!(d.active_condition, scaler_not_active());
    }

    #[test]
    fn inactive_error_with_fallback_below_threshold_does_nothing() {
        let mut i = input(3, vec![failing("a", 2)]);
        i.fallback = fallback(3, 6, FallbackBehavior::Static);
        let d = decide(&i);
        assert_eq!(d.action, Action::None);
        assert!(!d.active);
        assert_eq!(d.ready, ready());
        assert_eq!(d.active_condition, scaler_not_active());
    }

    #[test]
    fn inactive_after_cooldown_scales_to_zero() {
        let d = decide(&input(3, inactive()));
        assert_eq!(d.action, scale(0, ScaleKind::Deactivate));
        assert!(!d.active);
        assert_eq!(d.active_condition, scaler_not_active());
        assert_eq!(d.last_active_time, Some(t0() - secs(600)));
        assert_eq!(
            d.events,
            [Event::normal(
                "KEDAScaleTargetDeactivated",
                "Deactivated apps/v1.Deployment ns/web from 3 to 0"
            )]
        );
    }

    #[test]
    fn inactive_within_cooldown_is_cooling_down() {
        let mut i = input(3, inactive());
        i.last_active_time = Some(t0() - secs(100));
        let d = decide(&i);
        assert_eq!(d.action, Action::None);
        assert_eq!(d.active_condition, cooling_down());
        assert!(d.events.is_empty());
    }

    #[test]
    fn inactive_above_idle_scales_to_idle() {
        let mut i = input(5, inactive());
        i.min_replica_count = Some(5);
        i.idle_replica_count = Some(0);
        assert_eq!(decide(&i).action, scale(0, ScaleKind::Deactivate));
    }

    #[test]
    fn inactive_below_min_without_idle_scales_to_min_at_once() {
        let mut i = input(1, inactive());
        i.min_replica_count = Some(3);
        // Within the cooldown: the min correction does not wait for it.
        i.last_active_time = Some(t0() - secs(1));
        let d = decide(&i);
        assert_eq!(d.action, scale(3, ScaleKind::ToMin));
        assert!(d.events.is_empty());
        assert_eq!(d.active_condition, scaler_not_active());
    }

    #[test]
    fn inactive_at_min_does_nothing() {
        let mut i = input(3, inactive());
        i.min_replica_count = Some(3);
        let d = decide(&i);
        assert_eq!(d.action, Action::None);
        assert_eq!(d.active_condition, scaler_not_active());
    }

    #[test]
    fn inactive_at_zero_does_nothing() {
        let d = decide(&input(0, inactive()));
        assert_eq!(d.action, Action::None);
        assert_eq!(d.ready, ready());
        assert_eq!(d.active_condition, scaler_not_active());
    }

    #[test]
    fn inactive_above_min_is_left_to_the_hpa() {
        let mut i = input(7, inactive());
        i.min_replica_count = Some(2);
        assert_eq!(decide(&i).action, Action::None);
    }

    // ---- cooldown and initialCooldown boundaries ------------------------------------------

    #[test]
    fn cooldown_boundary_is_strictly_after() {
        let mut i = input(2, inactive());
        i.last_active_time = Some(t0() - secs(300));
        assert_eq!(decide(&i).action, Action::None, "exactly at the boundary");
        assert_eq!(decide(&i).active_condition, cooling_down());
        i.last_active_time = Some(t0() - secs(300) - TimeDelta::nanoseconds(1));
        assert_eq!(decide(&i).action, scale(0, ScaleKind::Deactivate));
    }

    #[test]
    fn zero_cooldown_scales_in_on_the_next_instant() {
        let mut i = input(2, inactive());
        i.cooldown = secs(0);
        i.last_active_time = Some(t0());
        assert_eq!(decide(&i).action, Action::None);
        i.last_active_time = Some(t0() - TimeDelta::milliseconds(1));
        assert_eq!(decide(&i).action, scale(0, ScaleKind::Deactivate));
    }

    #[test]
    fn initial_cooldown_boundary_is_strictly_after() {
        let mut i = input(2, inactive());
        i.last_active_time = None;
        i.initial_cooldown = secs(120);
        i.creation_timestamp = Some(t0() - secs(120));
        assert_eq!(decide(&i).action, Action::None);
        assert_eq!(decide(&i).active_condition, cooling_down());
        i.creation_timestamp = Some(t0() - secs(121));
        assert_eq!(decide(&i).action, scale(0, ScaleKind::Deactivate));
    }

    #[test]
    fn initial_cooldown_ignored_once_active_once() {
        // With a lastActiveTime, only cooldownPeriod counts.
        let mut i = input(2, inactive());
        i.creation_timestamp = Some(t0() - secs(10));
        i.initial_cooldown = secs(3600);
        i.last_active_time = Some(t0() - secs(301));
        assert_eq!(decide(&i).action, scale(0, ScaleKind::Deactivate));
    }

    #[test]
    fn missing_creation_timestamp_counts_as_now() {
        let mut i = input(2, inactive());
        i.last_active_time = None;
        i.creation_timestamp = None;
        // now + 0 < now is false: KEDA waits a poll.
        assert_eq!(decide(&i).action, Action::None);
    }

    #[test]
    fn never_active_with_default_initial_cooldown_scales_in() {
        let mut i = input(2, inactive());
        i.last_active_time = None;
        assert_eq!(decide(&i).action, scale(0, ScaleKind::Deactivate));
    }

    // ---- idle semantics ---------------------------------------------------------------------

    fn idle_mode(current: i32, triggers: Vec<TriggerOutcome>) -> PollInput {
        let mut i = input(current, triggers);
        i.min_replica_count = Some(5);
        i.idle_replica_count = Some(0);
        i
    }

    #[test]
    fn idle_active_from_idle_goes_to_min() {
        assert_eq!(
            decide(&idle_mode(0, active())).action,
            scale(5, ScaleKind::Activate)
        );
    }

    #[test]
    fn idle_inactive_at_idle_stays() {
        // Idle mode: being below min while inactive is the point, no ToMin correction.
        let d = decide(&idle_mode(0, inactive()));
        assert_eq!(d.action, Action::None);
    }

    #[test]
    fn idle_inactive_between_idle_and_min_goes_to_idle_after_cooldown() {
        let mut i = idle_mode(3, inactive());
        assert_eq!(decide(&i).action, scale(0, ScaleKind::Deactivate));
        i.last_active_time = Some(t0() - secs(10));
        assert_eq!(decide(&i).active_condition, cooling_down());
        assert_eq!(decide(&i).action, Action::None);
    }

    #[test]
    fn idle_non_zero_idle_count() {
        let mut i = input(4, inactive());
        i.min_replica_count = Some(3);
        i.idle_replica_count = Some(1);
        assert_eq!(decide(&i).action, scale(1, ScaleKind::Deactivate));
        let mut i = input(1, active());
        i.min_replica_count = Some(3);
        i.idle_replica_count = Some(1);
        assert_eq!(decide(&i).action, scale(3, ScaleKind::Activate));
    }

    #[test]
    fn idle_active_at_min_is_left_to_the_hpa() {
        let d = decide(&idle_mode(5, active()));
        assert_eq!(d.action, Action::None);
        assert_eq!(d.last_active_time, Some(t0()));
    }

    // ---- pause annotations ------------------------------------------------------------------

    #[test]
    fn pause_annotation_parsing_follows_go_parse_bool() {
        for v in ["1", "t", "T", "TRUE", "true", "True"] {
            assert!(
                Pause::from_annotations(&annotations(&[(PAUSED_ANNOTATION, v)])).paused,
                "{v}"
            );
        }
        for v in ["0", "f", "F", "FALSE", "false", "False"] {
            assert!(
                !Pause::from_annotations(&annotations(&[(PAUSED_ANNOTATION, v)])).paused,
                "{v}"
            );
        }
        // Not a boolean: KEDA assumes the user wants it.
        for v in ["yes", "", " true", "on"] {
            assert!(
                Pause::from_annotations(&annotations(&[(PAUSED_ANNOTATION, v)])).paused,
                "{v:?}"
            );
        }
        assert_eq!(Pause::from_annotations(&BTreeMap::new()), Pause::default());
    }

    #[test]
    fn paused_replicas_presence_pauses() {
        let p = Pause::from_annotations(&annotations(&[(PAUSED_REPLICAS_ANNOTATION, "3")]));
        assert!(p.paused);
        assert_eq!(p.paused_replicas, Some(3));
        let p = Pause::from_annotations(&annotations(&[(PAUSED_REPLICAS_ANNOTATION, "abc")]));
        assert!(p.paused);
        assert_eq!(p.paused_replicas, None);
        let p = Pause::from_annotations(&annotations(&[(PAUSED_REPLICAS_ANNOTATION, "-1")]));
        assert!(p.paused);
        assert_eq!(p.paused_replicas, None);
        // paused: "false" does not unpause a paused-replicas.
        let p = Pause::from_annotations(&annotations(&[
            (PAUSED_ANNOTATION, "false"),
            (PAUSED_REPLICAS_ANNOTATION, "0"),
        ]));
        assert!(p.paused);
        assert_eq!(p.paused_replicas, Some(0));
    }

    #[test]
    fn directional_and_force_annotations_parse_as_booleans() {
        let p = Pause::from_annotations(&annotations(&[
            (PAUSED_SCALE_IN_ANNOTATION, "true"),
            (PAUSED_SCALE_OUT_ANNOTATION, "false"),
            (FORCE_ACTIVATION_ANNOTATION, "whatever"),
        ]));
        assert!(!p.paused);
        assert!(p.paused_scale_in);
        assert!(!p.paused_scale_out);
        assert!(p.force_activation);
        assert!(p.any());
        let p = Pause::from_annotations(&annotations(&[(FORCE_ACTIVATION_ANNOTATION, "0")]));
        assert!(!p.force_activation);
        assert!(!p.any());
    }

    #[test]
    fn paused_only_sets_the_paused_condition() {
        let mut i = input(3, inactive());
        i.pause.paused = true;
        let d = decide(&i);
        assert_eq!(d.action, Action::None);
        assert_eq!(
            d.paused,
            cond(
                ConditionStatus::True,
                "ScaledObjectPaused",
                "ScaledObject is paused"
            )
        );
        assert_eq!(
            d.ready,
            cond(
                ConditionStatus::True,
                REASON_READY,
                "ScaledObject is paused"
            )
        );
        assert_eq!(d.active_condition, ConditionChange::Keep);
        assert_eq!(d.last_active_time, i.last_active_time);
        assert_eq!(
            d.events,
            [Event::normal(
                "ScaledObjectPaused",
                "ScaledObject is paused"
            )]
        );
        // Active triggers do not activate a paused object either.
        let mut i = input(0, active());
        i.pause.paused = true;
        i.previously_paused = true;
        let d = decide(&i);
        assert_eq!(d.action, Action::None);
        assert!(d.events.is_empty(), "no Event without a transition");
    }

    #[test]
    fn paused_replicas_scales_to_the_count() {
        let mut i = input(3, active());
        i.pause = Pause::from_annotations(&annotations(&[(PAUSED_REPLICAS_ANNOTATION, "1")]));
        assert_eq!(decide(&i).action, scale(1, ScaleKind::Paused));
        i.current_replicas = 1;
        assert_eq!(decide(&i).action, Action::None);
        let mut z = input(2, inactive());
        z.pause = Pause::from_annotations(&annotations(&[(PAUSED_REPLICAS_ANNOTATION, "0")]));
        assert_eq!(decide(&z).action, scale(0, ScaleKind::Paused));
    }

    #[test]
    fn unpause_transition() {
        let mut i = input(4, active());
        i.previously_paused = true;
        let d = decide(&i);
        assert_eq!(
            d.paused,
            cond(
                ConditionStatus::False,
                "ScaledObjectUnpaused",
                "pause annotation removed for ScaledObject"
            )
        );
        assert_eq!(
            d.events,
            [Event::normal(
                "ScaledObjectUnpaused",
                "pause annotation removed for ScaledObject"
            )]
        );
        // Never paused: the Paused condition is left alone.
        assert_eq!(decide(&input(4, active())).paused, ConditionChange::Keep);
    }

    #[test]
    fn paused_scale_in_blocks_scale_to_zero() {
        let mut i = input(3, inactive());
        i.pause.paused_scale_in = true;
        let d = decide(&i);
        assert_eq!(d.action, Action::None);
        assert_eq!(d.active_condition, scaler_not_active());
        assert_eq!(
            d.paused,
            cond(ConditionStatus::True, REASON_PAUSED, MESSAGE_PAUSED)
        );
        // ...and scale to idle, but not the min correction nor activation.
        let mut i = idle_mode(5, inactive());
        i.pause.paused_scale_in = true;
        assert_eq!(decide(&i).action, Action::None);
        let mut i = input(1, inactive());
        i.min_replica_count = Some(3);
        i.pause.paused_scale_in = true;
        assert_eq!(decide(&i).action, scale(3, ScaleKind::ToMin));
        let mut i = input(0, active());
        i.pause.paused_scale_in = true;
        assert_eq!(decide(&i).action, scale(1, ScaleKind::Activate));
    }

    #[test]
    fn paused_scale_out_blocks_activation() {
        let mut i = input(0, active());
        i.pause.paused_scale_out = true;
        let d = decide(&i);
        assert_eq!(d.action, Action::None);
        assert!(d.active);
        assert_eq!(d.active_condition, scaler_active());
        assert_eq!(d.last_active_time, i.last_active_time);
        assert!(
            d.events
                .iter()
                .all(|e| e.reason != EVENT_SCALE_TARGET_ACTIVATED)
        );
        let mut i = idle_mode(0, active());
        i.pause.paused_scale_out = true;
        assert_eq!(decide(&i).action, Action::None);
        // Scale-in still happens.
        let mut i = input(3, inactive());
        i.pause.paused_scale_out = true;
        assert_eq!(decide(&i).action, scale(0, ScaleKind::Deactivate));
    }

    #[test]
    fn force_activation_activates_from_zero() {
        let mut i = input(0, inactive());
        i.pause.force_activation = true;
        let d = decide(&i);
        assert_eq!(d.action, scale(1, ScaleKind::Activate));
        assert!(d.active);
        assert_eq!(
            d.active_condition,
            cond(
                ConditionStatus::True,
                REASON_SCALER_ACTIVE,
                "Scaling is performed because activation is being forced by annotation"
            )
        );
        assert_eq!(
            d.events,
            [Event::normal(
                "KEDAScaleTargetActivated",
                "Scaled apps/v1.Deployment ns/web from 0 to 1, caused by forced activation annotation"
            )]
        );
    }

    #[test]
    fn force_activation_prevents_scale_in() {
        let mut i = input(3, vec![failing("a", 1)]);
        i.pause.force_activation = true;
        let d = decide(&i);
        assert_eq!(d.action, Action::None);
        assert_eq!(d.last_active_time, Some(t0()));
        assert_eq!(
            d.ready,
            cond(
                ConditionStatus::Unknown,
                REASON_PARTIAL_TRIGGER_ERROR,
                MESSAGE_PARTIAL_TRIGGER_ERROR
            )
        );
    }

    // ---- resource triggers ------------------------------------------------------------------

    #[test]
    fn only_resource_triggers_are_always_active() {
        let d = decide(&input(0, vec![resource("cpu"), resource("memory")]));
        assert!(d.active);
        assert_eq!(d.action, scale(1, ScaleKind::Activate));
        assert_eq!(
            d.events[0].message,
            "Scaled apps/v1.Deployment ns/web from 0 to 1, triggered by "
        );
        let d = decide(&input(3, vec![resource("cpu")]));
        assert_eq!(d.action, Action::None);
        assert_eq!(d.last_active_time, Some(t0()));
    }

    #[test]
    fn resource_triggers_do_not_count_with_other_triggers() {
        let d = decide(&input(3, vec![resource("cpu"), trigger("queue", false)]));
        assert!(!d.active);
        assert_eq!(d.action, scale(0, ScaleKind::Deactivate));
        // A resource trigger reporting active is still skipped.
        let mut cpu = resource("cpu");
        cpu.active = true;
        assert!(!decide(&input(3, vec![cpu, trigger("queue", false)])).active);
    }

    #[test]
    fn only_resource_triggers_with_error_are_not_forced() {
        let mut cpu = resource("cpu");
        cpu.error = Some("no metrics".into());
        let d = decide(&input(3, vec![cpu]));
        assert!(!d.active);
        assert_eq!(d.action, Action::None);
    }

    // ---- scalingModifiers -------------------------------------------------------------------

    fn composite(value: Option<f64>, activation_target: f64) -> Option<CompositeOutcome> {
        Some(CompositeOutcome {
            value,
            activation_target,
        })
    }

    #[test]
    fn composite_active_strictly_above_activation_target() {
        let mut i = input(0, vec![trigger("a", false), trigger("b", false)]);
        i.composite = composite(Some(2.5), 2.0);
        let d = decide(&i);
        assert!(d.active);
        assert_eq!(d.action, scale(1, ScaleKind::Activate));
        assert_eq!(
            d.events[0].message,
            "Scaled apps/v1.Deployment ns/web from 0 to 1, triggered by ModifiersTrigger"
        );
        i.composite = composite(Some(2.0), 2.0);
        assert!(!decide(&i).active);
        i.composite = composite(Some(0.0), 0.0);
        assert!(!decide(&i).active);
    }

    #[test]
    fn composite_overrides_trigger_activity() {
        let mut i = input(3, vec![trigger("a", true)]);
        i.composite = composite(Some(1.0), 5.0);
        let d = decide(&i);
        assert!(!d.active);
        assert_eq!(d.action, scale(0, ScaleKind::Deactivate));
        // triggersActivity still reports the raw per-metric activity.
        assert_eq!(
            d.triggers_activity,
            BTreeMap::from([("s0-a".to_owned(), true)])
        );
    }

    #[test]
    fn composite_with_trigger_error_is_inactive() {
        let mut i = input(0, vec![trigger("a", true), failing("b", 1)]);
        i.composite = composite(Some(10.0), 0.0);
        let d = decide(&i);
        assert!(!d.active);
        assert!(d.trigger_error);
        assert_eq!(d.action, Action::None);
    }

    // ---- difference 1: errors never scale in -------------------------------------------------

    #[test]
    fn difference_1_error_with_zero_fallback_replicas_does_not_scale_in() {
        // KEDA falls through to scale-to-zero here (fallback.replicas == 0).
        let mut i = input(3, vec![failing("a", 1)]);
        i.fallback = fallback(3, 0, FallbackBehavior::Static);
        let d = decide(&i);
        assert_eq!(d.action, Action::None);
        assert!(d.trigger_error);
        assert_eq!(d.last_active_time, i.last_active_time);
    }

    #[test]
    fn difference_1_errored_trigger_is_not_inactive() {
        // One inactive trigger and one erroring one: not "all inactive", so no scale to zero.
        let d = decide(&input(3, vec![trigger("a", false), failing("b", 1)]));
        assert_eq!(d.action, Action::None);
        assert!(!d.active);
        assert_eq!(
            d.ready,
            cond(
                ConditionStatus::False,
                REASON_TRIGGER_ERROR,
                MESSAGE_TRIGGER_ERROR
            )
        );
        // Nor scale to idle.
        let mut i = idle_mode(5, vec![failing("a", 1)]);
        i.fallback = fallback(3, 0, FallbackBehavior::Static);
        assert_eq!(decide(&i).action, Action::None);
    }

    #[test]
    fn difference_1_unevaluable_formula_does_not_scale_in() {
        let mut i = input(3, vec![trigger("a", false)]);
        i.composite = composite(None, 0.0);
        let d = decide(&i);
        assert_eq!(d.action, Action::None);
        assert!(d.trigger_error);
        assert_eq!(
            d.ready,
            cond(
                ConditionStatus::False,
                REASON_TRIGGER_ERROR,
                MESSAGE_TRIGGER_ERROR
            )
        );
    }

    // ---- difference 2: partial errors refresh lastActiveTime --------------------------------

    #[test]
    fn difference_2_partial_error_refreshes_last_active_time() {
        let mut i = input(4, vec![trigger("a", true), failing("b", 1)]);
        i.last_active_time = Some(t0() - secs(3600));
        let d = decide(&i);
        assert_eq!(d.last_active_time, Some(t0()), "KEDA would keep t0 - 1h");
        // So the next inactive poll is within the cooldown instead of scaling to zero.
        let mut next = input(4, inactive());
        next.now = t0() + secs(30);
        next.last_active_time = d.last_active_time;
        let d = decide(&next);
        assert_eq!(d.action, Action::None);
        assert_eq!(d.active_condition, cooling_down());
    }

    // ---- difference 3: fallback applies at zero replicas ------------------------------------

    #[test]
    fn difference_3_fallback_activates_from_zero() {
        let mut i = input(0, vec![failing("a", 4)]);
        i.fallback = fallback(3, 6, FallbackBehavior::Static);
        let d = decide(&i);
        assert_eq!(d.action, scale(1, ScaleKind::Activate));
        assert!(d.active);
        assert!(!d.trigger_error, "the fallback stands in for the error");
        assert_eq!(d.ready, ready());
        assert_eq!(d.active_condition, scaler_active());
        assert_eq!(
            d.events[0].message,
            "Scaled apps/v1.Deployment ns/web from 0 to 1, triggered by a"
        );
    }

    #[test]
    fn difference_3_fallback_activates_from_idle_to_min() {
        let mut i = idle_mode(0, vec![failing("a", 2)]);
        i.fallback = fallback(1, 6, FallbackBehavior::CurrentReplicasIfHigher);
        assert_eq!(decide(&i).action, scale(5, ScaleKind::Activate));
    }

    #[test]
    fn difference_3_fallback_only_past_the_threshold() {
        let mut i = input(0, vec![failing("a", 3)]);
        i.fallback = fallback(3, 6, FallbackBehavior::Static);
        let d = decide(&i);
        assert_eq!(d.action, Action::None);
        assert!(d.trigger_error);
    }

    #[test]
    fn difference_3_fallback_of_zero_replicas_stays_at_zero() {
        for behavior in [
            FallbackBehavior::CurrentReplicas,
            FallbackBehavior::CurrentReplicasIfLower,
        ] {
            let mut i = input(0, vec![failing("a", 4)]);
            i.fallback = fallback(3, 6, behavior);
            let d = decide(&i);
            assert_eq!(d.action, Action::None, "{behavior:?}");
            assert!(!d.active);
        }
        let mut i = input(0, vec![failing("a", 4)]);
        i.fallback = fallback(3, 0, FallbackBehavior::Static);
        assert_eq!(decide(&i).action, Action::None);
    }

    #[test]
    fn difference_3_explicit_zero_fallback_may_scale_in() {
        // Past the threshold, `replicas: 0` is the user asking for zero: no error, no activity.
        let mut i = input(3, vec![failing("a", 4)]);
        i.fallback = fallback(3, 0, FallbackBehavior::Static);
        let d = decide(&i);
        assert!(!d.trigger_error);
        assert_eq!(d.action, scale(0, ScaleKind::Deactivate));
    }

    #[test]
    fn difference_3_fallback_keeps_running_workloads_active() {
        let mut i = input(4, vec![failing("a", 10)]);
        i.fallback = fallback(3, 2, FallbackBehavior::CurrentReplicas);
        let d = decide(&i);
        assert!(d.active);
        assert_eq!(d.action, Action::None);
        assert_eq!(d.last_active_time, Some(t0()));
    }

    #[test]
    fn difference_3_fallback_does_not_cover_resource_triggers() {
        let mut cpu = resource("cpu");
        cpu.error = Some("no metrics".into());
        cpu.consecutive_failures = 9;
        let mut i = input(0, vec![cpu, trigger("q", false)]);
        i.fallback = fallback(1, 3, FallbackBehavior::Static);
        let d = decide(&i);
        assert!(!d.active);
        assert!(d.trigger_error);
    }

    #[test]
    fn difference_3_scaling_modifiers_fallback_uses_the_formula() {
        // Behaviour scalingModifiers: the failing trigger is nil in the formula; its value decides.
        let mut i = input(0, vec![trigger("a", false), failing("b", 4)]);
        i.fallback = fallback(3, 6, FallbackBehavior::ScalingModifiers);
        i.composite = composite(Some(0.0), 0.0);
        let d = decide(&i);
        assert!(!d.active);
        assert!(!d.trigger_error);
        assert_eq!(d.action, Action::None);
        i.composite = composite(Some(3.0), 0.0);
        assert_eq!(decide(&i).action, scale(1, ScaleKind::Activate));
        // The formula yields nothing: fallback.replicas stands in.
        i.composite = composite(None, 0.0);
        let d = decide(&i);
        assert!(!d.trigger_error);
        assert_eq!(d.action, scale(1, ScaleKind::Activate));
        i.fallback = fallback(3, 0, FallbackBehavior::ScalingModifiers);
        assert_eq!(decide(&i).action, Action::None);
    }

    #[test]
    fn difference_3_static_fallback_with_modifiers() {
        let mut i = input(0, vec![trigger("a", false), failing("b", 4)]);
        i.fallback = fallback(3, 6, FallbackBehavior::Static);
        i.composite = composite(None, 0.0);
        let d = decide(&i);
        assert!(!d.trigger_error);
        assert_eq!(d.action, scale(1, ScaleKind::Activate));
    }

    // ---- triggersActivity, scale failures, conditions, time helpers -------------------------

    #[test]
    fn triggers_activity_per_metric() {
        let mut errored_but_active = failing("c", 1);
        errored_but_active.active = true;
        let d = decide(&input(
            3,
            vec![trigger("a", true), trigger("b", false), errored_but_active],
        ));
        assert_eq!(
            d.triggers_activity,
            BTreeMap::from([
                ("s0-a".to_owned(), true),
                ("s0-b".to_owned(), false),
                ("s0-c".to_owned(), false)
            ])
        );
    }

    #[test]
    fn failed_activation_keeps_last_active_time_and_warns() {
        let i = input(0, active());
        let d = decide(&i).scale_failed(&i);
        assert_eq!(d.last_active_time, i.last_active_time);
        assert_eq!(
            d.events,
            [Event::warning(
                "KEDAScaleTargetActivationFailed",
                "Failed to scale apps/v1.Deployment ns/web from 0 to 1"
            )]
        );
    }

    #[test]
    fn a_write_superseded_by_a_change_of_the_target_says_nothing_and_keeps_the_last_activity() {
        let i = input(0, active());
        let d = decide(&i).superseded(&i);
        assert_eq!(d.last_active_time, i.last_active_time);
        assert!(d.events.is_empty(), "{:?}", d.events);
        let i = input(3, inactive());
        assert!(decide(&i).superseded(&i).events.is_empty());
    }

    #[test]
    fn failed_deactivation_warns() {
        let i = input(3, inactive());
        let d = decide(&i).scale_failed(&i);
        assert_eq!(
            d.events,
            [Event::warning(
                "KEDAScaleTargetDeactivationFailed",
                "Failed to deactivate apps/v1.Deployment ns/web from 3 to 0"
            )]
        );
        assert_eq!(d.events[0].type_.as_str(), "Warning");
        // Nothing to undo without a scale.
        let i = input(4, active());
        assert_eq!(decide(&i).scale_failed(&i), decide(&i));
    }

    #[test]
    fn failed_paused_scale_keeps_transition_events() {
        let mut i = input(3, inactive());
        i.pause.paused = true;
        i.pause.paused_replicas = Some(0);
        let d = decide(&i).scale_failed(&i);
        assert_eq!(d.events, [Event::normal(REASON_PAUSED, MESSAGE_PAUSED)]);
    }

    #[test]
    fn condition_change_apply() {
        let mut status = crate::crd::ScaledObjectStatus {
            conditions: Some(vec![crate::crd::Condition {
                type_: "Ready".into(),
                status: "Unknown".into(),
                reason: None,
                message: None,
            }]),
            ..Default::default()
        };
        let len = |s: &crate::crd::ScaledObjectStatus| s.conditions.as_ref().map_or(0, Vec::len);
        assert!(ready().apply(&mut status, ConditionType::Ready).changed());
        assert!(
            !ready().apply(&mut status, ConditionType::Ready).changed(),
            "unchanged"
        );
        let conditions = status.conditions.clone().unwrap();
        assert_eq!(conditions[0].status, "True");
        assert_eq!(conditions[0].reason.as_deref(), Some("ScaledObjectReady"));
        assert!(
            scaler_active()
                .apply(&mut status, ConditionType::Active)
                .changed()
        );
        assert_eq!(len(&status), 2);
        assert!(
            !ConditionChange::Keep
                .apply(&mut status, ConditionType::Paused)
                .changed()
        );
        assert_eq!(len(&status), 2);
        assert_eq!(
            ConditionChange::Keep.to_condition(ConditionType::Paused),
            None
        );
    }

    #[test]
    fn k8s_time_round_trip() {
        let t = t0() + TimeDelta::milliseconds(250);
        let k = to_k8s_time(t).unwrap();
        assert_eq!(k.0.as_second(), 1_700_000_000);
        assert_eq!(from_k8s_time(&k), Some(t));
    }
}
