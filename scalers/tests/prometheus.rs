//! The prometheus scaler against the real Prometheus started by `scripts/services.sh`
//! (Debian's package, backfilled with `kedge_queue_depth{queue="jobs"} 42` and
//! `kedge_queue_depth{queue="emails"} 7`, basic auth required).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use kedge_test_support::service_env;
use scaler_core::{Scaler, ScalerConfig, ScalerError};
use scalers::prometheus::PrometheusScaler;

struct Prom {
    url: String,
    user: String,
    password: String,
}

fn prometheus() -> Option<Prom> {
    Some(Prom {
        url: service_env("KEDGE_PROMETHEUS_URL")?,
        user: service_env("KEDGE_PROMETHEUS_USER")?,
        password: service_env("KEDGE_PROMETHEUS_PASSWORD")?,
    })
}

impl Prom {
    /// A trigger with `query`, authenticated with basic auth through the TriggerAuthentication.
    fn trigger(&self, query: &str) -> ScalerConfig {
        ScalerConfig::new("prometheus", 0)
            .with_metadata("serverAddress", &self.url)
            .with_metadata("query", query)
            .with_metadata("threshold", "10")
            .with_metadata("activationThreshold", "8")
            .with_metadata("authModes", "basic")
            .with_auth_param("username", self.user.as_str())
            .with_auth_param("password", self.password.as_str())
    }
}

async fn poll(cfg: &ScalerConfig) -> Result<(String, bool), ScalerError> {
    let scaler = PrometheusScaler::new(cfg).expect("valid trigger");
    let m = scaler.metrics_and_activity("s0-prometheus").await?;
    scaler.close().await;
    Ok((m.metrics[0].value.to_string(), m.active))
}

#[tokio::test]
async fn vector_and_scalar_queries() {
    let Some(prom) = prometheus() else { return };
    let cases = [
        ("kedge_queue_depth{queue=\"jobs\"}", "42", true),
        ("kedge_queue_depth{queue=\"emails\"}", "7", false),
        ("sum(kedge_queue_depth)", "49", true),
        ("scalar(sum(kedge_queue_depth))", "49", true),
        ("avg(kedge_queue_depth) / 10", "2450m", false),
    ];
    for (query, value, active) in cases {
        assert_eq!(
            poll(&prom.trigger(query)).await.expect(query),
            (value.to_owned(), active),
            "{query}"
        );
    }
    // namespace and queryParameters reach the API (Prometheus ignores what it does not know).
    let extras = prom
        .trigger("sum(kedge_queue_depth)")
        .with_metadata("namespace", "team-a")
        .with_metadata("queryParameters", "dedup=true,partial_response=false");
    assert_eq!(poll(&extras).await.expect("extras").0, "49");
}

#[tokio::test]
async fn empty_several_and_infinite_results() {
    let Some(prom) = prometheus() else { return };
    let missing = "kedge_queue_depth{queue=\"nope\"}";
    // ignoreNullValues defaults to true: a lost target reads as 0, inactive.
    assert_eq!(
        poll(&prom.trigger(missing)).await.expect("ignored"),
        ("0".to_owned(), false)
    );
    let strict = prom
        .trigger(missing)
        .with_metadata("ignoreNullValues", "false");
    assert_eq!(
        poll(&strict).await.expect_err("empty").to_string(),
        "triggers[0] (prometheus): prometheus metrics 'prometheus' target may be lost, the result is empty"
    );

    let err = poll(&prom.trigger("kedge_queue_depth"))
        .await
        .expect_err("two series");
    assert_eq!(
        err.to_string(),
        "triggers[0] (prometheus): prometheus query kedge_queue_depth returned multiple elements"
    );

    let inf = "sum(kedge_queue_depth) / 0";
    assert_eq!(poll(&prom.trigger(inf)).await.expect("ignored").0, "0");
    let strict = prom.trigger(inf).with_metadata("ignoreNullValues", "false");
    assert_eq!(
        poll(&strict).await.expect_err("inf").to_string(),
        "triggers[0] (prometheus): prometheus query returns +Inf"
    );
}

#[tokio::test]
async fn bad_query_is_a_clear_error() {
    let Some(prom) = prometheus() else { return };
    let err = poll(&prom.trigger("sum(kedge_queue_depth"))
        .await
        .expect_err("bad query")
        .to_string();
    assert!(
        err.starts_with(
            "triggers[0] (prometheus): prometheus query api returned error. status: 400 response: "
        ),
        "{err}"
    );
    assert!(err.contains("parse error"), "{err}");
}

