//! Certificates generated in memory (feature `ca`): a CA, new or loaded from PEM, the leaf
//! certificates it signs, and self-signed ones.
//!
//! ```
//! # fn main() -> Result<(), kedge_tls::Error> {
//! use kedge_tls::ca::Ca;
//!
//! let ca = Ca::new("test CA")?;
//! let server = ca.server(&["localhost", "127.0.0.1"])?;
//! let client = ca.client("jane", Some("system:masters"))?;
//! let roots = kedge_tls::pem::root_store(ca.cert_pem().as_bytes(), "test CA")?;
//! # let _ = (server, client, roots);
//! # Ok(())
//! # }
//! ```

use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::Error;

/// How far back [`Validity::from_now`] starts, so clocks a little behind ours still accept.
const BACKDATE: Duration = Duration::from_secs(3600);

/// When a certificate is valid. Without one ([`CertSpec::validity`] `None`, [`Ca::new`]) a
/// certificate is valid from 1975 to 4096 (rcgen's default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    /// Start.
    pub not_before: SystemTime,
    /// End.
    pub not_after: SystemTime,
}

impl Validity {
    /// From an hour ago (so clocks a little behind ours still accept it) to `lifetime` from
    /// now.
    pub fn from_now(lifetime: Duration) -> Self {
        let now = SystemTime::now();
        Self {
            not_before: now - BACKDATE,
            not_after: now + lifetime,
        }
    }
}

/// What a leaf certificate says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertSpec {
    /// Subject common name; rcgen's placeholder (`rcgen self signed cert`) when `None`.
    pub common_name: Option<String>,
    /// Subject organization (a Kubernetes group, for x509 client authentication).
    pub organization: Option<String>,
    /// Subject alternative names: DNS names, or IP addresses (recognised by parsing).
    pub names: Vec<String>,
    /// Extended key usage `serverAuth`.
    pub server_auth: bool,
    /// Extended key usage `clientAuth`.
    pub client_auth: bool,
    /// A key usage extension for `digitalSignature` and `keyEncipherment`; without it the
    /// certificate has no key usage extension (any use allowed).
    pub key_usage: bool,
    /// Validity period; 1975 to 4096 when `None`.
    pub validity: Option<Validity>,
}

impl CertSpec {
    fn params(&self) -> Result<CertificateParams, Error> {
        let mut params = CertificateParams::new(self.names.clone())?;
        if let Some(cn) = &self.common_name {
            params.distinguished_name.push(DnType::CommonName, cn);
        }
        if let Some(o) = &self.organization {
            params.distinguished_name.push(DnType::OrganizationName, o);
        }
        if self.key_usage {
            params.key_usages = vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyEncipherment,
            ];
        }
        if self.server_auth {
            params
                .extended_key_usages
                .push(ExtendedKeyUsagePurpose::ServerAuth);
        }
        if self.client_auth {
            params
                .extended_key_usages
                .push(ExtendedKeyUsagePurpose::ClientAuth);
        }
        if let Some(validity) = self.validity {
            set_validity(&mut params, validity);
        }
        Ok(params)
    }
}

fn set_validity(params: &mut CertificateParams, validity: Validity) {
    params.not_before = validity.not_before.into();
    params.not_after = validity.not_after.into();
}

/// A generated certificate and its new key (ECDSA P-256).
#[derive(Clone)]
pub struct Issued {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key, PEM (PKCS#8).
    pub key_pem: String,
    cert_der: CertificateDer<'static>,
    key_der: Vec<u8>,
}

impl Issued {
    fn new(cert: &rcgen::Certificate, key: &KeyPair) -> Self {
        Self {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().clone(),
            key_der: key.serialize_der(),
        }
    }

    /// The certificate, DER.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// The private key, DER (PKCS#8).
    pub fn key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()))
    }
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("Issued")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

/// A self-signed certificate (it is its own CA bundle).
pub fn self_signed(spec: &CertSpec) -> Result<Issued, Error> {
    let key = KeyPair::generate()?;
    let cert = spec.params()?.self_signed(&key)?;
    Ok(Issued::new(&cert, &key))
}

/// A certificate authority that signs leaf certificates.
pub struct Ca {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    /// A new self-signed CA with this common name, valid from 1975 to 4096.
    pub fn new(common_name: &str) -> Result<Self, Error> {
        Self::generate(common_name, None)
    }

    /// A new self-signed CA with this common name and validity.
    pub fn with_validity(common_name: &str, validity: Validity) -> Result<Self, Error> {
        Self::generate(common_name, Some(validity))
    }

