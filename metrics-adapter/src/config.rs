//! Plain configuration of the adapter's listeners. The operator fills these from its flags
//! (`--cert-file`, `--key-file`, `--secure-port`, …); everything has a default that is safe for
//! a cluster (authentication and authorization on).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::tls::SwappableCert;

/// The external-metrics HTTPS server.
#[derive(Debug, Clone)]
pub struct AdapterConfig {
    /// Where to listen. Default `0.0.0.0:6443` (KEDA's `--secure-port`; the Service maps 443 to
    /// it).
    pub bind: SocketAddr,
    /// The serving certificate.
    pub tls: ServingTls,
    /// How long one provider call (one HPA read) may take before the HPA gets a `504 Timeout`
    /// Status. Default 10 s, below the HPA client's own timeout, so the HPA always gets an
    /// answer it can show.
    pub provider_timeout: Duration,
    /// How long a TLS handshake may take before the connection is dropped. Default 10 s.
    pub handshake_timeout: Duration,
    /// Connections served at once. At the limit the server stops accepting until one closes:
    /// newcomers wait in the listen backlog instead of being refused. Default 512.
    pub max_connections: usize,
    /// How long a client may take to send a request's headers, and a new connection to start
    /// its first request (HTTP/1.1 and HTTP/2 alike). On HTTP/1.1 it also bounds the wait for
    /// the next request on a kept-alive connection. Default 5 s: real clients send their
    /// headers with the handshake's last flight, so only a stalled client waits this long.
    pub header_read_timeout: Duration,
    /// A connection with no request in flight for this long is closed (HTTP/2 with a GOAWAY).
    /// Default 90 s, kube-apiserver's and Go's transport idle timeout, so the aggregator's
    /// connections are not cut while it still counts on them.
    pub idle_timeout: Duration,
    /// Streams a client may have open at once on one HTTP/2 connection; further ones are
    /// refused (`REFUSED_STREAM`) and a Go client opens another connection. Default 250, the
    /// default of Kubernetes' aggregated API servers (`--http2-max-streams-per-connection`).
    pub http2_max_concurrent_streams: u32,
    /// How often an HTTP/2 connection is pinged to find a peer that went away without closing
    /// it. Default 30 s; `None` never pings.
    pub http2_keep_alive_interval: Option<Duration>,
    /// How long a ping may go unanswered before the connection is closed. Default 20 s.
    pub http2_keep_alive_timeout: Duration,
}

impl Default for AdapterConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 6443),
            tls: ServingTls::default(),
            provider_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            max_connections: 512,
            header_read_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(90),
            http2_max_concurrent_streams: 250,
            http2_keep_alive_interval: Some(Duration::from_secs(30)),
            http2_keep_alive_timeout: Duration::from_secs(20),
        }
    }
}

/// Where the serving certificate comes from.
///
/// Its `Debug` leaves private keys out, so a configuration can be logged.
#[derive(Clone)]
pub enum ServingTls {
    /// A certificate generated at start, self-signed, for these DNS names / IP addresses. The
    /// APIService then needs `insecureSkipTLSVerify: true` or the generated certificate as
    /// `caBundle` ([`crate::AdapterServer::serving_cert_pem`]).
    SelfSigned {
        /// Subject alternative names.
        names: Vec<String>,
    },
    /// A certificate and key given as PEM text (e.g. read from a Secret).
    Pem {
        /// Certificate chain, leaf first.
        cert_pem: String,
        /// Private key.
        key_pem: String,
    },
    /// PEM files (`--cert-file`, `--key-file`), re-read when they change.
    Files {
        /// Certificate chain, leaf first.
        cert_file: PathBuf,
        /// Private key.
        key_file: PathBuf,
    },
    /// A certificate its owner replaces while serving ([`SwappableCert::set`]), as kedge does
    /// when it renews the certificate its own CA signed.
    Swappable(Arc<SwappableCert>),
}

/// Stands in for key material in `Debug` output.
const REDACTED: &str = "<redacted>";

