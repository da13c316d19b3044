//! The ScaledObject's `status.conditions`: their types, KEDA's reasons and messages, and the one
//! setter every writer goes through (it keeps KEDA's order and says whether the status flipped,
//! the moment KEDA emits a transition Event).

use crate::crd::{Condition, ScaledObjectStatus};

/// A condition type of `status.conditions`, in the order KEDA keeps them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ConditionType {
    /// `Ready`: the object is valid and its triggers work.
    Ready,
    /// `Active`: some trigger is above its activation threshold.
    Active,
    /// `Fallback`: some metric is replaced by `spec.fallback`.
    Fallback,
    /// `Paused`: a pause annotation is set.
    Paused,
}

impl ConditionType {
    /// Every type, in KEDA's order (also the order of [`initial`]).
    pub const ALL: [ConditionType; 4] = [Self::Ready, Self::Active, Self::Fallback, Self::Paused];

    /// The type as written in `status.conditions[].type`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ready => "Ready",
            Self::Active => "Active",
            Self::Fallback => "Fallback",
            Self::Paused => "Paused",
        }
    }

    fn position(type_: &str) -> usize {
        Self::ALL
            .iter()
            .position(|t| t.as_str() == type_)
            .unwrap_or(Self::ALL.len())
    }
}

/// Status of a condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConditionStatus {
    /// `True`.
    True,
    /// `False`.
    False,
    /// `Unknown`.
    Unknown,
}

impl ConditionStatus {
    /// The status as written in `status.conditions[].status`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::True => "True",
            Self::False => "False",
            Self::Unknown => "Unknown",
        }
    }
}

/// Reason of `Ready=True`.
pub const REASON_READY: &str = "ScaledObjectReady";
/// Message of `Ready=True`.
pub const MESSAGE_READY: &str = "ScaledObject is defined correctly and is ready for scaling";
/// Reason of `Ready=False` when the object cannot be used (invalid spec, target, auth, scalers).
pub const REASON_CHECK_FAILED: &str = "ScaledObjectCheckFailed";
/// Reason of `Active=Unknown` while the object cannot be used.
pub const REASON_UNKNOWN_STATE: &str = "UnknownState";
/// Message of `Active=Unknown/UnknownState`.
pub const MESSAGE_CHECK_FAILED: &str = "ScaledObject check failed";
/// Reason of `Ready=False` when the target's replicas cannot be read during a poll.
pub const REASON_ERROR_GETTING_REPLICAS: &str = "ErrorGettingCurrentReplicas";
/// Reason of `Ready=Unknown` when an active object has an erroring trigger.
pub const REASON_PARTIAL_TRIGGER_ERROR: &str = "PartialTriggerError";
/// Message of `Ready=Unknown/PartialTriggerError`.
pub const MESSAGE_PARTIAL_TRIGGER_ERROR: &str =
    "Some triggers defined in ScaledObject are not working correctly";
/// Reason of `Ready=False` when an inactive object without fallback has an erroring trigger.
pub const REASON_TRIGGER_ERROR: &str = "TriggerError";
/// Message of `Ready=False/TriggerError`.
pub const MESSAGE_TRIGGER_ERROR: &str =
    "Triggers defined in ScaledObject are not working correctly";
/// Reason of `Active=True`.
pub const REASON_SCALER_ACTIVE: &str = "ScalerActive";
/// Message of `Active=True` when a trigger is active.
pub const MESSAGE_SCALER_ACTIVE: &str = "Scaling is performed because triggers are active";
/// Message of `Active=True` when the force-activation annotation is set.
pub const MESSAGE_SCALER_ACTIVE_FORCED: &str =
    "Scaling is performed because activation is being forced by annotation";
/// Reason of `Active=False`.
pub const REASON_SCALER_NOT_ACTIVE: &str = "ScalerNotActive";
/// Message of `Active=False/ScalerNotActive`.
pub const MESSAGE_SCALER_NOT_ACTIVE: &str =
    "Scaling is not performed because triggers are not active";
