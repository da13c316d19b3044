//! Cost of one poll of the rabbitmq scaler, over AMQP and over the management API, next to the
//! bare client call it wraps (a passive declare on an open lapin channel; a reqwest GET of the
//! queue), with the requests each sends, counted by a proxy in front of the broker.
//!
//! Needs the broker `scripts/services.sh start` prepares (`KEDGE_RABBITMQ_*`):
//!
//! ```text
//! cargo run --release -p kedge-scalers --features rabbitmq --example rabbitmq_bench [polls]
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/counting_proxy.rs"]
mod proxy;

use std::time::{Duration, Instant};

use lapin::options::{BasicPublishOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use proxy::{CountingProxy, percentiles};
use scaler_core::{ScalerConfig, ScalerFactory};
use scalers::rabbitmq::RabbitMqFactory;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} not set: run `bash scripts/services.sh start` and source .kedge/services.env"
        )
    })
}

/// `scheme://user:pass@host:port` → (`user:pass@`, `host:port`).
fn split(url: &str) -> (String, String) {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    match rest.rsplit_once('@') {
        Some((userinfo, hostport)) => (
            format!("{userinfo}@"),
            hostport.trim_end_matches('/').to_owned(),
        ),
        None => (String::new(), rest.trim_end_matches('/').to_owned()),
    }
}

async fn timed<F, Fut>(polls: usize, mut f: F) -> Vec<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut times = Vec::with_capacity(polls);
    for _ in 0..polls {
        let start = Instant::now();
        f().await;
        times.push(start.elapsed());
    }
    times
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let polls: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200);
    let (amqp_user, amqp_addr) = split(&env("KEDGE_RABBITMQ_AMQP_URL"));
    let (http_user, http_addr) = split(&env("KEDGE_RABBITMQ_HTTP_URL"));
    let vhost = env("KEDGE_RABBITMQ_VHOST");
    let queue = format!("bench-{}", std::process::id());

    // A queue with some messages.
    let setup = Connection::connect(
        &format!("amqp://{amqp_user}{amqp_addr}/{vhost}"),
        ConnectionProperties::default(),
    )
    .await
    .unwrap();
    let ch = setup.create_channel().await.unwrap();
    ch.queue_declare(
        queue.as_str().into(),
        QueueDeclareOptions {
            auto_delete: false,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    for _ in 0..42 {
        ch.basic_publish(
            "".into(),
            queue.as_str().into(),
            BasicPublishOptions::default(),
            b"m",
            BasicProperties::default(),
        )
        .await
        .unwrap();
    }

    let (amqp_proxy, amqp_port) = CountingProxy::start(amqp_addr.clone()).await;
    let (http_proxy, http_port) = CountingProxy::start(http_addr.clone()).await;
    println!("rabbitmq poll cost, {polls} polls each, broker on loopback\n");

    // Scaler over AMQP.
    let factory = RabbitMqFactory::new();
    let cfg = ScalerConfig::new("rabbitmq", 0)
        .with_metadata(
            "host",
            format!("amqp://{amqp_user}127.0.0.1:{amqp_port}/{vhost}"),
        )
        .with_metadata("queueName", &queue);
    let scaler = factory.build(&cfg).unwrap();
    let metric = scaler.metric_specs().await.unwrap()[0].name.clone();
    scaler.metrics_and_activity(&metric).await.unwrap(); // connect + open the channel
    amqp_proxy.reset();
    let times = timed(polls, || async {
        scaler.metrics_and_activity(&metric).await.unwrap();
    })
    .await;
    println!(
        "scaler, amqp:       {}, {:.2} requests/poll, {} connection(s)",
        percentiles(times),
        amqp_proxy.writes() as f64 / polls as f64,
        amqp_proxy.connections()
    );

    // Bare lapin: passive declare on an open channel, through the same proxy.
    let conn = Connection::connect(
        &format!("amqp://{amqp_user}127.0.0.1:{amqp_port}/{vhost}"),
        ConnectionProperties::default(),
    )
    .await
    .unwrap();
    let bare = conn.create_channel().await.unwrap();
    amqp_proxy.reset();
    let times = timed(polls, || async {
        bare.queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    })
    .await;
    println!(
        "bare lapin declare: {}, {:.2} requests/call",
        percentiles(times),
        amqp_proxy.writes() as f64 / polls as f64
    );

    // The management API lags the broker by a second or more: wait until it shows the
    // messages, so every request below reads the full queue object.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::new();
    let (user, pass) = http_user
        .trim_end_matches('@')
        .split_once(':')
        .unwrap_or(("guest", "guest"));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let url = format!("http://{http_addr}/api/queues/{vhost}/{queue}?columns=messages");
        let body = client
            .get(&url)
            .basic_auth(user, Some(pass))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if body.contains("\"messages\":42") || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Scaler over the management API.
    let cfg = ScalerConfig::new("rabbitmq", 0)
        .with_metadata(
            "host",
            format!("http://{http_user}127.0.0.1:{http_port}/{vhost}"),
        )
        .with_metadata("queueName", &queue);
    let scaler = factory.build(&cfg).unwrap();
    scaler.metrics_and_activity(&metric).await.unwrap();
    http_proxy.reset();
    let times = timed(polls, || async {
        scaler.metrics_and_activity(&metric).await.unwrap();
    })
    .await;
    println!(
        "scaler, http:       {}, {:.2} requests/poll",
        percentiles(times),
        http_proxy.writes() as f64 / polls as f64
    );

    // Bare reqwest GET of the whole queue object (what KEDA fetches) and of the columns we use.
    for (label, query) in [
        ("bare GET, full:    ", String::new()),
        (
            "bare GET, columns: ",
            "?columns=name,messages,messages_ready,messages_unacknowledged,message_stats.publish_details.rate,message_stats.deliver_get_details.rate".to_owned(),
        ),
    ] {
        let url = format!("http://127.0.0.1:{http_port}/api/queues/{vhost}/{queue}{query}");
        let bytes = std::cell::Cell::new(0);
        client.get(&url).basic_auth(user, Some(pass)).send().await.unwrap().bytes().await.unwrap();
        http_proxy.reset();
        let times = timed(polls, || async {
            let body = client.get(&url).basic_auth(user, Some(pass)).send().await.unwrap().bytes().await.unwrap();
            bytes.set(body.len());
        })
        .await;
        println!(
            "{label}{}, {:.2} requests/call, {} bytes",
            percentiles(times),
            http_proxy.writes() as f64 / polls as f64,
            bytes.get()
        );
    }

    ch.queue_delete(queue.as_str().into(), Default::default())
        .await
        .unwrap();
}
