//! Certificates, private keys, root stores and signing keys from PEM text.
//!
//! Every function takes `what`, naming the source in errors (a file name, a parameter name or a
//! description).

use std::path::Path;

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

use crate::Error;

/// Reads a PEM file.
pub fn read(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })
}

/// All certificates in PEM text, in order; at least one.
///
/// Fails with [`Error::Pem`] on malformed PEM and [`Error::NoCertificate`] when there is no
/// `CERTIFICATE` section.
pub fn certificates(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| Error::Pem {
            what: what.to_owned(),
            source,
        })?;
    if certs.is_empty() {
        return Err(Error::NoCertificate {
            what: what.to_owned(),
        });
    }
    Ok(certs)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) in PEM text.
///
/// Fails with [`Error::Pem`] on malformed PEM or when there is no key. The key's DER content is
/// not checked: [`certified_key`] or a rustls config builder does that.
pub fn private_key(pem: &[u8], what: &str) -> Result<PrivateKeyDer<'static>, Error> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|source| Error::Pem {
        what: what.to_owned(),
        source,
    })
}

/// Adds the certificates of a PEM bundle to `roots`; returns how many were added.
///
/// Fails as [`certificates`] does, or with [`Error::Rejected`] for a certificate that is not a
/// usable trust anchor.
pub fn add_roots(roots: &mut RootCertStore, pem: &[u8], what: &str) -> Result<usize, Error> {
    let certs = certificates(pem, what)?;
    let count = certs.len();
    for cert in certs {
        roots.add(cert).map_err(|source| Error::Rejected {
            what: what.to_owned(),
            source,
        })?;
    }
    Ok(count)
}

/// A root store holding the certificates of a PEM bundle (see [`add_roots`]).
pub fn root_store(pem: &[u8], what: &str) -> Result<RootCertStore, Error> {
    let mut roots = RootCertStore::empty();
    add_roots(&mut roots, pem, what)?;
    Ok(roots)
}

/// A certificate chain and its key, as rustls signs with them (the key loaded by the ring
/// provider and checked to match the certificate).
pub fn certified_key(cert_pem: &[u8], key_pem: &[u8], what: &str) -> Result<CertifiedKey, Error> {
    let chain = certificates(cert_pem, what)?;
    let key = private_key(key_pem, what)?;
    CertifiedKey::from_der(chain, key, &crate::provider()).map_err(|source| Error::Rejected {
        what: what.to_owned(),
        source,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn malformed_pem_names_its_source() {
        let err = certificates(b"-----BEGIN CERTIFICATE-----\nAAAA\n", "ca.crt").unwrap_err();
        assert!(matches!(err, Error::Pem { .. }), "{err:?}");
        assert!(err.to_string().starts_with("ca.crt: "), "{err}");
    }

    #[test]
    fn no_certificate() {
        let err = certificates(b"not a certificate", "caCert").unwrap_err();
        assert!(matches!(err, Error::NoCertificate { .. }), "{err:?}");
        assert_eq!(err.to_string(), "caCert: no certificate found");
        let err = root_store(b"", "bundle").unwrap_err();
        assert_eq!(err.to_string(), "bundle: no certificate found");
    }

    #[test]
    fn no_private_key() {
        let err = private_key(b"not a key", "tls.key").unwrap_err();
        assert!(
            matches!(
                err,
                Error::Pem {
                    source: rustls::pki_types::pem::Error::NoItemsFound,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().starts_with("tls.key: "), "{err}");
    }

    #[test]
    fn garbage_der_is_rejected() {
        // Valid PEM armour, DER that is no certificate: parses as PEM, rustls refuses it.
        let pem = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        assert_eq!(certificates(pem, "x").unwrap().len(), 1);
        let err = root_store(pem, "ca.crt").unwrap_err();
        assert!(matches!(err, Error::Rejected { .. }), "{err:?}");
        let key = b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
        let err = certified_key(pem, key, "tls.crt").unwrap_err();
        assert!(matches!(err, Error::Rejected { .. }), "{err:?}");
    }

    #[test]
    fn unreadable_file() {
        let err = read(Path::new("does/not/exist.pem")).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot read does/not/exist.pem: "),
            "{err}"
        );
    }
}
