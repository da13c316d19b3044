//! The adapter's serving path under load, for `scripts/bench-adapter.sh`: an adapter on loopback
//! serving `--objects` ScaledObjects (`bench/so-000` …, metric `s0-metric`) from an in-memory map
//! — the stand-in for the operator's cache of values, so what is measured is the adapter (TLS,
//! HTTP, auth, routing, selector parsing, serialisation), not a scaler.
//!
//! ```text
//! bench_adapter --dir DIR [--objects 1000] [--auth none|front-proxy] [--bind 127.0.0.1:0]
//! ```
//!
//! Writes `DIR/serving-ca.pem` (trust it), with `--auth front-proxy` also
//! `DIR/front-proxy.crt` / `DIR/front-proxy.key` (a client certificate from the request-header
//! CA), then `DIR/port` once it serves, and runs until stdin closes.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use metrics_adapter::auth::{
    AuthApiError, AuthenticationSettings, Authorizer, CaBundle, Decision, RequestAttributes,
    RequestHeaderSettings, UserInfo,
};
use metrics_adapter::tls::selfsigned;
use metrics_adapter::{
    AdapterConfig, AdapterServer, Auth, DelegatedAuth, DelegatedAuthConfig, MetricsProvider,
    ProviderError, ServingTls,
};
use scaler_core::MetricValue;

/// Values per (namespace, ScaledObject): what the operator's cache holds.
struct CachedValues(HashMap<(String, String), Vec<MetricValue>>);

#[async_trait::async_trait]
impl MetricsProvider for CachedValues {
    async fn metric(
        &self,
        namespace: &str,
        scaled_object: &str,
        metric_name: &str,
    ) -> Result<Vec<MetricValue>, ProviderError> {
        let values = self
            .0
            .get(&(namespace.to_owned(), scaled_object.to_owned()))
            .ok_or(ProviderError::ScaledObjectNotFound)?;
        let found: Vec<MetricValue> = values
            .iter()
            .filter(|v| v.metric_name.eq_ignore_ascii_case(metric_name))
            .cloned()
            .collect();
        if found.is_empty() {
            Err(ProviderError::MetricNotFound)
        } else {
            Ok(found)
        }
    }
}

/// The cluster's answer, here always "allowed": reviews are cached for 10 s per user and
/// request, so under load the authorizer is not on the hot path; the cache lookup is.
struct AllowAll;

#[async_trait::async_trait]
impl Authorizer for AllowAll {
    async fn authorize(
        &self,
        _: &UserInfo,
        _: &RequestAttributes,
    ) -> Result<Decision, AuthApiError> {
        Ok(Decision {
            allowed: true,
            reason: String::new(),
        })
    }
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let dir = PathBuf::from(arg(&args, "--dir").ok_or("--dir is required")?);
    let objects: usize = arg(&args, "--objects")
        .unwrap_or_else(|| "1000".into())
        .parse()?;
    let auth_mode = arg(&args, "--auth").unwrap_or_else(|| "none".into());
    let bind: SocketAddr = arg(&args, "--bind")
        .unwrap_or_else(|| "127.0.0.1:0".into())
        .parse()?;

    let values = (0..objects)
        .map(|i| {
            let value = MetricValue::new("s0-metric", (i % 100) as f64 + 0.5);
            (("bench".to_owned(), format!("so-{i:03}")), vec![value])
        })
        .collect();

    let auth = match auth_mode.as_str() {
        "none" => Auth::disabled_for_local_mode(),
        "front-proxy" => {
            let (ca_cert, ca_key) = selfsigned::new_ca("front-proxy-ca")?;
            let proxy = selfsigned::signed_by_ca(
                &["front-proxy-client".into()],
                "front-proxy-client",
                &ca_cert,
                &ca_key,
            )?;
            // The leaf alone: a client presents its own certificate, not the CA.
            let leaf = proxy
                .cert_pem
                .split_inclusive("-----END CERTIFICATE-----")
                .next()
                .unwrap_or_default();
            std::fs::write(dir.join("front-proxy.crt"), leaf)?;
            std::fs::write(dir.join("front-proxy.key"), &proxy.key_pem)?;
            let settings = AuthenticationSettings::new(
                None,
                Some(RequestHeaderSettings::with_default_headers(
                    CaBundle::from_pem(&ca_cert, "front-proxy CA")?,
                    vec!["front-proxy-client".into()],
                )),
            );
            Auth::Delegated(Arc::new(DelegatedAuth::new(
                DelegatedAuthConfig::default(),
                settings,
                None,
                Arc::new(AllowAll),
            )))
        }
        other => return Err(format!("unknown --auth {other}").into()),
    };

    let config = AdapterConfig {
        bind,
        tls: ServingTls::SelfSigned {
            names: vec!["localhost".into()],
        },
        ..AdapterConfig::default()
    };
    let server = AdapterServer::bind(config, Arc::new(CachedValues(values)), auth).await?;
    std::fs::write(
        dir.join("serving-ca.pem"),
        server.serving_cert_pem().unwrap_or_default(),
    )?;
    let port = server.local_addr()?.port();
    let handle = server.spawn()?;
    std::fs::write(dir.join("port"), port.to_string())?;
    eprintln!(
        "bench adapter serving {objects} ScaledObjects on 127.0.0.1:{port} (auth: {auth_mode})"
    );

    // Until stdin closes (the script holds it open) or Ctrl-C.
    let stdin_closed = tokio::task::spawn_blocking(|| {
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
    });
    tokio::select! {
        _ = stdin_closed => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    handle.shutdown().await;
    Ok(())
}