#[tokio::test]
async fn basic_auth_through_a_header() {
    let Some(prom) = prometheus() else { return };
    let query = "kedge_queue_depth{queue=\"jobs\"}";
    let plain = |cfg: ScalerConfig| ScalerConfig {
        auth_params: Default::default(),
        ..cfg
    };

    // No credentials: the server refuses, and the message says so.
    let anonymous = plain(prom.trigger(query)).with_metadata("authModes", "");
    let err = poll(&anonymous).await.expect_err("anonymous").to_string();
    assert!(err.contains("status: 401 response: Unauthorized"), "{err}");

    // Wrong password.
    let wrong = prom.trigger(query).with_auth_param("password", "guess");
    assert!(
        poll(&wrong)
            .await
            .expect_err("wrong")
            .to_string()
            .contains("status: 401")
    );

    // authModes: basic (TriggerAuthentication username/password).
    assert_eq!(poll(&prom.trigger(query)).await.expect("basic").0, "42");

    // authModes: custom, with the Authorization header written out.
    let token = basic(&prom.user, &prom.password);
    let custom = plain(prom.trigger(query))
        .with_metadata("authModes", "custom")
        .with_auth_param("customAuthHeader", "Authorization")
        .with_auth_param("customAuthValue", token.as_str());
    assert_eq!(poll(&custom).await.expect("custom").0, "42");
}

/// `Basic base64(user:password)`, written out to check the server's side independently.
fn basic(user: &str, password: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let input = format!("{user}:{password}").into_bytes();
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    format!("Basic {out}")
}

#[tokio::test]
async fn unreachable_server_is_a_clear_error() {
    let cfg = ScalerConfig::new("prometheus", 0)
        .with_metadata("serverAddress", "http://127.0.0.1:1")
        .with_metadata("query", "up")
        .with_metadata("threshold", "1");
    let err = poll(&cfg).await.expect_err("refused").to_string();
    assert!(
        err.starts_with(
            "triggers[0] (prometheus): prometheus query to http://127.0.0.1:1 failed: "
        ) && err.to_lowercase().contains("refused"),
        "{err}"
    );
}

/// One poll's cost next to the bare reqwest GET it wraps (run in release, see
/// docs/benchmarks.md):
/// `cargo test --release -p kedge-scalers --features prometheus --test prometheus -- --ignored --nocapture`
#[tokio::test]
#[ignore = "benchmark: prints numbers"]
async fn poll_cost() {
    let Some(prom) = prometheus() else { return };
    let query = "sum(kedge_queue_depth)";
    let scaler = PrometheusScaler::new(&prom.trigger(query)).expect("valid");
    scaler
        .metrics_and_activity("s0-prometheus")
        .await
        .expect("warm up");
    let bare = reqwest::Client::builder()
        .use_preconfigured_tls(
            rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .expect("tls")
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth(),
        )
        .build()
        .expect("client");
    let url = format!("{}/api/v1/query?query=sum%28kedge_queue_depth%29", prom.url);
    let get = || {
        bare.get(&url)
            .basic_auth(&prom.user, Some(&prom.password))
            .send()
    };
    get().await.expect("warm up").bytes().await.expect("body");

    const N: usize = 200;
    let mut scaler_times = Vec::with_capacity(N);
    let mut bare_times = Vec::with_capacity(N);
    for _ in 0..N {
        let t = Instant::now();
        scaler
            .metrics_and_activity("s0-prometheus")
            .await
            .expect("poll");
        scaler_times.push(t.elapsed());
        let t = Instant::now();
        get().await.expect("get").bytes().await.expect("body");
        bare_times.push(t.elapsed());
    }
    let pct = |v: &mut Vec<Duration>, p: f64| {
        v.sort();
        v[((v.len() as f64 - 1.0) * p).round() as usize]
    };
    println!(
        "prometheus poll ({N} polls, 1 HTTP request each): p50 {:?} p99 {:?}; bare reqwest GET \
         + body: p50 {:?} p99 {:?}",
        pct(&mut scaler_times, 0.5),
        pct(&mut scaler_times, 0.99),
        pct(&mut bare_times, 0.5),
        pct(&mut bare_times, 0.99),
    );
}
