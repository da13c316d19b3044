//! The external and external-push scalers against real gRPC servers speaking KEDA's
//! `externalscaler.ExternalScaler` protocol, written here with tonic: plain, TLS, and TLS with
//! client certificates.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kedge_test_support::pki::Ca;
use scaler_core::futures_core::Stream;
use scaler_core::{ActivityStream, Scaler, ScalerConfig};
use scalers::external::ExternalScaler;
use scalers::external::proto::external_scaler_server::{
    ExternalScaler as ExternalScalerService, ExternalScalerServer,
};
use scalers::external::proto::{
    GetMetricSpecResponse, GetMetricsRequest, GetMetricsResponse, IsActiveResponse, MetricSpec,
    MetricValue, ScaledObjectRef,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
use tonic::{Request, Response, Status};

type Pushes = mpsc::Sender<Result<IsActiveResponse, Status>>;

/// An external scaler: fixed answers, records what it was asked, pushes what the test says.
#[derive(Default)]
struct Fake {
    refs: Mutex<Vec<(&'static str, ScaledObjectRef)>>,
    /// The `grpc-timeout` each call carried, by method.
    deadlines: Mutex<Vec<(&'static str, Option<String>)>>,
    metric_names: Mutex<Vec<String>>,
    subscribers: Mutex<Vec<Pushes>>,
    metrics_error: Option<&'static str>,
    /// Answer GetMetrics with this many values (a hostile server's reply).
    flood: usize,
}

impl Fake {
    fn record(&self, method: &'static str, request: Request<ScaledObjectRef>) {
        let deadline = request
            .metadata()
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        self.deadlines.lock().unwrap().push((method, deadline));
        self.refs
            .lock()
            .unwrap()
            .push((method, request.into_inner()));
    }

    fn deadline(&self, method: &str) -> Option<String> {
        let deadlines = self.deadlines.lock().unwrap();
        let (_, d) = deadlines
            .iter()
            .rev()
            .find(|(m, _)| *m == method)
            .expect(method);
        d.clone()
    }

    fn subscribers(&self) -> usize {
        self.subscribers.lock().unwrap().len()
    }

    /// Sends `active` on every open StreamIsActive call.
    fn push(&self, active: bool) {
        let subscribers = self.subscribers.lock().unwrap().clone();
        for s in subscribers {
            let _ = s.try_send(Ok(IsActiveResponse { result: active }));
        }
    }

    /// Ends every open StreamIsActive call (cleanly, as a server restart would not).
    fn end_streams(&self) {
        self.subscribers.lock().unwrap().clear();
    }
}

#[tonic::async_trait]
impl ExternalScalerService for Fake {
    async fn is_active(
        &self,
        request: Request<ScaledObjectRef>,
    ) -> Result<Response<IsActiveResponse>, Status> {
        self.record("IsActive", request);
        Ok(Response::new(IsActiveResponse { result: true }))
    }

    type StreamIsActiveStream =
        Pin<Box<dyn Stream<Item = Result<IsActiveResponse, Status>> + Send + 'static>>;

    async fn stream_is_active(
        &self,
        request: Request<ScaledObjectRef>,
    ) -> Result<Response<Self::StreamIsActiveStream>, Status> {
        self.record("StreamIsActive", request);
        let (tx, rx) = mpsc::channel(16);
        self.subscribers.lock().unwrap().push(tx);
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn get_metric_spec(
        &self,
        request: Request<ScaledObjectRef>,
    ) -> Result<Response<GetMetricSpecResponse>, Status> {
        self.record("GetMetricSpec", request);
        Ok(Response::new(GetMetricSpecResponse {
            metric_specs: vec![
                MetricSpec {
                    metric_name: "queue-jobs".to_owned(),
                    target_size: 0,
                    target_size_float: 2.5,
                },
                MetricSpec {
                    metric_name: "legacy".to_owned(),
                    target_size: 4,
                    target_size_float: 0.0,
                },
            ],
        }))
    }

    async fn get_metrics(
        &self,
        request: Request<GetMetricsRequest>,
    ) -> Result<Response<GetMetricsResponse>, Status> {
        let request = request.into_inner();
        self.metric_names
            .lock()
            .unwrap()
            .push(request.metric_name.clone());
        if let Some(why) = self.metrics_error {
            return Err(Status::internal(why));
        }
        if self.flood > 0 {
            let value = MetricValue {
                metric_name: "x".repeat(32),
                metric_value: 1,
                metric_value_float: 1.0,
            };
            return Ok(Response::new(GetMetricsResponse {
                metric_values: vec![value; self.flood],
            }));
        }
        let value = if request.metric_name == "legacy" {
            MetricValue {
                metric_name: request.metric_name,
                metric_value: 17,
                metric_value_float: 0.0,
            }
        } else {
            MetricValue {
                metric_name: request.metric_name,
                metric_value: 0,
                metric_value_float: 12.75,
            }
        };
        Ok(Response::new(GetMetricsResponse {
            metric_values: vec![value],
        }))
    }

    type StreamMetricSpecStream =
        Pin<Box<dyn Stream<Item = Result<GetMetricSpecResponse, Status>> + Send + 'static>>;

    async fn stream_metric_spec(
        &self,
        _: Request<ScaledObjectRef>,
    ) -> Result<Response<Self::StreamMetricSpecStream>, Status> {
        Err(Status::unimplemented("StreamMetricSpec"))
    }
}

/// Serves `fake` on a free loopback port; returns `127.0.0.1:<port>`.
async fn serve(fake: Arc<Fake>, tls: Option<ServerTlsConfig>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    let mut server = Server::builder();
    if let Some(tls) = tls {
        server = server.tls_config(tls).expect("tls config");
    }
    let router = server.add_service(ExternalScalerServer::from_arc(fake));
    tokio::spawn(router.serve_with_incoming(TcpListenerStream::new(listener)));
    address
}

fn trigger(trigger_type: &str, address: &str) -> ScalerConfig {
    let mut cfg = ScalerConfig::new(trigger_type, 0)
        .with_metadata("scalerAddress", address)
        .with_metadata("queue", "jobs")
        .with_metadata("tokenFromEnv", "QUEUE_TOKEN")
        .with_resolved_env("QUEUE_TOKEN", "t0k3n");
    cfg.scaled_object = "worker".to_owned();
    cfg.namespace = "billing".to_owned();
    cfg
}

async fn next_change(changes: &mut ActivityStream, within: Duration) -> Option<bool> {
    tokio::time::timeout(
        within,
        std::future::poll_fn(|cx| changes.as_mut().poll_next(cx)),
    )
    .await
    .expect("no activity change arrived in time")
}

async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn specs_values_and_activity_as_keda_asks_for_them() {
    let fake = Arc::new(Fake::default());
    let address = serve(Arc::clone(&fake), None).await;
    let scaler = ExternalScaler::new(&trigger("external", &address)).expect("valid");

    let specs = scaler.metric_specs().await.expect("specs");
    let specs: Vec<(String, String)> = specs
        .iter()
        .map(|s| (s.name.clone(), s.target.value.to_string()))
        .collect();
    assert_eq!(
        specs,
        [
            ("s0-queue-jobs".to_owned(), "2500m".to_owned()),
            ("s0-legacy".to_owned(), "4".to_owned())
        ]
    );

    let poll = scaler
        .metrics_and_activity("s0-queue-jobs")
        .await
        .expect("poll");
    assert!(poll.active);
    assert_eq!(poll.metrics.len(), 1);
    assert_eq!(poll.metrics[0].metric_name, "s0-queue-jobs");
    assert_eq!(poll.metrics[0].value.to_string(), "12750m");
    let legacy = scaler
        .metrics_and_activity("s0-legacy")
        .await
        .expect("poll");
    assert_eq!(legacy.metrics[0].value.to_string(), "17");

    // The server got the bare metric names, and every call carried the ScaledObject and the
    // trigger's metadata with FromEnv resolved.
    assert_eq!(*fake.metric_names.lock().unwrap(), ["queue-jobs", "legacy"]);
    let refs = fake.refs.lock().unwrap().clone();
    let methods: Vec<&str> = refs.iter().map(|(m, _)| *m).collect();
    assert_eq!(methods, ["GetMetricSpec", "IsActive", "IsActive"]);
    // Unary calls carry kedge's timeout as their gRPC deadline.
    assert!(fake.deadline("IsActive").is_some());
    for (_, r) in refs.iter() {
        assert_eq!(
            (r.name.as_str(), r.namespace.as_str()),
            ("worker", "billing")
        );
        assert_eq!(
            r.scaler_metadata.get("queue").map(String::as_str),
            Some("jobs")
        );
        assert_eq!(
            r.scaler_metadata.get("tokenFromEnv").map(String::as_str),
            Some("t0k3n")
        );
        assert_eq!(
            r.scaler_metadata.get("scalerAddress").map(String::as_str),
            Some(address.as_str())
        );
    }
    scaler.close().await;
}

#[tokio::test]
async fn server_and_connection_errors_are_clear() {
    let fake = Arc::new(Fake {
        metrics_error: Some("queue backend down"),
        ..Fake::default()
    });
    let address = serve(fake, None).await;
    let scaler = ExternalScaler::new(&trigger("external", &address)).expect("valid");
    let err = scaler
        .metrics_and_activity("s0-queue-jobs")
        .await
        .expect_err("server error")
        .to_string();
    assert_eq!(
        err,
        format!(
            "triggers[0] (external): external scaler at {address}: GetMetrics: rpc error: code \
             = Internal desc = queue backend down"
        )
    );

    let down = ExternalScaler::new(&trigger("external", "127.0.0.1:1")).expect("valid");
    let err = down.metric_specs().await.expect_err("refused").to_string();
    assert!(
        err.starts_with(
            "triggers[0] (external): external scaler at 127.0.0.1:1: GetMetricSpec: rpc error: \
             code = Unavailable"
        ) && err.to_lowercase().contains("refused"),
        "{err}"
    );
}

#[tokio::test]
async fn a_reply_larger_than_the_cap_is_refused_not_decoded() {
    // 100,000 values of ~50 bytes: about 5 MB, five times the 1 MiB kedge accepts.
    let fake = Arc::new(Fake {
        flood: 100_000,
        ..Fake::default()
    });
    let address = serve(fake, None).await;
    let scaler = ExternalScaler::new(&trigger("external", &address)).expect("valid");
    let err = scaler
        .metrics_and_activity("s0-queue-jobs")
        .await
        .expect_err("an oversized reply")
        .to_string();
    assert!(
        err.contains("GetMetrics") && err.contains("message length too large"),
        "{err}"
    );
}

#[tokio::test]
async fn pushed_activity_arrives_at_once_and_survives_a_stream_end() {
    let fake = Arc::new(Fake::default());
    let address = serve(Arc::clone(&fake), None).await;
    // A short timeout: calls must answer within it, but the open stream must outlive it.
    let cfg = ScalerConfig {
        timeout: Duration::from_millis(300),
        ..trigger("external-push", &address)
    };
    let scaler = ExternalScaler::new(&cfg).expect("valid");
    let mut changes = scaler.activity_changes().expect("external-push pushes");

    // The stream connects when first polled; poll it in the background meanwhile.
    let (tx, mut rx) = mpsc::unbounded_channel();
    let reader = tokio::spawn(async move {
        while let Some(active) = std::future::poll_fn(|cx| changes.as_mut().poll_next(cx)).await {
            if tx.send((active, Instant::now())).is_err() {
                break;
            }
        }
    });
    wait_until("StreamIsActive is open", || fake.subscribers() == 1).await;
    // A deadline would make a gRPC-Go server end the stream when it passes.
    assert_eq!(fake.deadline("StreamIsActive"), None);
    {
        let refs = fake.refs.lock().unwrap();
        let (method, r) = refs.last().expect("a call");
        assert_eq!(*method, "StreamIsActive");
        assert_eq!(
            r.scaler_metadata.get("queue").map(String::as_str),
            Some("jobs")
        );
    }

    for active in [true, false, true] {
        let sent = Instant::now();
        fake.push(active);
        let (got, at) = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("no change within 5 s")
            .expect("stream open");
        assert_eq!(got, active);
        println!("pushed {active}: delivered after {:?}", at - sent);
    }

    // The server ends the stream; the scaler calls again (after KEDA's 2 s back-off).
    fake.end_streams();
    wait_until("StreamIsActive is open again", || fake.subscribers() == 1).await;
    fake.push(true);
    let (got, _) = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("no change after reconnecting")
        .expect("stream open");
    assert!(got);

    // Closing the scaler ends the stream.
    scaler.close().await;
    tokio::time::timeout(Duration::from_secs(5), reader)
        .await
        .expect("stream did not end on close")
        .expect("reader");
}

#[tokio::test]
async fn closing_ends_a_stream_that_never_connected() {
    let scaler = ExternalScaler::new(&trigger("external-push", "127.0.0.1:1")).expect("valid");
    let mut changes = scaler.activity_changes().expect("push");
    let closer = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        scaler.close().await;
    };
    let (next, ()) = tokio::join!(next_change(&mut changes, Duration::from_secs(10)), closer);
    assert_eq!(next, None);
}

struct Pki {
    ca: String,
    server: Identity,
    client_cert: String,
    client_key: String,
}

fn pki() -> Pki {
    let ca = Ca::new("external scaler test CA");
    let server = ca.server(&["127.0.0.1", "localhost"]);
    let client = ca.client("kedge", None);
    Pki {
        ca: ca.cert_pem,
        server: Identity::from_pem(server.cert_pem, server.key_pem),
        client_cert: client.cert_pem,
        client_key: client.key_pem,
    }
}

#[tokio::test]
async fn tls_with_a_ca_client_certificates_and_unsafe_ssl() {
    let pki = pki();
    // A server that requires a client certificate signed by the CA.
    let mutual = serve(
        Arc::new(Fake::default()),
        Some(
            ServerTlsConfig::new()
                .identity(pki.server.clone())
                .client_ca_root(Certificate::from_pem(&pki.ca)),
        ),
    )
    .await;
    let with_cert = trigger("external", &mutual)
        .with_auth_param("caCert", pki.ca.as_str())
        .with_auth_param("tlsClientCert", pki.client_cert.as_str())
        .with_auth_param("tlsClientKey", pki.client_key.as_str());
    let scaler = ExternalScaler::new(&with_cert).expect("valid");
    assert_eq!(scaler.metric_specs().await.expect("mutual TLS").len(), 2);

    let without_cert = trigger("external", &mutual).with_auth_param("caCert", pki.ca.as_str());
    let err = ExternalScaler::new(&without_cert)
        .expect("valid")
        .metric_specs()
        .await
        .expect_err("no client certificate");
    println!("without a client certificate: {err}");

    // A server with a certificate the client does not trust.
    let tls_only = serve(
        Arc::new(Fake::default()),
        Some(ServerTlsConfig::new().identity(pki.server.clone())),
    )
    .await;
    let untrusted = trigger("external", &tls_only).with_metadata("enableTLS", "true");
    let err = ExternalScaler::new(&untrusted)
        .expect("valid")
        .metric_specs()
        .await
        .expect_err("untrusted certificate")
        .to_string();
    assert!(err.contains("UnknownIssuer"), "{err}");
    let unsafe_ssl = untrusted.with_metadata("unsafeSsl", "true");
    let scaler = ExternalScaler::new(&unsafe_ssl).expect("valid");
    assert_eq!(scaler.metric_specs().await.expect("unsafeSsl").len(), 2);
}

/// One poll's cost (GetMetrics + IsActive, as KEDA does) next to one bare tonic GetMetrics call
/// (run in release, see docs/benchmarks.md):
/// `cargo test --release -p kedge-scalers --features external --test external -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: prints numbers"]
async fn poll_cost() {
    use scalers::external::proto::external_scaler_client::ExternalScalerClient;
    let address = serve(Arc::new(Fake::default()), None).await;
    let scaler = ExternalScaler::new(&trigger("external", &address)).expect("valid");
    scaler
        .metrics_and_activity("s0-queue-jobs")
        .await
        .expect("warm up");
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("bare channel");
    let mut bare = ExternalScalerClient::new(channel);
    let request = || GetMetricsRequest {
        scaled_object_ref: Some(scaler.scaled_object_ref().clone()),
        metric_name: "queue-jobs".to_owned(),
    };
    bare.get_metrics(request()).await.expect("warm up");

    const N: usize = 200;
    let mut scaler_times = Vec::with_capacity(N);
    let mut bare_times = Vec::with_capacity(N);
    for _ in 0..N {
        let t = Instant::now();
        scaler
            .metrics_and_activity("s0-queue-jobs")
            .await
            .expect("poll");
        scaler_times.push(t.elapsed());
        let t = Instant::now();
        bare.get_metrics(request()).await.expect("bare");
        bare_times.push(t.elapsed());
    }
    let pct = |v: &mut Vec<Duration>, p: f64| {
        v.sort();
        v[((v.len() as f64 - 1.0) * p).round() as usize]
    };
    println!(
        "external poll ({N} polls, 2 round trips each: GetMetrics + IsActive): p50 {:?} p99 {:?}; \
         bare tonic GetMetrics: p50 {:?} p99 {:?}",
        pct(&mut scaler_times, 0.5),
        pct(&mut scaler_times, 0.99),
        pct(&mut bare_times, 0.5),
        pct(&mut bare_times, 0.99),
    );
}
