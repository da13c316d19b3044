//! What the metrics adapter serves: the value of one metric of one ScaledObject, from the
//! runtimes the reconciler built.
//!
//! * `useCachedMetrics` triggers answer from the last poll (KEDA's behaviour).
//! * Other triggers query their scaler, but concurrent requests for the same metric share one
//!   query (single flight), and a value younger than a short dedupe window is reused: the HPA's
//!   5 workers and a kubectl user asking at once cost the data source one round trip.
//! * When a trigger keeps failing past `fallback.failureThreshold`, the fallback value replaces
//!   the error, as KEDA computes it.
//! * `composite-metric` evaluates the `scalingModifiers` formula over every named trigger.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use futures::FutureExt as _;
use futures::future::{BoxFuture, Shared};
use scaler_core::{MetricTargetType, MetricValue};

use crate::crd::MetricType;
use crate::hpa::COMPOSITE_METRIC_NAME;
use crate::policy::fallback::{self, FallbackSettings};
use crate::policy::modifiers;
use crate::runtime::{CachedMetric, ObjectKey, Runtimes, ScaledObjectRuntime};

/// Why a metric could not be served.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MetricError {
    /// No such ScaledObject is served here.
    #[error("ScaledObject {0} not found")]
    ScaledObjectNotFound(String),
    /// The ScaledObject has no such metric.
    #[error("metric {metric} not found for ScaledObject {scaled_object}")]
    MetricNotFound {
        /// The ScaledObject.
        scaled_object: String,
        /// The metric asked for.
        metric: String,
    },
    /// The trigger failed and no fallback applies (KEDA's message).
    #[error("metric:{metric} encountered error: {message}")]
    Failed {
        /// The metric.
        metric: String,
        /// What failed.
        message: String,
    },
}

type Flight = Shared<BoxFuture<'static, Result<Vec<MetricValue>, String>>>;

/// Serves metric values from the runtimes.
#[derive(Clone)]
pub struct MetricsSource {
    runtimes: Runtimes,
    timeout: Duration,
    dedupe: Duration,
    flights: Arc<Mutex<HashMap<(ObjectKey, String), Flight>>>,
}

/// How long a freshly read value is reused for other requests.
pub const DEFAULT_DEDUPE_WINDOW: Duration = Duration::from_secs(2);

impl MetricsSource {
    /// A source over `runtimes`, querying scalers under `timeout`.
    pub fn new(runtimes: Runtimes, timeout: Duration, dedupe: Duration) -> Self {
        Self {
            runtimes,
            timeout,
            dedupe,
            flights: Arc::default(),
        }
    }

    /// The values of `metric` (matched case-insensitively) of ScaledObject `namespace/name`.
    pub async fn metric(
        &self,
        namespace: &str,
        name: &str,
        metric: &str,
    ) -> Result<Vec<MetricValue>, MetricError> {
        let key = ObjectKey {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        };
        let rt = self
            .runtimes
            .get(&key)
            .ok_or_else(|| MetricError::ScaledObjectNotFound(key.to_string()))?;
        if metric.eq_ignore_ascii_case(COMPOSITE_METRIC_NAME) {
            return self.composite(&rt).await;
        }
        let (trigger, spec) = rt
            .triggers
            .iter()
            .enumerate()
            .find_map(|(i, t)| {
                t.specs
                    .iter()
                    .find(|s| s.name.eq_ignore_ascii_case(metric))
                    .map(|s| (i, s.clone()))
            })
            .ok_or_else(|| MetricError::MetricNotFound {
                scaled_object: key.to_string(),
                metric: metric.to_owned(),
            })?;
        match self.read(&rt, trigger, &spec.name).await {
            Ok(values) => Ok(values),
            Err(message) => match self.fallback_value(&rt, &spec).await {
                Some(value) => Ok(vec![MetricValue::new(spec.name.clone(), value)]),
                None => Err(MetricError::Failed {
                    metric: spec.name.clone(),
                    message,
                }),
            },
        }
    }

