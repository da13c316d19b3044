//! Cost of one poll of the aws-sqs-queue scaler next to the bare SDK call it wraps
//! (`GetQueueAttributes` with the same attributes), with the requests each sends, counted by a
//! proxy in front of the SQS emulator.
//!
//! Needs the emulator `scripts/services.sh start` runs (`KEDGE_SQS_ENDPOINT`):
//!
//! ```text
//! cargo run --release -p kedge-scalers --features aws-sqs-queue --example sqs_bench [polls]
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/counting_proxy.rs"]
mod proxy;

use std::time::{Duration, Instant};

use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use proxy::{CountingProxy, percentiles};
use scaler_core::{ScalerConfig, ScalerFactory};
use scalers::aws_sqs::{AwsSqsFactory, attribute_names};

const REGION: &str = "us-east-1";

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let polls: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200);
    let endpoint = std::env::var("KEDGE_SQS_ENDPOINT").unwrap_or_else(|_| {
        panic!("KEDGE_SQS_ENDPOINT not set: run `bash scripts/services.sh start` and source .kedge/services.env")
    });
    let upstream = endpoint
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let (proxy, port) = CountingProxy::start(upstream).await;
    let via_proxy = format!("http://127.0.0.1:{port}");

    let sqs = aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .credentials_provider(Credentials::new("test", "test", None, None, "bench"))
            .endpoint_url(&via_proxy)
            .http_client(
                aws_smithy_http_client::Builder::new()
                    .tls_provider(Provider::Rustls(CryptoMode::Ring))
                    .build_https(),
            )
            .build(),
    );
    let url = sqs
        .create_queue()
        .queue_name(format!("bench-{}", std::process::id()))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    for i in 0..42 {
        sqs.send_message()
            .queue_url(&url)
            .message_body(format!("m{i}"))
            .send()
            .await
            .unwrap();
    }
    println!("aws-sqs-queue poll cost, {polls} polls each, moto on loopback\n");

    let factory = AwsSqsFactory::new();
    let cfg = ScalerConfig::new("aws-sqs-queue", 0)
        .with_metadata("queueURL", &url)
        .with_metadata("awsRegion", REGION)
        .with_metadata("awsEndpoint", &via_proxy)
        .with_auth_param("awsAccessKeyID", "test")
        .with_auth_param("awsSecretAccessKey", "test");
    let scaler = factory.build(&cfg).unwrap();
    let metric = scaler.metric_specs().await.unwrap()[0].name.clone();
    let start = Instant::now();
    scaler.metrics_and_activity(&metric).await.unwrap();
    println!(
        "scaler, first poll (builds the client): {:.3} ms",
        start.elapsed().as_secs_f64() * 1e3
    );
    proxy.reset();
    let mut times: Vec<Duration> = Vec::with_capacity(polls);
    for _ in 0..polls {
        let start = Instant::now();
        scaler.metrics_and_activity(&metric).await.unwrap();
        times.push(start.elapsed());
    }
    println!(
        "scaler:           {}, {:.2} requests/poll",
        percentiles(times),
        proxy.writes() as f64 / polls as f64
    );

    let names = attribute_names(true, false);
    proxy.reset();
    let mut times: Vec<Duration> = Vec::with_capacity(polls);
    for _ in 0..polls {
        let start = Instant::now();
        sqs.get_queue_attributes()
            .queue_url(&url)
            .set_attribute_names(Some(names.clone()))
            .send()
            .await
            .unwrap();
        times.push(start.elapsed());
    }
    println!(
        "bare SDK call:    {}, {:.2} requests/call",
        percentiles(times),
        proxy.writes() as f64 / polls as f64
    );
    sqs.delete_queue().queue_url(&url).send().await.unwrap();
}
