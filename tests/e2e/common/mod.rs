//! Helpers of the end-to-end tests: the real `kedge` binary, started as users start it.
//!
//! A test starts an embedded cluster with `kedge dev --cluster-only` (exactly the entry point
//! scripts use), installs the CRDs, and runs `kedge run` processes against it through the
//! kubeconfig it wrote. The tests talk to the cluster with kube-rs, as they would to a real one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};

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
        "{} not found: build it first with `cargo build -p kedge` (scripts/test.sh does)",
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
        let dir = temp_dir(name);
        let kubeconfig = dir.join("kubeconfig");
        let mut cmd = Command::new(kedge_bin());
        cmd.args([
            "dev",
            "--cluster-only",
            "--hpa-sync-seconds",
            "1",
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
        kedge::dev::install_crds(&client)
            .await
            .expect("install CRDs");
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

/// Polls `check` every 200 ms until it returns `Some`, failing after `timeout` with `what`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
