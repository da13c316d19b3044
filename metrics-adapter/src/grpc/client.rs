//! A follower's side of the link: [`ForwardingProvider`] answers from this replica's own
//! provider when it can (the leader's case), forwards to the leader when the local provider says
//! [`ProviderError::NotLeader`], and when the leader cannot be reached serves the last value it
//! saw for that metric if it is younger than the staleness bound — an HPA holding a
//! minute-old value through a leader election beats an HPA that cannot read its metric at all.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use scaler_core::{MetricValue, Quantity};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::TlsConnector;
use tonic::codegen::http::Uri;
use tonic::transport::{Channel, Endpoint};

use super::proto::ScaledObjectRef;
use super::proto::metrics_service_client::MetricsServiceClient;
use super::tls::LinkTls;
use super::{ERROR_KEY, NOT_FOUND_KEY};
use crate::config::GrpcConfig;
use crate::error::Error;
use crate::provider::{MetricsProvider, ProviderError};

/// The leader's gRPC address, `host:port` (`[v6]:port` for IPv6), as the operator learns it
/// from the Lease's holder identity.
pub type LeaderAddress = String;

/// Last known values are pruned when the map grows past this many entries.
const LAST_KNOWN_PRUNE_AT: usize = 100_000;

type Key = (String, String, String);

/// A provider for every replica: local values on the leader, forwarded reads on followers,
/// last known values while the leader is unreachable.
pub struct ForwardingProvider {
    local: Arc<dyn MetricsProvider>,
    leader: watch::Receiver<Option<LeaderAddress>>,
    tls: LinkTls,
    server_name: ServerName<'static>,
    request_timeout: Duration,
    staleness_bound: Duration,
    channel: Mutex<Option<(LeaderAddress, MetricsServiceClient<Channel>)>>,
    last_known: Mutex<HashMap<Key, (Instant, Vec<MetricValue>)>>,
}

impl std::fmt::Debug for ForwardingProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForwardingProvider")
            .field("leader", &*self.leader.borrow())
            .field("staleness_bound", &self.staleness_bound)
            .finish_non_exhaustive()
    }
}

/// Why a forwarded read did not produce an answer from the leader.
enum ForwardError {
    /// The leader answered with this error; the HPA should see it.
    Answered(ProviderError),
    /// No answer (no leader known, connection refused, timeout, the callee is not the leader).
    Unreachable(String),
}

impl ForwardingProvider {
    /// Wraps this replica's `local` provider. `leader` carries the leader's gRPC address (`None`
    /// while unknown); `config` gives the link's TLS material, the name the leader's
    /// certificate must carry, the per-read timeout and the staleness bound.
    pub fn new(
        local: Arc<dyn MetricsProvider>,
        leader: watch::Receiver<Option<LeaderAddress>>,
        config: &GrpcConfig,
    ) -> Result<Self, Error> {
        let server_name = ServerName::try_from(config.server_name.clone()).map_err(|e| {
            crate::tls::TlsError::Invalid {
                what: "gRPC server name".into(),
                message: e.to_string(),
            }
        })?;
        Ok(Self {
            local,
            leader,
            tls: LinkTls::new(config)?,
            server_name,
            request_timeout: config.request_timeout,
            staleness_bound: config.staleness_bound,
            channel: Mutex::new(None),
            last_known: Mutex::new(HashMap::new()),
        })
    }

    fn remember(&self, key: Key, values: &[MetricValue]) {
        let now = Instant::now();
        let mut map = self.last_known.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= LAST_KNOWN_PRUNE_AT {
            let bound = self.staleness_bound;
            map.retain(|_, (at, _)| now.duration_since(*at) <= bound);
        }
        map.insert(key, (now, values.to_vec()));
    }

    fn recall(&self, key: &Key) -> Option<(Duration, Vec<MetricValue>)> {
        let map = self.last_known.lock().unwrap_or_else(|e| e.into_inner());
        let (at, values) = map.get(key)?;
        let age = at.elapsed();
        (age <= self.staleness_bound).then(|| (age, values.clone()))
    }

