//! HTTP scalers against servers a tenant controls: a reply far larger than any metric, and a
//! redirect to another host. Real HTTP over loopback, from a server written to misbehave.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use scaler_core::ScalerConfig;
use scalers::prometheus::PrometheusScaler;

/// Serves every connection on `ip` with `reply(path)`, counting requests.
fn serve(
    ip: &str,
    reply: impl Fn(&str) -> Vec<u8> + Send + 'static,
) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind((ip, 0)).unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&hits);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let n = stream.read(&mut buf).unwrap_or(0);
            let request = String::from_utf8_lossy(&buf[..n]).into_owned();
            let path = request.split_whitespace().nth(1).unwrap_or("/").to_owned();
            counter.fetch_add(1, Ordering::SeqCst);
            let _ = stream.write_all(&reply(&path));
        }
    });
    (addr, hits)
}

fn prometheus(addr: SocketAddr) -> PrometheusScaler {
    let cfg = ScalerConfig::new("prometheus", 0)
        .with_metadata("serverAddress", format!("http://{addr}"))
        .with_metadata("query", "up")
        .with_metadata("threshold", "1");
    PrometheusScaler::new(&cfg).expect("valid trigger")
}

const VECTOR: &str = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"7"]}]}}"#;

fn ok(body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn redirect(to: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 302 Found\r\nlocation: {to}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    )
    .into_bytes()
}

#[tokio::test]
async fn a_reply_larger_than_the_cap_is_refused_without_reading_it_all() {
    // 64 MiB announced, streamed without a length: both are cut at 8 MiB.
    for announce in [true, false] {
        let (addr, _) = serve("127.0.0.1", move |_| {
            let mut reply = if announce {
                b"HTTP/1.1 200 OK\r\ncontent-length: 67108864\r\nconnection: close\r\n\r\n".to_vec()
            } else {
                b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n".to_vec()
            };
            reply.extend(std::iter::repeat_n(b' ', 9 << 20));
            reply
        });
        let e = prometheus(addr).query_value().await.expect_err("too large");
        assert!(e.to_string().contains("more than 8388608 bytes"), "{e}");
    }
}

#[tokio::test]
async fn redirects_are_followed_on_the_same_host_only() {
    // Another host (127.0.0.2 is loopback too): kedge must never connect to it.
    let (elsewhere, elsewhere_hits) = serve("127.0.0.2", |_| ok(VECTOR));
    let (addr, _) = serve("127.0.0.1", move |_| {
        redirect(&format!("http://{elsewhere}/api/v1/query?query=up"))
    });
    assert!(prometheus(addr).query_value().await.is_err());
    assert_eq!(elsewhere_hits.load(Ordering::SeqCst), 0);

    // The same host: followed.
    let (addr, _) = serve("127.0.0.1", |path| {
        if path.starts_with("/moved") {
            ok(VECTOR)
        } else {
            redirect("/moved/api/v1/query?query=up")
        }
    });
    assert_eq!(prometheus(addr).query_value().await.unwrap(), 7.0);
}

#[tokio::test]
async fn the_rabbitmq_management_api_is_read_up_to_the_cap() {
    let (addr, _) = serve("127.0.0.1", |_| {
        let mut reply = b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n".to_vec();
        reply.extend(std::iter::repeat_n(b' ', 9 << 20));
        reply
    });
    let cfg = ScalerConfig::new("rabbitmq", 0)
        .with_metadata("protocol", "http")
        .with_metadata("queueName", "jobs")
        .with_metadata("mode", "QueueLength")
        .with_metadata("value", "5")
        .with_auth_param("host", format!("http://guest:guest@{addr}/"));
    let scaler = scalers::registry().build(&cfg).expect("valid trigger");
    let metric = scaler.metric_specs().await.unwrap()[0].name.clone();
    let e = scaler
        .metrics_and_activity(&metric)
        .await
        .expect_err("too large");
    assert!(e.to_string().contains("more than 8388608 bytes"), "{e}");
    assert!(!e.to_string().contains("guest:guest"), "{e}");
}