/// Reason of `Active=False` while the cooldown runs.
pub const REASON_SCALER_COOLDOWN: &str = "ScalerCooldown";
/// Message of `Active=False/ScalerCooldown`.
pub const MESSAGE_SCALER_COOLDOWN: &str = "Scaler cooling down because triggers are not active";
/// Reason of `Paused=True` (and of the Event when the object becomes paused).
pub const REASON_PAUSED: &str = "ScaledObjectPaused";
/// Message of `Paused=True`, and of `Ready=True` while fully paused.
pub const MESSAGE_PAUSED: &str = "ScaledObject is paused";
/// Reason of `Paused=False` after a pause (and of the Event when the object is unpaused).
pub const REASON_UNPAUSED: &str = "ScaledObjectUnpaused";
/// Message of `Paused=False/ScaledObjectUnpaused`.
pub const MESSAGE_UNPAUSED: &str = "pause annotation removed for ScaledObject";
/// Reason of `Fallback=True`.
pub const REASON_FALLBACK_EXISTS: &str = "FallbackExists";
/// Message of `Fallback=True`.
pub const MESSAGE_FALLBACK_EXISTS: &str =
    "At least one trigger is falling back on this scaled object";
/// Reason of `Fallback=False`.
pub const REASON_NO_FALLBACK_FOUND: &str = "NoFallbackFound";
/// Message of `Fallback=False`.
pub const MESSAGE_NO_FALLBACK_FOUND: &str = "No fallbacks are active on this scaled object";

/// KEDA's initial conditions: Ready/Active/Fallback Unknown, Paused False.
pub fn initial() -> Vec<Condition> {
    ConditionType::ALL
        .into_iter()
        .map(|t| Condition {
            type_: t.as_str().to_owned(),
            status: if t == ConditionType::Paused {
                ConditionStatus::False
            } else {
                ConditionStatus::Unknown
            }
            .as_str()
            .to_owned(),
            reason: None,
            message: None,
        })
        .collect()
}

/// The condition of type `type_`, if present.
pub fn get(status: &ScaledObjectStatus, type_: ConditionType) -> Option<&Condition> {
    status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == type_.as_str())
}

/// Whether condition `type_` has status `value`.
pub fn is(status: &ScaledObjectStatus, type_: ConditionType, value: ConditionStatus) -> bool {
    get(status, type_).is_some_and(|c| c.status == value.as_str())
}

/// What a [`ConditionChange`] did to `status.conditions`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The condition was already exactly so.
    Unchanged,
    /// Reason or message changed; the status did not.
    Updated,
    /// The status flipped (or the condition is new): KEDA emits its transition Event now.
    Transitioned,
}

impl Applied {
    /// Whether the status of the condition flipped.
    pub fn transitioned(self) -> bool {
        self == Self::Transitioned
    }

    /// Whether anything about the condition changed.
    pub fn changed(self) -> bool {
        self != Self::Unchanged
    }
}

/// The longest condition message written, in bytes. Messages may quote a tenant's values (a
/// megabyte of them, escaped six times over): each is written into the status, an Event and the
/// log at every change.
pub const MAX_MESSAGE_BYTES: usize = 4096;

/// `message` cut to at most [`MAX_MESSAGE_BYTES`] on a character boundary, `…` marking the cut.
pub fn bounded_message(mut message: String) -> String {
    if message.len() > MAX_MESSAGE_BYTES {
        let mut end = MAX_MESSAGE_BYTES - '…'.len_utf8();
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push('…');
    }
    message
}

/// What to do with one condition of `status.conditions`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConditionChange {
    /// Leave it as it is.
    Keep,
    /// Set it to this status, reason and message.
    Set {
        /// The new status.
        status: ConditionStatus,
        /// KEDA's reason.
        reason: &'static str,
        /// KEDA's message.
        message: String,
    },
}

impl ConditionChange {
    /// A [`ConditionChange::Set`].
    pub fn set(status: ConditionStatus, reason: &'static str, message: impl Into<String>) -> Self {
        Self::Set {
            status,
            reason,
            message: bounded_message(message.into()),
        }
    }

    /// The condition of type `type_` this change sets, or `None` for [`ConditionChange::Keep`].
    pub fn to_condition(&self, type_: ConditionType) -> Option<Condition> {
        match self {
            Self::Keep => None,
            Self::Set {
                status,
                reason,
                message,
            } => Some(Condition {
                type_: type_.as_str().to_owned(),
                status: status.as_str().to_owned(),
                reason: Some((*reason).to_owned()),
                message: Some(message.clone()),
            }),
        }
    }

