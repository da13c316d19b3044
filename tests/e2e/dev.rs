//! `kedge dev` as a new user runs it: embedded cluster, examples applied, kubectl works, and a
//! live view of what scales and why.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use kedge_e2e::{Process, kedge_bin};

#[test]
fn dev_applies_examples_serves_kubectl_and_shows_the_live_view() {
    let dir = std::env::temp_dir().join(format!("kedge-e2e-dev-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut cmd = Command::new(kedge_bin());
    cmd.current_dir(&repo)
        .args(["dev", "--hpa-sync-seconds", "1", "--kubeconfig"])
        .arg(&kubeconfig);
    let dev = Process::spawn_logged(cmd, dir.join("dev.log"));

    let deadline = Instant::now() + Duration::from_secs(90);
    let view = loop {
        let out = dev.output();
        if out.contains("default/demo-worker") && out.contains("replicas=") {
            break out;
        }
        assert!(Instant::now() < deadline, "no live view:\n{out}");
        std::thread::sleep(Duration::from_millis(300));
    };
    assert!(
        view.contains(&format!("export KUBECONFIG={}", kubeconfig.display())),
        "{view}"
    );
    assert!(view.contains("applied 2 objects from examples"), "{view}");

    // kubectl, a real client, sees what kedge did.
    let out = Command::new("kubectl")
        .env("KUBECONFIG", &kubeconfig)
        .args([
            "get",
            "scaledobjects",
            "demo-worker",
            "-o",
            "jsonpath={.status.hpaName}",
        ])
        .output()
        .expect("kubectl");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "keda-hpa-demo-worker",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new("kubectl")
        .env("KUBECONFIG", &kubeconfig)
        .args([
            "get",
            "hpa",
            "keda-hpa-demo-worker",
            "-o",
            "jsonpath={.spec.maxReplicas}",
        ])
        .output()
        .expect("kubectl");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "5");
}
