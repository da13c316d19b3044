//! Generated certificates: the API's self-signed serving certificate (the default when no
//! `--cert-file` is given, as KEDA's adapter does without cert rotation), and leaf certificates
//! signed by a CA shared between replicas for the gRPC link.

use std::sync::Arc;

use rcgen::{
    CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::TlsError;

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
        let key = Arc::new(super::certified_key(
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

fn params(names: &[String], common_name: &str) -> Result<CertificateParams, TlsError> {
    let mut params = CertificateParams::new(names.to_vec())?;
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    // Valid from an hour ago, so clocks a little behind ours still accept it.
    let now = std::time::SystemTime::now();
    params.not_before = (now - std::time::Duration::from_secs(3600)).into();
    params.not_after = (now + std::time::Duration::from_secs(365 * 24 * 3600)).into();
    Ok(params)
}

/// A self-signed serving certificate for `names` (DNS names or IP addresses).
pub fn self_signed(names: &[String]) -> Result<GeneratedCert, TlsError> {
    let key = KeyPair::generate()?;
    let mut params = params(names, "kedge-metrics-adapter")?;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.self_signed(&key)?;
    GeneratedCert::new(cert.pem(), key.serialize_pem())
}

/// A leaf certificate for `names`, usable as both server and client certificate on the gRPC
/// link, signed by the CA whose certificate and key are given as PEM.
pub fn signed_by_ca(
    names: &[String],
    common_name: &str,
    ca_cert_pem: &str,
    ca_key_pem: &str,
) -> Result<GeneratedCert, TlsError> {
    let ca_key = KeyPair::from_pem(ca_key_pem)?;
    let issuer = Issuer::from_ca_cert_pem(ca_cert_pem, ca_key)?;
    let key = KeyPair::generate()?;
    let mut params = params(names, common_name)?;
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let cert = params.signed_by(&key, &issuer)?;
    // Serve the chain with the CA certificate after the leaf.
    GeneratedCert::new(
        format!("{}{}", cert.pem(), ca_cert_pem),
        key.serialize_pem(),
    )
}

/// A new CA (certificate and key PEM), e.g. for tests or to seed the Secret replicas share.
pub fn new_ca(common_name: &str) -> Result<(String, String), TlsError> {
    let key = KeyPair::generate()?;
    let mut params = params(&[], common_name)?;
    params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// When the first certificate of `pem` expires; `None` when it cannot be read.
pub fn not_after(pem: &str) -> Option<std::time::SystemTime> {
    let der = super::certificates_from_pem(pem.as_bytes(), "certificate")
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
