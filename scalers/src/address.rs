//! The connect-time half of `--scaler-address-deny-cidrs` (scaler-core's [`AddressGuard`]):
//! scalers check the hosts they are given when they are built (`ScalerConfig::check_address`),
//! and again here, with the addresses the name has when they connect, so a name whose DNS
//! answer changes after the build cannot reach a denied range.

use std::io;
use std::net::SocketAddr;
#[cfg(any(feature = "postgresql", feature = "kafka", feature = "aws-sqs-queue"))]
use std::time::Duration;

use scaler_core::AddressGuard;
use scaler_core::address::{bare_host, denied_message};

/// Resolves `host:port` and returns its addresses, or an error (kind `PermissionDenied`,
/// naming `param` and the range) when any of them is denied. Connecting to exactly these
/// addresses leaves no window for the name to change.
pub(crate) async fn resolve_checked(
    guard: &AddressGuard,
    param: &str,
    host: &str,
    port: u16,
) -> io::Result<Vec<SocketAddr>> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((bare_host(host), port))
        .await?
        .collect();
    match guard.first_denied(addrs.iter().map(SocketAddr::ip)) {
        Some(range) => Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            denied_message(param, range),
        )),
        None => Ok(addrs),
    }
}

/// Before a client library that resolves names itself (sqlx, librdkafka, the AWS SDK)
/// connects: the guard's check of what `host` resolves to now. A name that cannot be resolved
/// is refused, as it cannot be checked. Does nothing when the guard is inactive.
///
/// The library looks the name up again when it connects, so unlike [`resolve_checked`] this
/// narrows the window of a DNS answer that changes but does not close it.
#[cfg(any(feature = "postgresql", feature = "kafka", feature = "aws-sqs-queue"))]
pub(crate) async fn precheck(
    guard: &AddressGuard,
    param: &str,
    host: &str,
    timeout: Duration,
) -> Result<(), String> {
    let host = bare_host(host);
    if !guard.is_active() || host.is_empty() || host.starts_with('/') {
        return Ok(());
    }
    match tokio::time::timeout(timeout, resolve_checked(guard, param, host, 0)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) if e.kind() == io::ErrorKind::PermissionDenied => Err(e.to_string()),
        Ok(Err(_)) | Err(_) => Err(format!(
            "parameter {param:?}: its host cannot be resolved, so it cannot be checked against \
             --scaler-address-deny-cidrs"
        )),
    }
}

/// The host of `host:port`, `[v6]:port` or a bare host.
#[cfg(feature = "kafka")]
pub(crate) fn authority_host(authority: &str) -> &str {
    let authority = authority.trim();
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split_once(']').map_or(rest, |(h, _)| h);
    }
    match authority.rsplit_once(':') {
        // More than one colon: an IPv6 address without brackets.
        Some((h, _)) if !h.contains(':') => h,
        _ => authority,
    }
}

/// The host of a URL (`scheme://user@host:port/path`), without a URL parser.
#[cfg(feature = "kafka")]
pub(crate) fn url_host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    authority_host(authority)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[tokio::test]
    async fn the_addresses_a_name_has_when_connecting_are_checked() {
        let guard = AddressGuard::parse("127.0.0.0/8,::1/128").unwrap();
        let err = resolve_checked(&guard, "host", "localhost", 5672)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
        assert!(
            err.to_string()
                .starts_with("parameter \"host\": its host resolves into"),
            "{err}"
        );
        let open = resolve_checked(&AddressGuard::default(), "host", "localhost", 5672)
            .await
            .unwrap();
        assert!(
            open.iter()
                .all(|a| a.port() == 5672 && a.ip().is_loopback())
        );
    }
}
