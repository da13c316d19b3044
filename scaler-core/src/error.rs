//! [`ScalerError`]: everything that can go wrong building or polling a scaler.

use std::time::Duration;

use crate::config::TriggerId;

/// A boxed error from a client library, kept as the source of a [`ScalerError`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An error of a scaler, while building it from its trigger or while polling its source.
///
/// Every variant names the trigger it belongs to, so a message reaching a status condition or an
/// Event is actionable on its own.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScalerError {
    /// No factory is registered for `triggers[].type`. The message is KEDA's.
    #[error("no scaler found for type: {trigger_type}")]
    UnknownType {
        /// The type that was asked for.
        trigger_type: String,
    },

    /// The trigger's parameters are invalid. `problems` holds one message per parameter.
    #[error("{trigger}: {}", problems.join("; "))]
    InvalidConfig {
        /// The trigger.
        trigger: TriggerId,
        /// What is wrong, one entry per parameter (e.g. `missing required parameter "start" in [triggerMetadata]`).
        problems: Vec<String>,
    },

    /// The data source answered with an error or could not be reached.
    #[error("{trigger}: {message}")]
    Source {
        /// The trigger.
        trigger: TriggerId,
        /// What failed, in words a user can act on.
        message: String,
        /// The underlying client error, if any.
        #[source]
        source: Option<BoxError>,
    },

    /// The data source did not answer in time.
    #[error("{trigger}: no answer from the source within {timeout:?}")]
    Timeout {
        /// The trigger.
        trigger: TriggerId,
        /// The limit that passed.
        timeout: Duration,
    },
}

impl ScalerError {
    /// An invalid-configuration error with a single problem.
    pub fn invalid(trigger: &TriggerId, problem: impl Into<String>) -> Self {
        Self::InvalidConfig {
            trigger: trigger.clone(),
            problems: vec![problem.into()],
        }
    }

    /// A source error with a message and no underlying cause.
    pub fn source(trigger: &TriggerId, message: impl Into<String>) -> Self {
        Self::Source {
            trigger: trigger.clone(),
            message: message.into(),
            source: None,
        }
    }

    /// A source error wrapping a client error; the client error's text is appended to `message`.
    pub fn source_with(
        trigger: &TriggerId,
        message: impl Into<String>,
        err: impl Into<BoxError>,
    ) -> Self {
        let err = err.into();
        Self::Source {
            trigger: trigger.clone(),
            message: format!("{}: {err}", message.into()),
            source: Some(err),
        }
    }

    /// The trigger the error belongs to, if it belongs to one.
    pub fn trigger(&self) -> Option<&TriggerId> {
        match self {
            Self::UnknownType { .. } => None,
            Self::InvalidConfig { trigger, .. }
            | Self::Source { trigger, .. }
            | Self::Timeout { trigger, .. } => Some(trigger),
        }
    }
}
