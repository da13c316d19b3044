//! The adapter against local-cluster, kedge's embedded Kubernetes API: delegated authentication
//! reading the real `extension-apiserver-authentication` ConfigMap and calling the real
//! TokenReview and SubjectAccessReview APIs, and kubectl as a real client, both through the
//! cluster's APIService proxy and directly with a client certificate.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use common::{Ca, Leaf, MapProvider, get_json, https_client, loopback, metric_url};
use k8s_openapi::api::core::v1::ConfigMap;
use kedge_test_support::eventually;
use kube::api::{Api, Patch, PatchParams, PostParams};
use local_cluster::{BackendTls, LocalCluster};
use metrics_adapter::{
    AdapterConfig, AdapterServer, Auth, DelegatedAuth, DelegatedAuthConfig, ServerHandle,
    ServingTls,
};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(60);

async fn cluster() -> LocalCluster {
    LocalCluster::start(local_cluster::Config {
        // These tests publish the authentication ConfigMap themselves, with CAs they control.
        front_proxy: false,
        ..local_cluster::Config::api_only()
    })
    .await
    .unwrap()
}

/// Publishes the ConfigMap kube-apiserver would: the front-proxy CA and allowed names, and the
/// client CA.
async fn publish_authentication(
    client: &kube::Client,
    front_proxy_ca: &Ca,
    client_ca: &Ca,
    allowed: &str,
) {
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "kube-system");
    let data: BTreeMap<String, String> = [
        ("client-ca-file", client_ca.cert_pem.as_str()),
        (
            "requestheader-client-ca-file",
            front_proxy_ca.cert_pem.as_str(),
        ),
        ("requestheader-allowed-names", allowed),
        ("requestheader-username-headers", r#"["X-Remote-User"]"#),
        ("requestheader-group-headers", r#"["X-Remote-Group"]"#),
        (
            "requestheader-extra-headers-prefix",
            r#"["X-Remote-Extra-"]"#,
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let cm = ConfigMap {
        metadata: kube::api::ObjectMeta {
            name: Some("extension-apiserver-authentication".into()),
            ..Default::default()
        },
        data: Some(data),
        ..Default::default()
    };
    cms.create(&PostParams::default(), &cm).await.unwrap();
}

async fn start_adapter(auth: Auth, names: &[&str]) -> (ServerHandle, String) {
    let config = AdapterConfig {
        bind: loopback(),
        tls: ServingTls::SelfSigned {
            names: names.iter().map(|s| s.to_string()).collect(),
        },
        ..AdapterConfig::default()
    };
    let provider = MapProvider::with(&[("default", "orders", "s0-x", 7.0)]);
    let server = AdapterServer::bind(config, provider, auth).await.unwrap();
    let pem = server.serving_cert_pem().unwrap().to_owned();
    (server.spawn().unwrap(), pem)
}

#[tokio::test]
async fn client_ca_settings_come_from_the_clusters_configmap() {
    let cluster = cluster().await;
    let client = cluster.client().await.unwrap();

    // Before kube-apiserver has published its settings: only bearer tokens could work.
    let auth = DelegatedAuth::from_cluster(client.clone(), DelegatedAuthConfig::default())
        .await
        .unwrap();
    assert!(auth.settings().request_header.is_none());
    assert!(auth.settings().client_ca.is_none());
    let refresh = auth.spawn_refresh(client.clone(), Duration::from_millis(200));
    let (server, serving_ca) = start_adapter(Auth::Delegated(auth.clone()), &["localhost"]).await;
    let url = metric_url(server.local_addr(), "default", "s0-x", "orders");

    // The aggregator's identity (system:masters needs no SubjectAccessReview).
    let front_proxy_ca = Ca::new("front-proxy-ca");
    let proxy = https_client(
        &serving_ca,
        Some(&front_proxy_ca.client("front-proxy-client", None)),
    );
    let aggregator = [
        ("X-Remote-User", "system:kube-aggregator"),
        ("X-Remote-Group", "system:masters"),
    ];
    let (code, _) = get_json(&proxy, &url, &aggregator).await;
    assert_eq!(code, 401);

    // Published: the running adapter picks the CA and allowed names up.
    publish_authentication(
        &client,
        &front_proxy_ca,
        &Ca::new("client-ca"),
        r#"["front-proxy-client"]"#,
    )
    .await;
    eventually(WAIT, "the front-proxy CA to apply", || async {
        (get_json(&proxy, &url, &aggregator).await.0 == 200).then_some(())
    })
    .await;
    let settings = auth.settings();
    assert_eq!(
        settings.request_header.as_ref().unwrap().allowed_names,
        vec!["front-proxy-client"]
    );
    assert!(settings.client_ca.is_some());
    let (code, body) = get_json(&proxy, &url, &aggregator).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["items"][0]["value"], "7");
    // Headers without the certificate still prove nothing.
    let (code, _) = get_json(&https_client(&serving_ca, None), &url, &aggregator).await;
    assert_eq!(code, 401);

    // The cluster changes the allowed names: the running adapter follows.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "kube-system");
    cms.patch(
        "extension-apiserver-authentication",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"requestheader-allowed-names": "[\"another-proxy\"]"}})),
    )
    .await
    .unwrap();
    eventually(WAIT, "the new allowed names to apply", || async {
        (get_json(&proxy, &url, &aggregator).await.0 == 401).then_some(())
    })
    .await;

    refresh.abort();
    server.shutdown().await;
    cluster.shutdown().await;
}

