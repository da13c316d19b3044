//! PEM parsing, certificate verifiers and CA generation shared by kedge's crates.
//!
//! * [`pem`]: certificates, private keys, root stores and rustls signing keys from PEM text;
//! * [`verify`]: the accept-any verifiers (`unsafeSsl` / `insecureSkipTLSVerify`, and a
//!   client certificate requested but left to the application to judge) and a client
//!   certificate verifier for a CA bundle;
//! * `ca` (feature `ca`): a CA generated in memory or loaded from PEM, and the certificates
//!   it signs.
//!
//! Everything uses the ring crypto provider ([`provider`]), as kube-rs does in this workspace,
//! and fails with one error type, [`Error`].

#![warn(missing_docs)]

#[cfg(feature = "ca")]
pub mod ca;
mod error;
pub mod pem;
pub mod verify;

use std::sync::Arc;

use rustls::crypto::CryptoProvider;

pub use error::Error;

/// The crypto provider used everywhere: ring.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}
