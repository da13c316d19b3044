//! Certificate verifiers: accept-any ones, which still check handshake signatures so the
//! session is bound to the certificate presented, and a client certificate verifier for a CA
//! bundle.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};

use crate::Error;

/// Trusts any server certificate (KEDA's `unsafeSsl`, Go's `InsecureSkipVerify`, an
/// APIService's `insecureSkipTLSVerify`) but still checks the handshake signatures.
///
/// Install with `ClientConfig::builder().dangerous().with_custom_certificate_verifier(..)`.
#[derive(Debug)]
pub struct AcceptAnyServerCert(WebPkiSupportedAlgorithms);

impl AcceptAnyServerCert {
    /// Checks signatures with `provider`'s algorithms.
    pub fn new(provider: &CryptoProvider) -> Self {
        Self(provider.signature_verification_algorithms)
    }
}

impl ServerCertVerifier for AcceptAnyServerCert {
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
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// Requests a client certificate without requiring one, and accepts any, after checking the
/// handshake signature (which proves possession of the key): chain validation is left to the
/// application, as with Go's `tls.RequestClientCert`.
///
/// Sends no CA hints: Go clients send their certificate only when it matches a hint or when
/// there are none, and the CAs an application accepts can change at run time.
#[derive(Debug)]
pub struct AcceptAnyClientCert(WebPkiSupportedAlgorithms);

impl AcceptAnyClientCert {
    /// Checks signatures with `provider`'s algorithms.
    pub fn new(provider: &CryptoProvider) -> Self {
        Self(provider.signature_verification_algorithms)
    }
}

impl ClientCertVerifier for AcceptAnyClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

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
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// A verifier of client certificates that must chain to `roots` (with the client-auth extended
/// key usage). `what` names the CA bundle in errors.
pub fn client_verifier(
    roots: RootCertStore,
    what: &str,
) -> Result<Arc<dyn ClientCertVerifier>, Error> {
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), crate::provider())
        .build()
        .map_err(|source| Error::Verifier {
            what: what.to_owned(),
            source,
        })
}

#[cfg(all(test, feature = "ca"))]
#[allow(clippy::unwrap_used)]
mod tests {
    use rustls::pki_types::PrivateKeyDer;
    use rustls::sign::{CertifiedKey, SingleCertAndKey};
    use rustls::{ClientConfig, ClientConnection, ServerConfig, ServerConnection};

    use super::*;
    use crate::ca::Ca;

    /// Runs a handshake in memory; the first error either side reports.
    fn handshake(
        client: ClientConfig,
        server: ServerConfig,
    ) -> Result<ServerConnection, rustls::Error> {
        let name = ServerName::try_from("localhost").unwrap();
        let mut client = ClientConnection::new(Arc::new(client), name)?;
        let mut server = ServerConnection::new(Arc::new(server))?;
        for _ in 0..10 {
            if !client.is_handshaking() && !server.is_handshaking() {
                return Ok(server);
            }
            let mut buf = Vec::new();
            while client.wants_write() {
                client.write_tls(&mut buf).unwrap();
            }
            let mut rest = &buf[..];
            while !rest.is_empty() {
                server.read_tls(&mut rest).unwrap();
                server.process_new_packets()?;
            }
            let mut buf = Vec::new();
            while server.wants_write() {
                server.write_tls(&mut buf).unwrap();
            }
            let mut rest = &buf[..];
            while !rest.is_empty() {
                client.read_tls(&mut rest).unwrap();
                client.process_new_packets()?;
            }
        }
        panic!("the handshake does not finish");
    }

    fn insecure_client(versions: &[&'static rustls::SupportedProtocolVersion]) -> ClientConfig {
        let provider = crate::provider();
        ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(versions)
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyServerCert::new(&provider)))
            .with_no_client_auth()
    }

    fn server(chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> ServerConfig {
        ServerConfig::builder_with_provider(crate::provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap()
    }

    #[test]
    fn accept_any_server_cert_accepts_anything() {
        let verifier = AcceptAnyServerCert::new(&crate::provider());
        let garbage = CertificateDer::from(vec![1, 2, 3]);
        let name = ServerName::try_from("example.com").unwrap();
        assert!(
            verifier
                .verify_server_cert(&garbage, &[], &name, &[], UnixTime::now())
                .is_ok()
        );
    }

    #[test]
    fn accept_any_server_cert_completes_handshakes() {
        // An unknown CA, and a name that is not the one the client connects to.
        let ca = Ca::new("unknown CA").unwrap();
        let leaf = ca.server(&["elsewhere.example"]).unwrap();
        for versions in [
            &[&rustls::version::TLS13][..],
            &[&rustls::version::TLS12][..],
        ] {
            let config = server(vec![leaf.cert_der().clone()], leaf.key_der());
            handshake(insecure_client(versions), config).unwrap();
        }
    }

    #[test]
    fn accept_any_server_cert_still_checks_the_handshake_signature() {
        let ca = Ca::new("CA").unwrap();
        let presented = ca.server(&["localhost"]).unwrap();
        let signing = ca.server(&["localhost"]).unwrap();
        let key = crate::provider()
            .key_provider
            .load_private_key(signing.key_der())
            .unwrap();
        // A certificate served with a key that is not its own.
        let mismatched = CertifiedKey::new(vec![presented.cert_der().clone()], key);
        for versions in [
            &[&rustls::version::TLS13][..],
            &[&rustls::version::TLS12][..],
        ] {
            let config = ServerConfig::builder_with_provider(crate::provider())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_cert_resolver(Arc::new(SingleCertAndKey::from(mismatched.clone())));
            let err = handshake(insecure_client(versions), config).unwrap_err();
            assert_eq!(
                err,
                rustls::Error::InvalidCertificate(rustls::CertificateError::BadSignature)
            );
        }
    }

    #[test]
    fn accept_any_client_cert_requests_but_does_not_require() {
        let server_ca = Ca::new("server CA").unwrap();
        let leaf = server_ca.server(&["localhost"]).unwrap();
        let provider = crate::provider();
        let server_config = || {
            ServerConfig::builder_with_provider(Arc::clone(&provider))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_client_cert_verifier(Arc::new(AcceptAnyClientCert::new(&provider)))
                .with_single_cert(vec![leaf.cert_der().clone()], leaf.key_der())
                .unwrap()
        };
        let roots = crate::pem::root_store(server_ca.cert_pem().as_bytes(), "server CA").unwrap();
        let client = |identity: Option<&crate::ca::Issued>| {
            let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots.clone());
            match identity {
                Some(id) => builder
                    .with_client_auth_cert(vec![id.cert_der().clone()], id.key_der())
                    .unwrap(),
                None => builder.with_no_client_auth(),
            }
        };
        // A client certificate from a CA nobody trusts is accepted, and visible to the server.
        let stranger = Ca::new("stranger CA")
            .unwrap()
            .client("mallory", None)
            .unwrap();
        let conn = handshake(client(Some(&stranger)), server_config()).unwrap();
        assert_eq!(
            conn.peer_certificates().map(<[_]>::to_vec),
            Some(vec![stranger.cert_der().clone()])
        );
        // No client certificate is fine too.
        let conn = handshake(client(None), server_config()).unwrap();
        assert!(conn.peer_certificates().is_none());
    }
}
