//! The leader's side of the link: a tonic service over any [`MetricsProvider`], served on its
//! own listener with mutual TLS 1.3.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tonic::metadata::MetadataValue;

use super::proto::metrics_service_server::{MetricsService, MetricsServiceServer};
use super::proto::{self, ExternalMetricValueList, ScaledObjectRef};
use super::tls::LinkTls;
use super::{ERROR_KEY, NOT_FOUND_KEY};
use crate::config::GrpcConfig;
use crate::error::Error;
use crate::provider::{MetricsProvider, ProviderError};
use crate::server::{ServerHandle, accept_loop};

/// How long the leader works on one forwarded read at most (followers give up sooner).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// `MetricsService` answering from a provider. Give it the operator's own provider, never a
/// [`super::ForwardingProvider`] (a leader does not forward).
#[derive(Clone)]
pub struct MetricsGrpcService {
    provider: Arc<dyn MetricsProvider>,
}

impl MetricsGrpcService {
    /// Serves `provider`'s values.
    pub fn new(provider: Arc<dyn MetricsProvider>) -> Self {
        Self { provider }
    }

    /// As a tower service, to mount on a server of one's own.
    pub fn into_service(self) -> MetricsServiceServer<Self> {
        MetricsServiceServer::new(self)
    }
}

fn status_with(
    code: tonic::Code,
    message: String,
    key: &'static str,
    value: &'static str,
) -> tonic::Status {
    let mut status = tonic::Status::new(code, message);
    status
        .metadata_mut()
        .insert(key, MetadataValue::from_static(value));
    status
}

#[tonic::async_trait]
impl MetricsService for MetricsGrpcService {
    async fn get_metrics(
        &self,
        request: tonic::Request<ScaledObjectRef>,
    ) -> Result<tonic::Response<ExternalMetricValueList>, tonic::Status> {
        let r = request.into_inner();
        let result = tokio::time::timeout(
            CALL_TIMEOUT,
            self.provider.metric(&r.namespace, &r.name, &r.metric_name),
        )
        .await
        .map_err(|_| tonic::Status::deadline_exceeded("the leader's provider timed out"))?;
        match result {
            Ok(values) => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default();
                let timestamp = proto::Time {
                    seconds: i64::try_from(now.as_secs()).unwrap_or(i64::MAX),
                    nanos: 0,
                };
                Ok(tonic::Response::new(ExternalMetricValueList {
                    metadata: Some(proto::ListMeta::default()),
                    items: values
                        .into_iter()
                        .map(|v| proto::ExternalMetricValue {
                            value: Some(proto::Quantity {
                                string: v.value.to_string(),
                                milli: v.value.milli(),
                            }),
                            metric_name: v.metric_name,
                            metric_labels: Default::default(),
                            timestamp: Some(timestamp),
                            window: None,
                        })
                        .collect(),
                }))
            }
            Err(ProviderError::ScaledObjectNotFound) => Err(status_with(
                tonic::Code::NotFound,
                "ScaledObject not found".into(),
                NOT_FOUND_KEY,
                "scaledobject",
            )),
            Err(ProviderError::MetricNotFound) => Err(status_with(
                tonic::Code::NotFound,
                "metric not found".into(),
                NOT_FOUND_KEY,
                "metric",
            )),
            Err(ProviderError::NotLeader) => Err(tonic::Status::failed_precondition(
                "this replica is not the leader",
            )),
            Err(ProviderError::Failed(message)) => Err(status_with(
                tonic::Code::Internal,
                message,
                ERROR_KEY,
                "trigger",
            )),
            Err(ProviderError::Unavailable(message)) => Err(tonic::Status::unavailable(message)),
        }
    }
}

/// The leader's gRPC listener.
pub struct GrpcServer {
    listener: TcpListener,
    acceptor: TlsAcceptor,
    service: MetricsServiceServer<MetricsGrpcService>,
}

impl std::fmt::Debug for GrpcServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcServer")
            .field("local_addr", &self.listener.local_addr().ok())
            .finish_non_exhaustive()
    }
}

impl GrpcServer {
    /// Binds `config.bind` and prepares to serve `provider` to followers whose certificate
    /// chains to the link's CA. Every replica may run it: a follower's provider answers
    /// `NotLeader`, which tells a caller with a stale leader address to look again.
    pub async fn bind(
        config: &GrpcConfig,
        provider: Arc<dyn MetricsProvider>,
    ) -> Result<Self, Error> {
        let tls = LinkTls::new(config)?;
        let acceptor = TlsAcceptor::from(Arc::new(tls.server_config()?));
        let listener = TcpListener::bind(config.bind)
            .await
            .map_err(|source| Error::Bind {
                addr: config.bind,
                source,
            })?;
        Ok(Self {
            listener,
            acceptor,
            service: MetricsGrpcService::new(provider).into_service(),
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> Result<SocketAddr, Error> {
        Ok(self.listener.local_addr()?)
    }

    /// Serves until `shutdown` completes.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), Error> {
        let Self {
            listener,
            acceptor,
            service,
        } = self;
        accept_loop(listener, acceptor, Duration::from_secs(10), shutdown, move |tls, peer, mut stop| {
            let service = TowerToHyperService::new(service.clone());
            async move {
                let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service);
                tokio::pin!(conn);
                tokio::select! {
                    result = conn.as_mut() => {
                        if let Err(e) = result {
                            tracing::debug!(%peer, error = %e, "gRPC connection ended with an error");
                        }
                    }
                    _ = async { let _ = stop.wait_for(|s| *s).await; } => {
                        conn.as_mut().graceful_shutdown();
                        let _ = conn.await;
                    }
                }
            }
        })
        .await;
        Ok(())
    }

    /// Serves in a background task.
    pub fn spawn(self) -> Result<ServerHandle, Error> {
        let addr = self.local_addr()?;
        Ok(ServerHandle::spawn(addr, |shutdown| self.serve(shutdown)))
    }
}
