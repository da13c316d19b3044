//! TLS material: a fresh self-signed CA per cluster and a server certificate it signs for the
//! loopback names, so kubectl and kube-rs verify the server through the kubeconfig's
//! `certificate-authority-data` instead of skipping verification.

use std::net::IpAddr;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

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

/// A new self-signed CA: its certificate (PEM) and the issuer that signs with it.
fn new_ca(common_name: &str) -> Result<(String, Issuer<'static, KeyPair>), Error> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), Issuer::new(params, key)))
}

/// Generate a CA and a server certificate for `localhost`, `127.0.0.1`, `::1` and `bind_ip`.
pub fn generate(bind_ip: IpAddr) -> Result<TlsMaterial, Error> {
    let (ca_pem, issuer) = new_ca("kedge local-cluster CA")?;

    let mut names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    if !bind_ip.is_unspecified() && !names.contains(&bind_ip.to_string()) {
        names.push(bind_ip.to_string());
    }
    let server_key = KeyPair::generate()?;
    let mut params = CertificateParams::new(names)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "kedge-local-cluster");
    params.distinguished_name = dn;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_cert = params.signed_by(&server_key, &issuer)?;

    let chain = vec![CertificateDer::from(server_cert.der().to_vec())];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
    // HTTP/1.1 only: every client we serve speaks it, and watches stream fine over it.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsMaterial {
        ca_pem,
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
    let (ca_pem, issuer) = new_ca("kedge local-cluster front-proxy CA")?;

    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, FRONT_PROXY_CLIENT_NAME);
    params.distinguished_name = dn;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, &issuer)?;
    Ok(FrontProxy {
        ca_pem,
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}
