//! The pause annotations, parsed as KEDA parses them, and what a pause does: one plan that the
//! reconciler (which owns the HPA) and the scale loop (which owns the replicas) both follow.

use std::collections::BTreeMap;

use super::conditions::{
    ConditionChange, ConditionStatus, MESSAGE_PAUSED, MESSAGE_UNPAUSED, REASON_PAUSED,
    REASON_READY, REASON_UNPAUSED,
};
use super::event::{EVENT_PAUSED, EVENT_UNPAUSED, Event};
use crate::crd::scaled_object::{PAUSED_ANNOTATION, PAUSED_REPLICAS_ANNOTATION};

/// Annotation that blocks KEDA's scale-in to idle/zero and the HPA's scale-down.
pub const PAUSED_SCALE_IN_ANNOTATION: &str = "autoscaling.keda.sh/paused-scale-in";
/// Annotation that blocks KEDA's scale-out from idle/zero and the HPA's scale-up.
pub const PAUSED_SCALE_OUT_ANNOTATION: &str = "autoscaling.keda.sh/paused-scale-out";
/// Annotation that makes the ScaledObject active whatever its triggers say.
pub const FORCE_ACTIVATION_ANNOTATION: &str = "autoscaling.keda.sh/force-activation";

/// The pause and activation annotations of a ScaledObject, parsed as KEDA parses them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pause {
    /// Fully paused: `paused` is true-ish, or `paused-replicas` is present (any value).
    pub paused: bool,
    /// The replica count of `paused-replicas` when it is a non-negative int32.
    pub paused_replicas: Option<i32>,
    /// `paused-scale-in` is true-ish: no scale to idle/zero, HPA scale-down disabled.
    pub paused_scale_in: bool,
    /// `paused-scale-out` is true-ish: no scale from idle/zero, HPA scale-up disabled.
    pub paused_scale_out: bool,
    /// `force-activation` is true-ish: the object is active whatever its triggers say.
    pub force_activation: bool,
}

impl Pause {
    /// Parse the annotations as KEDA does.
    ///
    /// Boolean annotations go through Go's `strconv.ParseBool` (`1 t T TRUE true True` and
    /// `0 f F FALSE false False`); a present value that is not a boolean, even an empty one,
    /// counts as `true`, as in KEDA's `getBoolAnnotation`. `paused-replicas` pauses by its mere
    /// presence; its value is a replica count when it parses as an int32 (`strconv.ParseInt(v,
    /// 10, 32)`), and a negative or unparsable value pauses without a count.
    pub fn from_annotations(annotations: &BTreeMap<String, String>) -> Self {
        let paused_replicas_value = annotations.get(PAUSED_REPLICAS_ANNOTATION);
        Self {
            paused: paused_replicas_value.is_some()
                || bool_annotation(annotations, PAUSED_ANNOTATION),
            paused_replicas: paused_replicas_value
                .and_then(|v| v.parse::<i32>().ok())
                .filter(|n| *n >= 0),
            paused_scale_in: bool_annotation(annotations, PAUSED_SCALE_IN_ANNOTATION),
            paused_scale_out: bool_annotation(annotations, PAUSED_SCALE_OUT_ANNOTATION),
            force_activation: bool_annotation(annotations, FORCE_ACTIVATION_ANNOTATION),
        }
    }

    /// Whether the `Paused` condition is True: fully paused or paused in one direction.
    pub fn any(&self) -> bool {
        self.paused || self.paused_scale_in || self.paused_scale_out
    }

