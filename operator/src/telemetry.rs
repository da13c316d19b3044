//! Prometheus metrics with KEDA's names (so dashboards keep working) plus kedge's own, and
//! logging setup.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// A label set: `prometheus-client`'s derive cannot produce KEDA's camelCase label names
/// (`scaledObject`, `triggerIndex`), so label sets are plain name/value pairs.
pub type Labels = Vec<(&'static str, String)>;

/// Labels of KEDA's per-scaler metrics.
#[derive(Clone, Debug)]
pub struct ScalerLabels {
    /// Namespace of the ScaledObject.
    pub namespace: String,
    /// Metric name.
    pub metric: String,
    /// ScaledObject name.
    pub scaled_object: String,
    /// Trigger name, or the trigger type when unnamed.
    pub scaler: String,
    /// Trigger index.
    pub trigger_index: String,
    /// `scaledobject`.
    pub type_: String,
}

impl ScalerLabels {
    /// As KEDA names them.
    pub fn labels(&self) -> Labels {
        vec![
            ("namespace", self.namespace.clone()),
            ("metric", self.metric.clone()),
            ("scaledObject", self.scaled_object.clone()),
            ("scaler", self.scaler.clone()),
            ("triggerIndex", self.trigger_index.clone()),
            ("type", self.type_.clone()),
        ]
    }
}

/// Labels of per-object metrics (`namespace`, `scaledObject`).
pub fn object_labels(namespace: &str, scaled_object: &str) -> Labels {
    vec![
        ("namespace", namespace.to_owned()),
        ("scaledObject", scaled_object.to_owned()),
    ]
}

/// Labels of the scale-loop latency gauge (`namespace`, `type`, `resource`), as KEDA's.
pub fn loop_labels(namespace: &str, resource: &str) -> Labels {
    vec![
        ("namespace", namespace.to_owned()),
        ("type", "scaledobject".to_owned()),
        ("resource", resource.to_owned()),
    ]
}

/// Labels of reconcile metrics.
pub fn result_labels(result: &str) -> Labels {
    vec![("result", result.to_owned())]
}

/// kedge's metrics.
pub struct Metrics {
    /// `keda_scaler_metrics_value`.
    pub scaler_metrics_value: Family<Labels, Gauge<f64, AtomicU64>>,
    /// `keda_scaler_metrics_latency_seconds`.
    pub scaler_metrics_latency: Family<Labels, Gauge<f64, AtomicU64>>,
    /// `keda_scaler_active`.
    pub scaler_active: Family<Labels, Gauge<f64, AtomicU64>>,
    /// `keda_scaler_detail_errors_total`.
    pub scaler_errors: Family<Labels, Counter>,
    /// `keda_scaled_object_errors_total`.
    pub scaled_object_errors: Family<Labels, Counter>,
    /// `keda_scaled_object_paused`.
    pub scaled_object_paused: Family<Labels, Gauge>,
    /// `keda_internal_scale_loop_latency_seconds`: how late the last poll started.
    pub scale_loop_latency: Family<Labels, Gauge<f64, AtomicU64>>,
    /// `kedge_scale_loop_lag_seconds`: the same, as a histogram over all objects.
    pub scale_loop_lag: Histogram,
    /// `kedge_reconcile_duration_seconds`.
    pub reconcile_duration: Histogram,
    /// `kedge_reconciles_total`.
    pub reconciles: Family<Labels, Counter>,
    /// The per-scaler label sets each object has series under, so they can be removed with it.
    series: Mutex<HashMap<(String, String), HashSet<Labels>>>,
}

impl Metrics {
    /// Creates the metrics and registers them.
    pub fn new(registry: &mut Registry) -> Self {
        let m = Self {
            scaler_metrics_value: Family::default(),
            scaler_metrics_latency: Family::default(),
            scaler_active: Family::default(),
            scaler_errors: Family::default(),
            scaled_object_errors: Family::default(),
            scaled_object_paused: Family::default(),
            scale_loop_latency: Family::default(),
            scale_loop_lag: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
            reconcile_duration: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            reconciles: Family::default(),
            series: Mutex::default(),
        };
        let keda = registry.sub_registry_with_prefix("keda");
        keda.register(
            "scaler_metrics_value",
            "The current value for each scaler's metric that would be used by the HPA in computing the target average",
            m.scaler_metrics_value.clone(),
        );
        keda.register(
            "scaler_metrics_latency_seconds",
            "The latency of retrieving current metric from each scaler",
            m.scaler_metrics_latency.clone(),
        );
        keda.register(
            "scaler_active",
            "Activity of a Scaler Metric",
            m.scaler_active.clone(),
        );
        keda.register(
            "scaler_detail_errors",
            "The total number of errors encountered for each scaler",
            m.scaler_errors.clone(),
        );
        keda.register(
            "scaled_object_errors",
            "Number of scaled object errors",
            m.scaled_object_errors.clone(),
        );
        keda.register(
            "scaled_object_paused",
            "Indicates whether a ScaledObject is paused",
            m.scaled_object_paused.clone(),
        );
        keda.register(
            "internal_scale_loop_latency_seconds",
            "Total deviation (in seconds) between the expected execution time and the actual execution time for the scaling loop",
            m.scale_loop_latency.clone(),
        );
        let kedge = registry.sub_registry_with_prefix("kedge");
        kedge.register(
            "scale_loop_lag_seconds",
            "How late each poll started, over all ScaledObjects",
            m.scale_loop_lag.clone(),
        );
        kedge.register(
            "reconcile_duration_seconds",
            "Duration of ScaledObject reconciles",
            m.reconcile_duration.clone(),
        );
        kedge.register(
            "reconciles",
            "ScaledObject reconciles by result",
            m.reconciles.clone(),
        );
        m
    }
}

impl Metrics {
    /// The labels of one scaler metric of `namespace/name`, remembered so that
    /// [`Metrics::forget_object`] can remove its series.
    pub fn scaler_series(&self, labels: &ScalerLabels) -> Labels {
        let set = labels.labels();
        let mut series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let of_object = series
            .entry((labels.namespace.clone(), labels.scaled_object.clone()))
            .or_default();
        if !of_object.contains(&set) {
            of_object.insert(set.clone());
        }
        set
    }

    /// Removes every series of the ScaledObject `namespace/name`: it is gone, and a dashboard
    /// must not keep showing its last values (nor kedge keep them in memory).
    pub fn forget_object(&self, namespace: &str, name: &str) {
        let scaler_series = self
            .series
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(namespace.to_owned(), name.to_owned()))
            .unwrap_or_default();
        for labels in &scaler_series {
            self.scaler_metrics_value.remove(labels);
            self.scaler_metrics_latency.remove(labels);
            self.scaler_active.remove(labels);
            self.scaler_errors.remove(labels);
        }
        let object = object_labels(namespace, name);
        self.scaled_object_errors.remove(&object);
        self.scaled_object_paused.remove(&object);
        self.scale_loop_latency
            .remove(&loop_labels(namespace, name));
    }
}

