//! The external metrics server under abuse, over real TCP and TLS: connections that stall before
//! the handshake, after it, or halfway through their headers are closed within their timeouts
//! while other callers are served; at the connection limit newcomers wait for a slot rather than
//! being refused; an HTTP/2 client opening more streams than allowed has the extra ones refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{MapProvider, https_client, loopback};
use metrics_adapter::{AdapterConfig, AdapterServer, Auth, ServerHandle};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// Timeouts short enough for a test, limits small enough to reach.
fn config() -> AdapterConfig {
    AdapterConfig {
        bind: loopback(),
        handshake_timeout: Duration::from_secs(1),
        header_read_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(3),
        provider_timeout: Duration::from_secs(3),
        ..AdapterConfig::default()
    }
}

async fn start(config: AdapterConfig) -> (ServerHandle, String) {
    let provider = MapProvider::with(&[("default", "orders", "s0-x", 1.0)]);
    let server = AdapterServer::bind(config, provider, Auth::disabled_for_local_mode())
        .await
        .unwrap();
    let ca = server.serving_cert_pem().unwrap().to_owned();
    (server.spawn().unwrap(), ca)
}

async fn tls(addr: SocketAddr, ca_pem: &str, alpn: &[u8]) -> TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    let tcp = TcpStream::connect(addr).await.unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap()
}

