//! An embedded Kubernetes API server for `kedge dev` and for end-to-end tests.
//!
//! [`LocalCluster::start`] serves the Kubernetes REST dialect that kube-rs and kubectl speak —
//! discovery, CRUD with resourceVersions, patches, watches, `status` and `scale` subresources,
//! CustomResourceDefinitions registered at run time, API aggregation — on a loopback port, over
//! TLS with a generated CA, and writes a kubeconfig for it. Beside the API it runs simulated
//! controllers: workloads whose status follows `spec.replicas`, and the upstream HPA algorithm
//! fed by the external-metrics APIService. State is in memory and dies with the process.
//! `README.md` lists exactly what is faithful, simplified and absent.
//!
//! ```no_run
//! # async fn demo() -> Result<(), local_cluster::Error> {
//! let cluster = local_cluster::LocalCluster::start(local_cluster::Config::default()).await?;
//! cluster.write_kubeconfig(std::path::Path::new(".kedge/kubeconfig"))?;
//! let client = cluster.client().await?;
//! # drop(client);
//! cluster.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # Faults and the write audit log
//!
//! For tests of how clients survive a misbehaving API server, the cluster holds a set of
//! [`FaultRule`]s: each matches requests by verb, group/resource, subresource, namespace, name
//! and `User-Agent` substring, and answers them with a status code (a `Status` body, and
//! `Retry-After` for 429), holds them for a while or until the rule is removed, or resets the
//! connection — before the request is handled, or after (the write took effect, its answer is
//! replaced, delayed or lost) — a number of times or until removed. Requests no rule matches
//! are served as without rules. Every write request (create, update, patch, delete,
//! deletecollection, subresources included) is recorded as an [`AuditEntry`]: a gapless
//! sequence number, when it came and was answered, what it addressed, its `User-Agent` and
//! source address, the code its handling produced and the code the client got, and the rule
//! that acted on it. The newest [`Config::audit_capacity`] entries are kept. Writes of the
//! simulated controllers do not go through HTTP and are not recorded.
//!
//! ```no_run
//! # async fn demo(cluster: local_cluster::LocalCluster) -> Result<(), local_cluster::Error> {
//! use local_cluster::{FaultAction, FaultRule, Verb};
//! let id = cluster.inject_fault(
//!     FaultRule::new(FaultAction::too_many_requests(2))
//!         .verbs([Verb::Update, Verb::Patch])
//!         .resource("coordination.k8s.io", "leases")
//!         .user_agent("replica-a")
//!         .times(3),
//! )?;
//! // ... exercise the client ...
//! let landed = cluster.audit(0).into_iter().filter(|e| e.landed()).count();
//! cluster.remove_fault(id);
//! # let _ = landed;
//! # Ok(()) }
//! ```
//!
//! The same over HTTP, behind the cluster's bearer token, for a cluster in another process
//! (`kedge dev --cluster-only`); [`remote`] calls them through a kube-rs client:
//!
//! | endpoint | answer |
//! | --- | --- |
//! | `POST /local-cluster/faults` with a [`FaultRule`] as JSON | 201, the [`Fault`] (its `id`) |
//! | `GET /local-cluster/faults` | the [`Fault`]s with their `hits` |
//! | `GET /local-cluster/faults/{id}` | one [`Fault`] |
//! | `DELETE /local-cluster/faults/{id}` | the removed [`Fault`]; its hangs end |
//! | `DELETE /local-cluster/faults` | the removed [`Fault`]s |
//! | `GET /local-cluster/audit?since=SEQ` | the [`AuditEntry`]s after `SEQ`, oldest first |

#![warn(missing_docs)]

mod aggregation;
mod audit;
mod backends;
mod convert;
mod discovery;
mod error;
mod faults;
mod kubeconfig;
mod objects;
mod patch;
mod quantity;
pub mod remote;
mod resources;
mod schema;
mod selectors;
mod server;
mod sim;
mod state;
mod store;
mod table;
mod tls;
mod watch;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use audit::AuditEntry;
pub use backends::BackendTls;
pub use error::Error;
pub use faults::{Fault, FaultAction, FaultRule, FaultWhen, Verb};