    /// Applies the change to condition `type_` of `status` — the one setter of conditions.
    ///
    /// A status without conditions gets KEDA's [`initial`] set first; the conditions stay in
    /// KEDA's order.
    pub fn apply(&self, status: &mut ScaledObjectStatus, type_: ConditionType) -> Applied {
        let Some(new) = self.to_condition(type_) else {
            return Applied::Unchanged;
        };
        let conditions = status.conditions.get_or_insert_with(initial);
        let applied = match conditions.iter_mut().find(|c| c.type_ == new.type_) {
            Some(existing) if *existing == new => return Applied::Unchanged,
            Some(existing) => {
                let flipped = existing.status != new.status;
                *existing = new;
                if flipped {
                    Applied::Transitioned
                } else {
                    Applied::Updated
                }
            }
            None => {
                conditions.push(new);
                Applied::Transitioned
            }
        };
        conditions.sort_by_key(|c| ConditionType::position(&c.type_));
        applied
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn messages_are_bounded_on_a_character_boundary() {
        assert_eq!(bounded_message("short".into()), "short");
        let exact = "x".repeat(MAX_MESSAGE_BYTES);
        assert_eq!(bounded_message(exact.clone()), exact);
        let long = format!("x{}", "é".repeat(MAX_MESSAGE_BYTES));
        let cut = bounded_message(long);
        assert!(
            cut.len() <= MAX_MESSAGE_BYTES && cut.ends_with('…'),
            "{}",
            cut.len()
        );
        let ConditionChange::Set { message, .. } = ConditionChange::set(
            ConditionStatus::False,
            REASON_CHECK_FAILED,
            "y".repeat(1 << 20),
        ) else {
            unreachable!()
        };
        assert_eq!(message.len(), MAX_MESSAGE_BYTES);
    }

    fn types(s: &ScaledObjectStatus) -> Vec<&str> {
        s.conditions
            .iter()
            .flatten()
            .map(|c| c.type_.as_str())
            .collect()
    }

    #[test]
    fn conditions_keep_keda_order_and_report_transitions() {
        let mut s = ScaledObjectStatus::default();
        let active = |message: &str| {
            ConditionChange::set(ConditionStatus::True, REASON_SCALER_ACTIVE, message)
        };
        assert!(
            active(MESSAGE_SCALER_ACTIVE)
                .apply(&mut s, ConditionType::Active)
                .transitioned()
        );
        assert!(
            !active("again")
                .apply(&mut s, ConditionType::Active)
                .transitioned()
        );
        assert!(
            ConditionChange::set(ConditionStatus::True, REASON_READY, MESSAGE_READY)
                .apply(&mut s, ConditionType::Ready)
                .transitioned()
        );
        assert_eq!(types(&s), ["Ready", "Active", "Fallback", "Paused"]);
        assert!(is(&s, ConditionType::Fallback, ConditionStatus::Unknown));
    }

    #[test]
    fn unchanged_updated_and_transitioned_are_told_apart() {
        let mut s = ScaledObjectStatus::default();
        let ready = ConditionChange::set(ConditionStatus::True, REASON_READY, MESSAGE_READY);
        assert_eq!(
            ready.apply(&mut s, ConditionType::Ready),
            Applied::Transitioned
        );
        assert_eq!(
            ready.apply(&mut s, ConditionType::Ready),
            Applied::Unchanged
        );
        let paused = ConditionChange::set(ConditionStatus::True, REASON_READY, MESSAGE_PAUSED);
        assert_eq!(paused.apply(&mut s, ConditionType::Ready), Applied::Updated);
        assert_eq!(
            ConditionChange::Keep.apply(&mut s, ConditionType::Ready),
            Applied::Unchanged
        );
    }

    #[test]
    fn a_condition_missing_from_a_foreign_status_is_added_in_order() {
        let mut s = ScaledObjectStatus {
            conditions: Some(vec![Condition {
                type_: "Paused".into(),
                status: "False".into(),
                reason: None,
                message: None,
            }]),
            ..Default::default()
        };
        ConditionChange::set(ConditionStatus::True, REASON_READY, MESSAGE_READY)
            .apply(&mut s, ConditionType::Ready);
        assert_eq!(types(&s), ["Ready", "Paused"]);
    }

    #[test]
    fn condition_lookup() {
        let status = ScaledObjectStatus {
            conditions: Some(vec![Condition {
                type_: "Ready".into(),
                status: "True".into(),
                reason: None,
                message: None,
            }]),
            ..Default::default()
        };
        assert_eq!(get(&status, ConditionType::Ready).unwrap().status, "True");
        assert!(get(&status, ConditionType::Active).is_none());
    }
}
