//! Kubernetes Events the pure layer asks for, with KEDA's reasons (`pkg/eventreason`).

pub use super::conditions::{REASON_PAUSED as EVENT_PAUSED, REASON_UNPAUSED as EVENT_UNPAUSED};

/// A successful scale from zero/idle.
pub const EVENT_SCALE_TARGET_ACTIVATED: &str = "KEDAScaleTargetActivated";
/// A failed scale from zero/idle.
pub const EVENT_SCALE_TARGET_ACTIVATION_FAILED: &str = "KEDAScaleTargetActivationFailed";
/// A successful scale to zero/idle.
pub const EVENT_SCALE_TARGET_DEACTIVATED: &str = "KEDAScaleTargetDeactivated";
/// A failed scale to zero/idle.
pub const EVENT_SCALE_TARGET_DEACTIVATION_FAILED: &str = "KEDAScaleTargetDeactivationFailed";
/// The fallback starts to apply.
pub const EVENT_FALLBACK_ACTIVATED: &str = "ScaledObjectFallbackActivated";
/// Message of [`EVENT_FALLBACK_ACTIVATED`].
pub const MESSAGE_FALLBACK_ACTIVATED: &str = "ScaledObject fallback is active";
/// The fallback stops applying.
pub const EVENT_FALLBACK_DEACTIVATED: &str = "ScaledObjectFallbackDeactivated";
/// Message of [`EVENT_FALLBACK_DEACTIVATED`].
pub const MESSAGE_FALLBACK_DEACTIVATED: &str = "ScaledObject fallback is no longer active";
/// The object became Ready.
pub const EVENT_READY: &str = "ScaledObjectReady";
/// Message of [`EVENT_READY`].
pub const MESSAGE_READY: &str = "ScaledObject is ready for scaling";
/// The object cannot be used (same reason as its `Ready=False` condition).
pub const EVENT_CHECK_FAILED: &str = super::conditions::REASON_CHECK_FAILED;
/// A scaler could not be built.
pub const EVENT_SCALER_FAILED: &str = "KEDAScalerFailed";
/// Information about the scalers (e.g. a pod identity kedge does not resolve).
pub const EVENT_SCALER_INFO: &str = "KEDAScalerInfo";
/// The scalers of a new object started.
pub const EVENT_SCALERS_STARTED: &str = "KEDAScalersStarted";
/// Message of [`EVENT_SCALERS_STARTED`].
pub const MESSAGE_SCALERS_STARTED: &str = "Started scalers watch";
/// The object was deleted.
pub const EVENT_DELETED: &str = "ScaledObjectDeleted";
/// Message of [`EVENT_DELETED`].
pub const MESSAGE_DELETED: &str = "ScaledObject was deleted";

/// Type of a Kubernetes Event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// `Normal`.
    Normal,
    /// `Warning`.
    Warning,
}

impl EventType {
    /// The type as written in an Event.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "Normal",
            Self::Warning => "Warning",
        }
    }
}

/// A Kubernetes Event to record on the ScaledObject.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// `Normal` or `Warning`.
    pub type_: EventType,
    /// KEDA's reason (`pkg/eventreason`).
    pub reason: &'static str,
    /// KEDA's message.
    pub message: String,
}

impl Event {
    /// A `Normal` Event.
    pub fn normal(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            type_: EventType::Normal,
            reason,
            message: message.into(),
        }
    }

    /// A `Warning` Event.
    pub fn warning(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            type_: EventType::Warning,
            reason,
            message: message.into(),
        }
    }
}
