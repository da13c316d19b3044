//! The crate's setup errors (request-time errors are [`crate::status::ApiError`]s).

use std::net::SocketAddr;

use crate::tls::TlsError;

/// Starting a server failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Certificates or keys are unusable.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// Other I/O.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
