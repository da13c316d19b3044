//! `kedge dev`: kedge on its embedded local cluster, with kubectl access and a live view.
//!
//! It never touches a real cluster: it starts `local-cluster`, installs the CRDs, writes a
//! kubeconfig for kubectl, applies `examples/`, runs the operator against it, and prints what
//! scales and why whenever that changes.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::{Client, ResourceExt as _};
use local_cluster::{Config, LocalCluster};
use scaler_core::Registry;
use tracing::warn;

use crate::crd::ScaledObject;
use crate::run::{RunArgs, run_with_config};

/// The namespace kedge runs in on the embedded cluster (its Lease, certificate Secret and
/// metrics Service), as in `deploy/`.
pub const DEV_NAMESPACE: &str = "kedge";

/// Flags of `kedge dev`.
#[derive(Debug, Clone, clap::Args)]
pub struct DevArgs {
    /// Start only the embedded API server and its simulated controllers (no operator).
    #[arg(long)]
    pub cluster_only: bool,
    /// Where to write the kubeconfig of the embedded cluster.
    #[arg(long, default_value = ".kedge/kubeconfig")]
    pub kubeconfig: PathBuf,
    /// Directory whose `*.yaml` manifests are applied at start.
    #[arg(long, default_value = "examples")]
    pub examples: PathBuf,
    /// Apply no examples.
    #[arg(long)]
    pub no_examples: bool,
    /// Seconds between two syncs of the simulated HPA controller.
    #[arg(long, default_value_t = 15)]
    pub hpa_sync_seconds: u64,
    /// Log format.
    #[arg(long, value_enum, default_value_t = crate::telemetry::LogFormat::Text)]
    pub log_format: crate::telemetry::LogFormat,
}

