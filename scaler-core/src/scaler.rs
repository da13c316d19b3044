//! The [`Scaler`] and [`ScalerFactory`] traits.

use std::pin::Pin;

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

    /// Activity changes pushed by the source, for scalers that can push (KEDA's
    /// `external-push`). `None`, the default, means the scaler is only polled.
    ///
    /// Each `true` asks kedge to evaluate the ScaledObject now instead of at the next
    /// `pollingInterval` (as KEDA does, a pushed `false` only tells that the source went idle;
    /// scaling to zero still waits for a poll and the cooldown). Each call opens a new
    /// subscription, so call it once per scaler and keep polling the stream; it ends when the
    /// scaler is closed. A scaler that reconnects on errors does so inside the stream.
    ///
    /// ```
    /// use std::pin::Pin;
    /// use std::task::{Context, Poll};
    /// use scaler_core::futures_core::Stream;
    /// use scaler_core::{ActivityStream, MetricSpec, MetricsAndActivity, Scaler, ScalerError};
    ///
    /// /// A scaler told about activity by another task, through a channel.
    /// struct Pushed(std::sync::Mutex<Option<tokio::sync::mpsc::Receiver<bool>>>);
    ///
    /// /// The receiving end of the channel as a `Stream`.
    /// struct Changes(tokio::sync::mpsc::Receiver<bool>);
    /// impl Stream for Changes {
    ///     type Item = bool;
    ///     fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<bool>> {
    ///         self.0.poll_recv(cx)
    ///     }
    /// }
    ///
    /// #[scaler_core::async_trait]
    /// impl Scaler for Pushed {
    ///     async fn metric_specs(&self) -> Result<Vec<MetricSpec>, ScalerError> { Ok(vec![]) }
    ///     async fn metrics_and_activity(&self, _: &str) -> Result<MetricsAndActivity, ScalerError> {
    ///         Ok(MetricsAndActivity::default())
    ///     }
    ///     fn activity_changes(&self) -> Option<ActivityStream> {
    ///         let rx = self.0.lock().ok()?.take()?; // a single subscriber in this example
    ///         Some(Box::pin(Changes(rx)))
    ///     }
    /// }
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let (tx, rx) = tokio::sync::mpsc::channel(8);
    /// let scaler = Pushed(std::sync::Mutex::new(Some(rx)));
    /// let mut changes = scaler.activity_changes().expect("a push scaler");
    /// tx.send(true).await.unwrap();
    /// let next = std::future::poll_fn(|cx| changes.as_mut().poll_next(cx)).await;
    /// assert_eq!(next, Some(true));
    /// # });
    /// ```
    fn activity_changes(&self) -> Option<ActivityStream> {
        None
    }
}

/// A stream of activity changes pushed by a scaler ([`Scaler::activity_changes`]).
///
/// This is the same type as `futures::stream::BoxStream<'static, bool>`, so anything built
/// with `futures` or `tokio-stream` can be returned with `Box::pin(stream)`.
pub type ActivityStream = Pin<Box<dyn futures_core::Stream<Item = bool> + Send + 'static>>;

/// Builds scalers for one or more trigger types.
///
/// `build` parses and validates the trigger and must not contact anything: `kedge check` runs
/// every factory offline, and a ScaledObject must be rejected with a clear message before any
/// connection is attempted. The one exception is [`ScalerConfig::check_address`], which `build`
/// calls for every host the scaler will connect to: with an active address guard it resolves
/// names (the operator then runs `build` off its async workers).
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
