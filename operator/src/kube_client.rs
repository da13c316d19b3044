//! The Kubernetes clients of `kedge run`, with KEDA's client-side rate limit flags, a deadline on
//! every request, and the leadership fence on the operator's writes.
//!
//! KEDA's operator and adapter throttle themselves at 20 requests per second (burst 30). At a few
//! hundred ScaledObjects that throttle, not the API server, is what makes status writes and scale
//! changes late (KEDA issues 3730, 3810, 6789, 7613). kedge keeps the flags, so manifests that
//! set them keep meaning the same thing, but by default sets no client-side limit, as
//! controller-runtime does: the API server's Priority and Fairness protects it, and kube-rs
//! retries its 429s (and 503/504s) with backoff, honouring `Retry-After`.
//!
//! Every request but a watch has a deadline (`--kube-api-timeout`, 10 s): kube's retries alone
//! can keep a request going for many minutes (15 attempts, backoff up to 1,000 s), and a hung or
//! half-open connection has no timeout of its own. A write decided before a step-down therefore
//! cannot land minutes later, and one stuck call cannot hold a poll forever.
//!
//! The layers, outermost first: rate limit (the operator's client only), deadline, kube's
//! retries, the [`FenceLayer`] (so each retry is checked again), then kube's own stack.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use kube::client::ClientBuilder;
use kube::client::retry::RetryPolicy;
use kube::{Client, Config};
use tower::buffer::BufferLayer;
use tower::limit::RateLimitLayer;
use tower::retry::RetryLayer;
use tower::util::option_layer;
use tower::{BoxError, Layer, Service};

use crate::fence::{Fence, FenceLayer};

/// Client-side rate limit of requests to the Kubernetes API.
#[derive(Clone, Debug, clap::Args)]
pub struct ClientArgs {
    /// Requests per second kedge may make to the Kubernetes API, on average (KEDA's default is
    /// 20). 0 or less: no client-side limit, leaving fairness to the API server (the default).
    #[arg(
        long,
        env = "KEDGE_KUBE_API_QPS",
        default_value_t = 0.0,
        allow_negative_numbers = true,
        value_name = "QPS"
    )]
    pub kube_api_qps: f64,
    /// Requests kedge may make at once before `--kube-api-qps` paces them (KEDA's default is
    /// 30). Defaults to 1.5 × the QPS, KEDA's ratio. Only used with `--kube-api-qps`.
    #[arg(long, env = "KEDGE_KUBE_API_BURST", value_name = "REQUESTS")]
    pub kube_api_burst: Option<u32>,
    /// Deadline of each Kubernetes API request but watches, retries included, in milliseconds.
    /// A scale, status or Event write that has not been answered by then is abandoned (the next
    /// poll decides again) rather than retried for minutes.
    #[arg(
        long,
        env = "KEDGE_KUBE_API_TIMEOUT_MS",
        default_value_t = 10_000,
        value_name = "MS",
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub kube_api_timeout_ms: u64,
}

impl Default for ClientArgs {
    fn default() -> Self {
        Self {
            kube_api_qps: 0.0,
            kube_api_burst: None,
            kube_api_timeout_ms: 10_000,
        }
    }
}

/// A client-side limit: at most `burst` requests in any window of `per`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimit {
    /// Requests per window.
    pub burst: u32,
    /// Window length: `burst / qps` seconds.
    pub per: Duration,
}

impl ClientArgs {
    /// The limit these flags ask for, or `None` for no client-side limit.
    ///
    /// client-go refills a token bucket; tower's limiter counts requests in windows. With
    /// `burst` requests per `burst / qps` seconds both allow a burst of `burst` and average `qps`.
    pub fn rate_limit(&self) -> Option<RateLimit> {
        let qps = self.kube_api_qps;
        if qps.is_nan() || qps <= 0.0 || qps.is_infinite() {
            return None;
        }
        let burst = self
            .kube_api_burst
            .filter(|b| *b > 0)
            .unwrap_or_else(|| (qps * 1.5).ceil().min(f64::from(u32::MAX)) as u32)
            .max(1);
        Some(RateLimit {
            burst,
            per: Duration::from_secs_f64(f64::from(burst) / qps),
        })
    }

