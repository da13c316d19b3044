//! `kedge run`: the operator and the metrics adapter in one process.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use scaler_core::Registry;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

use crate::controller::{self, Settings};
use crate::events::EventPublisher;
use crate::fence::Fence;
use crate::health::{Health, serve_metrics};
use crate::kube_client::{self, Role};
use crate::leader::{self, LeaseSettings};
use crate::metrics_source::{DEFAULT_DEDUPE_WINDOW, MetricsSource};
use crate::resolve::ResolveSettings;
use crate::runtime::Runtimes;
use crate::scale_loop::{self, PollContext};
use crate::telemetry::Metrics;

/// Settings of `kedge run`, from flags and the environment variables KEDA users know.
#[derive(Clone, Debug, clap::Args)]
pub struct RunArgs {
    /// Namespace to watch; empty watches all namespaces.
    #[arg(long, env = "WATCH_NAMESPACE", default_value = "")]
    pub watch_namespace: String,
    /// Namespace kedge runs in (leader-election Lease, ClusterTriggerAuthentication objects).
    #[arg(long, env = "POD_NAMESPACE", default_value = "keda")]
    pub pod_namespace: String,
    /// Namespace whose Secrets and ConfigMaps ClusterTriggerAuthentications read; defaults to
    /// the pod's namespace.
    #[arg(long, env = "KEDA_CLUSTER_OBJECT_NAMESPACE")]
    pub cluster_object_namespace: Option<String>,
    /// Timeout of calls to data sources.
    #[command(flatten)]
    pub http_timeout: crate::cli::HttpTimeout,
    /// Address of `/metrics`, `/healthz` and `/readyz`.
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub metrics_bind_address: SocketAddr,
    /// Elect a leader among replicas on a Lease; only the leader reconciles and scales.
    #[arg(long, default_value_t = false)]
    pub leader_elect: bool,
    /// Name of the leader-election Lease.
    #[arg(long, default_value = "kedge-operator")]
    pub leader_election_id: String,
    /// This replica's identity in the election (default: hostname).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,
    /// Polls that may run at once.
    #[arg(long, default_value_t = scale_loop::DEFAULT_CONCURRENCY)]
    pub max_concurrent_polls: usize,
    /// Reconciles that may run at once (KEDA's default is 5, which is slow to start at scale).
    #[arg(
        long,
        env = "KEDA_SCALEDOBJECT_CTRL_MAX_RECONCILES",
        default_value_t = 20
    )]
    pub max_concurrent_reconciles: u16,
    /// Seconds between full re-reconciles of an unchanged ScaledObject.
    #[arg(long, default_value_t = 300)]
    pub resync_seconds: u64,
    /// Log format.
    #[arg(long, value_enum, default_value_t = crate::telemetry::LogFormat::Text)]
    pub log_format: crate::telemetry::LogFormat,
    /// Client-side rate limit of requests to the Kubernetes API.
    #[command(flatten)]
    pub client: crate::kube_client::ClientArgs,
    /// The external metrics API.
    #[command(flatten)]
    pub adapter: crate::adapter::AdapterArgs,
    /// Where scalers may connect and which Secrets kedge reads.
    #[command(flatten)]
    pub access: crate::access::AccessArgs,
}

/// Why `kedge run` could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// No cluster configuration.
    #[error("cannot configure a Kubernetes client (in-cluster or KUBECONFIG): {0}")]
    Client(#[source] kube::Error),
    /// The metrics address is taken.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The metrics adapter could not start.
    #[error(transparent)]
    Adapter(#[from] crate::adapter::AdapterError),
    /// A task kedge cannot work without ended: leader election or the controller. The process
    /// exits non-zero so the kubelet restarts it, rather than holding a lease it does not use.
    #[error("{task} stopped: {why}")]
    TaskEnded {
        /// Which task.
        task: &'static str,
        /// How it ended (a panic message, or that it returned).
        why: String,
    },
}

impl RunArgs {
    /// The settings `kedge run` has with no flags: clap's defaults (and the environment
    /// variables it honours), the one place they are written.
    #[cfg(any(feature = "dev", test))]
    pub fn defaults() -> Self {
        #[derive(clap::Parser)]
        struct Defaults {
            #[command(flatten)]
            run: RunArgs,
        }
        <Defaults as clap::Parser>::parse_from(["kedge-run"]).run
    }
}

fn ended(task: &'static str, result: Result<(), tokio::task::JoinError>) -> RunError {
    let why = match result {
        Ok(()) => "it returned".to_owned(),
        Err(e) if e.is_panic() => {
            let panic = e.into_panic();
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".to_owned());
            format!("panicked: {message}")
        }
        Err(e) => e.to_string(),
    };
    error!("{task} stopped ({why}); exiting");
    RunError::TaskEnded { task, why }
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|s| s.trim().to_owned())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| format!("kedge-{}", std::process::id()))
}

