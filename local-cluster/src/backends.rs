//! Service backends: there are no Services or Pods here, so the caller says which local URL a
//! Service reference (namespace/name, as in an APIService's `spec.service`) stands for, and how
//! to trust its TLS certificate. The aggregation proxy and the HPA simulator resolve through this.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// How to trust a backend's certificate when its URL is `https://`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendTls {
    /// Like kube-apiserver's aggregator: the APIService's `caBundle`, checked against the name
    /// `<service>.<namespace>.svc`; or no verification when it sets `insecureSkipTLSVerify`.
    FromApiService,
    /// Do not verify the certificate.
    InsecureSkipVerify,
    /// Verify against this PEM bundle, for the URL's host.
    Ca(String),
}

/// A registered backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    /// Base URL, e.g. `https://127.0.0.1:6443`.
    pub url: String,
    /// Trust.
    pub tls: BackendTls,
}

/// The registry of backends, keyed by `(namespace, service name)`.
#[derive(Debug, Default)]
pub struct Backends {
    map: RwLock<HashMap<(String, String), Backend>>,
}

impl Backends {
    /// Point a Service at a URL (replacing an earlier registration).
    pub fn register(&self, namespace: &str, name: &str, backend: Backend) {
        if let Ok(mut map) = self.map.write() {
            map.insert((namespace.to_string(), name.to_string()), backend);
        }
    }

    /// The backend of a Service.
    pub fn lookup(&self, namespace: &str, name: &str) -> Option<Backend> {
        self.map
            .read()
            .ok()?
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }
}

/// How one upstream connection verifies the server.
#[derive(Debug, Clone)]
pub enum Trust {
    /// Skip verification.
    Insecure,
    /// Verify against these PEM roots, optionally for a fixed server name.
    Roots {
        /// PEM bundle.
        ca_pem: String,
        /// Name to verify instead of the URL's host.
        server_name: Option<String>,
    },
}

/// An HTTP(S) client.
pub type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Build a client for one backend, presenting `identity` (the front-proxy client certificate)
/// when given.
pub fn client(
    trust: &Trust,
    identity: Option<&crate::tls::FrontProxy>,
) -> Result<HttpClient, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let (builder, server_name) = match trust {
        Trust::Insecure => (
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerify(provider))),
            None,
        ),
        Trust::Roots {
            ca_pem,
            server_name,
        } => {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
                let cert = cert.map_err(|e| format!("invalid CA bundle: {e}"))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("invalid CA certificate: {e}"))?;
            }
            if roots.is_empty() {
                return Err("the CA bundle holds no certificate".into());
            }
            (builder.with_root_certificates(roots), server_name.clone())
        }
    };
    let config = match identity {
        Some(id) => {
            let chain = CertificateDer::pem_slice_iter(id.cert_pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("front-proxy certificate: {e}"))?;
            let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(id.key_pem.as_bytes())
                .map_err(|e| format!("front-proxy key: {e}"))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("front-proxy certificate: {e}"))?
        }
        None => builder.with_no_client_auth(),
    };
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http();
    let https = match server_name {
        Some(name) => {
            let name =
                ServerName::try_from(name).map_err(|e| format!("invalid server name: {e}"))?;
            https.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name))
        }
        None => https,
    };
    Ok(Client::builder(TokioExecutor::new()).build(https.enable_http1().build()))
}

/// Accepts any certificate (`insecureSkipTLSVerify`), still checking handshake signatures.
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
