//! Helpers of the end-to-end tests: the real `kedge` binary, started as users start it.
//!
//! A test starts an embedded cluster with `kedge dev --cluster-only` (exactly the entry point
//! scripts use), installs the CRDs, and runs `kedge run` processes against it through the
//! kubeconfig it wrote. The tests talk to the cluster with kube-rs, as they would to a real one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use kube::Client;
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};

pub use kedge_test_support::eventually;
pub use local_cluster::{AuditEntry, Fault, FaultAction, FaultRule, FaultWhen, Verb};

/// The `kedge` binary cargo built next to this test.
pub fn kedge_bin() -> PathBuf {
    if let Ok(p) = std::env::var("KEDGE_BIN") {
        return PathBuf::from(p);
    }
    // target/<profile>/deps/<test-binary> → target/<profile>/kedge
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = dir.join("kedge");
    assert!(
        bin.exists(),
        "{} not found: build it first with `cargo build -p kedge --features failpoints` (scripts/test.sh does)",
        bin.display()
    );
    bin
}

/// A child process killed when dropped, with its output in a log file.
pub struct Process {
    child: Child,
    /// Where stdout and stderr go.
    pub log: PathBuf,
}

impl Process {
    /// Spawns `cmd` with its output going to `log`.
    pub fn spawn_logged(cmd: Command, log: PathBuf) -> Process {
        Self::spawn(cmd, log)
    }

    fn spawn(mut cmd: Command, log: PathBuf) -> Process {
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = cmd
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn kedge");
        Process { child, log }
    }

    /// The output so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process now (SIGKILL) and waits for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The exit status, once the process has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Sends a signal (e.g. `STOP`, `CONT`).
    pub fn signal(&self, sig: &str) {
        let _ = Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// An embedded cluster started with `kedge dev --cluster-only`.
pub struct Cluster {
    /// The cluster process.
    pub process: Process,
    /// Its kubeconfig.
    pub kubeconfig: PathBuf,
    /// A client for it.
    pub client: Client,
    dir: PathBuf,
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "kedge-e2e-{name}-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

impl Cluster {
    /// Starts a cluster whose HPA controller syncs every second, and installs kedge's CRDs.
    pub async fn start(name: &str) -> Cluster {
        Self::start_with_hpa_sync(name, 1).await
    }

    /// Starts a cluster whose HPA controller syncs every `hpa_sync_seconds` (kube-controller-
    /// manager's default is 15), and installs kedge's CRDs.
    pub async fn start_with_hpa_sync(name: &str, hpa_sync_seconds: u32) -> Cluster {
        let cluster = Self::start_without_crds(name, hpa_sync_seconds).await;
        kedge::dev::install_crds(&cluster.client)
            .await
            .expect("install CRDs");
        cluster
    }

    /// Starts a cluster that does not serve kedge's CRDs yet (install them with
    /// `kedge::dev::install_crds`).
    pub async fn start_without_crds(name: &str, hpa_sync_seconds: u32) -> Cluster {
        let dir = temp_dir(name);
        let kubeconfig = dir.join("kubeconfig");
        let mut cmd = Command::new(kedge_bin());
        cmd.args([
            "dev",
            "--cluster-only",
            "--hpa-sync-seconds",
            &hpa_sync_seconds.to_string(),
            "--kubeconfig",
        ])
        .arg(&kubeconfig);
        let process = Process::spawn(cmd, dir.join("cluster.log"));
        let deadline = Instant::now() + Duration::from_secs(30);
        while !kubeconfig.exists() {
            assert!(
                Instant::now() < deadline,
                "cluster did not start:\n{}",
                process.output()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let kc = Kubeconfig::read_from(&kubeconfig).expect("kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
            .await
            .expect("client config");
        let client = Client::try_from(config).expect("client");
        Cluster {
            process,
            kubeconfig,
            client,
            dir,
        }
    }

    /// Starts `kedge run` against this cluster with extra arguments.
    pub fn run_kedge(&self, name: &str, args: &[&str]) -> Process {
        let mut cmd = Command::new(kedge_bin());
        cmd.arg("run");
        // Every listener on a free loopback port, so tests run side by side.
        for (flag, value) in [
            ("--pod-namespace", "default"),
            ("--metrics-bind-address", "127.0.0.1:0"),
            ("--secure-bind-address", "127.0.0.1"),
            ("--secure-port", "0"),
            ("--grpc-port", "0"),
        ] {
            if !args.contains(&flag) {
                cmd.args([flag, value]);
            }
        }
        cmd.args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("RUST_LOG", "info,kedge=debug");
        Process::spawn(cmd, self.dir.join(format!("{name}.log")))
    }
}

impl Process {
    /// The address the external metrics API of this `kedge run` listens on, from its log.
    pub async fn adapter_addr(&self) -> std::net::SocketAddr {
        eventually(
            Duration::from_secs(60),
            "the external metrics API to listen",
            || async {
                self.output()
                    .lines()
                    .find(|l| l.contains("serving the external metrics API"))
                    .and_then(|l| l.split("addr=").nth(1))
                    .and_then(|rest| rest.split_whitespace().next())
                    .and_then(|a| a.parse().ok())
            },
        )
        .await
    }
}

/// Creates the Deployment `namespace/name` (one container, pods labelled `app: name`) with
/// `replicas`.
pub async fn create_deployment(client: &Client, namespace: &str, name: &str, replicas: i32) {
    let d: Deployment = serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": [{"name": "app", "image": "busybox"}]}}
        }
    }))
    .expect("a Deployment");
    Api::<Deployment>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &d)
        .await
        .expect("create the Deployment");
}

/// The Deployment's replica count as its `/scale` reads, `None` when it cannot be read.
pub async fn replicas(client: &Client, namespace: &str, name: &str) -> Option<i32> {
    Api::<Deployment>::namespaced(client.clone(), namespace)
        .get_scale(name)
        .await
        .ok()
        .and_then(|s| s.spec.and_then(|s| s.replicas))
}

/// The path the HPA controller reads a ScaledObject's external metric at.
pub fn external_metric_path(namespace: &str, metric: &str, scaled_object: &str) -> String {
    format!(
        "/apis/external.metrics.k8s.io/v1beta1/namespaces/{namespace}/{metric}?labelSelector=scaledobject.keda.sh%2Fname%3D{scaled_object}"
    )
}

impl Cluster {
    /// Runs kedge (as [`Cluster::run_kedge`]) and routes the cluster's external metrics
    /// APIService to its adapter, so the HPA controller and kubectl read metrics from it.
    pub async fn run_kedge_serving_metrics(&self, name: &str, args: &[&str]) -> Process {
        let kedge = self.run_kedge(name, args);
        kedge::dev::route_external_metrics(&self.client, "default", kedge.adapter_addr().await)
            .await
            .expect("route the external metrics API to kedge");
        kedge
    }