/// Runs kedge against the cluster `config` describes, until Ctrl-C or SIGTERM.
pub async fn run_with_config(
    config: kube::Config,
    args: RunArgs,
    registry: Registry,
) -> Result<(), RunError> {
    let mut prom = prometheus_client::registry::Registry::default();
    let metrics = Arc::new(Metrics::new(&mut prom));
    let (ready_tx, ready_rx) = watch::channel(false);
    let _server = serve_metrics(
        args.metrics_bind_address,
        Arc::new(Health {
            metrics: prom,
            ready: ready_rx,
        }),
    )
    .await?;

    let identity = args.identity.clone().unwrap_or_else(hostname);
    let user_agent = kube_client::user_agent(&identity);
    // Two clients: the replica's own (the Lease, certificates, the APIService), and the
    // operator's, whose writes the leadership fence guards and the rate limit paces.
    let fence = if args.leader_elect {
        Fence::closed()
    } else {
        Fence::unfenced()
    };
    let client = kube_client::build(config.clone(), &args.client, &user_agent, Role::Replica)
        .map_err(RunError::Client)?;
    // And a third for the adapter's TokenReviews and SubjectAccessReviews: what callers cause
    // must not queue with the Lease renewals on one connection pool (the adapter bounds them).
    let auth_client = kube_client::build(config.clone(), &args.client, &user_agent, Role::Replica)
        .map_err(RunError::Client)?;
    let operator_client = kube_client::build(
        config,
        &args.client,
        &user_agent,
        Role::Operator(fence.clone()),
    )
    .map_err(RunError::Client)?;
    let adapter = crate::adapter::start(
        &client,
        &auth_client,
        &args.adapter,
        &args.pod_namespace,
        &identity,
        args.leader_elect,
    )
    .await?;
    let (leading_tx, mut leading_rx) = watch::channel(!args.leader_elect);
    // Without leader election there is no election task; a future that never ends stands in.
    let mut election: tokio::task::JoinHandle<()> = if args.leader_elect {
        let settings = LeaseSettings::new(
            &args.pod_namespace,
            &args.leader_election_id,
            &adapter.identity,
        );
        tokio::spawn(leader::run(
            client.clone(),
            settings,
            fence,
            leading_tx,
            adapter.holder.clone(),
        ))
    } else {
        tokio::spawn(async move {
            let _keep = leading_tx;
            std::future::pending::<()>().await
        })
    };

    let settings = Settings {
        resolve: ResolveSettings {
            cluster_object_namespace: args
                .cluster_object_namespace
                .clone()
                .unwrap_or_else(|| args.pod_namespace.clone()),
        },
        timeout: args.http_timeout.duration(),
        namespace: Some(args.watch_namespace.clone()).filter(|n| !n.is_empty()),
        resync: Duration::from_secs(args.resync_seconds.max(10)),
        max_concurrent_reconciles: args.max_concurrent_reconciles,
        address_guard: args.access.scaler_addresses.guard(),
        restrict_secrets: args.access.secrets.restrict_secret_access,
    };
    let events = EventPublisher::new(operator_client.clone(), "kedge", &identity);

    let mut shutdown = Box::pin(shutdown_signal());
    loop {
        // Followers wait here; a leader runs until it loses the lease or is told to stop.
        while !*leading_rx.borrow() {
            // A follower answers metric reads by forwarding them: it is ready.
            let _ = ready_tx.send(true);
            tokio::select! {
                _ = &mut shutdown => return Ok(()),
                result = &mut election => return Err(ended("leader election", result)),
                _ = leading_rx.changed() => {}
            }
        }
        info!(%identity, "leading: starting the controller and the scale loop");
        let runtimes = Runtimes::default();
        adapter.provider.set(Some(MetricsSource::new(
            runtimes.clone(),
            settings.timeout,
            DEFAULT_DEDUPE_WINDOW,
        )));
        // Everything this term starts ends with it: cancelling `term` stops the scale loop
        // and aborts its polls in flight.
        let term = CancellationToken::new();
        let (scale_loop, _loop_task) = scale_loop::spawn(
            runtimes.clone(),
            Arc::new(PollContext {
                events: events.clone(),
                metrics: Arc::clone(&metrics),
                timeout: settings.timeout,
            }),
            args.max_concurrent_polls,
            term.clone(),
        );
        let (stop_tx, mut stop_rx) = watch::channel(false);
        let (synced_tx, mut synced_rx) = watch::channel(false);
        {
            // The leader is ready once its caches are complete (and stays ready after a
            // takeover: it answered as a follower until then).
            let ready_tx = ready_tx.clone();
            tokio::spawn(async move {
                if synced_rx.wait_for(|synced| *synced).await.is_ok() {
                    let _ = ready_tx.send(true);
                }
            });
        }
        let mut controller = tokio::spawn(controller::run(
            controller::Wiring {
                client: operator_client.clone(),
                registry: registry.clone(),
                settings: settings.clone(),
                runtimes: runtimes.clone(),
                scale_loop: scale_loop.clone(),
                events: events.clone(),
                metrics: Arc::clone(&metrics),
                synced: synced_tx,
            },
            async move {
                let _ = stop_rx.wait_for(|stop| *stop).await;
            },
        ));
        let provider = Arc::clone(&adapter.provider);
        let stop_writing = |runtimes: Runtimes| async move {
            term.cancel();
            provider.set(None);
            for rt in runtimes.all() {
                if let Some(rt) = runtimes.remove(&rt.key) {
                    rt.close().await;
                }
            }
        };
        tokio::select! {
            _ = &mut shutdown => {
                let _ = stop_tx.send(true);
                stop_writing(runtimes).await;
                let _ = tokio::time::timeout(Duration::from_secs(5), controller).await;
                return Ok(());
            }
            result = &mut controller => {
                stop_writing(runtimes).await;
                return Err(ended("the controller", result));
            }
            result = &mut election => {
                controller.abort();
                stop_writing(runtimes).await;
                return Err(ended("leader election", result));
            }
            _ = leading_rx.wait_for(|leading| !*leading) => {
                // Stop writing at once: another replica may be about to take over.
                controller.abort();
                stop_writing(runtimes).await;
                info!(%identity, "lost the lease: stopped reconciling and scaling");
            }
        }
    }
}

