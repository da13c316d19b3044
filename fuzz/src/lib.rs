//! What kedge's fuzz targets share: a readable text form of one trigger's configuration, and
//! the properties every scaler's factory must keep whatever it is given. See docs/fuzzing.md.
//!
//! # The trigger text form
//!
//! One entry per line; lines of any other shape are ignored, so every input means something:
//!
//! ```text
//! metadata.queueName=jobs
//! metadata.hostFromEnv=RABBIT_URL
//! env.RABBIT_URL=amqp://guest:guest@127.0.0.1:5672/
//! auth.password=s3cr3t
//! metricType=Value
//! podIdentity=aws
//! asMetricSource=true
//! ```
//!
//! In values, `\n` is a newline (for PEM blocks) and `\\` a backslash.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use scaler_core::{ScalerConfig, ScalerFactory, Secret};

/// A current-thread runtime (time enabled) for the async calls, made once per process.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a tokio runtime")
    })
}

fn unescape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

/// The configuration of trigger 0 of type `trigger_type` that `text` describes.
pub fn trigger_config(trigger_type: &str, text: &str) -> ScalerConfig {
    let mut cfg = ScalerConfig::new(trigger_type, 0);
    cfg.scaled_object = "fuzzed".to_owned();
    for line in text.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let value = unescape(value);
        if let Some(k) = key.strip_prefix("metadata.") {
            cfg.metadata.insert(k.to_owned(), value);
        } else if let Some(k) = key.strip_prefix("auth.") {
            cfg.auth_params.insert(k.to_owned(), Secret::new(value));
        } else if let Some(k) = key.strip_prefix("env.") {
            cfg.resolved_env.insert(k.to_owned(), Secret::new(value));
        } else {
            match key {
                "metricType" => cfg.metric_type = value,
                "podIdentity" => cfg.pod_identity = Some(value),
                "asMetricSource" => cfg.as_metric_source = value == "true",
                "useCachedMetrics" => cfg.use_cached_metrics = value == "true",
                "name" => cfg.trigger.name = Some(value),
                _ => {}
            }
        }
    }
    cfg
}

/// Every character moved one step within its class (`a`→`b`, `z`→`a`, `9`→`0`), others kept:
/// a value that differs from `value` everywhere it can while keeping its shape.
fn shifted(value: &str) -> String {
    value
        .chars()
        .map(|c| match c {
            'a'..='y' | 'A'..='Y' | '0'..='8' => char::from(c as u8 + 1),
            'z' => 'a',
            'Z' => 'A',
            '9' => '0',
            other => other,
        })
        .collect()
}

/// Values that may come from a Secret (auth params, the target's env) and are long and
/// distinctive enough that finding one in a message cannot be a coincidence of wording.
fn secret_values(cfg: &ScalerConfig) -> Vec<String> {
    let public: BTreeSet<&str> = cfg
        .metadata
        .iter()
        .flat_map(|(k, v)| [k.as_str(), v.as_str()])
        .chain(cfg.auth_params.keys().map(String::as_str))
        .chain(cfg.resolved_env.keys().map(String::as_str))
        .chain([cfg.metric_type.as_str()])
        .chain(cfg.trigger.name.as_deref())
        .collect();
    cfg.auth_params
        .values()
        .chain(cfg.resolved_env.values())
        .map(|s| s.expose().to_owned())
        .filter(|v| v.trim().len() >= 8 && shifted(v) != *v)
        .filter(|v| {
            let other = shifted(v);
            !public
                .iter()
                .any(|p| p.contains(v.as_str()) || p.contains(other.as_str()))
        })
        .collect()
}

/// `cfg` with `from` replaced by `to` in every auth param and env value.
fn replaced(cfg: &ScalerConfig, from: &str, to: &str) -> ScalerConfig {
    let mut out = cfg.clone();
    for map in [&mut out.auth_params, &mut out.resolved_env] {
        for value in map.values_mut() {
            if value.expose() == from {
                *value = Secret::new(to);
            }
        }
    }
    out
}

fn build_error(factory: &dyn ScalerFactory, cfg: &ScalerConfig) -> Option<String> {
    runtime()
        .block_on(async { factory.build(cfg) })
        .err()
        .map(|e| e.to_string())
}

/// Builds a scaler from the text form in `data` and checks what must hold for any input:
///
/// * building returns (no panic, no hang, no allocation out of proportion to the input);
/// * an error never quotes a value that came from auth params or the target's env (issue 15,
///   point 3): when a message holds such a value, the same trigger with the value shifted
///   ([`shifted`]) must not quote the shifted one either, which tells quoting from wording;
/// * a built scaler's metric names carry the trigger's `s0-` prefix (asked only when
///   `metric_specs` is true: it must not contact anything, which external scalers do);
/// * with `poll`, one poll returns (only for scalers that poll without I/O: cron).
pub fn fuzz_scaler(
    factory: &dyn ScalerFactory,
    trigger_type: &str,
    data: &[u8],
    metric_specs: bool,
    poll: bool,
) {
    let text = String::from_utf8_lossy(data);
    let cfg = trigger_config(trigger_type, &text);
    // Built inside the runtime, as the operator builds scalers.
    let built = runtime().block_on(async { factory.build(&cfg) });
    let scaler = match built {
        Err(e) => {
            let message = e.to_string();
            for value in secret_values(&cfg) {
                if !message.contains(&value) {
                    continue;
                }
                let other = shifted(&value);
                if let Some(again) = build_error(factory, &replaced(&cfg, &value, &other)) {
                    assert!(
                        !again.contains(&other),
                        "an error quotes a value from auth params or env: {again}"
                    );
                }
            }
            return;
        }
        Ok(scaler) => scaler,
    };
    if !metric_specs {
        return;
    }
    runtime().block_on(async {
        let specs = scaler
            .metric_specs()
            .await
            .expect("metric specs of a built scaler");
        assert!(!specs.is_empty(), "a built scaler has no metric");
        for spec in &specs {
            assert!(spec.name.starts_with("s0-"), "metric name {:?}", spec.name);
        }
        if poll {
            for spec in &specs {
                let _ = scaler.metrics_and_activity(&spec.name).await;
            }
        }
        scaler.close().await;
    });
}
