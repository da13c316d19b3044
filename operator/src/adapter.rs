//! The metrics adapter inside `kedge run`: the `external.metrics.k8s.io` API on its own port,
//! served by every replica from the leader's scale-loop state.
//!
//! * [`LeaderProvider`] answers from this replica's [`MetricsSource`] while it leads and says
//!   `NotLeader` otherwise.
//! * With leader election, a [`ForwardingProvider`] wraps it: followers forward reads over the
//!   mutual-TLS gRPC link to the address the Lease's holder identity carries, and answer from
//!   their last known values while the leader cannot be reached.
//! * Certificates: `--cert-file`/`--key-file` (cert-manager), or the CA kept in the
//!   `--cert-secret-name` Secret, whose certificate kedge also writes into the APIService's
//!   `caBundle`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use metrics_adapter::grpc::{ForwardingProvider, GrpcServer, LeaderAddress};
use metrics_adapter::{
    AdapterConfig, AdapterServer, Auth, DelegatedAuth, DelegatedAuthConfig, GrpcConfig, GrpcTls,
    MetricsProvider, ProviderError, ServerHandle, ServingTls,
};
use scaler_core::MetricValue;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::certs::{self, CertBundle};
use crate::metrics_source::{MetricError, MetricsSource};

/// Flags of the metrics adapter (part of `kedge run`).
#[derive(Clone, Debug, clap::Args)]
pub struct AdapterArgs {
    /// HTTPS port of the external metrics API (`external.metrics.k8s.io`) the HPA reads.
    #[arg(long, default_value_t = 6443)]
    pub secure_port: u16,
    /// Address the external metrics API listens on.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::UNSPECIFIED))]
    pub secure_bind_address: IpAddr,
    /// Serving certificate (PEM chain), e.g. from cert-manager; re-read when it changes.
    /// Without it kedge serves a certificate from its own CA (see --cert-secret-name).
    #[arg(long, requires = "key_file")]
    pub cert_file: Option<PathBuf>,
    /// Private key of --cert-file.
    #[arg(long, requires = "cert_file")]
    pub key_file: Option<PathBuf>,
    /// Secret in kedge's namespace holding kedge's own CA and serving certificate, created at
    /// first start and shared by all replicas (also the trust anchor of the follower link).
    #[arg(long, default_value = "kedge-certs")]
    pub cert_secret_name: String,
    /// Service in front of the adapter; the serving certificate names it.
    #[arg(long, default_value = "kedge-metrics-apiserver")]
    pub metrics_service_name: String,
    /// APIService that routes external.metrics.k8s.io to kedge.
    #[arg(long, default_value = "v1beta1.external.metrics.k8s.io")]
    pub apiservice_name: String,
    /// Keep the APIService's caBundle equal to kedge's CA (turn off when cert-manager's
    /// cainjector does it).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub patch_apiservice_ca_bundle: bool,
    /// Port of the gRPC link on which followers forward metric reads to the leader.
    #[arg(long, default_value_t = 9666)]
    pub grpc_port: u16,
    /// This replica's IP, which followers reach it at when it leads (from the downward API).
    #[arg(long, env = "POD_IP")]
    pub pod_ip: Option<IpAddr>,
    /// Serve the external metrics API without authentication or authorization. For local
    /// development only (`kedge dev`); never in a cluster.
    #[arg(long)]
    pub insecure_disable_adapter_auth: bool,
}

