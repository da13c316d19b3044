//! `type: external` and `type: external-push` — scale on what an external scaler says, over
//! KEDA's gRPC protocol (`externalscaler.ExternalScaler`, see `proto/externalscaler.proto`).
//!
//! Compatible with KEDA's external scalers, so a server written for KEDA works unchanged:
//!
//! * the server gets a `ScaledObjectRef` with the ScaledObject's name and namespace and the
//!   trigger's whole metadata (`<key>FromEnv` entries replaced by the env value, keys kept);
//! * metric specs come from `GetMetricSpec` (named `s<i>-<metricName>`, `targetSizeFloat` when
//!   positive, else `targetSize`);
//! * a poll calls `GetMetrics` (with the metric name without its `s<i>-` prefix) then
//!   `IsActive`; `metricValueFloat` is used when positive, else `metricValue`;
//! * `external-push` also keeps `StreamIsActive` open and reports each pushed value through
//!   [`Scaler::activity_changes`];
//! * channels are shared by every trigger with the same address and TLS settings; TLS is used
//!   with `enableTLS`, a `caCert` or a client certificate, as in KEDA.

mod channel;
mod push;

/// KEDA's external scaler protocol, generated from `proto/externalscaler.proto`: the client
/// kedge uses, and the server side for writing (or testing) an external scaler in Rust.
#[allow(missing_docs, clippy::all, clippy::pedantic, clippy::unwrap_used)]
pub mod proto {
    tonic::include_proto!("externalscaler");
}

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use scaler_core::naming::strip_index;
use scaler_core::{
    ActivityStream, MetricSpec, MetricTarget, MetricTargetType, MetricValue, MetricsAndActivity,
    ParamSpec, Scaler, ScalerConfig, ScalerError, ScalerFactory, ScalerParams, Secret, TriggerId,
};
use tokio::sync::watch;
use tonic::transport::Channel;

use crate::client_tls::TlsSettings;
use channel::ChannelKey;
use proto::external_scaler_client::ExternalScalerClient;
use proto::{GetMetricsRequest, ScaledObjectRef};

/// Parameters of an external or external-push trigger. Every other metadata entry is passed
/// to the server as is.
#[derive(ScalerParams, Debug, Clone)]
#[params(validate = "Self::validate")]
pub struct ExternalParams {
    /// The external scaler's gRPC address, `host:port`.
    pub scaler_address: String,
    /// Connect with TLS (also implied by `caCert` or a client certificate).
    #[param(name = "enableTLS", optional)]
    pub enable_tls: bool,
    /// Accept any server certificate.
    #[param(optional)]
    pub unsafe_ssl: bool,
    /// CA certificate (PEM) trusted besides the system's.
    #[param(from(auth))]
    pub ca_cert: Option<Secret>,
    /// Client certificate (PEM) presented to the server.
    #[param(from(auth))]
    pub tls_client_cert: Option<Secret>,
    /// Key (PEM) of the client certificate.
    #[param(from(auth))]
    pub tls_client_key: Option<Secret>,
}

impl ExternalParams {
    fn validate(&self) -> Result<(), String> {
        let mut problems = Vec::new();
        if let Err(e) = channel::authority(&self.scaler_address) {
            problems.push(e);
        }
        // KEDA silently ignores half a key pair; the server would then see no client
        // certificate and refuse the handshake, which is much harder to diagnose.
        if self.tls_client_cert.is_some() != self.tls_client_key.is_some() {
            problems.push("tlsClientCert and tlsClientKey must be given together".to_owned());
        }
        if let Err(e) = self
            .tls_settings()
            .validate(("caCert", "tlsClientCert", "tlsClientKey"))
        {
            problems.push(e);
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }

    fn tls_settings(&self) -> TlsSettings {
        TlsSettings {
            ca: self.ca_cert.clone(),
            cert: self.tls_client_cert.clone(),
            key: self.tls_client_key.clone(),
            unsafe_ssl: self.unsafe_ssl,
        }
    }

    /// KEDA's rule for using TLS.
    fn uses_tls(&self) -> bool {
        self.enable_tls || self.tls_client_cert.is_some() || self.ca_cert.is_some()
    }
}

/// Builds external and external-push scalers.
#[derive(Clone, Copy, Debug, Default)]
pub struct ExternalFactory;

impl ScalerFactory for ExternalFactory {
    fn trigger_types(&self) -> &'static [&'static str] {
        &["external", "external-push"]
    }

