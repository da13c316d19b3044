//! The HPA simulator and the aggregation layer, fed by a stub external-metrics API written with
//! axum: replica sequences under behavior policies and the stabilization window, the exact
//! request kube-controller-manager sends, idling at zero, and proxying of
//! `/apis/external.metrics.k8s.io/...` to the registered backend.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, RawQuery, State};
use axum::routing::get;
use axum::{Json, Router};
use common::{WAIT, within};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Event;
use kedge_test_support::eventually;
use kedge_test_support::pki::Ca;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use local_cluster::{BackendTls, LocalCluster};
use serde_json::{Value, json};

#[derive(Default)]
struct Stub {
    /// The metric value in milli-units.
    milli: AtomicI64,
    /// Path and query of every metric request.
    requests: Mutex<Vec<String>>,
}

async fn metric(
    State(stub): State<Arc<Stub>>,
    Path((ns, name)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Json<Value> {
    stub.requests
        .lock()
        .unwrap()
        .push(format!("{ns}/{name}?{}", query.unwrap_or_default()));
    let milli = stub.milli.load(Ordering::SeqCst);
    // Split the value over two items: the HPA must sum them.
    let half = format!("{}m", milli / 2);
    let rest = format!("{}m", milli - milli / 2);
    Json(json!({
        "kind": "ExternalMetricValueList",
        "apiVersion": "external.metrics.k8s.io/v1beta1",
        "metadata": {},
        "items": [
            {"metricName": name, "metricLabels": {}, "timestamp": "2026-01-01T00:00:00Z", "value": half},
            {"metricName": name, "metricLabels": {}, "timestamp": "2026-01-01T00:00:00Z", "value": rest}
        ]
    }))
}

async fn discovery() -> Json<Value> {
    Json(json!({
        "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "external.metrics.k8s.io/v1beta1",
        "resources": [{"name": "externalmetrics", "singularName": "", "namespaced": true, "kind": "ExternalMetricValueList", "verbs": ["get"]}]
    }))
}

/// Start the stub, register it as keda/keda-metrics-apiserver, create the APIService.
async fn metrics_backend(cluster: &LocalCluster, client: &Client) -> Arc<Stub> {
    let stub = Arc::new(Stub::default());
    let app = Router::new()
        .route("/apis/external.metrics.k8s.io/v1beta1", get(discovery))
        .route(
            "/apis/external.metrics.k8s.io/v1beta1/namespaces/{ns}/{name}",
            get(metric),
        )
        .with_state(stub.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    cluster.register_service_backend(
        "keda",
        "keda-metrics-apiserver",
        &format!("http://{addr}"),
        BackendTls::InsecureSkipVerify,
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
            "service": {"namespace": "keda", "name": "keda-metrics-apiserver", "port": 443},
            "insecureSkipTLSVerify": true, "groupPriorityMinimum": 100, "versionPriority": 100
        }
    }))
    .unwrap();
    apiservices
        .create(&PostParams::default(), &svc)
        .await
        .unwrap();
    eventually(WAIT, "APIService Available", || async {
        let s = apiservices
            .get("v1beta1.external.metrics.k8s.io")
            .await
            .ok()?;
        (s.data["status"]["conditions"][0]["status"] == "True").then_some(())
    })
    .await;
    stub
}

async fn deployment(client: &Client, replicas: i32) -> Api<Deployment> {
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "worker"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "worker"}},
                 "template": {"metadata": {"labels": {"app": "worker"}}, "spec": {"containers": [{"name": "w", "image": "w"}]}}}
    }))
    .unwrap();
    deploys.create(&PostParams::default(), &d).await.unwrap();
    deploys
}