/// Why the adapter could not start.
#[derive(Debug, thiserror::Error)]
pub enum AdapterError {
    /// Certificates.
    #[error("metrics adapter certificates: {0}")]
    Certs(#[from] certs::CertError),
    /// Authentication settings.
    #[error("metrics adapter authentication: {0}")]
    Auth(String),
    /// Listening.
    #[error("metrics adapter: {0}")]
    Serve(#[from] metrics_adapter::Error),
}

/// How long after taking the lead an unknown ScaledObject is taken for one not reconciled
/// yet rather than one that does not exist.
const WARM_UP: Duration = Duration::from_secs(30);

/// This replica's values while it leads; `NotLeader` otherwise.
#[derive(Default)]
pub struct LeaderProvider {
    source: RwLock<Option<(MetricsSource, Instant)>>,
    warm_up: Duration,
}

impl LeaderProvider {
    /// A provider that, for `warm_up` after taking the lead, answers `NotLeader` for objects
    /// it has not built yet (zero without followers, who are the ones to ask elsewhere).
    pub fn new(warm_up: Duration) -> Self {
        Self {
            source: RwLock::default(),
            warm_up,
        }
    }

    /// Serve from `source` (this replica now leads), or stop serving (`None`).
    pub fn set(&self, source: Option<MetricsSource>) {
        *self.source.write().unwrap_or_else(|e| e.into_inner()) =
            source.map(|s| (s, Instant::now()));
    }
}

#[async_trait]
impl MetricsProvider for LeaderProvider {
    async fn metric(
        &self,
        namespace: &str,
        scaled_object: &str,
        metric_name: &str,
    ) -> Result<Vec<MetricValue>, ProviderError> {
        let (source, since) = self
            .source
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or(ProviderError::NotLeader)?;
        source
            .metric(namespace, scaled_object, metric_name)
            .await
            .map_err(|e| match e {
                // A new leader builds its scalers in the first seconds: until then an object it
                // does not know yet is answered like a follower would (forwarded, or the last
                // known value), not as a 404 the HPA would act on.
                MetricError::ScaledObjectNotFound(_) if since.elapsed() < self.warm_up => {
                    ProviderError::NotLeader
                }
                MetricError::ScaledObjectNotFound(_) => ProviderError::ScaledObjectNotFound,
                MetricError::MetricNotFound { .. } => ProviderError::MetricNotFound,
                e @ MetricError::Failed { .. } => ProviderError::Failed(e.to_string()),
            })
    }
}

/// The running adapter.
pub struct Adapter {
    /// Where this replica's values are set while it leads.
    pub provider: Arc<LeaderProvider>,
    /// The identity this replica campaigns with (carries the link address with leader
    /// election).
    pub identity: String,
    /// Publishes the Lease holder's identity (fed by the elector).
    pub holder: watch::Sender<Option<String>>,
    _server: ServerHandle,
    _grpc: Option<ServerHandle>,
    _tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Adapter {
    fn drop(&mut self) {
        for t in &self._tasks {
            t.abort();
        }
    }
}

/// Starts the adapter for `kedge run`. `leader_elect` decides whether followers exist (and so
/// the gRPC link); `name` is this replica's name in the election.
pub async fn start(
    client: &kube::Client,
    args: &AdapterArgs,
    namespace: &str,
    name: &str,
    leader_elect: bool,
) -> Result<Adapter, AdapterError> {
    let mut tasks = Vec::new();
    let names = certs::service_names(&args.metrics_service_name, namespace);
    let own_certs = args.cert_file.is_none() || leader_elect;
    let bundle: Option<CertBundle> = if own_certs {
        Some(certs::ensure_secret(client, namespace, &args.cert_secret_name, &names).await?)
    } else {
        None
    };
    let tls = match (&args.cert_file, &args.key_file, &bundle) {
        (Some(cert_file), Some(key_file), _) => ServingTls::Files {
            cert_file: cert_file.clone(),
            key_file: key_file.clone(),
        },
        (_, _, Some(b)) => ServingTls::Pem {
            cert_pem: b.tls_cert_pem.clone(),
            key_pem: b.tls_key_pem.clone(),
        },
        _ => ServingTls::SelfSigned { names },
    };
    if args.cert_file.is_none()
        && args.patch_apiservice_ca_bundle
        && let Some(b) = &bundle
    {
        tasks.push(certs::spawn_ca_bundle_keeper(
            client.clone(),
            args.apiservice_name.clone(),
            b.ca_cert_pem.clone(),
        ));
    }

    let auth = if args.insecure_disable_adapter_auth {
        Auth::disabled_for_local_mode()
    } else {
        let delegated = DelegatedAuth::from_cluster(client.clone(), DelegatedAuthConfig::default())
            .await
            .map_err(|e| AdapterError::Auth(e.to_string()))?;
        tasks.push(delegated.spawn_refresh(client.clone(), Duration::from_secs(60)));
        Auth::Delegated(delegated)
    };

    let local = Arc::new(LeaderProvider::new(if leader_elect {
        WARM_UP
    } else {
        Duration::ZERO
    }));
    let (holder_tx, holder_rx) = watch::channel::<Option<String>>(None);
    let mut identity = name.to_owned();
    let mut grpc_handle = None;
    let provider: Arc<dyn MetricsProvider> = match (leader_elect, &bundle) {
        (true, Some(b)) => {
            let mut grpc = GrpcConfig::new(GrpcTls::SharedCa {
                ca_cert_pem: b.ca_cert_pem.clone(),
                ca_key_pem: b.ca_key_pem.clone(),
            });
            grpc.bind = SocketAddr::new(args.secure_bind_address, args.grpc_port);
            let server = GrpcServer::bind(&grpc, local.clone()).await?;
            let bound = server.local_addr()?;
            grpc_handle = Some(server.spawn()?);
            let reach = args
                .pod_ip
                .map(|ip| SocketAddr::new(ip, bound.port()))
                .or_else(|| (!bound.ip().is_unspecified()).then_some(bound));
            match reach {
                Some(addr) => identity = crate::leader::identity_with_address(name, Some(addr)),
                None => warn!(
                    "POD_IP is not set: followers cannot find this replica when it leads, and will answer from last known values only"
                ),
            }
            let (leader_tx, leader_rx) = watch::channel::<Option<LeaderAddress>>(None);
            let mut holders = holder_rx.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    let address = holders
                        .borrow_and_update()
                        .as_deref()
                        .and_then(crate::leader::holder_address);
                    leader_tx.send_if_modified(|a| {
                        let changed = *a != address;
                        *a = address.clone();
                        changed
                    });
                    if holders.changed().await.is_err() {
                        return;
                    }
                }
            }));
            Arc::new(ForwardingProvider::new(local.clone(), leader_rx, &grpc)?)
        }
        _ => local.clone(),
    };

    let config = AdapterConfig {
        bind: SocketAddr::new(args.secure_bind_address, args.secure_port),
        tls,
        ..AdapterConfig::default()
    };
    let server = AdapterServer::bind(config, provider, auth).await?;
    let addr = server.local_addr()?;
    info!(%addr, "serving the external metrics API");
    Ok(Adapter {
        provider: local,
        identity,
        holder: holder_tx,
        _server: server.spawn()?,
        _grpc: grpc_handle,
        _tasks: tasks,
    })
}
