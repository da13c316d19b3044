//! One poll of one ScaledObject: query every trigger, decide, act, record.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use chrono::{TimeDelta, Utc};
use kube::Resource as _;
use tracing::{debug, warn};

use crate::events::EventPublisher;
use crate::policy::conditions::{self, ConditionChange, ConditionStatus, ConditionType};
use crate::policy::decision::{self, Action, CompositeOutcome, PollInput, TriggerOutcome};
use crate::policy::event::Event;
use crate::policy::fallback::{self, FallbackSettings};
use crate::policy::modifiers;
use crate::policy::pause::Pause;
use crate::runtime::{CachedMetric, ScaledObjectRuntime};
use crate::telemetry::{Metrics, ScalerLabels, loop_labels};

/// What polls share.
pub struct PollContext {
    /// Events on ScaledObjects.
    pub events: EventPublisher,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Timeout of each trigger query (`KEDA_HTTP_DEFAULT_TIMEOUT`).
    pub timeout: Duration,
}

impl PollContext {
    /// Records how late a poll started.
    pub fn observe_lag(&self, rt: &ScaledObjectRuntime, lag: Duration) {
        let secs = lag.as_secs_f64();
        self.metrics.scale_loop_lag.observe(secs);
        self.metrics
            .scale_loop_latency
            .get_or_create(&loop_labels(&rt.key.namespace, &rt.key.name))
            .set(secs);
    }

    async fn publish(&self, rt: &ScaledObjectRuntime, ev: &Event) {
        if let Err(e) = self
            .events
            .publish(&rt.object.object_ref(&()), ev.type_, ev.reason, &ev.message)
            .await
        {
            warn!(scaledobject = %rt.key, "cannot publish event {}: {e}", ev.reason);
        }
    }
}

/// One metric's result in this poll.
struct Read {
    trigger: usize,
    metric: String,
    result: Result<(Vec<scaler_core::MetricValue>, bool), String>,
    took: Duration,
}

fn trigger_label(rt: &ScaledObjectRuntime, index: usize) -> String {
    rt.triggers
        .get(index)
        .map(|t| {
            t.id.name
                .clone()
                .unwrap_or_else(|| t.id.trigger_type.clone())
        })
        .unwrap_or_default()
}

/// Queries every metric of every trigger concurrently, each under the trigger's timeout.
async fn read_all(rt: &ScaledObjectRuntime, timeout: Duration) -> Vec<Read> {
    let reads = rt.triggers.iter().enumerate().flat_map(|(i, t)| {
        t.specs.iter().map(move |spec| {
            let scaler = Arc::clone(&t.scaler);
            let metric = spec.name.clone();
            async move {
                let started = Instant::now();
                let result =
                    match tokio::time::timeout(timeout, scaler.metrics_and_activity(&metric)).await
                    {
                        Ok(Ok(m)) => Ok((m.metrics, m.active)),
                        Ok(Err(e)) => Err(e.to_string()),
                        Err(_) => Err(format!(
                            "{}: no answer from the source within {timeout:?}",
                            t.id
                        )),
                    };
                Read {
                    trigger: i,
                    metric,
                    result,
                    took: started.elapsed(),
                }
            }
        })
    });
    futures::future::join_all(reads).await
}

