//! Conformance as the real kubectl sees it: each supported kubectl behaviour is one test. kubectl
//! runs as a subprocess with its own KUBECONFIG, HOME and cache directory in a temp dir.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use kedge_test_support::eventually;
use local_cluster::LocalCluster;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

struct Kubectl {
    /// The cluster, for registering service backends.
    cluster: LocalCluster,
    dir: tempfile::TempDir,
}

struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Kubectl {
    /// `None` when kubectl is not installed (the test is skipped with a note).
    async fn start() -> Option<Kubectl> {
        if std::process::Command::new("kubectl")
            .arg("version")
            .arg("--client")
            .output()
            .is_err()
        {
            eprintln!("kubectl not found; skipping");
            return None;
        }
        let cluster = common::start().await;
        let dir = tempfile::tempdir().unwrap();
        cluster
            .write_kubeconfig(&dir.path().join("kubeconfig"))
            .unwrap();
        Some(Kubectl { cluster, dir })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("kubectl");
        cmd.args(args)
            .env("KUBECONFIG", self.path("kubeconfig"))
            .env("HOME", self.dir.path())
            .env("KUBECACHEDIR", self.path("cache"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    async fn run_with_stdin(&self, args: &[&str], stdin: &str) -> Out {
        let mut child = self.command(args).spawn().expect("kubectl runs");
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin.as_bytes()).await.unwrap();
        drop(input);
        let output = common::within(&format!("kubectl {args:?}"), child.wait_with_output())
            .await
            .unwrap();
        Out {
            ok: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    async fn run(&self, args: &[&str]) -> Out {
        self.run_with_stdin(args, "").await
    }

    /// Run and require success.
    async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert!(
            out.ok,
            "kubectl {args:?} failed:\n{}\n{}",
            out.stdout, out.stderr
        );
        out.stdout
    }

    async fn json(&self, args: &[&str]) -> Value {
        let mut full = args.to_vec();
        full.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&full).await).unwrap()
    }

    fn write(&self, name: &str, contents: &str) -> String {
        let p = self.path(name);
        std::fs::write(&p, contents).unwrap();
        p.to_string_lossy().into_owned()
    }
}

const DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: app
        image: app:1
        env:
        - {name: A, value: "1"}
      - name: sidecar
        image: side:1
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  mode: fast
"#;

const CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gadgets.test.kedge.dev
spec:
  group: test.kedge.dev
  names: {kind: Gadget, plural: gadgets, singular: gadget, shortNames: [gd]}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
      scale: {specReplicasPath: .spec.replicas, statusReplicasPath: .status.replicas}
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            properties:
              size: {type: integer, minimum: 1}
              replicas: {type: integer}
              tags: {type: array, items: {type: string}}
          status:
            type: object
            properties:
              replicas: {type: integer}
"#;

async fn with_crd(k: &Kubectl) {
    let crd = k.write("crd.yaml", CRD);
    k.ok(&["apply", "-f", &crd]).await;
    k.ok(&[
        "wait",
        "--for",
        "condition=established",
        "crd/gadgets.test.kedge.dev",
        "--timeout=20s",
    ])
    .await;
}

#[tokio::test]
async fn version_api_resources_and_raw_discovery() {
    let Some(k) = Kubectl::start().await else {
        return;
    };
    let version = k.ok(&["version"]).await;
    assert!(version.contains("Server Version: v1.32"), "{version}");
    let resources = k.ok(&["api-resources"]).await;
    for line in [
        "deployments",
        "horizontalpodautoscalers",
        "customresourcedefinitions",
        "apiservices",
        "leases",
    ] {
        assert!(resources.contains(line), "{line} missing from\n{resources}");
    }
    let apis: Value = serde_json::from_str(&k.ok(&["get", "--raw", "/apis"]).await).unwrap();
    assert_eq!(apis["kind"], "APIGroupList");
    let names: Vec<&str> = apis["groups"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|g| g["name"].as_str())
        .collect();
    assert!(
        names.contains(&"apps") && names.contains(&"autoscaling"),
        "{names:?}"
    );
    let ns = k.ok(&["get", "namespaces"]).await;
    assert!(ns.contains("default") && ns.contains("kube-system"), "{ns}");
}

#[tokio::test]
async fn apply_client_side_creates_then_patches() {
    let Some(k) = Kubectl::start().await else {
        return;
    };
    let file = k.write("app.yaml", DEPLOYMENT);
    let out = k.ok(&["apply", "-f", &file]).await;
    assert!(
        out.contains("deployment.apps/web created") && out.contains("configmap/settings created"),
        "{out}"
    );
    // Re-applying an unchanged file changes nothing.
    let out = k.ok(&["apply", "-f", &file]).await;
    assert!(out.contains("deployment.apps/web unchanged"), "{out}");
    // A changed container image is a strategic merge by container name; the other container stays.
    let file = k.write("app.yaml", &DEPLOYMENT.replace("app:1", "app:2"));
    let out = k.ok(&["apply", "-f", &file]).await;
    assert!(out.contains("deployment.apps/web configured"), "{out}");
    let d = k.json(&["get", "deployment", "web"]).await;
    let containers = d["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(containers.len(), 2);
    assert_eq!(containers[0]["image"], "app:2");
    assert_eq!(containers[0]["env"][0]["value"], "1");
    assert_eq!(d["metadata"]["generation"], 2);
    assert!(
        d["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
            .is_string()
    );
}

#[tokio::test]
async fn apply_server_side() {
    let Some(k) = Kubectl::start().await else {
        return;
    };
    let file = k.write("app.yaml", DEPLOYMENT);
    let out = k.ok(&["apply", "--server-side", "-f", &file]).await;
    assert!(
        out.contains("deployment.apps/web serverside-applied"),
        "{out}"
    );
    let file = k.write(
        "app.yaml",
        &DEPLOYMENT.replace("replicas: 2", "replicas: 3"),
    );
    k.ok(&["apply", "--server-side", "-f", &file]).await;
    let d = k
        .json(&["get", "deployment", "web", "--show-managed-fields"])
        .await;
    assert_eq!(d["spec"]["replicas"], 3);
    let managers: Vec<&str> = d["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["manager"].as_str())
        .collect();
    assert!(managers.contains(&"kubectl"), "{managers:?}");
}

#[tokio::test]
async fn custom_resources_apply_get_scale_and_validation() {
    let Some(k) = Kubectl::start().await else {
        return;
    };
    with_crd(&k).await;
    let cr = k.write("g.yaml", "apiVersion: test.kedge.dev/v1\nkind: Gadget\nmetadata: {name: g1}\nspec: {size: 3, tags: [a, b]}\n");
    k.ok(&["apply", "-f", &cr]).await;
    // Client-side apply of a CRD kind is a JSON merge patch: the list is replaced.
    let cr = k.write("g.yaml", "apiVersion: test.kedge.dev/v1\nkind: Gadget\nmetadata: {name: g1}\nspec: {size: 4, tags: [c]}\n");
    assert!(k.ok(&["apply", "-f", &cr]).await.contains("configured"));
    let g = k.json(&["get", "gd", "g1"]).await;
    assert_eq!(g["spec"]["size"], 4);
    assert_eq!(g["spec"]["tags"], serde_json::json!(["c"]));
    // Printer columns.
    let table = k.ok(&["get", "gadgets"]).await;
    assert!(
        table.lines().next().unwrap().contains("SIZE") && table.contains("g1"),
        "{table}"
    );
    // Scale through the CRD's scale subresource.
    assert!(
        k.ok(&["scale", "gadget", "g1", "--replicas=3"])
            .await
            .contains("scaled")
    );
    assert_eq!(
        k.json(&["get", "gadget", "g1"]).await["spec"]["replicas"],
        3
    );
    // Schema validation errors come back as the API server words them.
    let bad = k
        .run_with_stdin(
            &["apply", "-f", "-"],
            r#"{"apiVersion":"test.kedge.dev/v1","kind":"Gadget","metadata":{"name":"bad"},"spec":{"size":0}}"#,
        )
        .await;
    assert!(!bad.ok);
    assert!(
        bad.stderr.contains("spec.size") && bad.stderr.contains("greater than or equal to 1"),
        "{}",
        bad.stderr
    );
    // kubectl asks for strict field validation: unknown fields are rejected.
    let unknown = k
        .run_with_stdin(
            &["apply", "-f", "-"],
            r#"{"apiVersion":"test.kedge.dev/v1","kind":"Gadget","metadata":{"name":"odd"},"spec":{"size":1,"colour":"red"}}"#,
        )
        .await;
    assert!(
        !unknown.ok && unknown.stderr.contains("unknown field"),
        "{}",
        unknown.stderr
    );
}

#[tokio::test]
async fn scale_deployment() {
    let Some(k) = Kubectl::start().await else {
        return;
    };
    let file = k.write("app.yaml", DEPLOYMENT);
    k.ok(&["apply", "-f", &file]).await;
    assert!(
        k.ok(&["scale", "deployment", "web", "--replicas=5"])
            .await
            .contains("deployment.apps/web scaled")
    );
    let rollout = k
        .ok(&["rollout", "status", "deployment/web", "--timeout=20s"])
        .await;
    assert!(rollout.contains("successfully rolled out"), "{rollout}");
    let describe = k.ok(&["describe", "deployment", "web"]).await;
    assert!(
        describe.contains("5 desired") && describe.contains("MinimumReplicasAvailable"),
        "{describe}"
    );
    assert_eq!(
        k.json(&["get", "deployment", "web"]).await["spec"]["replicas"],
        5
    );
    // The workload simulator makes the status follow.
    eventually(common::WAIT, "readyReplicas = 5", || async {
        let d = k.json(&["get", "deployment", "web"]).await;
        (d["status"]["readyReplicas"] == 5).then_some(())
    })
    .await;
}

#[tokio::test]
async fn patch_merge_json_and_strategic() {
    let Some(k) = Kubectl::start().await else {
        return;
    };
    let file = k.write("app.yaml", DEPLOYMENT);
    k.ok(&["apply", "-f", &file]).await;
    k.ok(&[
        "patch",
        "configmap",
        "settings",
        "--type",
        "merge",
        "-p",
        r#"{"data":{"mode":"slow","x":"1"}}"#,
    ])
    .await;
    let cm = k.json(&["get", "cm", "settings"]).await;
    assert_eq!(
        (cm["data"]["mode"].as_str(), cm["data"]["x"].as_str()),
        (Some("slow"), Some("1"))
    );
    k.ok(&[
        "patch",
        "configmap",
        "settings",
        "--type",
        "json",
        "-p",
        r#"[{"op":"remove","path":"/data/x"}]"#,
    ])
    .await;
    assert!(
        k.json(&["get", "cm", "settings"]).await["data"]
            .get("x")
            .is_none()
    );
    // kubectl's default patch type for built-in kinds is strategic.
    k.ok(&[
        "patch",
        "deployment",
        "web",
        "-p",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"sidecar","image":"side:2"}]}}}}"#,
    ])
    .await;
    let d = k.json(&["get", "deploy", "web"]).await;
    let images: Vec<&str> = d["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["image"].as_str())
        .collect();
    assert_eq!(images, ["app:1", "side:2"]);
    k.ok(&["label", "cm", "settings", "team=a"]).await;
    k.ok(&["annotate", "cm", "settings", "note=b"]).await;
    let cm = k.json(&["get", "cm", "-l", "team=a"]).await;
    assert_eq!(cm["items"][0]["metadata"]["annotations"]["note"], "b");
}