/// How to run a local cluster.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen; port 0 picks a free port. Default `127.0.0.1:0`.
    pub bind: SocketAddr,
    /// Serve HTTPS with a generated CA (written into the kubeconfig). Default `true`.
    pub tls: bool,
    /// The HPA controller's sync period (kube-controller-manager's
    /// `--horizontal-pod-autoscaler-sync-period`). Default 15 s.
    pub hpa_sync_period: Duration,
    /// The scale-down stabilization window for HPAs without `behavior`
    /// (`--horizontal-pod-autoscaler-downscale-stabilization`) and the default for those with
    /// one. Default 300 s.
    pub hpa_downscale_stabilization: Duration,
    /// The HPA tolerance (`--horizontal-pod-autoscaler-tolerance`). Default 0.1.
    pub hpa_tolerance: f64,
    /// How long simulated workloads take from a new `spec.replicas` to ready replicas. Default 0.
    pub workload_ready_delay: Duration,
    /// The bearer token clients must present; generated when `None`.
    pub token: Option<String>,
    /// Watch events kept per resource for watches that resume from an older resourceVersion;
    /// older ones answer 410 Gone. Default 1000.
    pub watch_history: usize,
    /// How often watches with `allowWatchBookmarks` receive a BOOKMARK. Default 30 s.
    pub watch_bookmark_interval: Duration,
    /// Run the Deployment/StatefulSet/ReplicaSet status simulator. Default `true`.
    pub simulate_workloads: bool,
    /// Run the HorizontalPodAutoscaler simulator. Default `true`.
    pub simulate_hpa: bool,
    /// Act as kube-apiserver's aggregation layer does with `--requestheader-*` and
    /// `--proxy-client-*` flags: publish `kube-system/extension-apiserver-authentication` (the
    /// front-proxy CA, allowed names and header names, and the client CA) and present the
    /// front-proxy client certificate to APIService backends, so a backend authenticates the
    /// aggregator exactly as in a real cluster. Default `true`.
    pub front_proxy: bool,
    /// Entries the write audit log keeps (the newest); 0 keeps none. Default 100,000.
    pub audit_capacity: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            tls: true,
            hpa_sync_period: Duration::from_secs(15),
            hpa_downscale_stabilization: Duration::from_secs(300),
            hpa_tolerance: 0.1,
            workload_ready_delay: Duration::ZERO,
            token: None,
            watch_history: 1000,
            watch_bookmark_interval: Duration::from_secs(30),
            simulate_workloads: true,
            simulate_hpa: true,
            front_proxy: true,
            audit_capacity: 100_000,
        }
    }
}

impl Config {
    /// The API alone, without the workload and HPA simulators: for tests of a client against
    /// the API that must not see objects change on their own.
    pub fn api_only() -> Self {
        Config {
            simulate_workloads: false,
            simulate_hpa: false,
            ..Config::default()
        }
    }
}