/// Bearer tokens through the cluster's TokenReview and a non-privileged front-proxy user
/// through its SubjectAccessReview.
///
/// kube-apiserver requires a SubjectAccessReview's metadata to be empty, so the adapter sends
/// none; local-cluster answers such reviews as the real API server does.
#[tokio::test]
async fn token_review_and_subject_access_review_with_the_cluster() {
    let cluster = cluster().await;
    let client = cluster.client().await.unwrap();
    let front_proxy_ca = Ca::new("front-proxy-ca");
    publish_authentication(&client, &front_proxy_ca, &Ca::new("client-ca"), "[]").await;
    let auth = DelegatedAuth::from_cluster(client.clone(), DelegatedAuthConfig::default())
        .await
        .unwrap();
    let (server, serving_ca) = start_adapter(Auth::Delegated(auth), &["localhost"]).await;
    let url = metric_url(server.local_addr(), "default", "s0-x", "orders");

    let anonymous = https_client(&serving_ca, None);
    let bearer = format!("Bearer {}", cluster.token());
    let (code, body) = get_json(&anonymous, &url, &[("Authorization", &bearer)]).await;
    assert_eq!(code, 200, "{body}");
    let (code, _) = get_json(&anonymous, &url, &[("Authorization", "Bearer not-a-token")]).await;
    assert_eq!(code, 401);

    let proxy = https_client(
        &serving_ca,
        Some(&front_proxy_ca.client("front-proxy-client", None)),
    );
    let (code, body) = get_json(
        &proxy,
        &url,
        &[("X-Remote-User", "alice"), ("X-Remote-Group", "devs")],
    )
    .await;
    assert_eq!(code, 200, "{body}");
    server.shutdown().await;
    cluster.shutdown().await;
}

/// kubectl, skipped with a note when it is not installed.
fn kubectl() -> Option<&'static str> {
    let found = std::process::Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .is_ok();
    if !found {
        eprintln!("kubectl not found; skipping");
    }
    found.then_some("kubectl")
}

async fn kubectl_raw(kubeconfig: &std::path::Path, path: &str) -> std::process::Output {
    let child = tokio::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["get", "--raw", path])
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(WAIT, child)
        .await
        .expect("kubectl finishes")
        .expect("kubectl runs")
}

const RAW_PATH: &str = "/apis/external.metrics.k8s.io/v1beta1/namespaces/default/s0-x?labelSelector=scaledobject.keda.sh%2Fname%3Dorders";

