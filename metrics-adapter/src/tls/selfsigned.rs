//! Generated certificates: the API's self-signed serving certificate (the default when no
//! `--cert-file` is given, as KEDA's adapter does without cert rotation), and leaf certificates
//! signed by a CA shared between replicas for the gRPC link.

use std::sync::Arc;
use std::time::Duration;

use kedge_tls::ca::{self, Ca, CertSpec, Validity};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::TlsError;

/// How long generated certificates are valid (from an hour ago, for clocks a little behind).
const LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);

/// A certificate generated in memory, with its PEM texts (the certificate doubles as the CA
/// bundle clients trust for a self-signed one).
#[derive(Clone)]
pub struct GeneratedCert {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key, PEM (PKCS#8).
    pub key_pem: String,
    key: Arc<CertifiedKey>,
}

impl std::fmt::Debug for GeneratedCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("GeneratedCert")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

impl GeneratedCert {
    /// The certificate and key as rustls uses them.
    pub fn certified_key(&self) -> Arc<CertifiedKey> {
        Arc::clone(&self.key)
    }

    fn new(cert_pem: String, key_pem: String) -> Result<Self, TlsError> {
        let key = Arc::new(kedge_tls::pem::certified_key(
            cert_pem.as_bytes(),
            key_pem.as_bytes(),
            "generated certificate",
        )?);
        Ok(Self {
            cert_pem,
            key_pem,
            key,
        })
    }
}

/// A self-signed serving certificate for `names` (DNS names or IP addresses).
pub fn self_signed(names: &[String]) -> Result<GeneratedCert, TlsError> {
    let cert = ca::self_signed(&CertSpec {
        common_name: Some("kedge-metrics-adapter".to_owned()),
        names: names.to_vec(),
        server_auth: true,
        validity: Some(Validity::from_now(LIFETIME)),
        ..CertSpec::default()
    })?;
    GeneratedCert::new(cert.cert_pem, cert.key_pem)
}

/// A leaf certificate for `names`, usable as both server and client certificate on the gRPC
/// link, signed by the CA whose certificate and key are given as PEM.
pub fn signed_by_ca(
    names: &[String],
    common_name: &str,
    ca_cert_pem: &str,
    ca_key_pem: &str,
) -> Result<GeneratedCert, TlsError> {
    let leaf = Ca::from_pem(ca_cert_pem, ca_key_pem)?.issue(&CertSpec {
        common_name: Some(common_name.to_owned()),
        names: names.to_vec(),
        server_auth: true,
        client_auth: true,
        validity: Some(Validity::from_now(LIFETIME)),
        ..CertSpec::default()
    })?;
    // Serve the chain with the CA certificate after the leaf.
    GeneratedCert::new(format!("{}{}", leaf.cert_pem, ca_cert_pem), leaf.key_pem)
}

/// A new CA (certificate and key PEM), e.g. for tests or to seed the Secret replicas share.
pub fn new_ca(common_name: &str) -> Result<(String, String), TlsError> {
    let ca = Ca::with_validity(common_name, Validity::from_now(LIFETIME))?;
    Ok((ca.cert_pem().to_owned(), ca.key_pem()))
}

/// When the first certificate of `pem` expires; `None` when it cannot be read.
pub fn not_after(pem: &str) -> Option<std::time::SystemTime> {
    let der = kedge_tls::pem::certificates(pem.as_bytes(), "certificate")
        .ok()?
        .into_iter()
        .next()?;
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    let secs = u64::try_from(cert.validity().not_after.timestamp()).ok()?;
    Some(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
}

/// Always serves one certificate.
#[derive(Debug)]
pub struct FixedCert(pub Arc<CertifiedKey>);

impl ResolvesServerCert for FixedCert {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }
}

impl rustls::client::ResolvesClientCert for FixedCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }

    fn has_certs(&self) -> bool {
        true
    }
}