/// Reads and discards until the server closes the connection; `false` if it is still open
/// after `within`.
async fn closed_within(mut stream: impl AsyncRead + Unpin, within: Duration) -> bool {
    tokio::time::timeout(within, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

async fn healthz_in(client: &reqwest::Client, addr: SocketAddr) -> Duration {
    let started = Instant::now();
    let resp = client
        .get(format!("https://localhost:{}/healthz", addr.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    started.elapsed()
}

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
    let mut f = vec![len[1], len[2], len[3], kind, flags];
    f.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An HPACK string literal, not Huffman-coded.
fn hpack_string(out: &mut Vec<u8>, s: &str) {
    let mut n = s.len();
    if n < 127 {
        out.push(n as u8);
    } else {
        out.push(127);
        n -= 127;
        while n >= 128 {
            out.push((n % 128) as u8 | 0x80);
            n /= 128;
        }
        out.push(n as u8);
    }
    out.extend_from_slice(s.as_bytes());
}

/// A HEADERS frame for `GET path`, ending the stream.
fn get(stream: u32, path: &str) -> Vec<u8> {
    // :method GET and :scheme https from the static table; :path and :authority literal.
    let mut block = vec![0x82, 0x87, 0x04];
    hpack_string(&mut block, path);
    block.push(0x01);
    hpack_string(&mut block, "localhost");
    frame(0x1, 0x1 | 0x4, stream, &block)
}

/// Reads one frame: (type, flags, stream, payload).
async fn read_frame(
    stream: &mut (impl AsyncRead + Unpin),
) -> std::io::Result<(u8, u8, u32, Vec<u8>)> {
    let mut head = [0u8; 9];
    stream.read_exact(&mut head).await?;
    let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
    let id = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload).await?;
    Ok((head[3], head[4], id, payload))
}

/// An HTTP/2 connection past the preface and the settings exchange.
async fn h2(addr: SocketAddr, ca: &str) -> TlsStream<TcpStream> {
    let mut conn = tls(addr, ca, b"h2").await;
    conn.write_all(PREFACE).await.unwrap();
    conn.write_all(&frame(0x4, 0, 0, &[])).await.unwrap();
    loop {
        let (kind, flags, _, _) = read_frame(&mut conn).await.unwrap();
        if kind == 0x4 && flags & 0x1 == 0 {
            break;
        }
    }
    conn.write_all(&frame(0x4, 0x1, 0, &[])).await.unwrap();
    conn
}

#[tokio::test]
async fn stalled_connections_are_closed_while_others_are_served() {
    let (server, ca) = start(config()).await;
    let addr = server.local_addr();

    // Four ways to hold a connection without finishing a request.
    let mut stalled: Vec<(&str, Box<dyn AsyncRead + Unpin + Send>)> = Vec::new();
    for _ in 0..8 {
        // TCP only: never starts the TLS handshake.
        stalled.push((
            "no handshake",
            Box::new(TcpStream::connect(addr).await.unwrap()),
        ));
        // TLS done, then nothing (ALPN h2: the server waits for the preface).
        stalled.push(("silent after TLS", Box::new(tls(addr, &ca, b"h2").await)));
        // HTTP/1.1 slow-loris: part of the headers, then a stall.
        let mut loris = tls(addr, &ca, b"http/1.1").await;
        loris
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-A: ")
            .await
            .unwrap();
        stalled.push(("partial headers", Box::new(loris)));
        // HTTP/2 preface and settings, then no request.
        stalled.push(("h2 without a request", Box::new(h2(addr, &ca).await)));
    }
    let opened = Instant::now();

    // Others are served at once, on both protocols.
    for alpn in [&[b"h2".as_slice()][..], &[b"http/1.1".as_slice()][..]] {
        let client = common::https_client_alpn(&ca, None, alpn);
        let took = healthz_in(&client, addr).await;
        assert!(took < Duration::from_secs(1), "a request took {took:?}");
    }

    // Every stalled connection is closed within its timeout (1 s), not the 30 s of before.
    let results = futures::future::join_all(
        stalled
            .into_iter()
            .map(|(how, s)| async move { (how, closed_within(s, Duration::from_secs(4)).await) }),
    )
    .await;
    for (how, closed) in results {
        assert!(closed, "a connection stalled with {how} was left open");
    }
    assert!(opened.elapsed() < Duration::from_secs(5));
    server.shutdown().await;
}

#[tokio::test]
async fn at_the_connection_limit_newcomers_wait_for_a_slot() {
    let (server, ca) = start(AdapterConfig {
        max_connections: 4,
        ..config()
    })
    .await;
    let addr = server.local_addr();
    let mut stalled = Vec::new();
    for _ in 0..4 {
        stalled.push(tls(addr, &ca, b"h2").await);
    }
    let filled = Instant::now();
    // Not accepted while the four hold their slots, served once one is freed (after the 1 s a
    // silent connection gets) — never refused.
    let took = healthz_in(&https_client(&ca, None), addr).await;
    assert!(
        filled.elapsed() >= Duration::from_millis(800),
        "served after {took:?} although all slots were taken"
    );
    assert!(took < Duration::from_secs(4), "waited {took:?}");
    for s in stalled {
        assert!(closed_within(s, Duration::from_secs(3)).await);
    }
    // With the slots free again, no wait.
    let took = healthz_in(&https_client(&ca, None), addr).await;
    assert!(took < Duration::from_secs(1), "{took:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn http2_streams_beyond_the_limit_are_refused() {
    let (server, ca) = start(AdapterConfig {
        http2_max_concurrent_streams: 4,
        ..config()
    })
    .await;
    let mut conn = h2(server.local_addr(), &ca).await;
    // Six requests at once for a metric whose provider never answers (the server's 3 s
    // timeout ends them): only four may be open.
    let slow = "/apis/external.metrics.k8s.io/v1beta1/namespaces/default/slow?labelSelector=scaledobject.keda.sh%2Fname%3Dorders";
    let mut burst = Vec::new();
    for stream in [1, 3, 5, 7, 9, 11] {
        burst.extend(get(stream, slow));
    }
    conn.write_all(&burst).await.unwrap();

    let mut refused = Vec::new();
    let mut answered = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), async {
        while refused.len() + answered.len() < 6 {
            let (kind, _, stream, payload) = read_frame(&mut conn).await.unwrap();
            match kind {
                // RST_STREAM with REFUSED_STREAM (7).
                0x3 => {
                    assert_eq!(payload, 7u32.to_be_bytes(), "stream {stream} reset");
                    refused.push(stream);
                }
                0x1 => answered.push(stream),
                0x7 => panic!("the server closed the connection"),
                _ => {}
            }
        }
    })
    .await
    .expect("an answer for every stream");
    refused.sort_unstable();
    answered.sort_unstable();
    assert_eq!(refused, [9, 11]);
    assert_eq!(answered, [1, 3, 5, 7]);

    // The connection is still good for a new request once streams are free.
    conn.write_all(&get(13, "/healthz")).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let (kind, _, stream, _) = read_frame(&mut conn).await.unwrap();
            if kind == 0x1 && stream == 13 {
                return;
            }
        }
    })
    .await;
    assert!(got.is_ok(), "no answer on stream 13");
    server.shutdown().await;
}

#[tokio::test]
async fn an_idle_http2_connection_is_closed_after_the_idle_timeout() {
    let (server, ca) = start(config()).await;
    let mut conn = h2(server.local_addr(), &ca).await;
    conn.write_all(&get(1, "/healthz")).await.unwrap();
    loop {
        let (kind, _, stream, _) = read_frame(&mut conn).await.unwrap();
        if kind == 0x1 && stream == 1 {
            break;
        }
    }
    let answered = Instant::now();
    // Idle from here: kept past the 1 s first-request deadline (it made a request), closed
    // with a GOAWAY after the 3 s idle timeout.
    let goaway = tokio::time::timeout(Duration::from_secs(8), async {
        loop {
            match read_frame(&mut conn).await {
                Ok((0x7, ..)) => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
    })
    .await
    .expect("closed within the idle timeout");
    assert!(goaway, "closed without a GOAWAY");
    let idle = answered.elapsed();
    assert!(
        idle >= Duration::from_millis(2500),
        "closed after only {idle:?}"
    );
    assert!(closed_within(conn, Duration::from_secs(3)).await);
    server.shutdown().await;
}
