//! TLS for both listeners: the HTTPS API (TLS 1.2 and 1.3, a client certificate requested but
//! not required, because the aggregator authenticates with one and other callers with tokens)
//! and the gRPC link between replicas (TLS 1.3 only, mutual).
//!
//! Certificates come from files that are re-read when they change ([`reload`]), or are generated
//! ([`selfsigned`]).

pub mod reload;
pub mod selfsigned;

use std::sync::Arc;

use kedge_tls::verify::AcceptAnyClientCert;
use rustls::ServerConfig;
use rustls::server::ResolvesServerCert;
use rustls::server::danger::ClientCertVerifier;

/// A TLS setup problem: unreadable or invalid certificates and keys.
pub use kedge_tls::Error as TlsError;
pub use kedge_tls::pem::{certified_key, root_store};
pub use kedge_tls::provider;
pub use kedge_tls::verify::client_verifier;
pub use reload::{ReloadingCa, ReloadingCertificate, SwappableCert};

/// The HTTPS API's server configuration: TLS 1.2 and 1.3, HTTP/2 and HTTP/1.1 by ALPN, and a
/// client certificate requested but not required.
///
/// Like Go's `tls.RequestClientCert`, which Kubernetes' delegated authentication uses, the
/// handshake only proves the client holds the certificate's key; whether the certificate chains
/// to the request-header or client CA is decided per request by the authenticator, so a
/// certificate from an unknown CA is a `401 Unauthorized` Status rather than a handshake
/// failure, and a CA rotated in the cluster takes effect without touching TLS.
pub fn api_server_config(certs: Arc<dyn ResolvesServerCert>) -> Result<ServerConfig, TlsError> {
    let provider = provider();
    let mut config = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_client_cert_verifier(Arc::new(AcceptAnyClientCert::new(&provider)))
        .with_cert_resolver(certs);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// The gRPC link's server configuration: TLS 1.3 only, HTTP/2, and a client certificate that
/// must chain to `client_cas`.
pub fn grpc_server_config(
    certs: Arc<dyn ResolvesServerCert>,
    client_cas: Arc<dyn ClientCertVerifier>,
) -> Result<ServerConfig, TlsError> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(client_cas)
        .with_cert_resolver(certs);
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}
