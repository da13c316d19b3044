//! The aws-sqs-queue scaler against a real SQS API: moto's server, started by
//! `scripts/services.sh` (`KEDGE_SQS_ENDPOINT`). Each test uses its own queues.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_sqs::types::QueueAttributeName;
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use kedge_test_support::{service_env, unique};
use scaler_core::{MetricsAndActivity, Scaler, ScalerConfig, ScalerError, ScalerFactory};
use scalers::aws_sqs::AwsSqsFactory;

const REGION: &str = "us-east-1";

/// The emulator's endpoint, or `None` (after saying why) when it is not configured and
/// `KEDGE_REQUIRE_SERVICES` is not set.
fn endpoint() -> Option<String> {
    service_env("KEDGE_SQS_ENDPOINT")
}

/// The test's own SQS client (the producer/consumer side).
fn sqs(endpoint: &str, region: &str) -> aws_sdk_sqs::Client {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .endpoint_url(endpoint)
        .http_client(http)
        .build();
    aws_sdk_sqs::Client::from_conf(config)
}

async fn create_queue(sqs: &aws_sdk_sqs::Client, name: &str) -> String {
    sqs.create_queue()
        .queue_name(name)
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap()
}

fn config(endpoint: &str, queue_url: &str, metadata: &[(&str, &str)]) -> ScalerConfig {
    let mut cfg = ScalerConfig::new("aws-sqs-queue", 0)
        .with_metadata("queueURL", queue_url)
        .with_metadata("awsRegion", REGION)
        .with_metadata("awsEndpoint", endpoint)
        .with_auth_param("awsAccessKeyID", "test")
        .with_auth_param("awsSecretAccessKey", "test");
    for (k, v) in metadata {
        cfg = cfg.with_metadata(*k, *v);
    }
    cfg.timeout = Duration::from_secs(10);
    cfg
}

async fn poll(scaler: &dyn Scaler) -> Result<MetricsAndActivity, ScalerError> {
    let specs = scaler.metric_specs().await.unwrap();
    scaler.metrics_and_activity(&specs[0].name).await
}

fn value(m: &MetricsAndActivity) -> f64 {
    m.metrics[0].value.as_f64()
}

#[tokio::test]
async fn visible_in_flight_and_delayed_messages_count_per_the_flags() {
    let Some(endpoint) = endpoint() else { return };
    let sqs = sqs(&endpoint, REGION);
    let url = create_queue(&sqs, &unique("counts")).await;
    for i in 0..7 {
        sqs.send_message()
            .queue_url(&url)
            .message_body(format!("m{i}"))
            .send()
            .await
            .unwrap();
    }
    for i in 0..2 {
        sqs.send_message()
            .queue_url(&url)
            .message_body(format!("later{i}"))
            .delay_seconds(600)
            .send()
            .await
            .unwrap();
    }
    // Receive 3 without deleting them: in flight for the visibility timeout.
    let mut received = 0;
    while received < 3 {
        let got = sqs
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(3 - received)
            .visibility_timeout(600)
            .send()
            .await
            .unwrap();
        received += got.messages().len() as i32;
    }
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .unwrap();
    let get = |n: QueueAttributeName| attrs.attributes().and_then(|a| a.get(&n)).cloned();
    assert_eq!(
        get(QueueAttributeName::ApproximateNumberOfMessages).as_deref(),
        Some("4")
    );

    let factory = AwsSqsFactory::new();
    // visible 4, in flight 3, delayed 2.
    for (flags, want) in [
        (&[][..], 7.0),
        (&[("scaleOnInFlight", "false")][..], 4.0),
        (&[("scaleOnDelayed", "true")][..], 9.0),
        (
            &[("scaleOnInFlight", "false"), ("scaleOnDelayed", "true")][..],
            6.0,
        ),
    ] {
        let scaler = factory.build(&config(&endpoint, &url, flags)).unwrap();
        let m = poll(&*scaler).await.unwrap();
        assert_eq!(value(&m), want, "{flags:?}");
        assert!(m.active);
    }
    // Active strictly above activationQueueLength.
    let at = |n: &'static str| {
        factory
            .build(&config(&endpoint, &url, &[("activationQueueLength", n)]))
            .unwrap()
    };
    assert!(!poll(&*at("7")).await.unwrap().active);
    assert!(poll(&*at("6")).await.unwrap().active);
}

