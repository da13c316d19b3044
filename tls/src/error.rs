//! The crate's error.

use std::path::PathBuf;

/// A TLS setup problem: unreadable or invalid certificates and keys, a certificate that cannot
/// be generated, or a configuration rustls refuses.
///
/// Most variants carry `what`: the source being parsed (a file name, a parameter name or a
/// description), which starts the message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// PEM text is malformed, or holds no item of the expected kind (a private key).
    #[error("{what}: {source}")]
    Pem {
        /// What was being parsed.
        what: String,
        /// What is wrong.
        source: rustls::pki_types::pem::Error,
    },
    /// PEM text holds no certificate.
    #[error("{what}: no certificate found")]
    NoCertificate {
        /// What was being parsed.
        what: String,
    },
    /// A certificate or key parsed but rustls rejected it (not a usable root, a key that does
    /// not match the certificate, ...).
    #[error("{what}: {source}")]
    Rejected {
        /// What was being loaded.
        what: String,
        /// Why rustls rejected it.
        source: rustls::Error,
    },
    /// A certificate verifier could not be built from a CA bundle.
    #[error("{what}: {source}")]
    Verifier {
        /// The CA bundle.
        what: String,
        /// Why.
        source: rustls::server::VerifierBuilderError,
    },
    /// Anything else invalid, for callers' own checks (e.g. a server name).
    #[error("{what}: {message}")]
    Invalid {
        /// What was being checked.
        what: String,
        /// What is wrong.
        message: String,
    },
    /// Certificate generation failed.
    #[cfg(feature = "ca")]
    #[error("cannot generate a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}
