//! The [`Scaler`] and [`ScalerFactory`] traits.

use async_trait::async_trait;

use crate::{MetricSpec, MetricsAndActivity, ParamSpec, ScalerConfig, ScalerError};

/// A live scaler for one trigger of one ScaledObject.
///
/// kedge calls [`Scaler::metrics_and_activity`] at every `pollingInterval` (to decide between
/// zero and one replica) and whenever the HPA asks for the metric (unless `useCachedMetrics`).
/// Every call runs under a timeout and may run concurrently with others, so implementations
/// take `&self` and keep any connection state behind interior mutability or a shared client
/// (see [`crate::SharedClients`]).
#[async_trait]
pub trait Scaler: Send + Sync {
    /// The External metrics this trigger feeds to the HPA. Names already carry the
    /// `s<index>-` prefix ([`ScalerConfig::metric_name`]).
    ///
    /// Most scalers know these without I/O; external scalers ask their server.
    async fn metric_specs(&self) -> Result<Vec<MetricSpec>, ScalerError>;

    /// Polls the source once: the values of `metric_name` and whether the trigger is active.
    async fn metrics_and_activity(
        &self,
        metric_name: &str,
    ) -> Result<MetricsAndActivity, ScalerError>;

    /// Releases what the scaler holds. Called once when the ScaledObject changes or goes away;
    /// dropping the scaler must also be safe.
    async fn close(&self) {}
}

/// Builds scalers for one or more trigger types.
///
/// `build` parses and validates the trigger and must not contact anything: `kedge check` runs
/// every factory offline, and a ScaledObject must be rejected with a clear message before any
/// connection is attempted.
pub trait ScalerFactory: Send + Sync {
    /// The `triggers[].type` strings this factory serves, e.g. `["rabbitmq"]`.
    fn trigger_types(&self) -> &'static [&'static str];

    /// Validates `cfg` and builds a scaler for it.
    fn build(&self, cfg: &ScalerConfig) -> Result<Box<dyn Scaler>, ScalerError>;

    /// The parameters the scaler reads (usually `MyParams::PARAMS` of a
    /// [`crate::ScalerParams`] struct). Tools use it to point out metadata keys no parameter
    /// reads, which are often typos. Empty means "not declared", and nothing is pointed out.
    fn params(&self) -> &'static [ParamSpec] {
        &[]
    }
}