    /// What this pause does to an object that was `previously_paused` (`Paused=True` before)
    /// and whose target has `current_replicas` (`None` when not read: then a `paused-replicas`
    /// count is always written).
    pub fn plan(&self, previously_paused: bool, current_replicas: Option<i32>) -> PausePlan {
        let mut plan = PausePlan {
            paused: ConditionChange::Keep,
            ready: None,
            scale_to: None,
            events: Vec::new(),
        };
        if self.any() {
            plan.paused =
                ConditionChange::set(ConditionStatus::True, REASON_PAUSED, MESSAGE_PAUSED);
            if !previously_paused {
                plan.events
                    .push(Event::normal(EVENT_PAUSED, MESSAGE_PAUSED));
            }
        } else if previously_paused {
            plan.paused =
                ConditionChange::set(ConditionStatus::False, REASON_UNPAUSED, MESSAGE_UNPAUSED);
            plan.events
                .push(Event::normal(EVENT_UNPAUSED, MESSAGE_UNPAUSED));
        }
        if self.paused {
            plan.ready = Some(ConditionChange::set(
                ConditionStatus::True,
                REASON_READY,
                MESSAGE_PAUSED,
            ));
            plan.scale_to = self
                .paused_replicas
                .filter(|n| Some(*n) != current_replicas);
        }
        plan
    }
}

/// What a pause (or its end) does, as plain data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PausePlan {
    /// The `Paused` condition.
    pub paused: ConditionChange,
    /// `Ready=True` with the paused message while fully paused; `None` when not fully paused
    /// (the triggers decide `Ready` then).
    pub ready: Option<ConditionChange>,
    /// The `paused-replicas` count to write when the target is not there yet.
    pub scale_to: Option<i32>,
    /// `ScaledObjectPaused` / `ScaledObjectUnpaused` on a transition.
    pub events: Vec<Event>,
}

impl PausePlan {
    /// Fully paused: nothing but the pause itself acts on the object.
    pub fn fully_paused(&self) -> bool {
        self.ready.is_some()
    }
}

/// Go's `strconv.ParseBool`: `Some` for the twelve spellings it accepts, `None` otherwise.
pub fn parse_go_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

fn bool_annotation(annotations: &BTreeMap<String, String>, key: &str) -> bool {
    // KEDA: "if annotation value is not a boolean, we assume true".
    annotations
        .get(key)
        .is_some_and(|v| parse_go_bool(v).unwrap_or(true))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pause(pairs: &[(&str, &str)]) -> Pause {
        let annotations = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Pause::from_annotations(&annotations)
    }

    #[test]
    fn a_full_pause_holds_ready_and_writes_the_paused_count_once() {
        let p = pause(&[(PAUSED_REPLICAS_ANNOTATION, "2")]);
        let plan = p.plan(false, Some(5));
        assert!(plan.fully_paused());
        assert_eq!(plan.scale_to, Some(2));
        assert_eq!(plan.events, [Event::normal(EVENT_PAUSED, MESSAGE_PAUSED)]);
        // At the count, and already paused: nothing to write, no second Event.
        let plan = p.plan(true, Some(2));
        assert_eq!(plan.scale_to, None);
        assert!(plan.events.is_empty());
        // The replicas were not read: the count is written.
        assert_eq!(p.plan(true, None).scale_to, Some(2));
    }

    #[test]
    fn a_one_way_pause_stays_paused_without_flapping() {
        // The reconciler and the scale loop follow the same plan, so a reconcile of an object
        // paused for scale-in only keeps Paused=True and emits nothing (it used to unpause it,
        // and the next poll paused it again with a new Event).
        let p = pause(&[(PAUSED_SCALE_IN_ANNOTATION, "true")]);
        let plan = p.plan(true, None);
        assert!(!plan.fully_paused());
        assert_eq!(
            plan.paused,
            ConditionChange::set(ConditionStatus::True, REASON_PAUSED, MESSAGE_PAUSED)
        );
        assert!(plan.events.is_empty());
    }

    #[test]
    fn removing_the_pause_unpauses_once() {
        let plan = Pause::default().plan(true, Some(1));
        assert_eq!(
            plan.paused,
            ConditionChange::set(ConditionStatus::False, REASON_UNPAUSED, MESSAGE_UNPAUSED)
        );
        assert_eq!(
            plan.events,
            [Event::normal(EVENT_UNPAUSED, MESSAGE_UNPAUSED)]
        );
        assert_eq!(
            Pause::default().plan(false, Some(1)).paused,
            ConditionChange::Keep
        );
    }
}
