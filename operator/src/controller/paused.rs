//! A fully paused ScaledObject (`autoscaling.keda.sh/paused`, `paused-replicas`): no polling,
//! no HPA, the target held at the paused count if one is given.

use kube::runtime::controller::Action;

use super::not_ready::Halt;
use super::not_ready::NotReady;
use super::{Context, hpa_sync};
use crate::crd::ScaledObject;
use crate::policy::conditions::{self, ConditionStatus, ConditionType};
use crate::policy::pause::Pause;
use crate::runtime::ObjectKey;
use crate::status::StatusWriter;
use crate::target::Target;

/// Applies the pause plan: stop polling, delete the HPA, scale to `paused-replicas`.
pub(super) async fn hold(
    ctx: &Context,
    so: &ScaledObject,
    key: &ObjectKey,
    writer: &StatusWriter,
    pause: Pause,
) -> Result<Action, Halt> {
    ctx.stop(key).await;
    let status = writer.current().await;
    let hpa_name = status
        .hpa_name
        .clone()
        .unwrap_or_else(|| so.spec.hpa_name(&key.name));
    hpa_sync::delete(ctx, &key.namespace, &hpa_name).await?;
    let target = match pause.paused_replicas {
        Some(_) => Some(
            Target::resolve(
                &ctx.client,
                &ctx.discovery,
                &key.namespace,
                &so.spec.scale_target_ref,
            )
            .await
            .map_err(NotReady::ScaleTarget)?,
        ),
        None => None,
    };
    let previously_paused = conditions::is(&status, ConditionType::Paused, ConditionStatus::True);
    let plan = pause.plan(
        previously_paused,
        target.as_ref().map(|(_, current)| *current),
    );
    if let (Some(replicas), Some((target, _))) = (plan.scale_to, &target) {
        target
            .scale_to(replicas)
            .await
            .map_err(|source| NotReady::PausedReplicas { replicas, source })?;
    }
    let paused_replicas = pause.paused_replicas;
    let (paused, ready) = (plan.paused.clone(), plan.ready.clone());
    writer
        .update(move |s| {
            s.paused_replica_count = paused_replicas;
            s.hpa_name = None;
            if let Some(ready) = ready {
                ready.apply(s, ConditionType::Ready);
            }
            paused.apply(s, ConditionType::Paused);
        })
        .await
        .map_err(super::Error::from)?;
    for e in plan.events {
        ctx.publish(so, e.type_, e.reason, e.message).await;
    }
    ctx.metrics
        .scaled_object_paused
        .get_or_create(&crate::telemetry::object_labels(&key.namespace, &key.name))
        .set(1);
    Ok(Action::await_change())
}
