//! Why a ScaledObject cannot be acted on: what the user sees in `Ready=False` and in the
//! `ScaledObjectCheckFailed` Event. Messages are KEDA's where KEDA has one.

use std::time::Duration;

use scaler_core::{ScalerError, TriggerId};

use crate::policy::conditions::REASON_CHECK_FAILED;
use crate::resolve::ResolveError;
use crate::target::TargetError;

/// A reconcile step found the object unusable. Unlike [`super::Error`] this is not retried
/// sooner than the resync: it needs the user (or a referenced object) to change.
#[derive(Debug, thiserror::Error)]
pub enum NotReady {
    /// KEDA's admission rules reject the spec (what its webhook would have refused).
    #[error("{}", .0.join("; "))]
    InvalidSpec(Vec<String>),
    /// A `cpu`/`memory` trigger is invalid (`<trigger>: <why>`).
    #[error("{0}")]
    InvalidTrigger(String),
    /// `scaleTargetRef` names nothing that can be scaled.
    #[error("ScaledObject doesn't have correct scaleTargetRef specification: {0}")]
    ScaleTarget(#[source] TargetError),
    /// Writing the `paused-replicas` count failed.
    #[error("failed to scale to paused-replicas {replicas}: {source}")]
    PausedReplicas {
        /// The count of the annotation.
        replicas: i32,
        /// What the API said.
        #[source]
        source: TargetError,
    },
    /// A Secret or ConfigMap the object references cannot be read (RBAC, admission).
    #[error("cannot read {kind} {namespace}/{name}: {message}")]
    Unreadable {
        /// `Secret` or `ConfigMap`.
        kind: &'static str,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The API server's reason; it names the object, never its data.
        message: String,
    },
    /// A Secret or ConfigMap a TriggerAuthentication names does not exist.
    #[error("{referenced_by} references {kind} {namespace}/{name}, which does not exist")]
    Missing {
        /// `Secret` or `ConfigMap`.
        kind: &'static str,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The TriggerAuthentication or ClusterTriggerAuthentication naming it.
        referenced_by: String,
    },
    /// The scale target's container environment cannot be resolved.
    #[error("error resolving secrets for ScaleTarget: {0}")]
    Env(#[source] ResolveError),
    /// A scaler factory rejected its trigger.
    #[error("error building scalers: {0}")]
    ScalerBuild(#[source] ScalerError),
    /// A scaler reported no metric.
    #[error("{0}: got empty metric spec")]
    EmptyMetricSpec(TriggerId),
    /// A scaler could not say its metric specs.
    #[error("error getting metric specs: {0}")]
    MetricSpecs(#[source] ScalerError),
    /// A scaler did not say its metric specs in time.
    #[error("{trigger}: no metric specs within {timeout:?}")]
    MetricSpecsTimeout {
        /// Which trigger.
        trigger: TriggerId,
        /// How long it had.
        timeout: Duration,
    },
    /// The HPA cannot be planned from the spec.
    #[error("{0}")]
    Hpa(String),
}

impl NotReady {
    /// The reason of the `Ready=False` condition and of the Warning Event. KEDA uses one reason
    /// for every reconcile failure, so alerts written for KEDA keep matching.
    pub fn reason(&self) -> &'static str {
        REASON_CHECK_FAILED
    }

    /// Whether the cause may go away without any watched object changing, so the object is
    /// tried again soon (with backoff) rather than at the next resync: kedge watches no
    /// workloads, so a scale target created after its ScaledObject is only seen by asking.
    pub fn retry_soon(&self) -> bool {
        matches!(self, Self::ScaleTarget(_) | Self::PausedReplicas { .. })
    }

    /// A short, stable name of the failure kind, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::InvalidSpec(_) | Self::InvalidTrigger(_) | Self::Hpa(_) => "invalid_spec",
            Self::ScaleTarget(_) | Self::PausedReplicas { .. } => "scale_target",
            Self::Unreadable { .. } => "forbidden",
            Self::Env(_) | Self::Missing { .. } => "resolution",
            Self::ScalerBuild(_)
            | Self::EmptyMetricSpec(_)
            | Self::MetricSpecs(_)
            | Self::MetricSpecsTimeout { .. } => "scaler_build",
        }
    }
}

/// Why a step stopped the reconcile.
#[derive(Debug)]
pub(super) enum Halt {
    /// The object is unusable as it is.
    NotReady(NotReady),
    /// A request failed; the reconcile is retried.
    Retry(super::Error),
}

impl From<NotReady> for Halt {
    fn from(n: NotReady) -> Self {
        Self::NotReady(n)
    }
}

impl From<super::Error> for Halt {
    fn from(e: super::Error) -> Self {
        Self::Retry(e)
    }
}

impl From<kube::Error> for Halt {
    fn from(e: kube::Error) -> Self {
        Self::Retry(e.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_kedas_and_name_what_failed() {
        assert_eq!(
            NotReady::InvalidSpec(vec!["a".into(), "b".into()]).to_string(),
            "a; b"
        );
        let unreadable = NotReady::Unreadable {
            kind: "Secret",
            namespace: "shop".into(),
            name: "creds".into(),
            message: "secrets \"creds\" is forbidden".into(),
        };
        assert_eq!(
            unreadable.to_string(),
            "cannot read Secret shop/creds: secrets \"creds\" is forbidden"
        );
        assert_eq!(unreadable.reason(), "ScaledObjectCheckFailed");
        assert_eq!(unreadable.kind(), "forbidden");
        let id = TriggerId {
            index: 1,
            trigger_type: "kafka".into(),
            name: None,
        };
        assert_eq!(
            NotReady::EmptyMetricSpec(id).to_string(),
            "triggers[1] (kafka): got empty metric spec"
        );
    }
}
