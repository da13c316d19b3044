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
//!   `caBundle`; the serving certificate it signs is renewed while running
//!   ([`certs::spawn_manager`]).
//! * Delegated authentication and authorization use a client of their own, and the server
//!   bounds connections, streams and idle time (flags below).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use metrics_adapter::grpc::{ForwardingProvider, GrpcServer, LeaderAddress};
use metrics_adapter::tls::SwappableCert;
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
    /// Connections the external metrics API serves at once. Beyond it, new connections wait
    /// (in the listen backlog) until one closes, rather than being refused.
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..))]
    pub adapter_max_connections: u32,
    /// Streams one HTTP/2 connection to the external metrics API may have open at once; more
    /// are refused, and clients open another connection (kube's flag of the same name).
    #[arg(long, default_value_t = 250, value_parser = clap::value_parser!(u32).range(1..))]
    pub http2_max_streams_per_connection: u32,
    /// Seconds a client of the external metrics API has to send its request headers, and a
    /// new connection to start its first request. Stalled (slow-loris) connections are closed
    /// after it.
    #[arg(long, default_value_t = 5, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    pub adapter_header_read_timeout_seconds: u64,
    /// Seconds a connection to the external metrics API may stay open with no request in
    /// flight (kube-apiserver's 90 s, so the aggregator never finds a kept connection gone).
    #[arg(long, default_value_t = 90, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    pub adapter_idle_timeout_seconds: u64,
}

impl AdapterArgs {
    /// The server's limits from these flags, the rest at their defaults.
    fn server_config(&self, tls: ServingTls) -> AdapterConfig {
        AdapterConfig {
            bind: SocketAddr::new(self.secure_bind_address, self.secure_port),
            tls,
            max_connections: self.adapter_max_connections as usize,
            http2_max_concurrent_streams: self.http2_max_streams_per_connection,
            header_read_timeout: Duration::from_secs(self.adapter_header_read_timeout_seconds),
            idle_timeout: Duration::from_secs(self.adapter_idle_timeout_seconds),
            ..AdapterConfig::default()
        }
    }
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
/// the gRPC link); `name` is this replica's name in the election. `auth_client` makes the
/// TokenReviews and SubjectAccessReviews callers cause: a client of their own, so they neither
/// wait behind the operator's rate limit nor delay lease renewals (the adapter bounds them).
pub async fn start(
    client: &kube::Client,
    auth_client: &kube::Client,
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
    // kedge's own serving certificate, swapped for a renewed one while serving.
    let own_serving = match (&args.cert_file, &bundle) {
        (None, Some(b)) => Some((
            b.clone(),
            Arc::new(
                SwappableCert::from_pem(&b.tls_cert_pem, &b.tls_key_pem)
                    .map_err(certs::CertError::from)?,
            ),
        )),
        _ => None,
    };
    let tls = match (&args.cert_file, &args.key_file, &own_serving) {
        (Some(cert_file), Some(key_file), _) => ServingTls::Files {
            cert_file: cert_file.clone(),
            key_file: key_file.clone(),
        },
        (_, _, Some((_, serving))) => ServingTls::Swappable(Arc::clone(serving)),
        _ => ServingTls::SelfSigned {
            names: names.clone(),
        },
    };

    let auth = if args.insecure_disable_adapter_auth {
        Auth::disabled_for_local_mode()
    } else {
        let delegated =
            DelegatedAuth::from_cluster(auth_client.clone(), DelegatedAuthConfig::default())
                .await
                .map_err(|e| AdapterError::Auth(e.to_string()))?;
        tasks.push(delegated.spawn_refresh(auth_client.clone(), Duration::from_secs(60)));
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

    if let Some((current, serving)) = own_serving {
        // Only the leader (or the only replica) writes the APIService: followers still renew
        // and reload their certificate from the Secret.
        let (may_patch_tx, may_patch) = watch::channel(!leader_elect);
        if leader_elect {
            let mut holders = holder_rx.clone();
            let me = identity.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    let leads = holders.borrow_and_update().as_deref() == Some(me.as_str());
                    may_patch_tx.send_if_modified(|v| std::mem::replace(v, leads) != leads);
                    if holders.changed().await.is_err() {
                        return;
                    }
                }
            }));
        }
        tasks.push(certs::spawn_manager(
            client.clone(),
            certs::ManagerSettings {
                namespace: namespace.to_owned(),
                secret: args.cert_secret_name.clone(),
                names,
                apiservice: args
                    .patch_apiservice_ca_bundle
                    .then(|| args.apiservice_name.clone()),
                check_interval: certs::CHECK_INTERVAL,
            },
            current,
            serving,
            may_patch,
        ));
    }

    let config = args.server_config(tls);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_flags_default_to_the_servers_defaults() {
        let flags = crate::run::RunArgs::defaults()
            .adapter
            .server_config(ServingTls::default());
        let defaults = AdapterConfig::default();
        assert_eq!(flags.max_connections, defaults.max_connections);
        assert_eq!(
            flags.http2_max_concurrent_streams,
            defaults.http2_max_concurrent_streams
        );
        assert_eq!(flags.header_read_timeout, defaults.header_read_timeout);
        assert_eq!(flags.idle_timeout, defaults.idle_timeout);
        assert_eq!(flags.bind, defaults.bind);
    }

    #[test]
    fn limit_flags_parse() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            adapter: AdapterArgs,
        }
        let cli = Cli::try_parse_from([
            "kedge",
            "--adapter-max-connections=64",
            "--http2-max-streams-per-connection=100",
            "--adapter-header-read-timeout-seconds=2",
            "--adapter-idle-timeout-seconds=30",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        let config = cli.adapter.server_config(ServingTls::default());
        assert_eq!(config.max_connections, 64);
        assert_eq!(config.http2_max_concurrent_streams, 100);
        assert_eq!(config.header_read_timeout, Duration::from_secs(2));
        assert_eq!(config.idle_timeout, Duration::from_secs(30));
        assert!(Cli::try_parse_from(["kedge", "--adapter-max-connections=0"]).is_err());
    }
}