    /// The deadline of one request.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.kube_api_timeout_ms.max(1))
    }
}

/// Which client to build.
#[derive(Clone, Debug)]
pub enum Role {
    /// The operator's: reconciles, scale writes, status, Events. Rate-limited by the flags, and
    /// fenced by leadership.
    Operator(Fence),
    /// The replica's own housekeeping: the leader Lease, certificates, the APIService. Never
    /// rate-limited, so a busy operator cannot starve the lease renewals.
    Replica,
}

/// The User-Agent kedge sends: its version and the replica, so an API server's audit log tells
/// replicas apart (client-go sends `binary/version (os/arch) kubernetes/commit/role`).
pub fn user_agent(identity: &str) -> String {
    let identity: String = identity
        .chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(253)
        .collect();
    format!("kedge/{} ({identity})", env!("CARGO_PKG_VERSION"))
}

/// Builds a client for `config` in `role`, sending `user_agent`.
pub fn build(
    mut config: Config,
    args: &ClientArgs,
    user_agent: &str,
    role: Role,
) -> Result<Client, kube::Error> {
    if let Ok(value) = http::HeaderValue::from_str(user_agent) {
        config.headers.push((http::header::USER_AGENT, value));
    }
    // kube's retries are put back below the fence, where every attempt is checked.
    let retry = config.default_retry;
    config.default_retry = false;
    let (fence, limit) = match role {
        Role::Operator(fence) => (Some(FenceLayer(fence)), args.rate_limit()),
        Role::Replica => (None, None),
    };
    Ok(ClientBuilder::try_from(config)?
        .with_layer(&option_layer(fence))
        // tower's retry clones the service it retries; kube's stack is boxed, so a buffer in
        // front of it makes it cloneable (kube's `Client` puts one on top as well).
        .with_layer(&BufferLayer::new(1024))
        .with_layer(&option_layer(
            retry.then(|| RetryLayer::new(RetryPolicy::server_retry())),
        ))
        .with_layer(&DeadlineLayer(args.timeout()))
        // Outermost: every request waits its turn; retries happen inside.
        .with_layer(&option_layer(
            limit.map(|l| RateLimitLayer::new(u64::from(l.burst), l.per)),
        ))
        .build())
}

/// Reads the cluster configuration from the environment (in-cluster, or
/// `KUBECONFIG`/`~/.kube/config`).
pub async fn config_from_env() -> Result<Config, kube::Error> {
    Config::infer().await.map_err(kube::Error::InferConfig)
}

/// A request that got no answer within its deadline.
#[derive(Debug, thiserror::Error)]
#[error("no answer from the Kubernetes API within {0:?}")]
pub struct DeadlineExceeded(pub Duration);

/// Gives every request but watches a deadline.
#[derive(Clone, Copy, Debug)]
pub struct DeadlineLayer(pub Duration);

impl<S> Layer<S> for DeadlineLayer {
    type Service = Deadline<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Deadline {
            inner,
            timeout: self.0,
        }
    }
}

/// The service [`DeadlineLayer`] makes.
#[derive(Clone, Debug)]
pub struct Deadline<S> {
    inner: S,
    timeout: Duration,
}

/// Watches stay open for minutes by design; kube's watcher has its own idle timeout.
fn is_watch(uri: &http::Uri) -> bool {
    uri.query().is_some_and(|q| {
        q.split('&')
            .any(|kv| matches!(kv, "watch=true" | "watch=1" | "watch=True"))
    })
}