#[tokio::test]
async fn get_output_formats() {
    let Some(k) = Kubectl::start().await else {
        return;
    };
    let file = k.write("app.yaml", DEPLOYMENT);
    k.ok(&["apply", "-f", &file]).await;
    let table = k.ok(&["get", "deployments"]).await;
    assert!(
        table.starts_with("NAME") && table.contains("web"),
        "{table}"
    );
    let yaml = k.ok(&["get", "configmap", "settings", "-o", "yaml"]).await;
    assert!(
        yaml.contains("kind: ConfigMap") && yaml.contains("mode: fast"),
        "{yaml}"
    );
    let names = k.ok(&["get", "cm,deploy", "-o", "name"]).await;
    assert!(
        names.contains("configmap/settings") && names.contains("deployment.apps/web"),
        "{names}"
    );
    let jp = k
        .ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"])
        .await;
    assert_eq!(jp, "2");
    let all = k
        .ok(&[
            "get",
            "cm",
            "-A",
            "--field-selector",
            "metadata.name=settings",
        ])
        .await;
    assert!(all.contains("default") && all.contains("settings"), "{all}");
    let missing = k.run(&["get", "cm", "nope"]).await;
    assert!(
        !missing.ok && missing.stderr.contains("configmaps \"nope\" not found"),
        "{}",
        missing.stderr
    );
}