async fn hpa(client: &Client, behavior: Value) -> Api<HorizontalPodAutoscaler> {
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), "default");
    let h: HorizontalPodAutoscaler = serde_json::from_value(json!({
        "metadata": {"name": "worker"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "worker"},
            "minReplicas": 1, "maxReplicas": 8,
            "metrics": [{"type": "External", "external": {
                "metric": {"name": "s0-queue", "selector": {"matchLabels": {"scaledobject.keda.sh/name": "worker"}}},
                "target": {"type": "AverageValue", "averageValue": "5"}
            }}],
            "behavior": behavior
        }
    }))
    .unwrap();
    hpas.create(&PostParams::default(), &h).await.unwrap();
    hpas
}

/// Sizes from the HPA's `SuccessfulRescale` Events, in the order they were recorded.
async fn rescales(client: &Client) -> Vec<i32> {
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    let params =
        ListParams::default().fields("involvedObject.name=worker,reason=SuccessfulRescale");
    let mut list = events.list(&params).await.unwrap().items;
    list.sort_by_key(|e| {
        e.metadata
            .resource_version
            .as_deref()
            .unwrap_or("0")
            .parse::<u64>()
            .unwrap()
    });
    list.iter()
        .filter_map(|e| {
            e.message
                .as_deref()?
                .strip_prefix("New size: ")?
                .split(';')
                .next()?
                .parse()
                .ok()
        })
        .collect()
}

async fn replicas(deploys: &Api<Deployment>) -> i32 {
    deploys
        .get("worker")
        .await
        .unwrap()
        .spec
        .replicas
        .unwrap_or(0)
}

