//! TLS material: a fresh self-signed CA per cluster and a server certificate it signs for the
//! loopback names, so kubectl and kube-rs verify the server through the kubeconfig's
//! `certificate-authority-data` instead of skipping verification.

use std::net::IpAddr;
use std::sync::Arc;

use kedge_tls::ca::{Ca, CertSpec};
use rustls::ServerConfig;

use crate::error::Error;

/// Generated certificates.
pub struct TlsMaterial {
    /// PEM of the CA certificate (goes into the kubeconfig).
    pub ca_pem: String,
    /// The rustls server configuration.
    pub server_config: Arc<ServerConfig>,
}

impl std::fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsMaterial").finish_non_exhaustive()
    }
}

/// Generate a CA and a server certificate for `localhost`, `127.0.0.1`, `::1` and `bind_ip`.
pub fn generate(bind_ip: IpAddr) -> Result<TlsMaterial, Error> {
    let ca = Ca::new("kedge local-cluster CA")?;

    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    if !bind_ip.is_unspecified() && !names.contains(&bind_ip.to_string()) {
        names.push(bind_ip.to_string());
    }
    let server = ca.issue(&CertSpec {
        common_name: Some("kedge-local-cluster".into()),
        names,
        server_auth: true,
        key_usage: true,
        ..CertSpec::default()
    })?;

    let chain = vec![server.cert_der().clone()];
    let mut config = ServerConfig::builder_with_provider(kedge_tls::provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, server.key_der())?;
    // HTTP/1.1 only: every client we serve speaks it, and watches stream fine over it.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsMaterial {
        ca_pem: ca.cert_pem().to_owned(),
        server_config: Arc::new(config),
    })
}

/// The aggregator's identity towards APIService backends: a front-proxy CA (published in
/// `kube-system/extension-apiserver-authentication` as `requestheader-client-ca-file`) and the
/// client certificate it signs for `front-proxy-client`, as kubeadm sets up kube-apiserver's
/// `--proxy-client-cert-file`.
#[derive(Clone)]
pub struct FrontProxy {
    /// PEM of the front-proxy CA.
    pub ca_pem: String,
    /// PEM of the client certificate (CN `front-proxy-client`).
    pub cert_pem: String,
    /// PEM of its key.
    pub key_pem: String,
}

impl std::fmt::Debug for FrontProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrontProxy").finish_non_exhaustive()
    }
}

/// The common name kube-apiserver's proxy client certificate carries, and the one allowed name.
pub const FRONT_PROXY_CLIENT_NAME: &str = "front-proxy-client";

/// Generate a front-proxy CA and its client certificate.
pub fn generate_front_proxy() -> Result<FrontProxy, Error> {
    let ca = Ca::new("kedge local-cluster front-proxy CA")?;
    let client = ca.client(FRONT_PROXY_CLIENT_NAME, None)?;
    Ok(FrontProxy {
        ca_pem: ca.cert_pem().to_owned(),
        cert_pem: client.cert_pem,
        key_pem: client.key_pem,
    })
}
