//! The seam between the adapter and whatever owns the metric values: the operator implements
//! [`MetricsProvider`] on top of its scale loop's cache, scalers, fallback and scalingModifiers.

use async_trait::async_trait;
use scaler_core::MetricValue;

/// Where the adapter gets metric values from.
///
/// The adapter calls it once per HPA request, under its own timeout
/// ([`crate::config::AdapterConfig::provider_timeout`]); a call that does not finish in time is
/// dropped and the HPA gets a `504 Timeout` Status. Implementations should therefore be
/// cancel-safe (a dropped future must not leave shared state half-written).
#[async_trait]
pub trait MetricsProvider: Send + Sync + 'static {
    /// Values of `metric_name` for the ScaledObject `namespace/scaled_object`.
    ///
    /// `metric_name` is passed exactly as the HPA sent it; the provider matches it against the
    /// ScaledObject's metric names case-insensitively, as KEDA does. The returned values'
    /// `metric_name` is what the HPA sees in `items[].metricName`.
    async fn metric(
        &self,
        namespace: &str,
        scaled_object: &str,
        metric_name: &str,
    ) -> Result<Vec<MetricValue>, ProviderError>;
}

/// Why a provider could not answer. Each variant maps to one HTTP status of the Kubernetes
/// `Status` the HPA receives (and one gRPC code on the follower link).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// No ScaledObject `namespace/name` is known: 404 NotFound.
    #[error("ScaledObject not found")]
    ScaledObjectNotFound,
    /// The ScaledObject has no external metric of that name: 404 NotFound.
    #[error("metric not found")]
    MetricNotFound,
    /// This replica is not the leader and holds no values; the adapter forwards the read to the
    /// leader when it runs with [`crate::grpc::ForwardingProvider`], else 503.
    #[error("this replica is not the leader")]
    NotLeader,
    /// The trigger failed and no fallback applies; the message (the scaler's error) is shown by
    /// the HPA under `FailedGetExternalMetric`: 500 InternalError.
    #[error("{0}")]
    Failed(String),
    /// The values cannot be had right now (e.g. the leader is unreachable and no recent value
    /// is known): 503 ServiceUnavailable.
    #[error("{0}")]
    Unavailable(String),
}