    fn build(&self, cfg: &ScalerConfig) -> Result<Box<dyn Scaler>, ScalerError> {
        Ok(Box::new(ExternalScaler::new(cfg)?))
    }

    /// Empty on purpose: every metadata key is passed to the server, so none is a typo.
    fn params(&self) -> &'static [ParamSpec] {
        &[]
    }
}

/// What the poll path and the push stream share.
pub(crate) struct Inner {
    key: ChannelKey,
    address: String,
    reference: ScaledObjectRef,
    trigger: TriggerId,
    timeout: Duration,
    channel: Mutex<Option<Arc<Channel>>>,
}

impl Inner {
    fn client(&self) -> Result<ExternalScalerClient<Channel>, ScalerError> {
        let mut slot = self.channel.lock().unwrap_or_else(PoisonError::into_inner);
        let channel = match &*slot {
            Some(channel) => Arc::clone(channel),
            None => {
                let channel = channel::shared(&self.key, self.timeout)
                    .map_err(|e| ScalerError::invalid(&self.trigger, e))?;
                *slot = Some(Arc::clone(&channel));
                channel
            }
        };
        Ok(ExternalScalerClient::new(Channel::clone(&channel))
            .max_decoding_message_size(MAX_REPLY_BYTES))
    }

    /// A call whose answer must arrive within the timeout. For unary calls the deadline is
    /// also sent to the server (`grpc-timeout`); a stream only has to open in time, and must
    /// not carry a deadline, which would end it.
    async fn call<T, R, F, Fut>(
        &self,
        method: &str,
        request: T,
        deadline: bool,
        f: F,
    ) -> Result<R, ScalerError>
    where
        F: FnOnce(ExternalScalerClient<Channel>, tonic::Request<T>) -> Fut,
        Fut: Future<Output = Result<R, tonic::Status>>,
    {
        let client = self.client()?;
        let mut request = tonic::Request::new(request);
        if deadline {
            request.set_timeout(self.timeout);
        }
        match tokio::time::timeout(self.timeout, f(client, request)).await {
            Err(_) => Err(ScalerError::Timeout {
                trigger: self.trigger.clone(),
                timeout: self.timeout,
            }),
            Ok(Err(status)) => Err(ScalerError::source(
                &self.trigger,
                format!(
                    "external scaler at {}: {method}: {}",
                    self.address,
                    describe(&status)
                ),
            )),
            Ok(Ok(response)) => Ok(response),
        }
    }

    async fn open_activity_stream(
        &self,
    ) -> Result<tonic::Streaming<proto::IsActiveResponse>, ScalerError> {
        let reference = self.reference.clone();
        let response = self
            .call("StreamIsActive", reference, false, |mut c, r| async move {
                c.stream_is_active(r).await
            })
            .await?;
        Ok(response.into_inner())
    }
}

/// A gRPC error as gRPC-Go prints it (what KEDA users see), with its causes.
pub(crate) fn describe(status: &tonic::Status) -> String {
    let mut text = format!(
        "rpc error: code = {:?} desc = {}",
        status.code(),
        status.message()
    );
    let mut source = std::error::Error::source(status);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// An external or external-push trigger.
pub struct ExternalScaler {
    inner: Arc<Inner>,
    target_type: MetricTargetType,
    push: bool,
    /// Ends the push streams when the scaler is closed or dropped.
    closed: watch::Sender<bool>,
}

impl std::fmt::Debug for ExternalScaler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExternalScaler")
            .field("trigger", &self.inner.trigger)
            .field("address", &self.inner.address)
            .finish_non_exhaustive()
    }
}

impl ExternalScaler {
    /// Validates the trigger and builds the scaler. Contacts nothing.
    pub fn new(cfg: &ScalerConfig) -> Result<Self, ScalerError> {
        let target_type = cfg.metric_target_type()?;
        let params = ExternalParams::from_config(cfg)?;
        let authority = channel::authority(&params.scaler_address)
            .map_err(|e| ScalerError::invalid(&cfg.trigger, e))?;
        let key = ChannelKey {
            authority,
            tls: params.uses_tls(),
            tls_settings: params.tls_settings(),
            guard: cfg.address_guard.clone(),
        };
        cfg.check_address("scalerAddress", key.host())?;
        Ok(Self {
            inner: Arc::new(Inner {
                key,
                address: params.scaler_address.clone(),
                reference: scaled_object_ref(cfg),
                trigger: cfg.trigger.clone(),
                timeout: cfg.timeout,
                channel: Mutex::new(None),
            }),
            target_type,
            push: cfg.trigger.trigger_type == "external-push",
            closed: watch::Sender::new(false),
        })
    }

