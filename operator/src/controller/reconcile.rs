//! One reconcile of one ScaledObject, as the list of its steps. Each step returns what the next
//! needs, or stops the reconcile: with [`NotReady`] (the user must act: `Ready=False`, an Event,
//! polling stopped) or with [`Error`] (the API server failed: retried).

use std::sync::Arc;

use kube::ResourceExt as _;
use kube::runtime::controller::Action;
use tracing::warn;

use super::admit::{admit, ensure_name_label};
use super::install::{self, Built};
use super::not_ready::{Halt, NotReady};
use super::status::{self, Found};
use super::{Context, Error, hpa_sync, inputs, paused, scalers};
use crate::crd::ScaledObject;
use crate::policy::pause::Pause;
use crate::resolve::resolve_env;
use crate::runtime::ObjectKey;
use crate::target::Target;
use crate::trigger_plan::{TriggerContext, TriggerPlan};

/// Makes the cluster match `so`, or marks it not ready.
pub(super) async fn apply(so: Arc<ScaledObject>, ctx: &Context) -> Result<Action, Error> {
    let key = ObjectKey::of(&so);
    match steps(&key, so.clone(), ctx).await {
        Ok(action) => Ok(action),
        Err(Halt::NotReady(why)) => status::not_ready(ctx, &so, &key, why).await,
        Err(Halt::Retry(e)) => Err(e),
    }
}

async fn steps(key: &ObjectKey, so: Arc<ScaledObject>, ctx: &Context) -> Result<Action, Halt> {
    let so = ensure_name_label(ctx, key, so).await?;
    let writer = ctx.status_writer(&so);
    let pause = Pause::from_annotations(so.annotations());
    if pause.paused {
        return paused::hold(ctx, &so, key, &writer, pause).await;
    }
    let formula = admit(ctx, &so)?;
    let target_ref = &so.spec.scale_target_ref;
    let (target, current_replicas) =
        Target::resolve(&ctx.client, &ctx.discovery, &key.namespace, target_ref)
            .await
            .map_err(NotReady::ScaleTarget)?;
    let snapshot = inputs::gather(ctx, key, &so, &target).await?;
    let env = resolve_env(&snapshot, &key.namespace, target_ref).map_err(NotReady::Env)?;
    let place = TriggerContext {
        namespace: &key.namespace,
        scaled_object: &key.name,
        timeout: ctx.settings.timeout,
        address_guard: &ctx.settings.address_guard,
    };
    let plan = TriggerPlan::new(&snapshot, &ctx.settings.resolve, place, &so.spec, &env);
    plan.warnings
        .iter()
        .for_each(|w| warn!(scaledobject = %key, "{w}"));
    if let Some(e) = plan.errors.first() {
        return Err(NotReady::InvalidTrigger(e.clone()).into());
    }
    let previous = ctx.runtimes.get(key);
    let scalers = scalers::build_or_reuse(ctx, &so, &plan, previous.as_deref()).await?;
    let (current_hpa, resource) = (
        writer.current().await.hpa_name,
        plan.resource_metrics.clone(),
    );
    let hpa = hpa_sync::sync(
        ctx,
        &so,
        &target,
        &scalers.triggers,
        resource,
        &pause,
        current_hpa.as_deref(),
    )
    .await?;
    let scalers_reused = scalers.reused;
    let found = Found {
        target: &target,
        current_replicas,
        hpa: &hpa,
        pause: &pause,
        scalers_reused,
    };
    status::ready(ctx, &so, key, &writer, found).await?;
    let built = Built {
        writer,
        target,
        formula,
        plan,
        scalers,
        previous,
    };
    install::install(ctx, &so, key.clone(), built).await;
    ctx.succeeded(key);
    Ok(Action::requeue(ctx.settings.resync))
}
