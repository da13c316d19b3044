//! rustls client configurations as KEDA builds its TLS configs (`kedautil.NewTLSConfig`): the
//! system's root certificates plus an optional CA given as PEM text, an optional client
//! certificate, and `unsafeSsl` to skip verifying the server's certificate.
//!
//! Shared by the scalers that speak TLS through rustls (prometheus, external).

use std::sync::{Arc, OnceLock};

use kedge_tls::verify::AcceptAnyServerCert;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};
use scaler_core::Secret;

/// TLS settings of one client, PEM texts as they come from a TriggerAuthentication.
///
/// Hashable so it can be part of a [`scaler_core::SharedClients`] key.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct TlsSettings {
    /// Extra CA certificate(s) trusted besides the system's roots.
    pub ca: Option<Secret>,
    /// Client certificate (chain) presented to the server.
    pub cert: Option<Secret>,
    /// Private key of the client certificate.
    pub key: Option<Secret>,
    /// Accept any server certificate (KEDA's `unsafeSsl`).
    pub unsafe_ssl: bool,
}

impl TlsSettings {
    /// Checks that the PEM texts parse, so a broken certificate is reported when the trigger is
    /// validated rather than at the first poll. `names` are the parameter names for messages:
    /// (CA, certificate, key).
    pub fn validate(&self, names: (&str, &str, &str)) -> Result<(), String> {
        let mut problems = Vec::new();
        if let Some(ca) = &self.ca
            && let Err(e) = certificates(ca)
        {
            problems.push(format!("{}: {e}", names.0));
        }
        if let Some(cert) = &self.cert
            && let Err(e) = certificates(cert)
        {
            problems.push(format!("{}: {e}", names.1));
        }
        if let Some(key) = &self.key {
            // Loading the key also checks its DER content, not only the PEM armour.
            let loaded = private_key(key).and_then(|der| {
                kedge_tls::provider()
                    .key_provider
                    .load_private_key(der)
                    .map(|_| ())
                    .map_err(|e| format!("unusable private key: {e}"))
            });
            if let Err(e) = loaded {
                problems.push(format!("{}: {e}", names.2));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }

    /// The rustls configuration, offering `alpn` protocols (e.g. `h2` for gRPC).
    pub fn client_config(&self, alpn: &[&[u8]]) -> Result<ClientConfig, String> {
        let provider = kedge_tls::provider();
        let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup: {e}"))?;
        let builder = if self.unsafe_ssl {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyServerCert::new(&provider)))
        } else {
            let mut roots = system_roots().clone();
            if let Some(ca) = &self.ca {
                kedge_tls::pem::add_roots(&mut roots, ca.expose().as_bytes(), "CA certificate")
                    .map_err(certificate_message)?;
            }
            builder.with_root_certificates(roots)
        };
        let mut config = match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => builder
                .with_client_auth_cert(certificates(cert)?, private_key(key)?)
                .map_err(|e| format!("client certificate: {e}"))?,
            _ => builder.with_no_client_auth(),
        };
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(config)
    }
}

fn certificates(pem: &Secret) -> Result<Vec<CertificateDer<'static>>, String> {
    kedge_tls::pem::certificates(pem.expose().as_bytes(), "certificate")
        .map_err(certificate_message)
}

/// Our messages for PEM certificate problems.
fn certificate_message(e: kedge_tls::Error) -> String {
    match e {
        kedge_tls::Error::Pem { source, .. } => format!("not a PEM certificate: {source}"),
        kedge_tls::Error::NoCertificate { .. } => {
            "no PEM certificate found (expected -----BEGIN CERTIFICATE-----)".to_owned()
        }
        // A CA certificate rustls does not take as a root.
        kedge_tls::Error::Rejected { source, .. } => format!("CA certificate: {source}"),
        other => other.to_string(),
    }
}

fn private_key(pem: &Secret) -> Result<PrivateKeyDer<'static>, String> {
    kedge_tls::pem::private_key(pem.expose().as_bytes(), "private key").map_err(|e| match e {
        kedge_tls::Error::Pem { source, .. } => format!("not a PEM private key: {source}"),
        other => other.to_string(),
    })
}

/// The system's trusted roots, read once per process (reading them costs milliseconds).
fn system_roots() -> &'static RootCertStore {
    static ROOTS: OnceLock<RootCertStore> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let mut roots = RootCertStore::empty();
        // Unreadable certificates are skipped, as Go's SystemCertPool does.
        let found = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(found.certs);
        roots
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn broken_pem_is_reported_per_parameter() {
        let settings = TlsSettings {
            ca: Some(Secret::new("not a certificate")),
            key: Some(Secret::new(
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            )),
            ..TlsSettings::default()
        };
        let err = settings
            .validate(("caCert", "tlsClientCert", "tlsClientKey"))
            .unwrap_err();
        assert!(err.starts_with("caCert: no PEM certificate found"), "{err}");
        assert!(err.contains("tlsClientKey: unusable private key"), "{err}");
        let missing = TlsSettings {
            key: Some(Secret::new("not a key")),
            ..TlsSettings::default()
        };
        let err = missing.validate(("ca", "cert", "key")).unwrap_err();
        assert!(err.starts_with("key: not a PEM private key"), "{err}");
    }

    #[test]
    fn plain_settings_build_a_config() {
        let config = TlsSettings::default().client_config(&[b"h2"]);
        assert_eq!(
            config.map(|c| c.alpn_protocols).unwrap_or_default(),
            vec![b"h2".to_vec()]
        );
        let insecure = TlsSettings {
            unsafe_ssl: true,
            ..TlsSettings::default()
        };
        assert!(insecure.client_config(&[]).is_ok());
    }
}