#[tokio::test]
async fn delete_objects_and_namespaces() {
    let Some(k) = Kubectl::start().await else {
        return;
    };
    let file = k.write("app.yaml", DEPLOYMENT);
    k.ok(&["apply", "-f", &file]).await;
    assert!(
        k.ok(&["delete", "-f", &file])
            .await
            .contains("deployment.apps \"web\" deleted")
    );
    assert!(
        k.ok(&["get", "deploy"]).await.is_empty()
            || !k.ok(&["get", "deploy"]).await.contains("web")
    );
    let ns = k.write(
        "ns.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: scratch}\n",
    );
    k.ok(&["apply", "-f", &ns]).await;
    k.ok(&["apply", "-n", "scratch", "-f", &file]).await;
    k.ok(&["delete", "namespace", "scratch", "--timeout=20s"])
        .await;
    let gone = k.run(&["get", "namespace", "scratch"]).await;
    assert!(
        !gone.ok && gone.stderr.contains("NotFound"),
        "{}",
        gone.stderr
    );
    k.ok(&["apply", "-f", &file]).await;
    assert!(
        k.ok(&["delete", "cm", "-l", "!nonexistent"])
            .await
            .contains("configmap \"settings\" deleted")
    );
}

#[tokio::test]
async fn get_watch_streams_changes() {
    let Some(k) = Kubectl::start().await else {
        return;
    };
    let watch = k
        .command(&[
            "get",
            "configmaps",
            "--watch",
            "--output-watch-events",
            "--request-timeout=20s",
        ])
        .spawn()
        .unwrap();
    // Give kubectl time to list and start watching before changing anything.
    tokio::time::sleep(Duration::from_secs(2)).await;
    k.run_with_stdin(
        &["apply", "-f", "-"],
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"w1"}}"#,
    )
    .await;
    k.ok(&["label", "configmap", "w1", "x=y"]).await;
    k.ok(&["delete", "configmap", "w1"]).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut child = watch;
    let _ = child.start_kill();
    let out = common::within("kubectl get -w to exit", child.wait_with_output())
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let events: Vec<(&str, &str)> = text
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut cols = l.split_whitespace();
            Some((cols.next()?, cols.next()?))
        })
        .collect();
    assert_eq!(
        events,
        [("ADDED", "w1"), ("MODIFIED", "w1"), ("DELETED", "w1")],
        "{text}"
    );
}

