//! Deleting a ScaledObject (its finalizer): stop polling, delete the HPA, restore the replicas
//! when asked, forget it.

use std::sync::Arc;

use kube::runtime::controller::Action;
use tracing::warn;

use super::{Context, Error, hpa_sync};
use crate::crd::ScaledObject;
use crate::policy::event::{EVENT_DELETED, EventType, MESSAGE_DELETED};
use crate::runtime::ObjectKey;
use crate::target::Target;

/// Runs when the object is being deleted, before the finalizer is removed.
pub(super) async fn cleanup(so: Arc<ScaledObject>, ctx: &Context) -> Result<Action, Error> {
    let key = ObjectKey::of(&so);
    ctx.stop(&key).await;
    let status = so.status.clone().unwrap_or_default();
    let hpa_name = status
        .hpa_name
        .clone()
        .unwrap_or_else(|| so.spec.hpa_name(&key.name));
    hpa_sync::delete(ctx, &key.namespace, &hpa_name).await?;
    if so.spec.restore_to_original_replica_count()
        && let Some(original) = status.original_replica_count
    {
        restore_replicas(ctx, &so, &key, original).await;
    }
    ctx.forget(&key);
    ctx.publish(
        &so,
        EventType::Warning,
        EVENT_DELETED,
        MESSAGE_DELETED.to_owned(),
    )
    .await;
    Ok(Action::await_change())
}

/// `advanced.restoreToOriginalReplicaCount`: best effort, the object is going either way.
async fn restore_replicas(ctx: &Context, so: &ScaledObject, key: &ObjectKey, original: i32) {
    let target = &so.spec.scale_target_ref;
    match Target::resolve(&ctx.client, &ctx.discovery, &key.namespace, target).await {
        Ok((target, current)) if current != original => {
            if let Err(e) = target.scale_to(original).await {
                warn!(scaledobject = %key, "cannot restore {original} replicas: {e}");
            }
        }
        Ok(_) => {}
        Err(e) => warn!(scaledobject = %key, "cannot restore replicas: {e}"),
    }
}