    /// The client for `address`, reusing the channel while the leader stays the same.
    fn client(&self, address: &str) -> Result<MetricsServiceClient<Channel>, String> {
        let mut cached = self.channel.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((a, client)) = cached.as_ref()
            && a == address
        {
            return Ok(client.clone());
        }
        let config = self.tls.client_config().map_err(|e| e.to_string())?;
        let connector = TlsConnector::from(Arc::new(config));
        let server_name = self.server_name.clone();
        let endpoint = Endpoint::from_shared(format!("http://{address}"))
            .map_err(|e| format!("leader address {address:?}: {e}"))?
            .connect_timeout(self.request_timeout)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(10));
        let channel = endpoint.connect_with_connector_lazy(tower::service_fn(move |uri: Uri| {
            connect(uri, connector.clone(), server_name.clone())
        }));
        let client = MetricsServiceClient::new(channel);
        *cached = Some((address.to_owned(), client.clone()));
        Ok(client)
    }

    /// Forgets the channel to `address`, so the next read dials afresh (and re-reads the CA).
    fn drop_channel(&self, address: &str) {
        let mut cached = self.channel.lock().unwrap_or_else(|e| e.into_inner());
        if cached.as_ref().is_some_and(|(a, _)| a == address) {
            *cached = None;
        }
    }

    async fn forward(
        &self,
        namespace: &str,
        name: &str,
        metric: &str,
    ) -> Result<Vec<MetricValue>, ForwardError> {
        let address = self
            .leader
            .borrow()
            .clone()
            .ok_or_else(|| ForwardError::Unreachable("no leader is known".into()))?;
        let mut client = self.client(&address).map_err(ForwardError::Unreachable)?;
        let request = ScaledObjectRef {
            name: name.to_owned(),
            namespace: namespace.to_owned(),
            metric_name: metric.to_owned(),
        };
        let response =
            match tokio::time::timeout(self.request_timeout, client.get_metrics(request)).await {
                Err(_) => {
                    self.drop_channel(&address);
                    return Err(ForwardError::Unreachable(format!(
                        "leader {address} did not answer within {:?}",
                        self.request_timeout
                    )));
                }
                Ok(Err(status)) => return Err(self.classify(&address, status)),
                Ok(Ok(response)) => response.into_inner(),
            };
        Ok(response
            .items
            .into_iter()
            .map(|item| MetricValue {
                metric_name: item.metric_name,
                value: Quantity::from_milli(item.value.map(|q| q.milli).unwrap_or_default()),
            })
            .collect())
    }

    fn classify(&self, address: &str, status: tonic::Status) -> ForwardError {
        let marker = |key: &str| {
            status
                .metadata()
                .get(key)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        match status.code() {
            tonic::Code::NotFound => match marker(NOT_FOUND_KEY).as_deref() {
                Some("scaledobject") => ForwardError::Answered(ProviderError::ScaledObjectNotFound),
                Some("metric") => ForwardError::Answered(ProviderError::MetricNotFound),
                _ => ForwardError::Unreachable(format!("leader {address}: {}", status.message())),
            },
            tonic::Code::Internal if marker(ERROR_KEY).as_deref() == Some("trigger") => {
                ForwardError::Answered(ProviderError::Failed(status.message().to_owned()))
            }
            _ => {
                // Connection trouble or a stale leader address: dial afresh next time.
                self.drop_channel(address);
                ForwardError::Unreachable(format!("leader {address}: {}", status.message()))
            }
        }
    }
}

#[async_trait]
impl MetricsProvider for ForwardingProvider {
    async fn metric(
        &self,
        namespace: &str,
        scaled_object: &str,
        metric_name: &str,
    ) -> Result<Vec<MetricValue>, ProviderError> {
        // Metric names are matched case-insensitively, so they are remembered that way.
        let key = (
            namespace.to_owned(),
            scaled_object.to_owned(),
            metric_name.to_ascii_lowercase(),
        );
        match self
            .local
            .metric(namespace, scaled_object, metric_name)
            .await
        {
            Err(ProviderError::NotLeader) => {}
            Ok(values) => {
                // Remembered too: a leader that loses its lease keeps something to serve.
                self.remember(key, &values);
                return Ok(values);
            }
            Err(e) => return Err(e),
        }
        match self.forward(namespace, scaled_object, metric_name).await {
            Ok(values) => {
                self.remember(key, &values);
                Ok(values)
            }
            Err(ForwardError::Answered(e)) => Err(e),
            Err(ForwardError::Unreachable(why)) => match self.recall(&key) {
                Some((age, values)) => {
                    tracing::warn!(
                        %namespace, %scaled_object, %metric_name, age = ?age, reason = %why,
                        "leader unreachable; serving the last known value"
                    );
                    Ok(values)
                }
                None => Err(ProviderError::Unavailable(format!(
                    "{why}, and no value younger than {:?} is known",
                    self.staleness_bound
                ))),
            },
        }
    }
}

async fn connect(
    uri: Uri,
    connector: TlsConnector,
    server_name: ServerName<'static>,
) -> Result<TokioIo<tokio_rustls::client::TlsStream<TcpStream>>, std::io::Error> {
    let invalid =
        |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, what.to_owned());
    let host = uri
        .host()
        .ok_or_else(|| invalid("leader address has no host"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = uri
        .port_u16()
        .ok_or_else(|| invalid("leader address has no port"))?;
    let tcp = TcpStream::connect((host, port)).await?;
    tcp.set_nodelay(true)?;
    // Leaders are dialled by pod IP; their certificate names the configured server name.
    Ok(TokioIo::new(connector.connect(server_name, tcp).await?))
}