    /// Runs kubectl against this cluster from the repository root; its stdout, or what it
    /// printed when it failed.
    pub fn kubectl(&self, args: &[&str]) -> Result<String, String> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("repository root");
        let out = Command::new("kubectl")
            .args(args)
            .current_dir(root)
            .env("KUBECONFIG", &self.kubeconfig)
            .output()
            .expect("run kubectl");
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "kubectl {}: {}{}",
                args.join(" "),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// `kubectl get --raw path`, parsed as JSON.
    pub fn get_raw(&self, path: &str) -> Result<serde_json::Value, String> {
        let out = self.kubectl(&["get", "--raw", path])?;
        serde_json::from_str(&out).map_err(|e| format!("{path}: {e}"))
    }

    /// The first value the external metrics API serves for `metric` of `scaled_object`, as
    /// the quantity string the HPA reads.
    pub fn external_metric_value(
        &self,
        namespace: &str,
        metric: &str,
        scaled_object: &str,
    ) -> Result<String, String> {
        let list = self.get_raw(&external_metric_path(namespace, metric, scaled_object))?;
        list.pointer("/items/0/value")
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| format!("no value in {list}"))
    }
}

/// The cluster's fault injection and write audit log (see `local_cluster::FaultRule` and
/// `local_cluster::AuditEntry`), through its `/local-cluster/...` admin endpoints.
impl Cluster {
    /// Adds a fault rule; its id.
    pub async fn inject_fault(&self, rule: FaultRule) -> u64 {
        local_cluster::remote::inject_fault(&self.client, &rule)
            .await
            .expect("inject a fault")
    }

    /// Removes one rule (releasing the requests it holds); the rule with its final hits.
    pub async fn remove_fault(&self, id: u64) -> Fault {
        local_cluster::remote::remove_fault(&self.client, id)
            .await
            .expect("remove a fault")
    }

    /// Removes every rule; the rules removed, with their hits.
    pub async fn clear_faults(&self) -> Vec<Fault> {
        local_cluster::remote::clear_faults(&self.client)
            .await
            .expect("clear the faults")
    }

    /// The rules held, with their hits.
    pub async fn faults(&self) -> Vec<Fault> {
        local_cluster::remote::faults(&self.client)
            .await
            .expect("list the faults")
    }

    /// The audited writes with a sequence number above `since` (0: all kept), oldest first.
    pub async fn audit(&self, since: u64) -> Vec<AuditEntry> {
        local_cluster::remote::audit(&self.client, since)
            .await
            .expect("read the audit log")
    }
}

/// Every distinct `spec.replicas` the Deployment takes, in order, from a watch: each write to
/// the Deployment or its `/scale` is an event, so even a state that lasts a few milliseconds
/// (kedge's 1 before the HPA's next sync) is seen, which polling cannot promise.
pub struct Recorder {
    seen: std::sync::Arc<std::sync::Mutex<Vec<i32>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Recorder {
    /// Starts recording the Deployment `namespace/name`.
    pub fn start(client: Client, namespace: &str, name: &str) -> Recorder {
        let api: Api<Deployment> = Api::namespaced(client, namespace);
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let record = std::sync::Arc::clone(&seen);
        let config =
            kube::runtime::watcher::Config::default().fields(&format!("metadata.name={name}"));
        let task = tokio::spawn(async move {
            use futures::StreamExt as _;
            use kube::runtime::WatchStreamExt as _;
            let mut events = std::pin::pin!(
                kube::runtime::watcher(api, config)
                    .default_backoff()
                    .applied_objects()
            );
            while let Some(event) = events.next().await {
                let Ok(d) = event else { continue };
                let r = d.spec.replicas.unwrap_or(1);
                let mut seen = record.lock().unwrap_or_else(|e| e.into_inner());
                if seen.last() != Some(&r) {
                    seen.push(r);
                }
            }
        });
        Recorder { seen, task }
    }

    /// The replica counts seen so far, in order.
    pub fn seen(&self) -> Vec<i32> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}