    /// One metric's values: cached, deduplicated, or queried once for all concurrent askers.
    async fn read(
        &self,
        rt: &Arc<ScaledObjectRuntime>,
        trigger: usize,
        metric: &str,
    ) -> Result<Vec<MetricValue>, String> {
        let use_cache = rt
            .triggers
            .get(trigger)
            .is_some_and(|t| t.use_cached_metrics);
        if let Some(cached) = rt.cached(metric) {
            let age = SystemTime::now()
                .duration_since(cached.at)
                .unwrap_or_default();
            if use_cache || (age <= self.dedupe && cached.result.is_ok()) {
                return cached.result;
            }
        }
        let flight_key = (rt.key.clone(), metric.to_ascii_lowercase());
        let flight = {
            let mut flights = self.flights.lock().unwrap_or_else(PoisonError::into_inner);
            flights
                .entry(flight_key.clone())
                .or_insert_with(|| {
                    let rt = Arc::clone(rt);
                    let metric = metric.to_owned();
                    let timeout = self.timeout;
                    async move {
                        let Some(t) = rt.triggers.get(trigger) else {
                            return Err("trigger is gone".to_owned());
                        };
                        match tokio::time::timeout(timeout, t.scaler.metrics_and_activity(&metric))
                            .await
                        {
                            Ok(Ok(m)) => {
                                rt.record(
                                    &metric,
                                    CachedMetric {
                                        result: Ok(m.metrics.clone()),
                                        at: SystemTime::now(),
                                    },
                                );
                                Ok(m.metrics)
                            }
                            Ok(Err(e)) => Err(e.to_string()),
                            Err(_) => Err(format!(
                                "{}: no answer from the source within {timeout:?}",
                                t.id
                            )),
                        }
                    }
                    .boxed()
                    .shared()
                })
                .clone()
        };
        let result = flight.await;
        self.flights
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&flight_key);
        result
    }

    /// KEDA's fallback value for a failing metric, if its failures exceed the threshold.
    async fn fallback_value(
        &self,
        rt: &ScaledObjectRuntime,
        spec: &scaler_core::MetricSpec,
    ) -> Option<f64> {
        let settings = FallbackSettings::from_spec(&rt.object.spec)?;
        let status = rt.status.current().await;
        let failures = fallback::failures(status.health.as_ref()?, &spec.name);
        if !settings.is_active_for(failures) {
            return None;
        }
        let current = rt.target.replicas().await.ok()?;
        let replicas = settings.replicas_for(current);
        let target_type = match spec.target.target_type {
            MetricTargetType::Value => MetricType::Value,
            MetricTargetType::AverageValue => MetricType::AverageValue,
        };
        let ready = match target_type {
            MetricType::Value => rt.target.ready_replicas().await.ok()?,
            _ => 0,
        };
        fallback::fallback_metric_value(target_type, spec.target.value.as_f64(), replicas, ready)
            .ok()
    }

    /// `composite-metric`: the formula over every named trigger's current value.
    async fn composite(
        &self,
        rt: &Arc<ScaledObjectRuntime>,
    ) -> Result<Vec<MetricValue>, MetricError> {
        let spec = &rt.object.spec;
        let not_found = || MetricError::MetricNotFound {
            scaled_object: rt.key.to_string(),
            metric: COMPOSITE_METRIC_NAME.to_owned(),
        };
        let (m, formula) = spec
            .scaling_modifiers()
            .zip(rt.formula.as_deref())
            .ok_or_else(not_found)?;
        let settings = FallbackSettings::from_spec(spec);
        let health = rt.status.current().await.health.unwrap_or_default();
        let mut values: BTreeMap<String, Option<f64>> = BTreeMap::new();
        for (i, t) in rt.triggers.iter().enumerate() {
            let Some(name) = t.id.name.clone() else {
                continue;
            };
            for s in &t.specs {
                let v = match self.read(rt, i, &s.name).await {
                    Ok(v) => Some(v.iter().map(|v| v.value.as_f64()).sum()),
                    Err(e) => {
                        let failing = settings
                            .is_some_and(|f| f.is_active_for(fallback::failures(&health, &s.name)));
                        if !failing {
                            return Err(MetricError::Failed {
                                metric: s.name.clone(),
                                message: e,
                            });
                        }
                        None
                    }
                };
                values.insert(name.clone(), v);
            }
        }
        match formula.evaluate(&values) {
            Ok(v) => Ok(vec![MetricValue::new(COMPOSITE_METRIC_NAME, v)]),
            Err(e) => {
                // With a fallback, a formula that cannot be evaluated yields fallback.replicas × target.
                let target = m
                    .target
                    .as_deref()
                    .and_then(|t| modifiers::parse_target(t).ok());
                match (settings, target) {
                    (Some(f), Some(target)) => Ok(vec![MetricValue::new(
                        COMPOSITE_METRIC_NAME,
                        f64::from(f.replicas) * target,
                    )]),
                    _ => Err(MetricError::Failed {
                        metric: COMPOSITE_METRIC_NAME.to_owned(),
                        message: e,
                    }),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::atomic::{AtomicUsize, Ordering};

    use async_trait::async_trait;
    use scaler_core::{
        MetricSpec, MetricTarget, MetricsAndActivity, Scaler, ScalerError, TriggerId,
    };

    use super::*;
    use crate::crd::ScaledObject;
    use crate::runtime::TriggerRuntime;
    use crate::status::StatusWriter;

    /// A scaler that counts how often it is asked (the adapter's caller, not a data source).
    struct Counting {
        calls: Arc<AtomicUsize>,
        delay: Duration,
    }

    #[async_trait]
    impl Scaler for Counting {
        async fn metric_specs(&self) -> Result<Vec<MetricSpec>, ScalerError> {
            Ok(vec![])
        }
        async fn metrics_and_activity(
            &self,
            metric: &str,
        ) -> Result<MetricsAndActivity, ScalerError> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(self.delay).await;
            Ok(MetricsAndActivity {
                metrics: vec![MetricValue::new(metric, n as f64 + 1.0)],
                active: true,
            })
        }
    }

    async fn source(use_cached: bool, dedupe: Duration) -> (MetricsSource, Arc<AtomicUsize>) {
        // The target and status writer are never reached by these reads; the client points at
        // a closed port so an accidental call fails loudly.
        let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
        let client = kube::Client::try_from(config).unwrap();
        let so: ScaledObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
            "metadata": {"name": "so", "namespace": "ns"},
            "spec": {"scaleTargetRef": {"name": "web"}, "triggers": [{"type": "count", "metadata": {}}]}
        }))
        .unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let target = crate::target::Target::for_tests(client.clone(), "ns", "web");
        let rt = ScaledObjectRuntime {
            key: ObjectKey {
                namespace: "ns".into(),
                name: "so".into(),
            },
            object: so,
            fingerprint: 0,
            triggers: vec![TriggerRuntime {
                id: TriggerId {
                    index: 0,
                    trigger_type: "count".into(),
                    name: None,
                },
                scaler: Arc::new(Counting {
                    calls: Arc::clone(&calls),
                    delay: Duration::from_millis(50),
                }),
                specs: vec![MetricSpec {
                    name: "s0-count".into(),
                    target: MetricTarget::new(MetricTargetType::AverageValue, 1.0),
                }],
                use_cached_metrics: use_cached,
            }],
            formula: None,
            target,
            status: Arc::new(StatusWriter::new(
                kube::Api::namespaced(client, "ns"),
                "so".into(),
                Default::default(),
            )),
            metrics: Default::default(),
        };
        let runtimes = Runtimes::default();
        runtimes.insert(Arc::new(rt));
        (
            MetricsSource::new(runtimes, Duration::from_secs(1), dedupe),
            calls,
        )
    }

    #[tokio::test]
    async fn concurrent_requests_share_one_query() {
        let (src, calls) = source(false, Duration::ZERO).await;
        let asks = (0..20).map(|_| src.metric("ns", "so", "S0-COUNT"));
        let results = futures::future::join_all(asks).await;
        assert!(
            results
                .iter()
                .all(|r| r.as_ref().unwrap()[0].value.to_string() == "1")
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // Once done, the next request queries again (no dedupe window here).
        src.metric("ns", "so", "s0-count").await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_fresh_value_is_reused_within_the_dedupe_window() {
        let (src, calls) = source(false, Duration::from_secs(60)).await;
        src.metric("ns", "so", "s0-count").await.unwrap();
        src.metric("ns", "so", "s0-count").await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn unknown_objects_and_metrics_are_not_found() {
        let (src, _) = source(false, Duration::ZERO).await;
        assert_eq!(
            src.metric("ns", "nope", "s0-count").await,
            Err(MetricError::ScaledObjectNotFound("ns/nope".into()))
        );
        assert!(matches!(
            src.metric("ns", "so", "s1-other").await,
            Err(MetricError::MetricNotFound { .. })
        ));
    }
}