#[tokio::test]
async fn get_raw_reaches_aggregated_apis() {
    use axum::routing::get;
    let Some(k) = Kubectl::start().await else {
        return;
    };
    let app = axum::Router::new()
        .route(
            "/apis/external.metrics.k8s.io/v1beta1",
            get(|| async {
                axum::Json(serde_json::json!({"kind": "APIResourceList", "apiVersion": "v1",
                    "groupVersion": "external.metrics.k8s.io/v1beta1", "resources": []}))
            }),
        )
        .route(
            "/apis/external.metrics.k8s.io/v1beta1/namespaces/{ns}/{name}",
            get(|axum::extract::RawQuery(q): axum::extract::RawQuery| async move {
                axum::Json(serde_json::json!({"kind": "ExternalMetricValueList", "apiVersion": "external.metrics.k8s.io/v1beta1",
                    "metadata": {}, "items": [{"metricName": "m", "value": "7", "query": q}]}))
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    k.cluster.register_service_backend(
        "keda",
        "keda-metrics-apiserver",
        &format!("http://{addr}"),
        local_cluster::BackendTls::InsecureSkipVerify,
    );
    let svc = k.write(
        "apiservice.yaml",
        "apiVersion: apiregistration.k8s.io/v1\nkind: APIService\nmetadata: {name: v1beta1.external.metrics.k8s.io}\nspec:\n  group: external.metrics.k8s.io\n  version: v1beta1\n  insecureSkipTLSVerify: true\n  groupPriorityMinimum: 100\n  versionPriority: 100\n  service: {namespace: keda, name: keda-metrics-apiserver, port: 443}\n",
    );
    k.ok(&["apply", "-f", &svc]).await;
    k.ok(&[
        "wait",
        "--for=condition=Available",
        "apiservice/v1beta1.external.metrics.k8s.io",
        "--timeout=20s",
    ])
    .await;
    let raw = k
        .ok(&[
            "get",
            "--raw",
            "/apis/external.metrics.k8s.io/v1beta1/namespaces/default/m?labelSelector=app%3Dq",
        ])
        .await;
    let v: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(v["items"][0]["value"], "7");
    assert_eq!(v["items"][0]["query"], "labelSelector=app%3Dq");
    let services = k.ok(&["get", "apiservices"]).await;
    assert!(
        services.contains("v1beta1.external.metrics.k8s.io") && services.contains("True"),
        "{services}"
    );
}

#[tokio::test]
async fn typed_generators_get_a_clear_415() {
    let Some(k) = Kubectl::start().await else {
        return;
    };
    // `kubectl create namespace` encodes protobuf, which local-cluster does not decode.
    let out = k.run(&["create", "namespace", "typed"]).await;
    assert!(
        !out.ok && out.stderr.contains("JSON request bodies only"),
        "{}",
        out.stderr
    );
    // The manifest route works.
    let out = k
        .run_with_stdin(
            &["create", "-f", "-"],
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: typed}\n",
        )
        .await;
    assert!(out.ok, "{}", out.stderr);
}
