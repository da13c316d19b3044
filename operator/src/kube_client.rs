//! The Kubernetes client of `kedge run`, with KEDA's client-side rate limit flags.
//!
//! KEDA's operator and adapter throttle themselves at 20 requests per second (burst 30). At a few
//! hundred ScaledObjects that throttle, not the API server, is what makes status writes and scale
//! changes late (KEDA issues 3730, 3810, 6789, 7613). kedge keeps the flags, so manifests that
//! set them keep meaning the same thing, but by default sets no client-side limit, as
//! controller-runtime does: the API server's Priority and Fairness protects it, and kube-rs
//! retries its 429s (and 503/504s) with backoff, honouring `Retry-After`.

use std::time::Duration;

use kube::client::ClientBuilder;
use kube::{Client, Config};
use tower::limit::RateLimitLayer;

/// Client-side rate limit of requests to the Kubernetes API.
#[derive(Clone, Debug, Default, clap::Args)]
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
}

/// Builds a client for `config` that keeps to `args`' rate limit.
pub fn build(config: Config, args: &ClientArgs) -> Result<Client, kube::Error> {
    let builder = ClientBuilder::try_from(config)?;
    Ok(match args.rate_limit() {
        // Outermost layer: every request waits its turn; kube's retries of a 429 happen inside.
        Some(limit) => builder
            .with_layer(&RateLimitLayer::new(u64::from(limit.burst), limit.per))
            .build(),
        None => builder.build(),
    })
}

/// Builds a client from the environment (in-cluster, or `KUBECONFIG`/`~/.kube/config`).
pub async fn from_env(args: &ClientArgs) -> Result<Client, kube::Error> {
    let config = Config::infer().await.map_err(kube::Error::InferConfig)?;
    build(config, args)
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
        let client = build(config, &args(10.0, Some(4))).unwrap();
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
}
