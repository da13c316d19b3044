//! A loopback TCP proxy that counts what the client sends, so a benchmark can report the
//! requests (round trips) a scaler makes per poll. Each burst the client writes (one AMQP
//! method, one HTTP request) arrives as one read on loopback and is counted once.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Client→server writes seen since start or the last [`CountingProxy::reset`].
#[derive(Clone, Default)]
pub struct CountingProxy {
    writes: Arc<AtomicU64>,
    connections: Arc<AtomicU64>,
}

impl CountingProxy {
    /// Listens on 127.0.0.1 (a free port) and forwards to `upstream`; returns the proxy's port.
    pub async fn start(upstream: String) -> (Self, u16) {
        let proxy = Self::default();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let p = proxy.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let server = TcpStream::connect(&upstream).await.unwrap();
                client.set_nodelay(true).ok();
                server.set_nodelay(true).ok();
                p.connections.fetch_add(1, Ordering::Relaxed);
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let writes = p.writes.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n) = cr.read(&mut buf).await {
                        if n == 0 || sw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                        writes.fetch_add(1, Ordering::Relaxed);
                    }
                    let _ = sw.shutdown().await;
                });
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut sr, &mut cw).await;
                    let _ = cw.shutdown().await;
                });
            }
        });
        (proxy, port)
    }

    /// Client writes so far.
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    /// TCP connections opened through the proxy so far.
    #[allow(dead_code)] // not every benchmark reports it
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    /// Starts counting writes from zero.
    pub fn reset(&self) {
        self.writes.store(0, Ordering::Relaxed);
    }
}

/// `p50 …, p99 …` of `d` in milliseconds.
#[allow(dead_code)]
pub fn percentiles(mut d: Vec<std::time::Duration>) -> String {
    d.sort();
    let at = |q: f64| d[((d.len() as f64 * q) as usize).min(d.len() - 1)];
    format!(
        "p50 {:.3} ms, p99 {:.3} ms",
        at(0.50).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3
    )
}