/// Log output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Sets up `tracing` with `RUST_LOG` (default `info`).
pub fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    use std::io::IsTerminal as _;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    // A second init (tests) is harmless; ignore it.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(registry: &Registry) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, registry);
        out
    }

    #[test]
    fn a_forgotten_object_leaves_no_series_behind() {
        let mut registry = Registry::default();
        let m = Metrics::new(&mut registry);
        for (name, metric) in [("gone", "s0-cron"), ("kept", "s0-cron")] {
            let labels = m.scaler_series(&ScalerLabels {
                namespace: "ns".into(),
                metric: metric.into(),
                scaled_object: name.into(),
                scaler: "cron".into(),
                trigger_index: "0".into(),
                type_: "scaledobject".into(),
            });
            m.scaler_metrics_value.get_or_create(&labels).set(1.0);
            m.scaler_errors.get_or_create(&labels).inc();
            m.scale_loop_latency
                .get_or_create(&loop_labels("ns", name))
                .set(0.1);
            m.scaled_object_paused
                .get_or_create(&object_labels("ns", name))
                .set(0);
        }
        assert!(encode(&registry).contains(r#"scaledObject="gone""#));
        m.forget_object("ns", "gone");
        let text = encode(&registry);
        assert!(!text.contains(r#"scaledObject="gone""#), "{text}");
        assert!(!text.contains(r#"resource="gone""#), "{text}");
        assert!(text.contains(r#"scaledObject="kept""#), "{text}");
    }
}
