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
use kedge_tls::verify::AcceptAnyServerCert;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;

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
    let provider = kedge_tls::provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let (builder, server_name) = match trust {
        Trust::Insecure => (
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyServerCert::new(&provider))),
            None,
        ),
        Trust::Roots {
            ca_pem,
            server_name,
        } => {
            let roots = kedge_tls::pem::root_store(ca_pem.as_bytes(), "CA bundle").map_err(
                |e| match e {
                    kedge_tls::Error::Pem { source, .. } => format!("invalid CA bundle: {source}"),
                    kedge_tls::Error::NoCertificate { .. } => {
                        "the CA bundle holds no certificate".to_owned()
                    }
                    kedge_tls::Error::Rejected { source, .. } => {
                        format!("invalid CA certificate: {source}")
                    }
                    other => other.to_string(),
                },
            )?;
            (builder.with_root_certificates(roots), server_name.clone())
        }
    };
    let config = match identity {
        Some(id) => {
            // The messages start with the `what`s: "front-proxy certificate: ...".
            let chain =
                kedge_tls::pem::certificates(id.cert_pem.as_bytes(), "front-proxy certificate")
                    .map_err(|e| e.to_string())?;
            let key = kedge_tls::pem::private_key(id.key_pem.as_bytes(), "front-proxy key")
                .map_err(|e| e.to_string())?;
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
