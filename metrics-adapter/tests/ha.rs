//! High availability: two replicas in one process. The follower's provider says `NotLeader`, so
//! its adapter forwards reads to the leader over mutual TLS 1.3 gRPC; when the leader goes away
//! it serves the last known value until the staleness bound, then a 503 Status.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::{Ca, MapProvider, get_json, https_client, loopback, metric_url};
use metrics_adapter::grpc::{ForwardingProvider, GrpcServer};
use metrics_adapter::{
    AdapterConfig, AdapterServer, Auth, GrpcConfig, GrpcTls, MetricsProvider, ProviderError,
    ServerHandle,
};
use scaler_core::MetricValue;
use tokio::sync::watch;

/// What the operator's provider answers on a replica that is not the leader.
struct Follower;

#[async_trait::async_trait]
impl MetricsProvider for Follower {
    async fn metric(&self, _: &str, _: &str, _: &str) -> Result<Vec<MetricValue>, ProviderError> {
        Err(ProviderError::NotLeader)
    }
}

fn shared_ca_config(ca: &Ca, staleness: Duration) -> GrpcConfig {
    GrpcConfig {
        bind: loopback(),
        staleness_bound: staleness,
        ..GrpcConfig::new(GrpcTls::SharedCa {
            ca_cert_pem: ca.cert_pem.clone(),
            ca_key_pem: ca.key_pem.clone(),
        })
    }
}

async fn leader(config: &GrpcConfig, provider: Arc<MapProvider>) -> ServerHandle {
    GrpcServer::bind(config, provider)
        .await
        .unwrap()
        .spawn()
        .unwrap()
}

/// The follower's external-metrics API, and the sender that tells it where the leader is.
async fn follower(
    config: &GrpcConfig,
) -> (ServerHandle, reqwest::Client, watch::Sender<Option<String>>) {
    let (tx, rx) = watch::channel(None);
    let provider = ForwardingProvider::new(Arc::new(Follower), rx, config).unwrap();
    let adapter = AdapterServer::bind(
        AdapterConfig {
            bind: loopback(),
            ..AdapterConfig::default()
        },
        Arc::new(provider),
        Auth::disabled_for_local_mode(),
    )
    .await
    .unwrap();
    let client = https_client(adapter.serving_cert_pem().unwrap(), None);
    (adapter.spawn().unwrap(), client, tx)
}

#[tokio::test]
async fn follower_forwards_reads_to_the_leader() {
    let ca = Ca::new("kedge-grpc-ca");
    let config = shared_ca_config(&ca, Duration::from_secs(120));
    let values = MapProvider::with(&[("default", "orders", "s0-x", 4.0)]);
    let leader = leader(&config, values.clone()).await;
    let (api, client, leader_address) = follower(&config).await;
    let addr = api.local_addr();

    // No leader known yet, nothing remembered.
    let (code, body) = get_json(&client, &metric_url(addr, "default", "s0-x", "orders"), &[]).await;
    assert_eq!(code, 503, "{body}");
    assert_eq!(body["reason"], "ServiceUnavailable");

    leader_address
        .send(Some(leader.local_addr().to_string()))
        .unwrap();
    let (code, body) = get_json(&client, &metric_url(addr, "default", "s0-x", "orders"), &[]).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["items"][0]["value"], "4");
    assert_eq!(body["items"][0]["metricName"], "s0-x");

    values.set("default", "orders", "s0-x", 0.25);
    let (code, body) = get_json(&client, &metric_url(addr, "default", "S0-X", "orders"), &[]).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["items"][0]["value"], "250m");
    assert_eq!(*values.last_metric_name.lock().unwrap(), "S0-X");

    // The leader's errors reach the HPA as they would from the leader itself.
    let (code, body) = get_json(&client, &metric_url(addr, "default", "s0-x", "nope"), &[]).await;
    assert_eq!(
        (code, body["reason"].as_str()),
        (404, Some("NotFound")),
        "{body}"
    );
    let (code, body) = get_json(
        &client,
        &metric_url(addr, "default", "s7-other", "orders"),
        &[],
    )
    .await;
    assert_eq!(
        (code, body["reason"].as_str()),
        (404, Some("NotFound")),
        "{body}"
    );
    let (code, body) = get_json(&client, &metric_url(addr, "default", "fail", "orders"), &[]).await;
    assert_eq!(code, 500, "{body}");
    assert_eq!(
        body["message"],
        "metric:fail encountered error: connection refused"
    );

    api.shutdown().await;
    leader.shutdown().await;
}

#[tokio::test]
async fn follower_serves_last_known_values_within_the_staleness_bound() {
    let ca = Ca::new("kedge-grpc-ca");
    // Long enough that the read right after the leader stops is within it on a loaded machine.
    let config = shared_ca_config(&ca, Duration::from_secs(10));
    let values = MapProvider::with(&[
        ("default", "orders", "s0-x", 9.0),
        ("default", "orders", "s1-y", 1.0),
    ]);
    let leader = leader(&config, values).await;
    let (api, client, leader_address) = follower(&config).await;
    leader_address
        .send(Some(leader.local_addr().to_string()))
        .unwrap();
    let url = metric_url(api.local_addr(), "default", "s0-x", "orders");
    let (code, _) = get_json(&client, &url, &[]).await;
    assert_eq!(code, 200);

    leader.shutdown().await;
    let (code, body) = get_json(&client, &url, &[]).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["items"][0]["value"], "9");
    // Case-insensitively the same metric.
    let (code, _) = get_json(
        &client,
        &metric_url(api.local_addr(), "default", "S0-x", "orders"),
        &[],
    )
    .await;
    assert_eq!(code, 200);
    // A metric never read before has no last known value.
    let (code, body) = get_json(
        &client,
        &metric_url(api.local_addr(), "default", "s1-y", "orders"),
        &[],
    )
    .await;
    assert_eq!(code, 503, "{body}");

    // Past the bound, the follower says it cannot answer rather than serve an old picture.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let (code, body) = get_json(&client, &url, &[]).await;
        if code == 503 {
            assert_eq!(body["kind"], "Status");
            assert_eq!(body["reason"], "ServiceUnavailable");
            let message = body["message"].as_str().unwrap();
            assert!(message.contains("no value younger than"), "{message}");
            break;
        }
        assert_eq!(code, 200, "{body}");
        assert!(
            tokio::time::Instant::now() < deadline,
            "still serving a stale value"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    api.shutdown().await;
}