#[tokio::test]
async fn draining_the_queue_makes_the_trigger_inactive() {
    let Some(endpoint) = endpoint() else { return };
    let sqs = sqs(&endpoint, REGION);
    let url = create_queue(&sqs, &unique("drain")).await;
    let factory = AwsSqsFactory::new();
    let scaler = factory.build(&config(&endpoint, &url, &[])).unwrap();
    let m = poll(&*scaler).await.unwrap();
    assert_eq!((value(&m), m.active), (0.0, false));

    sqs.send_message()
        .queue_url(&url)
        .message_body("job")
        .send()
        .await
        .unwrap();
    let m = poll(&*scaler).await.unwrap();
    assert_eq!((value(&m), m.active), (1.0, true));

    // A consumer receives and deletes it: back to 0.
    let got = sqs.receive_message().queue_url(&url).send().await.unwrap();
    let handle = got.messages()[0].receipt_handle().unwrap().to_owned();
    assert_eq!(
        value(&poll(&*scaler).await.unwrap()),
        1.0,
        "in flight counts by default"
    );
    sqs.delete_message()
        .queue_url(&url)
        .receipt_handle(handle)
        .send()
        .await
        .unwrap();
    let m = poll(&*scaler).await.unwrap();
    assert_eq!((value(&m), m.active), (0.0, false));
}

#[tokio::test]
async fn missing_queue_is_a_clear_error() {
    let Some(endpoint) = endpoint() else { return };
    let url = format!("{endpoint}/123456789012/{}", unique("missing"));
    let scaler = AwsSqsFactory::new()
        .build(&config(&endpoint, &url, &[]))
        .unwrap();
    let err = poll(&*scaler).await.unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "triggers[0] (aws-sqs-queue): SQS queue {url} does not exist in region {REGION} at {endpoint}: check queueURL and awsRegion"
        )
    );
}

#[tokio::test]
async fn unreachable_endpoint_is_a_clear_error() {
    let Some(_) = endpoint() else { return };
    // A port nobody listens on: bind one, note it, close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let url = format!("{endpoint}/123456789012/jobs");
    let mut cfg = config(&endpoint, &url, &[]);
    cfg.timeout = Duration::from_secs(3);
    let err = poll(&*AwsSqsFactory::new().build(&cfg).unwrap())
        .await
        .unwrap_err()
        .to_string();
    let refused = format!(
        "triggers[0] (aws-sqs-queue): error getting attributes of SQS queue {url} (region {REGION} at {endpoint}): dispatch failure"
    );
    assert!(
        (err.starts_with(&refused) && err.contains("Connection refused"))
            || err.contains("no answer from the source within 3s"),
        "{err}"
    );
    assert!(!err.contains("DispatchFailure {"), "no Debug dump: {err}");
}

#[tokio::test]
async fn wrong_region_is_a_clear_error() {
    let Some(endpoint) = endpoint() else { return };
    let sqs = sqs(&endpoint, REGION);
    let url = create_queue(&sqs, &unique("region")).await;
    sqs.send_message()
        .queue_url(&url)
        .message_body("job")
        .send()
        .await
        .unwrap();
    let factory = AwsSqsFactory::new();
    let wrong = config(&endpoint, &url, &[("awsRegion", "eu-west-1")]);
    let err = poll(&*factory.build(&wrong).unwrap())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!(
            "SQS queue {url} does not exist in region eu-west-1"
        )),
        "{err}"
    );
    // The right region sees it, through a second client (regions are separate identities).
    let right = factory.build(&config(&endpoint, &url, &[])).unwrap();
    assert_eq!(value(&poll(&*right).await.unwrap()), 1.0);
}

#[tokio::test]
async fn clients_are_shared_per_region_endpoint_and_credentials() {
    let Some(endpoint) = endpoint() else { return };
    let sqs = sqs(&endpoint, REGION);
    let urls = [
        create_queue(&sqs, &unique("share")).await,
        create_queue(&sqs, &unique("share")).await,
    ];
    let factory = AwsSqsFactory::new();
    let a = factory.build(&config(&endpoint, &urls[0], &[])).unwrap();
    let b = factory
        .build(&config(&endpoint, &urls[1], &[("queueLength", "10")]))
        .unwrap();
    poll(&*a).await.unwrap();
    poll(&*b).await.unwrap();
    assert_eq!(factory.live_clients(), 1);

    let other_keys = config(&endpoint, &urls[0], &[])
        .with_auth_param("awsAccessKeyID", "other")
        .with_auth_param("awsSecretAccessKey", "other");
    let c = factory.build(&other_keys).unwrap();
    poll(&*c).await.unwrap();
    assert_eq!(factory.live_clients(), 2);

    for s in [&a, &b, &c] {
        s.close().await;
    }
    drop((a, b, c));
    assert_eq!(factory.live_clients(), 0);
}