impl<S, B> Service<http::Request<B>> for Deadline<S>
where
    S: Service<http::Request<B>>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let watch = is_watch(req.uri());
        let timeout = self.timeout;
        let call = self.inner.call(req);
        Box::pin(async move {
            if watch {
                return call.await.map_err(Into::into);
            }
            match tokio::time::timeout(timeout, call).await {
                Ok(result) => result.map_err(Into::into),
                Err(_) => Err(DeadlineExceeded(timeout).into()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    fn args(qps: f64, burst: Option<u32>) -> ClientArgs {
        ClientArgs {
            kube_api_qps: qps,
            kube_api_burst: burst,
            ..ClientArgs::default()
        }
    }

    #[test]
    fn no_limit_unless_a_positive_qps_is_given() {
        assert_eq!(args(0.0, None).rate_limit(), None);
        assert_eq!(args(-1.0, Some(30)).rate_limit(), None);
        assert_eq!(args(f64::NAN, None).rate_limit(), None);
        assert_eq!(args(f64::INFINITY, None).rate_limit(), None);
    }

    #[test]
    fn kedas_defaults_give_thirty_requests_per_second_and_a_half() {
        assert_eq!(
            args(20.0, Some(30)).rate_limit(),
            Some(RateLimit {
                burst: 30,
                per: Duration::from_millis(1500)
            })
        );
        // Burst defaults to KEDA's ratio, and is never zero.
        assert_eq!(args(20.0, None).rate_limit().unwrap().burst, 30);
        assert_eq!(args(0.1, None).rate_limit().unwrap().burst, 1);
        assert_eq!(args(5.0, Some(0)).rate_limit().unwrap().burst, 8);
    }

    #[test]
    fn flags_parse_with_kedas_names() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            client: ClientArgs,
        }
        let cli = Cli::try_parse_from(["kedge", "--kube-api-qps", "40", "--kube-api-burst", "60"])
            .unwrap();
        assert_eq!(cli.client.kube_api_qps, 40.0);
        assert_eq!(cli.client.kube_api_burst, Some(60));
        let cli = Cli::try_parse_from(["kedge", "--kube-api-qps=-1"]).unwrap();
        assert_eq!(cli.client.rate_limit(), None);
        let err = Cli::try_parse_from(["kedge", "--kube-api-qps", "fast"])
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("--kube-api-qps"), "{err}");
    }

    /// An API server stand-in that records when each request arrived.
    async fn recording_server() -> (String, Arc<Mutex<Vec<Instant>>>) {
        let arrivals = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&arrivals);
        let app = axum::Router::new().fallback(move || {
            let seen = Arc::clone(&seen);
            async move {
                seen.lock().unwrap().push(Instant::now());
                (
                    [(axum::http::header::CONTENT_TYPE, "application/json")],
                    r#"{"kind":"Namespace","apiVersion":"v1","metadata":{"name":"default"}}"#,
                )
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (url, arrivals)
    }

    #[tokio::test]
    async fn requests_beyond_the_burst_wait_for_the_next_window() {
        use k8s_openapi::api::core::v1::Namespace;
        let (url, arrivals) = recording_server().await;
        let config = Config::new(url.parse().unwrap());
        // 4 at once, then 4 more per 0.4 s.
        let client = build(
            config,
            &args(10.0, Some(4)),
            "kedge-test",
            Role::Operator(Fence::unfenced()),
        )
        .unwrap();
        let api: kube::Api<Namespace> = kube::Api::all(client);
        let start = Instant::now();
        let reads = (0..12).map(|_| api.get("default"));
        for read in futures::future::join_all(reads).await {
            read.unwrap();
        }
        let arrivals = arrivals.lock().unwrap().clone();
        assert_eq!(arrivals.len(), 12);
        // Lower bounds only (a slow machine can delay a request, never hurry one): the fifth
        // request cannot be sent before the first window of 0.4 s closes, the ninth before the
        // second does.
        let before = |ms: u64| {
            arrivals
                .iter()
                .filter(|a| a.duration_since(start) < Duration::from_millis(ms))
                .count()
        };
        assert!(
            before(400) <= 4,
            "{} requests in the first window",
            before(400)
        );
        assert!(before(800) <= 8, "{} requests in two windows", before(800));
        let last = arrivals.iter().max().unwrap().duration_since(start);
        assert!(
            last >= Duration::from_millis(800),
            "12 requests done in {last:?}"
        );
    }

    /// An API server stand-in: `answer` decides each response from the request's method and
    /// how many requests came before; every request's method and User-Agent is recorded.
    async fn scripted_server(
        answer: impl Fn(&http::Method, usize) -> (u16, Option<u64>, Duration) + Send + Sync + 'static,
    ) -> (String, Arc<Mutex<Vec<(http::Method, String)>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        let answer = Arc::new(answer);
        let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
            let log = Arc::clone(&log);
            let answer = Arc::clone(&answer);
            async move {
                let agent = req
                    .headers()
                    .get(http::header::USER_AGENT)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let n = {
                    let mut log = log.lock().unwrap();
                    log.push((req.method().clone(), agent));
                    log.len() - 1
                };
                let (code, retry_after, delay) = answer(req.method(), n);
                tokio::time::sleep(delay).await;
                let mut response = axum::response::Response::new(axum::body::Body::from(
                    r#"{"kind":"Namespace","apiVersion":"v1","metadata":{"name":"default"}}"#,
                ));
                *response.status_mut() = http::StatusCode::from_u16(code).unwrap();
                let headers = response.headers_mut();
                headers.insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("application/json"),
                );
                if let Some(secs) = retry_after {
                    headers.insert(http::header::RETRY_AFTER, secs.into());
                }
                response
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (url, seen)
    }

    fn namespaces(url: &str, role: Role, timeout_ms: u64) -> kube::Api<Namespace> {
        let config = Config::new(url.parse().unwrap());
        let args = ClientArgs {
            kube_api_timeout_ms: timeout_ms,
            ..ClientArgs::default()
        };
        kube::Api::all(build(config, &args, &user_agent("kedge-0@10.0.0.1:9666"), role).unwrap())
    }

    use k8s_openapi::api::core::v1::Namespace;
    use kube::api::{Patch, PatchParams};

    fn patch() -> Patch<serde_json::Value> {
        Patch::Merge(serde_json::json!({"metadata": {"labels": {"a": "b"}}}))
    }

    #[tokio::test]
    async fn a_request_that_hangs_is_abandoned_at_its_deadline() {
        let (url, seen) = scripted_server(|_, _| (200, None, Duration::from_secs(30))).await;
        let api = namespaces(&url, Role::Replica, 300);
        let started = Instant::now();
        let err = api
            .patch("default", &PatchParams::default(), &patch())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("no answer"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
        // And the User-Agent names the replica.
        let agent = seen.lock().unwrap()[0].1.clone();
        assert_eq!(
            agent,
            format!(
                "kedge/{} (kedge-0@10.0.0.1:9666)",
                env!("CARGO_PKG_VERSION")
            )
        );
    }

    #[tokio::test]
    async fn retries_of_a_write_stop_at_the_deadline() {
        // The API server says "retry after 1 s" forever; kube alone would try 15 times.
        let (url, seen) = scripted_server(|_, _| (429, Some(1), Duration::ZERO)).await;
        let api = namespaces(&url, Role::Replica, 1_500);
        let err = api
            .patch("default", &PatchParams::default(), &patch())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("no answer"), "{err}");
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(seen.lock().unwrap().len(), 2, "one attempt and one retry");
    }

    #[tokio::test]
    async fn a_retry_after_the_fence_closed_is_never_sent() {
        let (url, seen) = scripted_server(|_, n| match n {
            0 => (503, Some(1), Duration::ZERO),
            _ => (200, None, Duration::ZERO),
        })
        .await;
        let fence = Fence::closed();
        fence.open_until(tokio::time::Instant::now() + Duration::from_millis(500));
        let api = namespaces(&url, Role::Operator(fence.clone()), 10_000);
        // The first attempt is answered 503 "retry after 1 s"; by then the lease has lapsed.
        let err = api
            .patch("default", &PatchParams::default(), &patch())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("leader lease"), "{err}");
        assert_eq!(seen.lock().unwrap().len(), 1);
        // Reads still go through.
        api.get("default").await.unwrap();
        assert_eq!(seen.lock().unwrap().len(), 2);
        assert_eq!(seen.lock().unwrap()[1].0, http::Method::GET);
    }
}