#[tokio::test]
async fn kubectl_through_the_apiservice_proxy() {
    if kubectl().is_none() {
        return;
    }
    let cluster = cluster().await;
    let client = cluster.client().await.unwrap();
    // This cluster runs without its front-proxy identity (`front_proxy: false`), so the adapter
    // runs with auth off. The serving certificate names the Service, as the aggregator checks.
    let (server, serving_ca) = start_adapter(
        Auth::disabled_for_local_mode(),
        &["kedge-metrics-apiserver.kedge.svc", "localhost"],
    )
    .await;
    cluster.register_service_backend(
        "kedge",
        "kedge-metrics-apiserver",
        &format!("https://127.0.0.1:{}", server.local_addr().port()),
        BackendTls::FromApiService,
    );
    let apiservices: Api<kube::api::DynamicObject> = Api::all_with(
        client.clone(),
        &kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
            "apiregistration.k8s.io",
            "v1",
            "APIService",
        )),
    );
    let svc: kube::api::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
        "metadata": {"name": "v1beta1.external.metrics.k8s.io"},
        "spec": {
            "group": "external.metrics.k8s.io", "version": "v1beta1",
            "service": {"namespace": "kedge", "name": "kedge-metrics-apiserver", "port": 443},
            "caBundle": base64::engine::general_purpose::STANDARD.encode(&serving_ca),
            "groupPriorityMinimum": 100, "versionPriority": 100
        }
    }))
    .unwrap();
    apiservices
        .create(&PostParams::default(), &svc)
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    cluster.write_kubeconfig(&kubeconfig).unwrap();

    let out = kubectl_raw(&kubeconfig, "/apis/external.metrics.k8s.io/v1beta1").await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let body: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(body["resources"][0]["name"], "externalmetrics");

    let out = kubectl_raw(&kubeconfig, RAW_PATH).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let body: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(body["kind"], "ExternalMetricValueList");
    assert_eq!(body["items"][0]["metricName"], "s0-x");
    assert_eq!(body["items"][0]["value"], "7");

    // An unknown ScaledObject: kubectl shows the Status message.
    let out = kubectl_raw(&kubeconfig, &RAW_PATH.replace("orders", "nope")).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("NotFound") || stderr.contains("not found"),
        "{stderr}"
    );

    server.shutdown().await;
    cluster.shutdown().await;
}

fn direct_kubeconfig(port: u16, serving_ca: &str, identity: &Leaf) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: adapter\n  cluster:\n    server: https://localhost:{port}\n    certificate-authority-data: {}\nusers:\n- name: u\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\ncontexts:\n- name: c\n  context:\n    cluster: adapter\n    user: u\ncurrent-context: c\n",
        b64(serving_ca),
        b64(&identity.cert_pem),
        b64(&identity.key_pem)
    )
}

#[tokio::test]
async fn kubectl_directly_with_a_client_certificate() {
    if kubectl().is_none() {
        return;
    }
    let cluster = cluster().await;
    let client = cluster.client().await.unwrap();
    let front_proxy_ca = Ca::new("front-proxy-ca");
    let client_ca = Ca::new("client-ca");
    publish_authentication(&client, &front_proxy_ca, &client_ca, "[]").await;
    let auth = DelegatedAuth::from_cluster(client.clone(), DelegatedAuthConfig::default())
        .await
        .unwrap();
    let (server, serving_ca) = start_adapter(Auth::Delegated(auth), &["localhost"]).await;
    let port = server.local_addr().port();
    let dir = tempfile::tempdir().unwrap();

    let good = dir.path().join("good");
    // In system:masters, so no SubjectAccessReview is needed (see the ignored test above).
    std::fs::write(
        &good,
        direct_kubeconfig(
            port,
            &serving_ca,
            &client_ca.client("jane", Some("system:masters")),
        ),
    )
    .unwrap();
    let out = kubectl_raw(&good, RAW_PATH).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let body: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(body["items"][0]["value"], "7");

    let bad = dir.path().join("bad");
    std::fs::write(
        &bad,
        direct_kubeconfig(port, &serving_ca, &Ca::new("rogue").client("jane", None)),
    )
    .unwrap();
    let out = kubectl_raw(&bad, RAW_PATH).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Unauthorized"), "{stderr}");

    server.shutdown().await;
    cluster.shutdown().await;
}
