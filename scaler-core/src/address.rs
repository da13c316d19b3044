//! [`AddressGuard`]: address ranges scalers must not connect to.
//!
//! In a shared cluster whoever may create a ScaledObject names the servers kedge connects to,
//! with kedge's network position: the cloud metadata service (`169.254.169.254`), the API
//! server's Service range, the node's own ports. An operator opts in to a deny list
//! (`kedge run --scaler-address-deny-cidrs`); every scaler checks the hosts it is given against
//! it when it is built, and again when it connects.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, ToSocketAddrs as _};
use std::sync::Arc;
use std::time::Duration;

pub use ipnet::IpNet;

/// A list of address ranges scalers must not connect to. Empty (the default) allows every
/// address and resolves nothing.
///
/// Every address a host resolves to is compared, so a name with one allowed and one denied
/// address is denied. An IPv4-mapped IPv6 address (`::ffff:169.254.169.254`) is compared as
/// the IPv4 address it reaches, and the unspecified addresses (`0.0.0.0`, `::`), which reach
/// the local host, as loopback.
///
/// ```
/// use std::net::IpAddr;
/// use scaler_core::AddressGuard;
///
/// let guard = AddressGuard::parse("169.254.169.254/32, 10.96.0.0/12").unwrap();
/// let ip = |s: &str| s.parse::<IpAddr>().unwrap();
/// assert_eq!(guard.denied_range(ip("10.96.0.1")).unwrap().to_string(), "10.96.0.0/12");
/// assert!(guard.denied_range(ip("::ffff:169.254.169.254")).is_some());
/// assert!(guard.denied_range(ip("10.0.0.1")).is_none());
/// assert!(AddressGuard::parse("10.0.0.0/33").is_err());
/// assert!(!AddressGuard::default().is_active());
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct AddressGuard {
    denied: Arc<[IpNet]>,
}

impl fmt::Debug for AddressGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.denied.iter()).finish()
    }
}

/// The outcome of resolving a host name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolved {
    /// Its addresses.
    Addresses(Vec<IpAddr>),
    /// The resolver answered with an error (no such name, no network).
    Failed,
    /// The resolver did not answer in time.
    TimedOut,
}

impl AddressGuard {
    /// A guard denying `ranges` (normalized: host bits cleared, IPv4-mapped IPv6 ranges as
    /// IPv4 ones).
    pub fn new(ranges: impl IntoIterator<Item = IpNet>) -> Self {
        let mut denied: Vec<IpNet> = ranges.into_iter().map(normalize).collect();
        denied.sort();
        denied.dedup();
        Self {
            denied: denied.into(),
        }
    }

    /// Parses a comma-separated list of CIDRs (`169.254.169.254/32,fd00::/8`); a bare address
    /// is one host. Empty entries are skipped.
    ///
    /// ```
    /// use scaler_core::AddressGuard;
    /// assert_eq!(AddressGuard::parse("169.254.169.254").unwrap().ranges()[0].to_string(), "169.254.169.254/32");
    /// assert!(AddressGuard::parse("").unwrap().ranges().is_empty());
    /// assert!(AddressGuard::parse("metadata").is_err());
    /// ```
    pub fn parse(list: &str) -> Result<Self, String> {
        let ranges = list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(parse_range)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::new(ranges))
    }

    /// Whether any range is denied.
    pub fn is_active(&self) -> bool {
        !self.denied.is_empty()
    }

    /// The denied ranges.
    pub fn ranges(&self) -> &[IpNet] {
        &self.denied
    }

    /// The first denied range containing `ip`, if any.
    pub fn denied_range(&self, ip: IpAddr) -> Option<IpNet> {
        let reaches = effective(ip);
        self.denied
            .iter()
            .copied()
            .find(|net| reaches.iter().any(|ip| net.contains(ip)))
    }

    /// The first denied range any of `addrs` is in.
    pub fn first_denied(&self, addrs: impl IntoIterator<Item = IpAddr>) -> Option<IpNet> {
        if !self.is_active() {
            return None;
        }
        addrs.into_iter().find_map(|ip| self.denied_range(ip))
    }

    /// Checks `host` (a name, an address, or `[v6]`): an address is compared at once; a name,
    /// when the guard is active, is resolved (blocking, at most `timeout`) and each of its
    /// addresses compared. `Err` is the denied range.
    ///
    /// A name that cannot be resolved now passes: the scaler has nothing to connect to yet,
    /// and it checks the addresses again when it connects.
    ///
    /// ```
    /// use std::time::Duration;
    /// use scaler_core::AddressGuard;
    ///
    /// let guard = AddressGuard::parse("127.0.0.0/8,::1/128").unwrap();
    /// let wait = Duration::from_secs(2);
    /// assert_eq!(guard.check_host("127.0.0.1", wait).unwrap_err().to_string(), "127.0.0.0/8");
    /// assert!(guard.check_host("[::1]", wait).is_err());
    /// assert!(guard.check_host("localhost", wait).is_err());
    /// assert!(guard.check_host("192.0.2.1", wait).is_ok());
    /// ```
    pub fn check_host(&self, host: &str, timeout: Duration) -> Result<(), IpNet> {
        if !self.is_active() {
            return Ok(());
        }
        let host = bare_host(host);
        if host.is_empty() || host.starts_with('/') {
            // No host (the client's default applies, checked when it connects) or a Unix
            // socket path: nothing to resolve.
            return Ok(());
        }
        if let Ok(ip) = host.parse::<IpAddr>() {
            return self.denied_range(ip).map_or(Ok(()), Err);
        }
        match resolve(host, timeout) {
            Resolved::Addresses(addrs) => self.first_denied(addrs).map_or(Ok(()), Err),
            Resolved::Failed | Resolved::TimedOut => Ok(()),
        }
    }
}

