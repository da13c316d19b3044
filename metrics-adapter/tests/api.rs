//! The external-metrics API over real HTTPS on loopback: discovery, the metric read, and every
//! error as a Kubernetes Status. Authentication is off here (local mode); `auth.rs` covers it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{MapProvider, get_json, https_client, loopback, metric_url};
use metrics_adapter::{AdapterConfig, AdapterServer, Auth, ServerHandle};
use serde_json::json;

async fn start(provider: Arc<MapProvider>, timeout: Duration) -> (ServerHandle, reqwest::Client) {
    let config = AdapterConfig {
        bind: loopback(),
        provider_timeout: timeout,
        ..AdapterConfig::default()
    };
    let server = AdapterServer::bind(config, provider, Auth::disabled_for_local_mode())
        .await
        .unwrap();
    let client = https_client(server.serving_cert_pem().unwrap(), None);
    (server.spawn().unwrap(), client)
}

#[tokio::test]
async fn discovery_documents() {
    let (server, client) = start(MapProvider::with(&[]), Duration::from_secs(30)).await;
    let base = format!("https://localhost:{}", server.local_addr().port());

    let (code, body) = get_json(&client, &format!("{base}/apis"), &[]).await;
    assert_eq!(code, 200);
    let gv = json!({"groupVersion": "external.metrics.k8s.io/v1beta1", "version": "v1beta1"});
    assert_eq!(
        body,
        json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": [
            {"name": "external.metrics.k8s.io", "versions": [gv], "preferredVersion": gv}
        ]})
    );

    let (code, body) = get_json(
        &client,
        &format!("{base}/apis/external.metrics.k8s.io"),
        &[],
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(body["kind"], "APIGroup");
    assert_eq!(body["preferredVersion"], gv);

    let (code, body) = get_json(
        &client,
        &format!("{base}/apis/external.metrics.k8s.io/v1beta1"),
        &[],
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(
        body,
        json!({
            "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "external.metrics.k8s.io/v1beta1",
            "resources": [{"name": "externalmetrics", "singularName": "", "namespaced": true,
                           "kind": "ExternalMetricValueList", "verbs": ["get"]}]
        })
    );

    for path in ["/healthz", "/livez", "/readyz"] {
        let resp = client.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{path}");
        assert_eq!(resp.text().await.unwrap(), "ok");
    }
    let (code, body) = get_json(&client, &format!("{base}/openapi/v2"), &[]).await;
    assert_eq!((code, &body["swagger"]), (200, &json!("2.0")));
    let (code, body) = get_json(&client, &format!("{base}/openapi/v3"), &[]).await;
    assert_eq!((code, &body["paths"]), (200, &json!({})));

    let (code, body) = get_json(&client, &format!("{base}/api/v1/pods"), &[]).await;
    assert_eq!(code, 404);
    assert_eq!(body["kind"], "Status");
    assert_eq!(body["reason"], "NotFound");
    server.shutdown().await;
}

#[tokio::test]
async fn metric_values_as_the_hpa_reads_them() {
    let provider = MapProvider::with(&[
        ("default", "orders", "s0-rabbitmq-orders", 1.5),
        ("default", "orders", "s1-cron", 2000.0),
    ]);
    let (server, client) = start(provider.clone(), Duration::from_secs(30)).await;
    let addr = server.local_addr();

    let (code, body) = get_json(
        &client,
        &metric_url(addr, "default", "s0-rabbitmq-orders", "orders"),
        &[],
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["kind"], "ExternalMetricValueList");
    assert_eq!(body["apiVersion"], "external.metrics.k8s.io/v1beta1");
    assert_eq!(body["metadata"], json!({}));
    let item = &body["items"][0];
    assert_eq!(item["metricName"], "s0-rabbitmq-orders");
    assert_eq!(item["metricLabels"], json!(null));
    assert_eq!(item["value"], "1500m");
    let ts = item["timestamp"].as_str().unwrap();
    assert!(chrono::DateTime::parse_from_rfc3339(ts).is_ok(), "{ts}");
    assert!(ts.ends_with('Z'));
    assert_eq!(body["items"].as_array().unwrap().len(), 1);

    // The metric name reaches the provider exactly as sent; matching case-insensitively is the
    // provider's job (this one does, as the operator's must).
    let (code, body) = get_json(
        &client,
        &metric_url(addr, "default", "S1-CRON", "orders"),
        &[],
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(*provider.last_metric_name.lock().unwrap(), "S1-CRON");
    assert_eq!(body["items"][0]["value"], "2k");

    // The selector as kubectl and client-go encode it, with other requirements around it, and
    // with `==` and `in (…)`.
    for selector in [
        "scaledobject.keda.sh/name=orders",
        "app%3Dweb%2Cscaledobject.keda.sh%2Fname%3D%3Dorders",
        "scaledobject.keda.sh%2Fname+in+%28orders%29",
    ] {
        let url = format!(
            "https://localhost:{}/apis/external.metrics.k8s.io/v1beta1/namespaces/default/s1-cron?labelSelector={selector}",
            addr.port()
        );
        let (code, body) = get_json(&client, &url, &[]).await;
        assert_eq!(code, 200, "{selector}: {body}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn errors_are_kubernetes_status_objects() {
    let provider = MapProvider::with(&[("default", "orders", "s0-x", 1.0)]);
    let (server, client) = start(provider.clone(), Duration::from_secs(2)).await;
    let addr = server.local_addr();
    let port = addr.port();
    let base =
        format!("https://localhost:{port}/apis/external.metrics.k8s.io/v1beta1/namespaces/default");

    let check = |body: &serde_json::Value, code: u16, reason: &str| {
        assert_eq!(body["kind"], "Status", "{body}");
        assert_eq!(body["apiVersion"], "v1");
        assert_eq!(body["status"], "Failure");
        assert_eq!(body["code"], code, "{body}");
        assert_eq!(body["reason"], reason, "{body}");
    };

    // No selector, or one without the ScaledObject: KEDA's message.
    for url in [
        format!("{base}/s0-x"),
        format!("{base}/s0-x?labelSelector=app%3Dweb"),
        format!("{base}/s0-x?labelSelector="),
    ] {
        let (code, body) = get_json(&client, &url, &[]).await;
        assert_eq!(code, 400);
        check(&body, 400, "BadRequest");
        assert_eq!(body["message"], "scaledObject name is not specified");
    }
    // A selector that does not parse.
    let (code, body) = get_json(&client, &format!("{base}/s0-x?labelSelector=a%3D%28b"), &[]).await;
    assert_eq!(code, 400);
    check(&body, 400, "BadRequest");

    let (code, body) = get_json(&client, &metric_url(addr, "default", "s0-x", "nope"), &[]).await;
    assert_eq!(code, 404);
    check(&body, 404, "NotFound");
    assert!(body["message"].as_str().unwrap().contains("nope"), "{body}");

    let (code, body) = get_json(&client, &metric_url(addr, "other", "s0-x", "orders"), &[]).await;
    assert_eq!(code, 404);
    check(&body, 404, "NotFound");

    let (code, body) = get_json(
        &client,
        &metric_url(addr, "default", "s9-missing", "orders"),
        &[],
    )
    .await;
    assert_eq!(code, 404);
    check(&body, 404, "NotFound");
    assert!(
        body["message"].as_str().unwrap().contains("s9-missing"),
        "{body}"
    );

    let (code, body) = get_json(&client, &metric_url(addr, "default", "fail", "orders"), &[]).await;
    assert_eq!(code, 500);
    check(&body, 500, "InternalError");
    assert_eq!(
        body["message"],
        "metric:fail encountered error: connection refused"
    );

    // A provider that never answers: the HPA still gets an answer.
    let (code, body) = get_json(&client, &metric_url(addr, "default", "slow", "orders"), &[]).await;
    assert_eq!(code, 504);
    check(&body, 504, "Timeout");

    // A provider that panics: a 500 for that request, and the server keeps serving.
    let (code, body) = get_json(&client, &metric_url(addr, "default", "boom", "orders"), &[]).await;
    assert_eq!(code, 500);
    check(&body, 500, "InternalError");
    let (code, _) = get_json(&client, &metric_url(addr, "default", "s0-x", "orders"), &[]).await;
    assert_eq!(code, 200);

    // Only GET.
    let resp = client
        .post(metric_url(addr, "default", "s0-x", "orders"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 405);
    let body: serde_json::Value = resp.json_or_text().await;
    check(&body, 405, "MethodNotAllowed");

    // Non-namespaced reads are not part of the API.
    let (code, body) = get_json(
        &client,
        &format!("https://localhost:{port}/apis/external.metrics.k8s.io/v1beta1/s0-x"),
        &[],
    )
    .await;
    assert_eq!(code, 404);
    check(&body, 404, "NotFound");

    assert!(provider.calls.load(Ordering::SeqCst) >= 5);
    server.shutdown().await;
}

#[tokio::test]
async fn serves_http1_and_http2() {
    let provider = MapProvider::with(&[("default", "orders", "s0-x", 1.0)]);
    let config = AdapterConfig {
        bind: loopback(),
        ..AdapterConfig::default()
    };
    let server = AdapterServer::bind(config, provider, Auth::disabled_for_local_mode())
        .await
        .unwrap();
    let ca = server.serving_cert_pem().unwrap().to_owned();
    let server = server.spawn().unwrap();
    let url = metric_url(server.local_addr(), "default", "s0-x", "orders");
    // ALPN picks HTTP/2 when offered (kubectl, client-go).
    let resp = https_client(&ca, None).get(&url).send().await.unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert_eq!(resp.status().as_u16(), 200);
    // HTTP/1.1 for clients that only speak it (local-cluster's proxy does).
    let resp = common::https_client_alpn(&ca, None, &[b"http/1.1"])
        .get(&url)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_11);
    assert_eq!(resp.status().as_u16(), 200);
    server.shutdown().await;
}

trait JsonOrText {
    async fn json_or_text(self) -> serde_json::Value;
}

impl JsonOrText for reqwest::Response {
    async fn json_or_text(self) -> serde_json::Value {
        let bytes = self.bytes().await.unwrap();
        serde_json::from_slice(&bytes).unwrap_or_else(|_| {
            serde_json::Value::String(String::from_utf8_lossy(&bytes).into_owned())
        })
    }
}
