//! Certificates and CA bundles read from files and re-read when the files change, checked on
//! every TLS handshake (as kubert's server does), so a certificate rotated by cert-manager (a
//! Secret volume's symlink swap) is served from the next connection on, with no restart.
//!
//! A change is noticed by the files' modification times and sizes (one `stat` per file per
//! handshake). A new version that does not load (a half-written file, a key that does not match
//! the certificate) is logged and the previous one kept, so a bad rotation never takes the
//! server down; it is retried when the files change again.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

use super::TlsError;

/// What identifies one version of a set of files.
type Stamp = Vec<Option<(SystemTime, u64)>>;

fn stamp(paths: &[&Path]) -> Stamp {
    paths
        .iter()
        .map(|p| {
            std::fs::metadata(p)
                .ok()
                .map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()))
        })
        .collect()
}

struct Loaded<T> {
    /// The files' stamp when `value` was loaded, or when loading last failed.
    stamp: Stamp,
    value: T,
}

/// Something loaded from files and reloaded when they change.
struct Reloading<T> {
    paths: Vec<PathBuf>,
    load: fn(&[PathBuf]) -> Result<T, TlsError>,
    state: RwLock<Loaded<T>>,
}

impl<T: Clone> Reloading<T> {
    fn new(
        paths: Vec<PathBuf>,
        load: fn(&[PathBuf]) -> Result<T, TlsError>,
    ) -> Result<Self, TlsError> {
        let refs: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
        let stamp = stamp(&refs);
        let value = load(&paths)?;
        Ok(Self {
            paths,
            load,
            state: RwLock::new(Loaded { stamp, value }),
        })
    }

    /// The current value, reloaded first if the files changed.
    fn current(&self) -> T {
        let refs: Vec<&Path> = self.paths.iter().map(PathBuf::as_path).collect();
        let now = stamp(&refs);
        {
            let state = self.state.read().unwrap_or_else(|e| e.into_inner());
            if state.stamp == now {
                return state.value.clone();
            }
        }
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        if state.stamp != now {
            match (self.load)(&self.paths) {
                Ok(value) => {
                    tracing::info!(files = ?self.paths, "reloaded TLS material");
                    state.value = value;
                }
                Err(e) => {
                    tracing::warn!(files = ?self.paths, error = %e, "cannot reload TLS material; keeping the previous version");
                }
            }
            state.stamp = now;
        }
        state.value.clone()
    }
}

/// A certificate chain and key from two PEM files, reloaded when they change. Serves as the
/// server certificate of either listener and as the client certificate of the gRPC link.
pub struct ReloadingCertificate(Reloading<Arc<CertifiedKey>>);

impl ReloadingCertificate {
    /// Loads the certificate (chain) from `cert_file` and its key from `key_file`; fails if
    /// they cannot be read or do not match.
    pub fn new(
        cert_file: impl Into<PathBuf>,
        key_file: impl Into<PathBuf>,
    ) -> Result<Self, TlsError> {
        Ok(Self(Reloading::new(
            vec![cert_file.into(), key_file.into()],
            |paths| {
                let cert = kedge_tls::pem::read(&paths[0])?;
                let key = kedge_tls::pem::read(&paths[1])?;
                let what = paths[0].display().to_string();
                Ok(Arc::new(kedge_tls::pem::certified_key(&cert, &key, &what)?))
            },
        )?))
    }

    /// The certificate in use now (after checking the files).
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.0.current()
    }
}

impl std::fmt::Debug for ReloadingCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadingCertificate")
            .field("files", &self.0.paths)
            .finish()
    }
}

impl ResolvesServerCert for ReloadingCertificate {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

impl rustls::client::ResolvesClientCert for ReloadingCertificate {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// A certificate that its owner replaces while serving (kedge's own serving certificate,
/// renewed from its CA before it expires): each handshake gets the one set last, so a renewal
/// needs no restart and connections already open keep theirs.
pub struct SwappableCert(RwLock<Arc<CertifiedKey>>);

impl SwappableCert {
    /// Starts with `key`.
    pub fn new(key: Arc<CertifiedKey>) -> Self {
        Self(RwLock::new(key))
    }

    /// Starts with a certificate chain and key given as PEM.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, TlsError> {
        Ok(Self::new(Self::load(cert_pem, key_pem)?))
    }

    fn load(cert_pem: &str, key_pem: &str) -> Result<Arc<CertifiedKey>, TlsError> {
        Ok(Arc::new(kedge_tls::pem::certified_key(
            cert_pem.as_bytes(),
            key_pem.as_bytes(),
            "serving certificate",
        )?))
    }

    /// Serves `key` from the next handshake on.
    pub fn set(&self, key: Arc<CertifiedKey>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = key;
    }

    /// Serves this PEM chain and key from the next handshake on; unusable ones are an error and
    /// the current certificate stays.
    pub fn set_pem(&self, cert_pem: &str, key_pem: &str) -> Result<(), TlsError> {
        self.set(Self::load(cert_pem, key_pem)?);
        Ok(())
    }

    /// The certificate served now.
    pub fn current(&self) -> Arc<CertifiedKey> {
        Arc::clone(&self.0.read().unwrap_or_else(|e| e.into_inner()))
    }
}

impl std::fmt::Debug for SwappableCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SwappableCert").finish_non_exhaustive()
    }
}

impl ResolvesServerCert for SwappableCert {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// A CA bundle file whose certificates client certificates must chain to (mutual TLS on the
/// gRPC link), reloaded when the file changes.
pub struct ReloadingCa(Reloading<Arc<dyn ClientCertVerifier>>);

impl ReloadingCa {
    /// Loads the CA bundle from `ca_file`.
    pub fn new(ca_file: impl Into<PathBuf>) -> Result<Self, TlsError> {
        Ok(Self(Reloading::new(vec![ca_file.into()], |paths| {
            let pem = kedge_tls::pem::read(&paths[0])?;
            let what = paths[0].display().to_string();
            kedge_tls::verify::client_verifier(kedge_tls::pem::root_store(&pem, &what)?, &what)
        })?))
    }

    /// The roots as a server verifies servers with them (for the client side of the link).
    pub fn roots(&self) -> Result<rustls::RootCertStore, TlsError> {
        let path = &self.0.paths[0];
        kedge_tls::pem::root_store(&kedge_tls::pem::read(path)?, &path.display().to_string())
    }
}

impl std::fmt::Debug for ReloadingCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadingCa")
            .field("file", &self.0.paths)
            .finish()
    }
}

impl ClientCertVerifier for ReloadingCa {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // The hints would have to outlive a reload; our own clients do not need them.
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.0
            .current()
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.current().verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.current().verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.current().supported_verify_schemes()
    }
}