    /// The `ScaledObjectRef` sent with every call.
    pub fn scaled_object_ref(&self) -> &ScaledObjectRef {
        &self.inner.reference
    }
}

/// KEDA's `ScaledObjectRef`: the whole trigger metadata, `<key>FromEnv` entries replaced by
/// the env value they name (and dropped when it is missing or empty), keys unchanged.
fn scaled_object_ref(cfg: &ScalerConfig) -> ScaledObjectRef {
    let mut metadata = HashMap::new();
    for (key, value) in &cfg.metadata {
        if key.ends_with("FromEnv") {
            if let Some(v) = cfg.resolved_env.get(value.trim()).filter(|v| !v.is_empty()) {
                metadata.insert(key.clone(), v.expose().to_owned());
            }
        } else {
            metadata.insert(key.clone(), value.clone());
        }
    }
    ScaledObjectRef {
        name: cfg.scaled_object.clone(),
        namespace: cfg.namespace.clone(),
        scaler_metadata: metadata,
    }
}

/// A float field when positive, else the deprecated integer one (KEDA's rule).
fn float_or_int(float: f64, int: i64) -> f64 {
    if float > 0.0 { float } else { int as f64 }
}

/// The largest reply read from an external scaler (the server is the tenant's): metric replies
/// are a few hundred bytes; tonic's default would be 4 MiB.
const MAX_REPLY_BYTES: usize = 1 << 20;

#[async_trait]
impl Scaler for ExternalScaler {
    async fn metric_specs(&self) -> Result<Vec<MetricSpec>, ScalerError> {
        let inner = &self.inner;
        let response = inner
            .call(
                "GetMetricSpec",
                inner.reference.clone(),
                true,
                |mut c, r| async move { c.get_metric_spec(r).await },
            )
            .await?
            .into_inner();
        Ok(response
            .metric_specs
            .into_iter()
            .map(|spec| MetricSpec {
                // Not normalised: KEDA uses the server's name as is.
                name: metric_name(inner.trigger.index, &spec.metric_name),
                target: MetricTarget::new(
                    self.target_type,
                    float_or_int(spec.target_size_float, spec.target_size),
                ),
            })
            .collect())
    }

    async fn metrics_and_activity(
        &self,
        metric_name: &str,
    ) -> Result<MetricsAndActivity, ScalerError> {
        let inner = &self.inner;
        let bare = strip_index(inner.trigger.index, metric_name);
        if bare.len() == metric_name.len() {
            return Err(ScalerError::source(
                &inner.trigger,
                format!(
                    "metric name {metric_name} does not contain index prefix s{}-",
                    inner.trigger.index
                ),
            ));
        }
        let request = GetMetricsRequest {
            scaled_object_ref: Some(inner.reference.clone()),
            metric_name: bare.to_owned(),
        };
        let values = inner
            .call("GetMetrics", request, true, |mut c, r| async move {
                c.get_metrics(r).await
            })
            .await?
            .into_inner();
        let active = inner
            .call(
                "IsActive",
                inner.reference.clone(),
                true,
                |mut c, r| async move { c.is_active(r).await },
            )
            .await?
            .into_inner()
            .result;
        Ok(MetricsAndActivity {
            metrics: values
                .metric_values
                .iter()
                .map(|v| {
                    MetricValue::new(
                        metric_name,
                        float_or_int(v.metric_value_float, v.metric_value),
                    )
                })
                .collect(),
            active,
        })
    }

    async fn close(&self) {
        self.closed.send_replace(true);
        self.inner
            .channel
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }

    fn activity_changes(&self) -> Option<ActivityStream> {
        if !self.push {
            return None;
        }
        Some(push::activity_stream(
            Arc::clone(&self.inner),
            self.closed.subscribe(),
        ))
    }
}

fn metric_name(index: usize, name: &str) -> String {
    scaler_core::metric_name_with_index(index, name)
}

#[cfg(test)]
mod tests;
