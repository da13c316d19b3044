//! The scalers of a ScaledObject: reused (with their connections) when nothing they are built
//! from changed, else built from the [`TriggerPlan`] and asked for their metric specs.

use std::sync::Arc;

use super::Context;
use super::not_ready::NotReady;
use crate::crd::ScaledObject;
use crate::policy::event::{EVENT_SCALER_FAILED, EventType};
use crate::runtime::{ScaledObjectRuntime, TriggerRuntime};
use crate::trigger_plan::TriggerPlan;

/// The scalers for this reconcile.
pub(super) struct Scalers {
    /// One per trigger of the plan, in spec order.
    pub triggers: Vec<TriggerRuntime>,
    /// Whether they are the previous runtime's, unchanged.
    pub reused: bool,
    /// The plan's fingerprint.
    pub fingerprint: u64,
}

/// Reuses `previous`'s scalers when the plan's fingerprint matches, else builds new ones.
pub(super) async fn build_or_reuse(
    ctx: &Context,
    so: &ScaledObject,
    plan: &TriggerPlan,
    previous: Option<&ScaledObjectRuntime>,
) -> Result<Scalers, NotReady> {
    let fingerprint = plan.fingerprint();
    if let Some(p) = previous.filter(|p| p.fingerprint == fingerprint) {
        let triggers = p
            .triggers
            .iter()
            .map(|t| TriggerRuntime {
                id: t.id.clone(),
                scaler: Arc::clone(&t.scaler),
                specs: t.specs.clone(),
                use_cached_metrics: t.use_cached_metrics,
            })
            .collect();
        return Ok(Scalers {
            triggers,
            reused: true,
            fingerprint,
        });
    }
    let mut triggers = Vec::with_capacity(plan.scalers.len());
    for cfg in &plan.scalers {
        let scaler = match crate::access::build_scaler(&ctx.registry, cfg).await {
            Ok(s) => Arc::<dyn scaler_core::Scaler>::from(s),
            Err(e) => {
                ctx.publish(so, EventType::Warning, EVENT_SCALER_FAILED, e.to_string())
                    .await;
                return Err(NotReady::ScalerBuild(e));
            }
        };
        let specs = match tokio::time::timeout(cfg.timeout, scaler.metric_specs()).await {
            Ok(Ok(specs)) if !specs.is_empty() => specs,
            Ok(Ok(_)) => return Err(NotReady::EmptyMetricSpec(cfg.trigger.clone())),
            Ok(Err(e)) => return Err(NotReady::MetricSpecs(e)),
            Err(_) => {
                return Err(NotReady::MetricSpecsTimeout {
                    trigger: cfg.trigger.clone(),
                    timeout: cfg.timeout,
                });
            }
        };
        triggers.push(TriggerRuntime {
            id: cfg.trigger.clone(),
            scaler,
            specs,
            use_cached_metrics: cfg.use_cached_metrics,
        });
    }
    Ok(Scalers {
        triggers,
        reused: false,
        fingerprint,
    })
}
