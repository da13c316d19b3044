//! The `/metrics`, `/healthz`, `/livez` and `/readyz` port of `kedge run`.
//!
//! The kubelet's liveness probe reads this port, so a client that opens connections and sends
//! its headers a byte at a time (slow-loris) must not be able to fill it: every connection gets
//! a few seconds to send its request headers (also between requests on a kept-alive one), a
//! bounded lifetime, and only so many are open at once. axum routes; hyper serves each
//! connection with those limits.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tracing::{debug, info, warn};

use crate::run::RunError;

/// What the port serves: the Prometheus registry, and whether this replica is ready.
pub(crate) struct Health {
    /// The metrics `/metrics` encodes.
    pub(crate) metrics: prometheus_client::registry::Registry,
    /// `true` once `/readyz` should say ok.
    pub(crate) ready: watch::Receiver<bool>,
}

/// Limits of the port's connections.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// How long a client may take to send its request headers. Default 5 s: the kubelet and
    /// Prometheus send theirs at once; the probe itself times out after 1 s.
    pub(crate) header_read_timeout: Duration,
    /// How long one connection may live, so a client that stops reading a response cannot
    /// keep its slot. Default 60 s.
    pub(crate) max_connection_age: Duration,
    /// Connections at once; beyond it the port stops accepting until one closes (newcomers
    /// wait in the backlog, and a slot frees within the header read timeout). Default 128,
    /// far above the few a kubelet and a Prometheus use, far below the file descriptor limit.
    pub(crate) max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(5),
            max_connection_age: Duration::from_secs(60),
            max_connections: 128,
        }
    }
}

fn router(health: Arc<Health>) -> Router {
    let h1 = Arc::clone(&health);
    let h2 = Arc::clone(&health);
    Router::new()
        .route(
            "/metrics",
            get(move || {
                let h = Arc::clone(&h1);
                async move {
                    let mut body = String::new();
                    match prometheus_client::encoding::text::encode(&mut body, &h.metrics) {
                        Ok(()) => (
                            [(
                                header::CONTENT_TYPE,
                                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                            )],
                            body,
                        )
                            .into_response(),
                        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
                    }
                }
            }),
        )
        .route("/healthz", get(|| async { "ok" }))
        .route("/livez", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let h = Arc::clone(&h2);
                async move {
                    if *h.ready.borrow() {
                        (StatusCode::OK, "ok")
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "starting")
                    }
                }
            }),
        )
}

/// Serves the port on `addr` in a background task, with the default limits.
pub(crate) async fn serve_metrics(
    addr: SocketAddr,
    health: Arc<Health>,
) -> Result<tokio::task::JoinHandle<()>, RunError> {
    let (task, _) = serve_metrics_with(addr, health, Limits::default()).await?;
    Ok(task)
}

/// Serves the port on `addr` with `limits`; also returns the address bound.
pub(crate) async fn serve_metrics_with(
    addr: SocketAddr,
    health: Arc<Health>,
    limits: Limits,
) -> Result<(tokio::task::JoinHandle<()>, SocketAddr), RunError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| RunError::Bind { addr, source })?;
    let addr = listener.local_addr().unwrap_or(addr);
    info!(%addr, "serving /metrics, /healthz, /readyz");
    let app = router(health);
    Ok((tokio::spawn(accept_loop(listener, app, limits)), addr))
}

async fn accept_loop(listener: TcpListener, app: Router, limits: Limits) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut saturated = false;
    loop {
        let slot = match Arc::clone(&slots).try_acquire_owned() {
            Ok(slot) => {
                saturated = false;
                slot
            }
            Err(_) => {
                if !saturated {
                    saturated = true;
                    warn!(
                        max_connections = limits.max_connections,
                        "metrics port: connection limit reached; new connections wait"
                    );
                }
                match Arc::clone(&slots).acquire_owned().await {
                    Ok(slot) => slot,
                    // Never closed.
                    Err(_) => return,
                }
            }
        };
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: wait a little rather than spin.
                warn!(error = %e, "metrics port: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let service = TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .serve_connection(TokioIo::new(tcp), service);
            tokio::pin!(conn);
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        debug!(%peer, error = %e, "metrics port: connection ended with an error");
                    }
                }
                () = tokio::time::sleep(limits.max_connection_age) => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(1), conn).await;
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use std::time::Instant;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    async fn start(limits: Limits) -> (SocketAddr, watch::Sender<bool>) {
        let (ready_tx, ready) = watch::channel(false);
        let health = Arc::new(Health {
            metrics: prometheus_client::registry::Registry::default(),
            ready,
        });
        let (_, addr) = serve_metrics_with(([127, 0, 0, 1], 0).into(), health, limits)
            .await
            .unwrap();
        (addr, ready_tx)
    }

    fn limits() -> Limits {
        Limits {
            header_read_timeout: Duration::from_secs(1),
            ..Limits::default()
        }
    }

    /// A whole request as the kubelet makes it: status line of the answer, and how long it took.
    async fn probe(addr: SocketAddr, path: &str) -> (String, Duration) {
        let started = Instant::now();
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: kedge\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut answer = String::new();
        tcp.read_to_string(&mut answer).await.unwrap();
        let status = answer.lines().next().unwrap_or_default().to_owned();
        (status, started.elapsed())
    }

    /// A slow-loris: the start of a request, then nothing.
    async fn loris(addr: SocketAddr) -> TcpStream {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: kedge\r\nX-Slow: ")
            .await
            .unwrap();
        tcp
    }

    async fn closed_within(mut tcp: TcpStream, within: Duration) -> bool {
        tokio::time::timeout(within, async {
            let mut buf = [0u8; 1024];
            loop {
                match tcp.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await
        .is_ok()
    }

    #[tokio::test]
    async fn a_slow_loris_neither_blocks_the_probe_nor_keeps_its_connections() {
        let (addr, ready) = start(limits()).await;
        let mut stalled = Vec::new();
        for _ in 0..50 {
            stalled.push(loris(addr).await);
        }
        // Connections that send nothing at all, too.
        for _ in 0..10 {
            stalled.push(TcpStream::connect(addr).await.unwrap());
        }
        let (status, took) = probe(addr, "/healthz").await;
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert!(took < Duration::from_secs(1), "the probe took {took:?}");
        let (status, _) = probe(addr, "/readyz").await;
        assert_eq!(status, "HTTP/1.1 503 Service Unavailable");
        ready.send(true).unwrap();
        let (status, _) = probe(addr, "/readyz").await;
        assert_eq!(status, "HTTP/1.1 200 OK");
        // Every stalled connection is closed after the 1 s header read timeout.
        let closed = futures::future::join_all(
            stalled
                .into_iter()
                .map(|tcp| closed_within(tcp, Duration::from_secs(4))),
        )
        .await;
        assert!(closed.iter().all(|c| *c), "{closed:?}");
    }

    #[tokio::test]
    async fn at_the_connection_limit_the_probe_waits_for_a_slot() {
        let (addr, _ready) = start(Limits {
            max_connections: 4,
            ..limits()
        })
        .await;
        let mut stalled = Vec::new();
        for _ in 0..4 {
            stalled.push(loris(addr).await);
        }
        let filled = Instant::now();
        // Not refused: answered once the header read timeout frees a slot.
        let (status, took) = probe(addr, "/healthz").await;
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert!(
            filled.elapsed() >= Duration::from_millis(800),
            "answered in {took:?} with every slot taken"
        );
        assert!(took < Duration::from_secs(4), "{took:?}");
        for tcp in stalled {
            assert!(closed_within(tcp, Duration::from_secs(3)).await);
        }
    }
}
