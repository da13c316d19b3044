//! gRPC channels to external scalers, one per connection identity (address + TLS settings),
//! as KEDA pools its connections.
//!
//! The channel connects through our own connector: TCP, then (with `enableTLS`, a CA or a
//! client certificate, as in KEDA) TLS through rustls with the CA, client certificate and
//! `unsafeSsl` KEDA supports, which tonic's own TLS options cannot express.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use scaler_core::{AddressGuard, SharedClients};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tonic::codegen::http::Uri;
use tonic::transport::{Channel, Endpoint};

use crate::client_tls::TlsSettings;

/// Where and how to connect; equal keys share one channel.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ChannelKey {
    /// `host:port` (`[v6]:port` for IPv6 addresses).
    pub authority: String,
    /// Whether to speak TLS.
    pub tls: bool,
    /// CA, client certificate and `unsafeSsl`.
    pub tls_settings: TlsSettings,
    /// Checked against the address at each connection.
    pub guard: AddressGuard,
}

impl ChannelKey {
    /// The host of `authority`, without brackets.
    pub fn host(&self) -> &str {
        let host = self
            .authority
            .rsplit_once(':')
            .map_or(self.authority.as_str(), |(h, _)| h);
        scaler_core::address::bare_host(host)
    }
}

/// Channels shared by every external trigger in the process.
static CHANNELS: LazyLock<SharedClients<ChannelKey, Channel>> = LazyLock::new(SharedClients::new);

/// How long an HTTP/2 ping may go unanswered before a connection (and any push stream on it)
/// is considered dead.
const KEEPALIVE: Duration = Duration::from_secs(30);

/// The shared channel for `key`, created (without connecting) if none is alive. Must be called
/// inside a tokio runtime.
pub fn shared(key: &ChannelKey, connect_timeout: Duration) -> Result<Arc<Channel>, String> {
    CHANNELS.get_or_try_init(key.clone(), |key| {
        let tls = if key.tls {
            let config = key.tls_settings.client_config(&[b"h2"])?;
            Some(TlsConnector::from(Arc::new(config)))
        } else {
            None
        };
        // The scheme only labels requests; the connector decides whether TLS is used.
        let endpoint = Endpoint::from_shared(format!("http://{}", key.authority))
            .map_err(|e| format!("scalerAddress {:?}: {e}", key.authority))?
            .connect_timeout(connect_timeout)
            .http2_keep_alive_interval(KEEPALIVE)
            .keep_alive_timeout(KEEPALIVE)
            .keep_alive_while_idle(true);
        let guard = key.guard.clone();
        let connector = tower::service_fn(move |uri: Uri| connect(uri, tls.clone(), guard.clone()));
        Ok(endpoint.connect_with_connector_lazy(connector))
    })
}

/// A byte stream the connector returns: plain TCP or TLS over TCP.
trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

async fn connect(
    uri: Uri,
    tls: Option<TlsConnector>,
    guard: AddressGuard,
) -> Result<TokioIo<Box<dyn Io>>, std::io::Error> {
    let invalid =
        |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, what.to_owned());
    let host = uri
        .host()
        .ok_or_else(|| invalid("scalerAddress has no host"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = uri
        .port_u16()
        .ok_or_else(|| invalid("scalerAddress has no port"))?;
    // Connecting to exactly the checked addresses: the name cannot change in between.
    let addrs = crate::address::resolve_checked(&guard, "scalerAddress", host, port).await?;
    let tcp = TcpStream::connect(&addrs[..]).await?;
    tcp.set_nodelay(true)?;
    let io: Box<dyn Io> = match tls {
        None => Box::new(tcp),
        Some(tls) => {
            let name = ServerName::try_from(host.to_owned())
                .map_err(|_| invalid("scalerAddress host is not a valid TLS server name"))?;
            Box::new(tls.connect(name, tcp).await?)
        }
    };
    Ok(TokioIo::new(io))
}

/// Parses `scalerAddress` as grpc-go reads a target: `host:port`, `[v6]:port` or
/// `dns:///host:port`; without a port, 443 (grpc-go's default).
pub fn authority(address: &str) -> Result<String, String> {
    let bare = address.strip_prefix("dns:///").unwrap_or(address);
    let problem = || format!("scalerAddress {address:?} is not a host:port address");
    if bare.is_empty() || bare.contains(['/', ' ', '?', '#', '@']) {
        return Err(problem());
    }
    let (host, port) = if let Some(rest) = bare.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(problem)?;
        match after {
            "" => (format!("[{host}]"), None),
            p => (
                format!("[{host}]"),
                Some(p.strip_prefix(':').ok_or_else(problem)?),
            ),
        }
    } else {
        match bare.rsplit_once(':') {
            Some((h, _)) if h.contains(':') => return Err(problem()),
            Some((h, p)) => (h.to_owned(), Some(p)),
            None => (bare.to_owned(), None),
        }
    };
    let port: u16 = match port {
        None => 443,
        Some(p) => p.parse().ok().filter(|p| *p > 0).ok_or_else(problem)?,
    };
    if host.is_empty() || host == "[]" {
        return Err(problem());
    }
    Ok(format!("{host}:{port}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn addresses_as_grpc_go_reads_them() {
        assert_eq!(
            authority("scaler.ns.svc:9090"),
            Ok("scaler.ns.svc:9090".to_owned())
        );
        assert_eq!(
            authority("dns:///scaler:6000"),
            Ok("scaler:6000".to_owned())
        );
        assert_eq!(authority("scaler"), Ok("scaler:443".to_owned()));
        assert_eq!(authority("[::1]:50051"), Ok("[::1]:50051".to_owned()));
        assert_eq!(authority("127.0.0.1:1"), Ok("127.0.0.1:1".to_owned()));
        for bad in [
            "",
            "http://scaler:80",
            "scaler:port",
            "::1:50051",
            ":80",
            "scaler:0",
        ] {
            assert!(authority(bad).is_err(), "{bad}");
        }
    }
}