impl std::fmt::Debug for ServingTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServingTls::SelfSigned { names } => {
                f.debug_struct("SelfSigned").field("names", names).finish()
            }
            ServingTls::Pem { cert_pem, .. } => f
                .debug_struct("Pem")
                .field("cert_pem", &format_args!("<{} bytes>", cert_pem.len()))
                .field("key_pem", &REDACTED)
                .finish(),
            ServingTls::Files {
                cert_file,
                key_file,
            } => f
                .debug_struct("Files")
                .field("cert_file", cert_file)
                .field("key_file", key_file)
                .finish(),
            ServingTls::Swappable(_) => f.write_str("Swappable"),
        }
    }
}

impl std::fmt::Debug for GrpcTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GrpcTls::Files {
                ca_file,
                cert_file,
                key_file,
            } => f
                .debug_struct("Files")
                .field("ca_file", ca_file)
                .field("cert_file", cert_file)
                .field("key_file", key_file)
                .finish(),
            GrpcTls::SharedCa { ca_cert_pem, .. } => f
                .debug_struct("SharedCa")
                .field(
                    "ca_cert_pem",
                    &format_args!("<{} bytes>", ca_cert_pem.len()),
                )
                .field("ca_key_pem", &REDACTED)
                .finish(),
        }
    }
}

impl Default for ServingTls {
    fn default() -> Self {
        ServingTls::SelfSigned {
            names: vec!["localhost".into(), "127.0.0.1".into()],
        }
    }
}

/// TLS of the gRPC link between replicas: TLS 1.3, both sides present certificates that chain to
/// the same CA.
///
/// Its `Debug` leaves private keys out, so a configuration can be logged.
#[derive(Clone)]
pub enum GrpcTls {
    /// Certificate, key and CA bundle files (as KEDA's `ca.crt`, `tls.crt`, `tls.key`), re-read
    /// when they change. The certificate must be usable for both server and client
    /// authentication and name [`GrpcConfig::server_name`].
    Files {
        /// CA bundle the peer's certificate must chain to.
        ca_file: PathBuf,
        /// This replica's certificate chain.
        cert_file: PathBuf,
        /// Its private key.
        key_file: PathBuf,
    },
    /// A CA shared by all replicas (e.g. one Secret): each replica signs itself a fresh
    /// certificate for [`GrpcConfig::server_name`] at start.
    SharedCa {
        /// The CA certificate, PEM.
        ca_cert_pem: String,
        /// The CA private key, PEM.
        ca_key_pem: String,
    },
}

/// The gRPC link: the leader serves it, followers call it.
#[derive(Debug, Clone)]
pub struct GrpcConfig {
    /// Where the leader's gRPC server listens. Default `0.0.0.0:9666` (KEDA's metrics service
    /// port).
    pub bind: SocketAddr,
    /// TLS material.
    pub tls: GrpcTls,
    /// The name every replica's certificate carries and followers verify (KEDA's
    /// `--metrics-service-grpc-authority`): leaders are reached by pod IP, which no certificate
    /// names. Default `kedge-metrics-service`.
    pub server_name: String,
    /// Timeout of one forwarded read, connection included. Default 3 s (KEDA's client).
    pub request_timeout: Duration,
    /// How old a last known value may be and still be served when the leader cannot be
    /// reached. Default 2 min: long enough to ride out a leader election (15 s lease) and a
    /// restart, short enough that the HPA does not act on a picture of the past for long.
    pub staleness_bound: Duration,
}

impl GrpcConfig {
    /// Defaults with the given TLS material.
    pub fn new(tls: GrpcTls) -> Self {
        Self {
            bind: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 9666),
            tls,
            server_name: "kedge-metrics-service".into(),
            request_timeout: Duration::from_secs(3),
            staleness_bound: Duration::from_secs(120),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_leaves_private_keys_out() {
        let key = "-----BEGIN PRIVATE KEY-----\nsecret\n-----END PRIVATE KEY-----\n";
        let serving = ServingTls::Pem {
            cert_pem: "-----BEGIN CERTIFICATE-----\n".into(),
            key_pem: key.into(),
        };
        let grpc = GrpcConfig::new(GrpcTls::SharedCa {
            ca_cert_pem: "-----BEGIN CERTIFICATE-----\n".into(),
            ca_key_pem: key.into(),
        });
        let config = AdapterConfig {
            tls: serving,
            ..AdapterConfig::default()
        };
        for shown in [format!("{config:?}"), format!("{grpc:?}")] {
            assert!(!shown.contains("secret"), "{shown}");
            assert!(shown.contains("<redacted>"), "{shown}");
        }
    }
}
