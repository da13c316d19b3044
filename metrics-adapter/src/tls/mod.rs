//! TLS for both listeners: the HTTPS API (TLS 1.2 and 1.3, a client certificate requested but
//! not required, because the aggregator authenticates with one and other callers with tokens)
//! and the gRPC link between replicas (TLS 1.3 only, mutual).
//!
//! Certificates come from files that are re-read when they change ([`reload`]), or are generated
//! ([`selfsigned`]).

pub mod reload;
pub mod selfsigned;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
};

pub use reload::{ReloadingCa, ReloadingCertificate};

/// A TLS setup problem: unreadable or invalid certificates and keys.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// PEM text did not hold what was expected.
    #[error("{what}: {message}")]
    Invalid {
        /// What was being parsed (a file name or a description).
        what: String,
        /// What is wrong.
        message: String,
    },
    /// Certificate generation failed.
    #[error("cannot generate a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The crypto provider used everywhere: ring, as kube-rs in this workspace.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Certificates from PEM text (`what` names the source in errors).
pub fn certificates_from_pem(
    pem: &[u8],
    what: &str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Invalid {
            what: what.to_owned(),
            message: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Invalid {
            what: what.to_owned(),
            message: "no certificate found".into(),
        });
    }
    Ok(certs)
}

/// The first private key in PEM text.
pub fn private_key_from_pem(pem: &[u8], what: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| TlsError::Invalid {
        what: what.to_owned(),
        message: e.to_string(),
    })
}

/// A certificate chain and key as rustls signs with them.
pub fn certified_key(
    cert_pem: &[u8],
    key_pem: &[u8],
    what: &str,
) -> Result<CertifiedKey, TlsError> {
    let chain = certificates_from_pem(cert_pem, what)?;
    let key = private_key_from_pem(key_pem, what)?;
    CertifiedKey::from_der(chain, key, &provider()).map_err(|e| TlsError::Invalid {
        what: what.to_owned(),
        message: e.to_string(),
    })
}

/// Roots from a PEM bundle.
pub fn root_store(pem: &[u8], what: &str) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates_from_pem(pem, what)? {
        roots.add(cert).map_err(|e| TlsError::Invalid {
            what: what.to_owned(),
            message: e.to_string(),
        })?;
    }
    Ok(roots)
}

/// A verifier of client certificates that chain to `roots` (with the client-auth key usage).
pub fn client_verifier(
    roots: RootCertStore,
    what: &str,
) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|e| TlsError::Invalid {
            what: what.to_owned(),
            message: e.to_string(),
        })
}

pub(crate) fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

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
        .with_client_cert_verifier(Arc::new(RequestClientCert { provider }))
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

/// Requests a client certificate, accepts any (after checking the handshake signature, which
/// proves possession of the key), and leaves chain validation to the authenticator.
#[derive(Debug)]
struct RequestClientCert {
    provider: Arc<CryptoProvider>,
}

impl ClientCertVerifier for RequestClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    // No CA hints: Go clients (kube-apiserver's proxy) send their certificate only when it matches
    // a hint or when there are none, and the CAs we accept can change at run time.
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
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
            &self.provider.signature_verification_algorithms,
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
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
