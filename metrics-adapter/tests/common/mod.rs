//! Shared test fixtures: an in-memory provider (the stand-in for the operator's scale-loop
//! state), the test PKI (kedge-test-support's), and HTTPS clients with optional client
//! certificates.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

// Not every test binary that includes this module signs certificates.
#[allow(unused_imports)]
pub use kedge_test_support::pki::{Ca, Leaf};
use metrics_adapter::{MetricsProvider, ProviderError};
use scaler_core::MetricValue;

/// Values per (namespace, ScaledObject), metric names matched case-insensitively as the operator
/// does. Metric names with special meaning: `fail` (trigger error), `slow` (never answers),
/// `boom` (panics).
#[derive(Default)]
pub struct MapProvider {
    pub objects: Mutex<HashMap<(String, String), HashMap<String, f64>>>,
    pub calls: AtomicUsize,
    pub last_metric_name: Mutex<String>,
}

impl MapProvider {
    pub fn with(entries: &[(&str, &str, &str, f64)]) -> Arc<Self> {
        let p = Self::default();
        for (ns, so, metric, v) in entries {
            p.set(ns, so, metric, *v);
        }
        Arc::new(p)
    }

    pub fn set(&self, ns: &str, so: &str, metric: &str, value: f64) {
        self.objects
            .lock()
            .unwrap()
            .entry((ns.into(), so.into()))
            .or_default()
            .insert(metric.into(), value);
    }
}

#[async_trait::async_trait]
impl MetricsProvider for MapProvider {
    async fn metric(
        &self,
        namespace: &str,
        scaled_object: &str,
        metric_name: &str,
    ) -> Result<Vec<MetricValue>, ProviderError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        *self.last_metric_name.lock().unwrap() = metric_name.to_owned();
        match metric_name {
            "fail" => return Err(ProviderError::Failed("connection refused".into())),
            "slow" => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
            "boom" => panic!("provider bug"),
            _ => {}
        }
        let objects = self.objects.lock().unwrap();
        let metrics = objects
            .get(&(namespace.to_owned(), scaled_object.to_owned()))
            .ok_or(ProviderError::ScaledObjectNotFound)?;
        let (name, value) = metrics
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(metric_name))
            .ok_or(ProviderError::MetricNotFound)?;
        Ok(vec![MetricValue::new(name.clone(), *value)])
    }
}

/// An HTTPS client trusting `server_ca_pem`, presenting `identity` if given, offering HTTP/2
/// and HTTP/1.1.
pub fn https_client(server_ca_pem: &str, identity: Option<&Leaf>) -> reqwest::Client {
    https_client_alpn(server_ca_pem, identity, &[b"h2", b"http/1.1"])
}

/// Like [`https_client`], offering only the given ALPN protocols.
pub fn https_client_alpn(
    server_ca_pem: &str,
    identity: Option<&Leaf>,
    alpn: &[&[u8]],
) -> reqwest::Client {
    https_client_from(server_ca_pem, identity, alpn, None)
}

/// Like [`https_client`], connecting from `local` (any 127.0.0.0/8 address works on Linux), so
/// the server sees a distinct source.
pub fn https_client_at(server_ca_pem: &str, local: std::net::IpAddr) -> reqwest::Client {
    https_client_from(server_ca_pem, None, &[b"h2", b"http/1.1"], Some(local))
}

fn https_client_from(
    server_ca_pem: &str,
    identity: Option<&Leaf>,
    alpn: &[&[u8]],
    local: Option<std::net::IpAddr>,
) -> reqwest::Client {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(server_ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match identity {
        None => builder.with_no_client_auth(),
        Some(leaf) => {
            let chain = CertificateDer::pem_slice_iter(leaf.cert_pem.as_bytes())
                .map(|c| c.unwrap())
                .collect();
            let key = PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    reqwest::Client::builder()
        .tls_backend_preconfigured(config)
        .local_address(local)
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// GET `url`, returning status and JSON body.
pub async fn get_json(
    client: &reqwest::Client,
    url: &str,
    headers: &[(&str, &str)],
) -> (u16, serde_json::Value) {
    let mut req = client.get(url).header("Accept", "application/json");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let code = resp.status().as_u16();
    let bytes = resp.bytes().await.unwrap();
    let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
        serde_json::Value::String(String::from_utf8_lossy(&bytes).into_owned())
    });
    (code, body)
}

pub fn metric_url(addr: std::net::SocketAddr, ns: &str, metric: &str, so: &str) -> String {
    format!(
        "https://localhost:{}/apis/external.metrics.k8s.io/v1beta1/namespaces/{ns}/{metric}?labelSelector=scaledobject.keda.sh%2Fname%3D{so}",
        addr.port()
    )
}

pub fn loopback() -> std::net::SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}