    fn generate(common_name: &str, validity: Option<Validity>) -> Result<Self, Error> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        if let Some(validity) = validity {
            set_validity(&mut params, validity);
        }
        let cert = params.self_signed(&key)?;
        Ok(Self {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// An existing CA: its certificate and private key, PEM.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, Error> {
        let key = KeyPair::from_pem(key_pem)?;
        Ok(Self {
            issuer: Issuer::from_ca_cert_pem(cert_pem, key)?,
            cert_pem: cert_pem.to_owned(),
        })
    }

    /// The CA certificate, PEM: the bundle that verifies what it signs.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA's private key, PEM (PKCS#8).
    pub fn key_pem(&self) -> String {
        self.issuer.key().serialize_pem()
    }

    /// A new key and a certificate for it, signed by this CA.
    pub fn issue(&self, spec: &CertSpec) -> Result<Issued, Error> {
        let key = KeyPair::generate()?;
        let cert = spec.params()?.signed_by(&key, &self.issuer)?;
        Ok(Issued::new(&cert, &key))
    }

    /// A server (and client) certificate for `names` (DNS names or IP addresses), the first
    /// also its common name; valid from 1975 to 4096.
    pub fn server(&self, names: &[&str]) -> Result<Issued, Error> {
        self.issue(&CertSpec {
            common_name: names.first().map(|n| (*n).to_owned()),
            names: names.iter().map(|n| (*n).to_owned()).collect(),
            server_auth: true,
            client_auth: true,
            key_usage: true,
            ..CertSpec::default()
        })
    }

    /// A client certificate for `common_name` (the user of x509 client authentication) in
    /// `organization` (a group); valid from 1975 to 4096.
    pub fn client(&self, common_name: &str, organization: Option<&str>) -> Result<Issued, Error> {
        self.issue(&CertSpec {
            common_name: Some(common_name.to_owned()),
            organization: organization.map(str::to_owned),
            client_auth: true,
            key_usage: true,
            ..CertSpec::default()
        })
    }
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("Ca")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Arc;

    use rustls::client::WebPkiServerVerifier;
    use rustls::client::danger::ServerCertVerifier;
    use rustls::pki_types::{ServerName, UnixTime};

    use super::*;
    use crate::pem;

    fn server_verifier(ca_pem: &str) -> Arc<WebPkiServerVerifier> {
        let roots = pem::root_store(ca_pem.as_bytes(), "ca").unwrap();
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), crate::provider())
            .build()
            .unwrap()
    }

    fn verify_server(
        ca_pem: &str,
        leaf: &Issued,
        name: &str,
        now: UnixTime,
    ) -> Result<(), rustls::Error> {
        server_verifier(ca_pem)
            .verify_server_cert(
                leaf.cert_der(),
                &[],
                &ServerName::try_from(name.to_owned()).unwrap(),
                &[],
                now,
            )
            .map(|_| ())
    }

    #[test]
    fn server_certificates_verify_for_their_names() {
        let ca = Ca::new("test CA").unwrap();
        let leaf = ca.server(&["localhost", "127.0.0.1", "::1"]).unwrap();
        for name in ["localhost", "127.0.0.1", "::1"] {
            verify_server(ca.cert_pem(), &leaf, name, UnixTime::now()).unwrap();
        }
        let err = verify_server(ca.cert_pem(), &leaf, "example.com", UnixTime::now()).unwrap_err();
        assert!(
            matches!(err, rustls::Error::InvalidCertificate(_)),
            "{err:?}"
        );
        let other = Ca::new("other CA").unwrap();
        let err = verify_server(other.cert_pem(), &leaf, "localhost", UnixTime::now()).unwrap_err();
        assert_eq!(
            err,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)
        );
    }

    #[test]
    fn client_certificates_verify_against_the_ca() {
        let ca = Ca::new("client CA").unwrap();
        let leaf = ca.client("jane", Some("system:masters")).unwrap();
        let roots = pem::root_store(ca.cert_pem().as_bytes(), "client CA").unwrap();
        let verifier = crate::verify::client_verifier(roots, "client CA").unwrap();
        verifier
            .verify_client_cert(leaf.cert_der(), &[], UnixTime::now())
            .unwrap();
        // A server-only certificate is not a client certificate.
        let server_only = ca
            .issue(&CertSpec {
                names: vec!["localhost".into()],
                server_auth: true,
                ..CertSpec::default()
            })
            .unwrap();
        assert!(
            verifier
                .verify_client_cert(server_only.cert_der(), &[], UnixTime::now())
                .is_err()
        );
        // The key matches the certificate.
        pem::certified_key(leaf.cert_pem.as_bytes(), leaf.key_pem.as_bytes(), "leaf").unwrap();
    }

    #[test]
    fn a_ca_loaded_from_pem_signs_for_the_same_roots() {
        let ca = Ca::new("shared CA").unwrap();
        let loaded = Ca::from_pem(ca.cert_pem(), &ca.key_pem()).unwrap();
        let leaf = loaded.server(&["kedge.example"]).unwrap();
        verify_server(ca.cert_pem(), &leaf, "kedge.example", UnixTime::now()).unwrap();
        let err = Ca::from_pem("not a certificate", &ca.key_pem()).unwrap_err();
        assert!(matches!(err, Error::Generate(_)), "{err:?}");
        assert!(
            err.to_string()
                .starts_with("cannot generate a certificate: "),
            "{err}"
        );
    }

    #[test]
    fn validity_is_applied() {
        let day = Duration::from_secs(24 * 3600);
        let ca = Ca::with_validity("short CA", Validity::from_now(day)).unwrap();
        let leaf = ca
            .issue(&CertSpec {
                common_name: Some("short".into()),
                names: vec!["short.example".into()],
                server_auth: true,
                validity: Some(Validity::from_now(day)),
                ..CertSpec::default()
            })
            .unwrap();
        verify_server(ca.cert_pem(), &leaf, "short.example", UnixTime::now()).unwrap();
        let later = UnixTime::since_unix_epoch(
            (SystemTime::now() + 2 * day)
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap(),
        );
        let err = verify_server(ca.cert_pem(), &leaf, "short.example", later).unwrap_err();
        assert!(
            matches!(
                err,
                rustls::Error::InvalidCertificate(rustls::CertificateError::ExpiredContext { .. })
            ),
            "{err:?}"
        );
    }

    #[test]
    fn self_signed_certificates_are_their_own_bundle() {
        let cert = self_signed(&CertSpec {
            common_name: Some("kedge".into()),
            names: vec!["kedge.svc".into()],
            server_auth: true,
            ..CertSpec::default()
        })
        .unwrap();
        assert!(!format!("{cert:?}").contains("PRIVATE KEY"));
        pem::certified_key(cert.cert_pem.as_bytes(), cert.key_pem.as_bytes(), "self").unwrap();
    }
}