/// `host` without the brackets of an IPv6 literal.
///
/// ```
/// assert_eq!(scaler_core::address::bare_host("[::1]"), "::1");
/// assert_eq!(scaler_core::address::bare_host("db.shop"), "db.shop");
/// ```
pub fn bare_host(host: &str) -> &str {
    let host = host.trim();
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

/// Resolves `host` with the system resolver, waiting at most `timeout`. The lookup runs on a
/// thread of its own, so a resolver that hangs past `timeout` delays no one (the thread ends
/// when the resolver gives up).
///
/// ```
/// use std::time::Duration;
/// use scaler_core::address::{Resolved, resolve};
///
/// match resolve("localhost", Duration::from_secs(5)) {
///     Resolved::Addresses(addrs) => assert!(addrs.iter().all(|a| a.is_loopback())),
///     other => panic!("localhost: {other:?}"),
/// }
/// ```
pub fn resolve(host: &str, timeout: Duration) -> Resolved {
    let (tx, rx) = std::sync::mpsc::channel();
    let name = host.to_owned();
    let spawned = std::thread::Builder::new()
        .name("address-guard-dns".to_owned())
        .spawn(move || {
            let result = (name.as_str(), 0)
                .to_socket_addrs()
                .map(|addrs| addrs.map(|a| a.ip()).collect::<Vec<_>>());
            let _ = tx.send(result);
        });
    if spawned.is_err() {
        return Resolved::Failed;
    }
    match rx.recv_timeout(timeout) {
        Ok(Ok(addrs)) if !addrs.is_empty() => Resolved::Addresses(addrs),
        Ok(_) => Resolved::Failed,
        Err(_) => Resolved::TimedOut,
    }
}

/// The message of a denied address, naming the parameter and the range, never the value
/// (which may come from a Secret).
///
/// ```
/// let range = "169.254.169.254/32".parse().unwrap();
/// let m = scaler_core::address::denied_message("host", range);
/// assert!(m.starts_with("parameter \"host\": its host resolves into 169.254.169.254/32"));
/// ```
pub fn denied_message(param: &str, range: IpNet) -> String {
    format!(
        "parameter {param:?}: its host resolves into {range}, a range scalers may not connect \
         to (--scaler-address-deny-cidrs)"
    )
}

fn parse_range(s: &str) -> Result<IpNet, String> {
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{s:?} is not a CIDR (e.g. 169.254.169.254/32 or fd00::/8)"))
}

/// Host bits cleared; an IPv4-mapped IPv6 range (`::ffff:a.b.c.d/n`, n ≥ 96) as the IPv4
/// range it means.
fn normalize(net: IpNet) -> IpNet {
    let net = net.trunc();
    if let IpNet::V6(v6) = net
        && v6.prefix_len() >= 96
        && let Some(v4) = v6.network().to_ipv4_mapped()
        && let Ok(n) = ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96)
    {
        return IpNet::V4(n);
    }
    net
}