/// A running local cluster. Dropping it (or [`LocalCluster::shutdown`]) stops the server and the
/// simulators.
#[derive(Debug)]
pub struct LocalCluster {
    state: Arc<state::State>,
    url: String,
    ca_pem: Option<String>,
    shutdown: tokio::sync::watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl LocalCluster {
    /// Bind, generate certificates, create the default namespaces and start serving. When this
    /// returns, the server accepts requests.
    pub async fn start(config: Config) -> Result<LocalCluster, Error> {
        let listener = TcpListener::bind(config.bind)
            .await
            .map_err(|source| Error::Bind {
                addr: config.bind,
                source,
            })?;
        let local = listener.local_addr()?;
        let host = if local.ip().is_unspecified() {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            local.ip()
        };
        let address = SocketAddr::new(host, local.port()).to_string();
        let tls = if config.tls {
            Some(tls::generate(host)?)
        } else {
            None
        };
        let url = format!(
            "{}://{address}",
            if tls.is_some() { "https" } else { "http" }
        );
        let token = config
            .token
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
        let front_proxy = if config.front_proxy {
            Some(tls::generate_front_proxy()?)
        } else {
            None
        };
        let (shutdown, shutdown_rx) = tokio::sync::watch::channel(false);
        let state = Arc::new(state::State {
            registry: resources::Registry::default(),
            store: store::Store::new(config.watch_history),
            backends: backends::Backends::default(),
            token,
            shutdown: shutdown_rx.clone(),
            bookmark_interval: config
                .watch_bookmark_interval
                .max(Duration::from_millis(100)),
            front_proxy,
            faults: faults::Faults::default(),
            audit: audit::AuditLog::new(config.audit_capacity),
        });
        objects::bootstrap(&state, tls.as_ref().map(|t| t.ca_pem.as_str()))
            .map_err(Error::Bootstrap)?;

        let acceptor = tls
            .as_ref()
            .map(|t| tokio_rustls::TlsAcceptor::from(t.server_config.clone()));
        let mut tasks = vec![tokio::spawn(server::serve(
            listener,
            acceptor,
            state.clone(),
            address,
            shutdown_rx,
        ))];
        tasks.extend(sim::spawn(state.clone(), &config));
        Ok(LocalCluster {
            state,
            url,
            ca_pem: tls.map(|t| t.ca_pem),
            shutdown,
            tasks,
        })
    }

    /// The server URL, e.g. `https://127.0.0.1:40123`.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// The bearer token.
    pub fn token(&self) -> &str {
        &self.state.token
    }

    /// PEM of the CA that signed the server certificate (`None` without TLS).
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// A kubeconfig whose cluster, user and context are all named `kedge-local`.
    pub fn kubeconfig_yaml(&self) -> String {
        kubeconfig::render(&self.url, &self.state.token, self.ca_pem.as_deref())
    }

    /// Write [`Self::kubeconfig_yaml`] to `path`: parent directories created, written to a
    /// temporary file and renamed into place, mode 0600.
    pub fn write_kubeconfig(&self, path: &Path) -> std::io::Result<()> {
        kubeconfig::write_atomically(path, &self.kubeconfig_yaml())
    }

    /// A kube-rs client for this cluster, configured from the kubeconfig.
    pub async fn client(&self) -> Result<kube::Client, Error> {
        let config = self.kube_config().await?;
        kube::Client::try_from(config).map_err(|e| Error::Client(e.to_string()))
    }

    /// The kube-rs configuration of this cluster (from the kubeconfig), for callers that build
    /// their own client stack.
    pub async fn kube_config(&self) -> Result<kube::Config, Error> {
        let kc = kube::config::Kubeconfig::from_yaml(&self.kubeconfig_yaml())
            .map_err(|e| Error::Client(e.to_string()))?;
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .map_err(|e| Error::Client(e.to_string()))
    }

    /// Say which local URL the Service `namespace/name` stands for. APIServices whose
    /// `spec.service` names it are proxied there (and the HPA simulator fetches external
    /// metrics there). `tls` says how to trust an `https://` backend.
    pub fn register_service_backend(
        &self,
        namespace: &str,
        name: &str,
        url: &str,
        tls: BackendTls,
    ) {
        self.state.backends.register(
            namespace,
            name,
            backends::Backend {
                url: url.to_string(),
                tls,
            },
        );
    }

    /// Add a fault rule; its id. Requests it matches from now on get its action (see
    /// [`FaultRule`]); the first matching rule in the order they were added acts.
    pub fn inject_fault(&self, rule: FaultRule) -> Result<u64, Error> {
        self.state
            .faults
            .add(rule)
            .map(|f| f.id)
            .map_err(Error::InvalidFault)
    }

    /// Remove a rule, releasing the requests it holds; the rule with its final hits, `None`
    /// if there is no such rule.
    pub fn remove_fault(&self, id: u64) -> Option<Fault> {
        self.state.faults.remove(id)
    }

    /// Remove every rule; the rules removed.
    pub fn clear_faults(&self) -> Vec<Fault> {
        self.state.faults.clear()
    }

    /// The rules held, with how often each acted.
    pub fn faults(&self) -> Vec<Fault> {
        self.state.faults.list()
    }

    /// The audited write requests with a sequence number above `since` (0: all that are
    /// kept), oldest first.
    pub fn audit(&self, since: u64) -> Vec<AuditEntry> {
        self.state.audit.since(since)
    }

    /// Stop serving and stop the simulators.
    pub async fn shutdown(mut self) {
        self.stop();
        for task in std::mem::take(&mut self.tasks) {
            let _ = task.await;
        }
    }

    fn stop(&mut self) {
        let _ = self.shutdown.send(true);
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `kedge dev --cluster-only`: start a cluster, write its kubeconfig to `kubeconfig` once it
/// serves, print one line saying so, and run until Ctrl-C.
pub async fn run_cluster_only(config: Config, kubeconfig: &Path) -> Result<(), Error> {
    let cluster = LocalCluster::start(config).await?;
    cluster.write_kubeconfig(kubeconfig)?;
    println!(
        "local cluster ready at {}; export KUBECONFIG={}",
        cluster.url(),
        kubeconfig.display()
    );
    tokio::signal::ctrl_c().await?;
    cluster.shutdown().await;
    Ok(())
}