#[tokio::test]
async fn scales_up_by_policy_and_down_after_the_stabilization_window() {
    let cluster = common::start().await;
    let client = cluster.client().await.unwrap();
    let stub = metrics_backend(&cluster, &client).await;
    stub.milli.store(5_000, Ordering::SeqCst);
    let deploys = deployment(&client, 1).await;
    let hpas = hpa(
        &client,
        json!({
            "scaleUp": {"stabilizationWindowSeconds": 0, "policies": [{"type": "Pods", "value": 2, "periodSeconds": 2}]},
            "scaleDown": {"stabilizationWindowSeconds": 4, "policies": [{"type": "Percent", "value": 100, "periodSeconds": 2}]}
        }),
    )
    .await;

    // At target: stays at 1, and the status says why.
    let status = eventually(WAIT, "HPA status", || async {
        hpas.get("worker")
            .await
            .ok()?
            .status
            .filter(|s| s.current_metrics.is_some())
    })
    .await;
    assert_eq!(status.desired_replicas, 1);
    let current = &status.current_metrics.unwrap()[0];
    assert_eq!(
        current
            .external
            .as_ref()
            .unwrap()
            .current
            .average_value
            .as_ref()
            .unwrap()
            .0,
        "5"
    );
    let kinds: Vec<String> = status
        .conditions
        .unwrap()
        .iter()
        .map(|c| c.type_.clone())
        .collect();
    assert!(
        kinds.contains(&"AbleToScale".to_string()) && kinds.contains(&"ScalingActive".to_string()),
        "{kinds:?}"
    );
    let request = stub.requests.lock().unwrap()[0].clone();
    assert_eq!(
        request,
        "default/s0-queue?labelSelector=scaledobject.keda.sh%2Fname%3Dworker"
    );

    // 40 / 5 = 8 wanted; the policy allows +2 pods per 2 s.
    stub.milli.store(40_000, Ordering::SeqCst);
    eventually(WAIT, "scale up to 8", || async {
        (replicas(&deploys).await == 8).then_some(())
    })
    .await;
    // The exact sequence of sizes, from the controller's Events (polling could miss steps on a
    // loaded machine).
    let mut seen = vec![1];
    seen.extend(rescales(&client).await);
    assert!(
        seen.windows(2).all(|w| w[1] > w[0] && w[1] - w[0] <= 2),
        "steps of at most 2: {seen:?}"
    );
    assert!(
        seen.len() >= 5 && seen.last() == Some(&8),
        "1→8 in steps of ≤2 takes at least 4 steps: {seen:?}"
    );

    // Back to target for one replica: nothing happens within the 4 s window, then 1.
    stub.milli.store(5_000, Ordering::SeqCst);
    let changed = Instant::now();
    let first_change = within("scale down", async {
        loop {
            let r = replicas(&deploys).await;
            if r != 8 {
                return (r, changed.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert_eq!(
        first_change.0, 1,
        "100 % per period allows going straight to minReplicas"
    );
    assert!(
        first_change.1 >= Duration::from_millis(2500),
        "scale-down waited for the window: {:?}",
        first_change.1
    );

    // The last rescale went straight back to 1.
    assert_eq!(rescales(&client).await.last(), Some(&1));
    cluster.shutdown().await;
}

#[tokio::test]
async fn idle_at_zero_and_limited_by_max_replicas() {
    let cluster = common::start().await;
    let client = cluster.client().await.unwrap();
    let stub = metrics_backend(&cluster, &client).await;
    stub.milli.store(500_000, Ordering::SeqCst);
    let deploys = deployment(&client, 0).await;
    let hpas = hpa(&client, Value::Null).await;
    let status = eventually(WAIT, "ScalingDisabled", || async {
        let s = hpas.get("worker").await.ok()?.status?;
        s.conditions?
            .into_iter()
            .find(|c| c.type_ == "ScalingActive" && c.reason.as_deref() == Some("ScalingDisabled"))
    })
    .await;
    assert_eq!(status.status, "False");
    assert_eq!(
        replicas(&deploys).await,
        0,
        "the HPA is idle while its target is at zero"
    );

    // From one replica without behavior: the legacy limit max(2 × current, 4) then maxReplicas.
    deploys
        .patch_scale(
            "worker",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 1}})),
        )
        .await
        .unwrap();
    eventually(WAIT, "maxReplicas", || async {
        (replicas(&deploys).await == 8).then_some(())
    })
    .await;
    let limited = eventually(WAIT, "ScalingLimited", || async {
        let s = hpas.get("worker").await.ok()?.status?;
        s.conditions?
            .into_iter()
            .find(|c| c.type_ == "ScalingLimited" && c.status == "True")
    })
    .await;
    assert_eq!(limited.reason.as_deref(), Some("TooManyReplicas"));
    cluster.shutdown().await;
}

#[tokio::test]
async fn external_metrics_are_proxied_through_the_aggregator() {
    let cluster = common::start().await;
    let client = cluster.client().await.unwrap();
    let stub = metrics_backend(&cluster, &client).await;
    stub.milli.store(1_500, Ordering::SeqCst);

    // Discovery announces the aggregated group.
    let groups = client.list_api_groups().await.unwrap();
    assert!(
        groups
            .groups
            .iter()
            .any(|g| g.name == "external.metrics.k8s.io")
    );

    let req = http::Request::get(
        "/apis/external.metrics.k8s.io/v1beta1/namespaces/default/s0-queue?labelSelector=a%3Db",
    )
    .body(Vec::new())
    .unwrap();
    let body: Value = client.request(req).await.unwrap();
    assert_eq!(body["items"][0]["value"], "750m");
    assert_eq!(
        stub.requests.lock().unwrap().last().unwrap(),
        "default/s0-queue?labelSelector=a%3Db"
    );

    let req = http::Request::get("/apis/external.metrics.k8s.io/v1beta1")
        .body(Vec::new())
        .unwrap();
    let list: Value = client.request(req).await.unwrap();
    assert_eq!(list["resources"][0]["name"], "externalmetrics");

    // A delegated group without a backend answers 503 like the aggregator does.
    let apiservices: Api<kube::api::DynamicObject> = Api::all_with(
        client.clone(),
        &kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
            "apiregistration.k8s.io",
            "v1",
            "APIService",
        )),
    );
    let orphan: kube::api::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService", "metadata": {"name": "v1beta1.custom.metrics.k8s.io"},
        "spec": {"group": "custom.metrics.k8s.io", "version": "v1beta1", "service": {"namespace": "x", "name": "none"}, "groupPriorityMinimum": 1, "versionPriority": 1}
    }))
    .unwrap();
    apiservices
        .create(&PostParams::default(), &orphan)
        .await
        .unwrap();
    // kube-rs retries 503 with backoff for minutes by default; ask once.
    let kc = kube::config::Kubeconfig::from_yaml(&cluster.kubeconfig_yaml()).unwrap();
    let mut config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    config.default_retry = false;
    let once = Client::try_from(config).unwrap();
    let req = http::Request::get("/apis/custom.metrics.k8s.io/v1beta1")
        .body(Vec::new())
        .unwrap();
    match once.request::<Value>(req).await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 503),
        other => panic!("expected 503, got {other:?}"),
    }
    cluster.shutdown().await;
}