/// Polls `rt` once.
pub async fn poll(ctx: &PollContext, rt: &ScaledObjectRuntime) {
    let so = &rt.object;
    let spec = &so.spec;
    let reads = read_all(rt, ctx.timeout).await;
    let status = rt.status.current().await;
    let fallback = FallbackSettings::from_spec(spec);
    let mut health = status.health.clone().unwrap_or_default();
    let now = SystemTime::now();

    let mut outcomes = Vec::new();
    let mut formula_values: BTreeMap<String, Option<f64>> = BTreeMap::new();
    for read in &reads {
        let label = trigger_label(rt, read.trigger);
        let labels = ctx.metrics.scaler_series(&ScalerLabels {
            namespace: rt.key.namespace.clone(),
            metric: read.metric.clone(),
            scaled_object: rt.key.name.clone(),
            scaler: label.clone(),
            trigger_index: read.trigger.to_string(),
            type_: "scaledobject".into(),
        });
        ctx.metrics
            .scaler_metrics_latency
            .get_or_create(&labels)
            .set(read.took.as_secs_f64());
        let failures = match &fallback {
            Some(_) => fallback::record_metric(&mut health, &read.metric, read.result.is_ok()),
            None => 0,
        };
        let (active, error) = match &read.result {
            Ok((values, active)) => {
                let value: f64 = values.iter().map(|v| v.value.as_f64()).sum();
                ctx.metrics
                    .scaler_metrics_value
                    .get_or_create(&labels)
                    .set(value);
                ctx.metrics
                    .scaler_active
                    .get_or_create(&labels)
                    .set(if *active { 1.0 } else { 0.0 });
                (*active, None)
            }
            Err(e) => {
                ctx.metrics.scaler_errors.get_or_create(&labels).inc();
                warn!(scaledobject = %rt.key, "{e}");
                (false, Some(e.clone()))
            }
        };
        if let Some(name) = rt
            .triggers
            .get(read.trigger)
            .and_then(|t| t.id.name.clone())
        {
            let value = match &read.result {
                Ok((values, _)) => Some(values.iter().map(|v| v.value.as_f64()).sum()),
                // A failing trigger is nil in the formula once the fallback applies to it.
                Err(_) if fallback.is_some_and(|f| f.is_active_for(failures)) => None,
                Err(_) => None,
            };
            formula_values.insert(name, value);
        }
        rt.record(
            &read.metric,
            CachedMetric {
                result: read.result.clone().map(|(v, _)| v),
                at: now,
            },
        );
        outcomes.push(TriggerOutcome {
            name: label,
            metric_name: read.metric.clone(),
            active,
            error,
            resource: false,
            consecutive_failures: failures,
        });
    }
    for t in spec.triggers.iter().filter(|t| t.is_resource()) {
        outcomes.push(TriggerOutcome {
            name: t.name.clone().unwrap_or_else(|| t.type_.clone()),
            metric_name: t.type_.clone(),
            resource: true,
            ..Default::default()
        });
    }

    let composite = spec
        .scaling_modifiers()
        .zip(rt.formula.as_deref())
        .map(|(m, formula)| {
            let value = formula
                .evaluate(&formula_values)
                .map_err(|e| warn!(scaledobject = %rt.key, "{e}"))
                .ok();
            if let Some(v) = value {
                rt.record(
                    crate::hpa::COMPOSITE_METRIC_NAME,
                    CachedMetric {
                        result: Ok(vec![scaler_core::MetricValue::new(
                            crate::hpa::COMPOSITE_METRIC_NAME,
                            v,
                        )]),
                        at: now,
                    },
                );
            }
            CompositeOutcome {
                value,
                activation_target: modifiers::parse_activation_target(
                    m.activation_target.as_deref(),
                )
                .unwrap_or(0.0),
            }
        });

    let read = match rt.target.read().await {
        Ok(r) => r,
        Err(e) => {
            let msg = format!("failed to get current replicas of the scale target: {e}");
            warn!(scaledobject = %rt.key, "{msg}");
            let _ = rt
                .status
                .update(|s| {
                    ConditionChange::set(
                        ConditionStatus::False,
                        conditions::REASON_ERROR_GETTING_REPLICAS,
                        msg.as_str(),
                    )
                    .apply(s, ConditionType::Ready);
                })
                .await;
            return;
        }
    };

    let current_replicas = read.replicas;
    let annotations = so.metadata.annotations.clone().unwrap_or_default();
    let input = PollInput {
        now: Utc::now(),
        creation_timestamp: so
            .metadata
            .creation_timestamp
            .as_ref()
            .and_then(decision::from_k8s_time),
        last_active_time: status
            .last_active_time
            .as_ref()
            .and_then(decision::from_k8s_time),
        current_replicas,
        min_replica_count: spec.min_replica_count,
        idle_replica_count: spec.idle_replica_count,
        max_replica_count: spec.max_replica_count(),
        cooldown: TimeDelta::seconds(i64::from(spec.cooldown_period())),
        initial_cooldown: TimeDelta::seconds(i64::from(spec.initial_cooldown_period())),
        triggers: outcomes,
        fallback,
        composite,
        pause: Pause::from_annotations(&annotations),
        previously_paused: conditions::is(&status, ConditionType::Paused, ConditionStatus::True),
        scale_target_kind: status
            .scale_target_kind
            .clone()
            .unwrap_or_else(|| rt.target.kind_string()),
        namespace: rt.key.namespace.clone(),
        scale_target_name: rt.target.name().to_owned(),
    };
    let mut decision = decision::decide(&input);
    if let Action::ScaleTo { replicas, .. } = decision.action {
        match rt.target.scale_from(&read, replicas).await {
            Ok(()) => {
                debug!(scaledobject = %rt.key, from = current_replicas, to = replicas, "scaled")
            }
            Err(e) if e.is_conflict() => {
                // Scaled by someone else since this poll read it: the next poll decides again
                // on what is there then.
                debug!(scaledobject = %rt.key, to = replicas, "target changed since read; not scaled");
                decision = decision.superseded(&input);
            }
            Err(e) => {
                warn!(scaledobject = %rt.key, "failed to scale to {replicas}: {e}");
                decision = decision.scale_failed(&input);
            }
        }
    }

    let was_fallback = conditions::is(&status, ConditionType::Fallback, ConditionStatus::True);
    let fallback_condition = fallback::fallback_condition(fallback.as_ref(), &health);
    let is_fallback =
        fallback.is_some_and(|f| fallback::any_fallback_active(&health, f.failure_threshold));
    let mut events = decision.events.clone();
    if fallback.is_some() {
        events.extend(fallback::transition_event(was_fallback, is_fallback));
    }
    for ev in &events {
        ctx.publish(rt, ev).await;
    }

    let written = rt
        .status
        .update(|s| {
            s.last_active_time = decision.last_active_time.and_then(decision::to_k8s_time);
            s.triggers_activity = Some(
                decision
                    .triggers_activity
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            crate::crd::TriggerActivityStatus { is_active: *v },
                        )
                    })
                    .collect(),
            );
            if fallback.is_some() {
                s.health = Some(health.clone());
            }
            decision.ready.apply(s, ConditionType::Ready);
            decision.active_condition.apply(s, ConditionType::Active);
            decision.paused.apply(s, ConditionType::Paused);
            fallback_condition.apply(s, ConditionType::Fallback);
        })
        .await;
    if let Err(e) = written {
        warn!(scaledobject = %rt.key, "cannot write status: {e}");
    }
}