#[tokio::test]
async fn follower_follows_a_new_leader() {
    let ca = Ca::new("kedge-grpc-ca");
    let config = shared_ca_config(&ca, Duration::from_secs(120));
    let old = leader(
        &config,
        MapProvider::with(&[("default", "orders", "s0-x", 1.0)]),
    )
    .await;
    let (api, client, leader_address) = follower(&config).await;
    let url = metric_url(api.local_addr(), "default", "s0-x", "orders");
    leader_address
        .send(Some(old.local_addr().to_string()))
        .unwrap();
    assert_eq!(
        get_json(&client, &url, &[]).await.1["items"][0]["value"],
        "1"
    );

    old.shutdown().await;
    let new = leader(
        &config,
        MapProvider::with(&[("default", "orders", "s0-x", 2.0)]),
    )
    .await;
    leader_address
        .send(Some(new.local_addr().to_string()))
        .unwrap();
    let (code, body) = get_json(&client, &url, &[]).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["items"][0]["value"], "2");
    api.shutdown().await;
    new.shutdown().await;
}

fn write_files(dir: &Path, ca: &Ca, name: &str) -> GrpcTls {
    let leaf = ca.server(&[name]);
    std::fs::write(dir.join("ca.crt"), &ca.cert_pem).unwrap();
    std::fs::write(dir.join("tls.crt"), &leaf.cert_pem).unwrap();
    std::fs::write(dir.join("tls.key"), &leaf.key_pem).unwrap();
    GrpcTls::Files {
        ca_file: dir.join("ca.crt"),
        cert_file: dir.join("tls.crt"),
        key_file: dir.join("tls.key"),
    }
}

#[tokio::test]
async fn the_link_is_mutual_tls_with_certificates_from_files() {
    let ca = Ca::new("kedge-grpc-ca");
    let (leader_dir, follower_dir, rogue_dir) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let with = |tls| GrpcConfig {
        bind: loopback(),
        ..GrpcConfig::new(tls)
    };
    let leader_config = with(write_files(leader_dir.path(), &ca, "kedge-metrics-service"));
    let leader = leader(
        &leader_config,
        MapProvider::with(&[("default", "orders", "s0-x", 5.0)]),
    )
    .await;

    let (api, client, address) = follower(&with(write_files(
        follower_dir.path(),
        &ca,
        "kedge-metrics-service",
    )))
    .await;
    address.send(Some(leader.local_addr().to_string())).unwrap();
    let (code, body) = get_json(
        &client,
        &metric_url(api.local_addr(), "default", "s0-x", "orders"),
        &[],
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["items"][0]["value"], "5");

    // A replica whose certificate comes from another CA gets nothing from the leader.
    let (rogue, rogue_client, rogue_address) = follower(&with(write_files(
        rogue_dir.path(),
        &Ca::new("rogue"),
        "kedge-metrics-service",
    )))
    .await;
    rogue_address
        .send(Some(leader.local_addr().to_string()))
        .unwrap();
    let (code, body) = get_json(
        &rogue_client,
        &metric_url(rogue.local_addr(), "default", "s0-x", "orders"),
        &[],
    )
    .await;
    assert_eq!(code, 503, "{body}");

    // TLS 1.2 is refused, even with a good client certificate.
    let leaf = ca.server(&["kedge-metrics-service"]);
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from_pem_slice(ca.cert_pem.as_bytes()).unwrap())
        .unwrap();
    let tls12 = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS12])
    .unwrap()
    .with_root_certificates(roots)
    .with_client_auth_cert(
        rustls::pki_types::CertificateDer::pem_slice_iter(leaf.cert_pem.as_bytes())
            .map(|c| c.unwrap())
            .collect(),
        rustls::pki_types::PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap(),
    )
    .unwrap();
    let tcp = tokio::net::TcpStream::connect(leader.local_addr())
        .await
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("kedge-metrics-service").unwrap();
    let handshake = tokio::time::timeout(
        Duration::from_secs(30),
        tokio_rustls::TlsConnector::from(Arc::new(tls12)).connect(name, tcp),
    )
    .await
    .unwrap();
    assert!(handshake.is_err());

    rogue.shutdown().await;
    api.shutdown().await;
    leader.shutdown().await;
}

#[tokio::test]
async fn leader_answers_from_its_local_provider_without_forwarding() {
    let ca = Ca::new("kedge-grpc-ca");
    let config = shared_ca_config(&ca, Duration::from_secs(120));
    let (_tx, rx) = watch::channel(None);
    let local = MapProvider::with(&[("default", "orders", "s0-x", 3.0)]);
    let provider = ForwardingProvider::new(local, rx, &config).unwrap();
    let values = provider.metric("default", "orders", "s0-x").await.unwrap();
    assert_eq!(values[0].value.to_string(), "3");
    assert_eq!(
        provider.metric("default", "orders", "fail").await,
        Err(ProviderError::Failed("connection refused".into()))
    );
    assert_eq!(
        provider.metric("default", "nope", "s0-x").await,
        Err(ProviderError::ScaledObjectNotFound)
    );
}