/// A TLS stub whose certificate names `keda-metrics-apiserver.keda.svc`, signed by its own CA.
async fn tls_stub(app: Router) -> (std::net::SocketAddr, String) {
    let ca = Ca::new("metrics backend CA");
    let cert = ca.server(&["keda-metrics-apiserver.keda.svc"]);
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.cert_der().clone()], cert.key_der())
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, app) = (acceptor.clone(), app.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper_util::service::TowerToHyperService::new(app);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (addr, ca.cert_pem)
}

#[tokio::test]
async fn https_backends_are_verified_with_the_apiservice_ca_bundle() {
    use base64::Engine as _;
    let cluster = common::start().await;
    let client = cluster.client().await.unwrap();
    let stub = Arc::new(Stub::default());
    stub.milli.store(2_000, Ordering::SeqCst);
    let app = Router::new()
        .route(
            "/apis/external.metrics.k8s.io/v1beta1/namespaces/{ns}/{name}",
            get(metric),
        )
        .with_state(stub.clone());
    let (addr, ca_pem) = tls_stub(app).await;
    cluster.register_service_backend(
        "keda",
        "keda-metrics-apiserver",
        &format!("https://{addr}"),
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
    let bundle = base64::engine::general_purpose::STANDARD.encode(&ca_pem);
    let svc: kube::api::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService", "metadata": {"name": "v1beta1.external.metrics.k8s.io"},
        "spec": {"group": "external.metrics.k8s.io", "version": "v1beta1", "caBundle": bundle,
                 "service": {"namespace": "keda", "name": "keda-metrics-apiserver"}, "groupPriorityMinimum": 100, "versionPriority": 100}
    }))
    .unwrap();
    apiservices
        .create(&PostParams::default(), &svc)
        .await
        .unwrap();
    let req = http::Request::get("/apis/external.metrics.k8s.io/v1beta1/namespaces/default/m")
        .body(Vec::new())
        .unwrap();
    let body: Value = client.request(req).await.unwrap();
    assert_eq!(body["items"][1]["value"], "1000m");

    // A CA bundle that did not sign the backend's certificate is refused (503, no retries).
    let other_ca = Ca::new("another CA");
    let bad = base64::engine::general_purpose::STANDARD.encode(&other_ca.cert_pem);
    apiservices
        .patch(
            "v1beta1.external.metrics.k8s.io",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"caBundle": bad}})),
        )
        .await
        .unwrap();
    let kc = kube::config::Kubeconfig::from_yaml(&cluster.kubeconfig_yaml()).unwrap();
    let mut config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    config.default_retry = false;
    let once = Client::try_from(config).unwrap();
    let req = http::Request::get("/apis/external.metrics.k8s.io/v1beta1/namespaces/default/m")
        .body(Vec::new())
        .unwrap();
    match once.request::<Value>(req).await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 503),
        other => panic!("expected 503, got {other:?}"),
    }
    cluster.shutdown().await;
}