/// Runs kedge with the client configured from the environment.
pub async fn run(args: RunArgs, registry: Registry) -> Result<(), RunError> {
    crate::telemetry::init_logging(args.log_format);
    let config = kube_client::config_from_env()
        .await
        .map_err(RunError::Client)?;
    match args.client.rate_limit() {
        Some(limit) => info!(
            burst = limit.burst,
            per = ?limit.per,
            "client-side rate limit of Kubernetes API requests"
        ),
        None => info!("no client-side rate limit of Kubernetes API requests (--kube-api-qps)"),
    }
    run_with_config(config, args, registry).await
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_clap_defaults() {
        let d = RunArgs::defaults();
        assert_eq!(d.pod_namespace, "keda");
        assert_eq!(d.resync_seconds, 300);
        assert_eq!(d.max_concurrent_reconciles, 20);
        assert_eq!(d.adapter.secure_port, 6443);
        assert_eq!(d.adapter.grpc_port, 9666);
        assert!(d.adapter.patch_apiservice_ca_bundle);
        assert!(!d.leader_elect);
    }

    #[tokio::test]
    async fn a_task_that_ends_is_an_error_that_says_how() {
        let returned = tokio::spawn(async {}).await;
        assert_eq!(
            ended("the controller", returned).to_string(),
            "the controller stopped: it returned"
        );
        let panicked = tokio::spawn(async { panic!("boom") }).await;
        assert_eq!(
            ended("leader election", panicked).to_string(),
            "leader election stopped: panicked: boom"
        );
    }
}