/// The addresses a connection to `ip` reaches, for comparison: itself, the IPv4 address of an
/// IPv4-mapped one, loopback for the unspecified address (Linux connects `0.0.0.0` and `::`
/// to the local host).
fn effective(ip: IpAddr) -> Vec<IpAddr> {
    let mut out = vec![ip];
    match ip {
        IpAddr::V4(v4) if v4.is_unspecified() => out.push(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        IpAddr::V6(v6) if v6.is_unspecified() => out.push(IpAddr::V6(Ipv6Addr::LOCALHOST)),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                out.push(IpAddr::V4(v4));
                if v4.is_unspecified() {
                    out.push(IpAddr::V4(Ipv4Addr::LOCALHOST));
                }
            }
        }
        IpAddr::V4(_) => {}
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn guard(list: &str) -> AddressGuard {
        AddressGuard::parse(list).unwrap()
    }

    #[test]
    fn v4_ranges_match_v4_and_mapped_v6_addresses() {
        let g = guard("169.254.169.254/32,10.96.0.0/12");
        for denied in [
            "169.254.169.254",
            "10.96.0.1",
            "10.111.255.255",
            "::ffff:169.254.169.254",
            "::ffff:10.100.0.1",
        ] {
            assert!(g.denied_range(ip(denied)).is_some(), "{denied}");
        }
        for allowed in ["169.254.169.253", "10.95.255.255", "10.112.0.0", "fd00::1"] {
            assert!(g.denied_range(ip(allowed)).is_none(), "{allowed}");
        }
        assert_eq!(
            g.denied_range(ip("::ffff:10.96.0.10")).unwrap().to_string(),
            "10.96.0.0/12"
        );
    }

    #[test]
    fn v6_ranges_and_mapped_ranges() {
        let g = guard("fd00:ec2::254/128,fc00::/7");
        assert!(g.denied_range(ip("fd00:ec2::254")).is_some());
        assert!(g.denied_range(ip("fd12::1")).is_some());
        assert!(g.denied_range(ip("2001:db8::1")).is_none());
        assert!(g.denied_range(ip("169.254.169.254")).is_none());
        // A range written in the mapped form means the IPv4 addresses.
        let mapped = guard("::ffff:169.254.0.0/112");
        assert_eq!(mapped.ranges()[0].to_string(), "169.254.0.0/16");
        assert!(mapped.denied_range(ip("169.254.169.254")).is_some());
        assert!(mapped.denied_range(ip("::ffff:169.254.1.1")).is_some());
    }

    #[test]
    fn the_unspecified_address_counts_as_loopback() {
        let g = guard("127.0.0.0/8,::1/128");
        for local in ["0.0.0.0", "::", "::ffff:0.0.0.0", "::ffff:127.0.0.1"] {
            assert!(g.denied_range(ip(local)).is_some(), "{local}");
        }
    }

    #[test]
    fn host_bits_are_cleared_and_bare_addresses_are_hosts() {
        let g = guard(" 10.1.2.3/8 , 192.0.2.7 ,, ");
        let shown: Vec<String> = g.ranges().iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["10.0.0.0/8", "192.0.2.7/32"]);
    }

    #[test]
    fn malformed_ranges_are_rejected() {
        for bad in [
            "10.0.0.0/33",
            "metadata",
            "10.0.0/8",
            "fd00::/129",
            "1.2.3.4/-1",
        ] {
            let err = AddressGuard::parse(bad).unwrap_err();
            assert!(err.contains("is not a CIDR"), "{bad}: {err}");
        }
    }

    #[test]
    fn names_are_resolved_and_every_address_compared() {
        let g = guard("127.0.0.0/8,::1/128");
        let wait = Duration::from_secs(5);
        assert!(g.check_host("localhost", wait).is_err());
        assert_eq!(
            g.check_host("127.0.0.1", wait).unwrap_err().to_string(),
            "127.0.0.0/8"
        );
        assert!(g.check_host("[::1]", wait).is_err());
        assert!(g.check_host("192.0.2.1", wait).is_ok());
        // Nothing to resolve now: checked again at connect time.
        assert!(
            g.check_host("no-such-host.invalid", wait).is_ok(),
            "an unresolvable name passes the build-time check"
        );
        assert!(g.check_host("/var/run/postgresql", wait).is_ok());
        // Inactive: nothing is resolved, everything passes.
        assert!(
            AddressGuard::default()
                .check_host("localhost", wait)
                .is_ok()
        );
    }

    #[test]
    fn the_message_names_the_parameter_and_the_range_not_the_value() {
        let range = guard("127.0.0.0/8").ranges()[0];
        let m = denied_message("connection", range);
        assert_eq!(
            m,
            "parameter \"connection\": its host resolves into 127.0.0.0/8, a range scalers may \
             not connect to (--scaler-address-deny-cidrs)"
        );
    }
}