/// Why `kedge dev` stopped.
#[derive(Debug, thiserror::Error)]
pub enum DevError {
    /// The embedded cluster failed.
    #[error("local cluster: {0}")]
    Cluster(#[from] local_cluster::Error),
    /// An API call failed.
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// A file could not be read or written.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// An example is not valid YAML.
    #[error("{file}: {message}")]
    Example {
        /// File.
        file: String,
        /// What is wrong.
        message: String,
    },
    /// The operator failed.
    #[error("{0}")]
    Run(#[from] crate::run::RunError),
}

/// Installs kedge's CRDs and waits until they are served.
pub async fn install_crds(client: &Client) -> Result<(), DevError> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in crate::crd::all() {
        let name = crd.name_any();
        api.patch(
            &name,
            &PatchParams::apply("kedge").force(),
            &Patch::Apply(&crd),
        )
        .await?;
    }
    let so: Api<ScaledObject> = Api::all(client.clone());
    for _ in 0..100 {
        if so.list(&ListParams::default().limit(1)).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// Applies every document of every `*.yaml` file of `dir` (server-side apply, so re-applying is
/// harmless). Returns how many objects were applied.
pub async fn apply_dir(client: &Client, dir: &Path) -> Result<usize, DevError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    let mut applied = 0;
    for file in files {
        let text = std::fs::read_to_string(&file)?;
        let docs: Vec<serde_json::Value> =
            serde_saphyr::from_multiple(&text).map_err(|e| DevError::Example {
                file: file.display().to_string(),
                message: e.to_string(),
            })?;
        for doc in docs.into_iter().filter(|d| !d.is_null()) {
            let obj: DynamicObject =
                serde_json::from_value(doc).map_err(|e| DevError::Example {
                    file: file.display().to_string(),
                    message: e.to_string(),
                })?;
            apply_object(client, obj).await?;
            applied += 1;
        }
    }
    Ok(applied)
}

async fn apply_object(client: &Client, obj: DynamicObject) -> Result<(), DevError> {
    let types = obj.types.clone().unwrap_or_default();
    let (group, version) = match types.api_version.split_once('/') {
        Some((g, v)) => (g.to_owned(), v.to_owned()),
        None => (String::new(), types.api_version.clone()),
    };
    let gvk = GroupVersionKind::gvk(&group, &version, &types.kind);
    let (resource, caps) = kube::discovery::pinned_kind(client, &gvk).await?;
    let name = obj.name_any();
    let api: Api<DynamicObject> = match caps.scope {
        kube::discovery::Scope::Namespaced => Api::namespaced_with(
            client.clone(),
            &obj.namespace().unwrap_or_else(|| "default".to_owned()),
            &resource,
        ),
        kube::discovery::Scope::Cluster => Api::all_with(client.clone(), &resource),
    };
    api.patch(
        &name,
        &PatchParams::apply("kedge-dev").force(),
        &Patch::Apply(&obj),
    )
    .await?;
    Ok(())
}

/// Routes the cluster's `external.metrics.k8s.io` API to a metrics adapter listening on
/// `addr`: the Service `namespace/kedge-metrics-apiserver` (port 443 → `addr`'s port), its
/// Endpoints (`addr`'s IP, written by hand as for any selector-less Service; the cluster has no
/// endpoints controller for a process outside it), and the APIService
/// `v1beta1.external.metrics.k8s.io` without a `caBundle`, which kedge fills in from its CA as
/// it does in a real cluster.
pub async fn route_external_metrics(
    client: &Client,
    namespace: &str,
    addr: std::net::SocketAddr,
) -> Result<(), DevError> {
    let service = "kedge-metrics-apiserver";
    let docs = serde_json::json!([
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": service, "namespace": namespace},
         "spec": {"ports": [{"name": "https", "port": 443, "targetPort": addr.port()}]}},
        {"apiVersion": "v1", "kind": "Endpoints",
         "metadata": {"name": service, "namespace": namespace},
         "subsets": [{"addresses": [{"ip": addr.ip().to_string()}],
                      "ports": [{"name": "https", "port": addr.port()}]}]},
        {"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
         "metadata": {"name": "v1beta1.external.metrics.k8s.io"},
         "spec": {"group": "external.metrics.k8s.io", "version": "v1beta1",
                  "groupPriorityMinimum": 100, "versionPriority": 100,
                  "service": {"namespace": namespace, "name": service, "port": 443}}}
    ]);
    for doc in docs.as_array().into_iter().flatten() {
        let obj: DynamicObject =
            serde_json::from_value(doc.clone()).map_err(|e| DevError::Example {
                file: "route_external_metrics".into(),
                message: e.to_string(),
            })?;
        apply_object(client, obj).await?;
    }
    Ok(())
}

/// A free loopback port for the adapter (the cluster needs it before kedge binds it).
fn free_loopback_port() -> std::io::Result<std::net::SocketAddr> {
    std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()
}

/// One line of the live view.
async fn view(client: &Client) -> Result<String, kube::Error> {
    let api: Api<ScaledObject> = Api::all(client.clone());
    let mut out = String::new();
    let mut rows: BTreeMap<String, String> = BTreeMap::new();
    for so in api.list(&ListParams::default()).await? {
        let ns = so.namespace().unwrap_or_default();
        let status = so.status.clone().unwrap_or_default();
        let cond = |t: &str| {
            status
                .conditions
                .iter()
                .flatten()
                .find(|c| c.type_ == t)
                .map(|c| {
                    (
                        c.status.clone(),
                        c.reason.clone().unwrap_or_default(),
                        c.message.clone().unwrap_or_default(),
                    )
                })
                .unwrap_or_default()
        };
        let target = &so.spec.scale_target_ref;
        let replicas = crate::target::Target::resolve(
            client,
            &crate::target::Discovery::default(),
            &ns,
            target,
        )
        .await
        .map(|(_, r)| r.to_string())
        .unwrap_or_else(|_| "?".into());
        let activity: Vec<String> = status
            .triggers_activity
            .iter()
            .flatten()
            .map(|(m, a)| format!("{m}={}", if a.is_active { "active" } else { "idle" }))
            .collect();
        let (ready, ready_reason, ready_msg) = cond("Ready");
        let (_, active_reason, active_msg) = cond("Active");
        let why = if ready == "False" {
            format!("{ready_reason}: {ready_msg}")
        } else {
            format!("{active_reason}: {active_msg}")
        };
        rows.insert(
            format!("{ns}/{}", so.name_any()),
            format!(
                "{} {}/{}  replicas={replicas}  [{}]  {why}",
                target.kind(),
                ns,
                target.name,
                activity.join(" ")
            ),
        );
    }
    for (name, row) in rows {
        let _ = writeln!(out, "  {name:<32} {row}");
    }
    Ok(out)
}

/// Runs `kedge dev`.
pub async fn run(args: DevArgs, registry: Registry) -> Result<(), DevError> {
    let config = Config {
        hpa_sync_period: Duration::from_secs(args.hpa_sync_seconds.max(1)),
        ..Config::default()
    };
    if args.cluster_only {
        local_cluster::run_cluster_only(config, &args.kubeconfig).await?;
        return Ok(());
    }
    crate::telemetry::init_logging(args.log_format);
    let cluster = LocalCluster::start(config).await?;
    let client = cluster.client().await?;
    install_crds(&client).await?;
    cluster.write_kubeconfig(&args.kubeconfig)?;
    println!("kedge dev: local cluster at {}", cluster.url());
    println!(
        "kedge dev: use it with kubectl:  export KUBECONFIG={}",
        args.kubeconfig.display()
    );
    if !args.no_examples {
        match apply_dir(&client, &args.examples).await {
            Ok(n) => println!(
                "kedge dev: applied {n} objects from {}",
                args.examples.display()
            ),
            Err(e) => eprintln!("kedge dev: examples: {e}"),
        }
    }
    let adapter_addr = free_loopback_port()?;
    route_external_metrics(&client, DEV_NAMESPACE, adapter_addr).await?;
    println!(
        "kedge dev: external metrics API on https://{adapter_addr} (try: kubectl get --raw /apis/external.metrics.k8s.io/v1beta1)"
    );
    // `kedge run`'s own defaults, with what the embedded cluster needs instead.
    let mut run_args = RunArgs::defaults();
    run_args.watch_namespace = String::new();
    run_args.pod_namespace = DEV_NAMESPACE.into();
    run_args.metrics_bind_address = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    run_args.leader_elect = false;
    run_args.identity = Some("kedge-dev".into());
    run_args.log_format = args.log_format;
    // The embedded cluster authenticates itself to the adapter with a front-proxy client
    // certificate as kube-apiserver does, so the adapter keeps its auth on.
    run_args.adapter.secure_port = adapter_addr.port();
    run_args.adapter.secure_bind_address = adapter_addr.ip();
    let view_client = client.clone();
    tokio::spawn(async move {
        let mut last = String::new();
        loop {
            tokio::time::sleep(Duration::from_secs(2)).await;
            match view(&view_client).await {
                Ok(v) if v != last => {
                    println!("--- {} ---", chrono::Utc::now().format("%H:%M:%S"));
                    print!("{v}");
                    last = v;
                }
                Ok(_) => {}
                Err(e) => warn!("live view: {e}"),
            }
        }
    });
    let result = run_with_config(cluster.kube_config().await?, run_args, registry).await;
    cluster.shutdown().await;
    Ok(result?)
}
