//! The last step: hand the built object to the scale loop and the adapter.

use std::sync::Arc;

use kube::ResourceExt as _;
use tracing::info;

use super::Context;
use super::scalers::Scalers;
use crate::crd::ScaledObject;
use crate::policy::event::{
    EVENT_SCALER_INFO, EVENT_SCALERS_STARTED, EventType, MESSAGE_SCALERS_STARTED,
};
use crate::policy::modifiers::Formula;
use crate::runtime::{ObjectKey, ScaledObjectRuntime};
use crate::status::StatusWriter;
use crate::target::Target;
use crate::trigger_plan::TriggerPlan;

/// What the runtime keeps of the object: identity and spec. The status lives in the status
/// writer, and nothing reads managedFields, so neither is copied (10,000 copies add up).
fn runtime_copy(so: &ScaledObject) -> ScaledObject {
    let mut metadata = so.metadata.clone();
    metadata.managed_fields = None;
    ScaledObject {
        metadata,
        spec: so.spec.clone(),
        status: None,
    }
}

/// What the steps before built for the runtime.
pub(super) struct Built {
    pub writer: Arc<StatusWriter>,
    pub target: Target,
    pub formula: Option<Arc<Formula>>,
    pub plan: TriggerPlan,
    pub scalers: Scalers,
    /// The runtime this one replaces.
    pub previous: Option<Arc<ScaledObjectRuntime>>,
}

/// Installs the runtime of `so` (replacing `previous`) and (re)schedules its polls when the
/// scalers or anything the loop reads changed.
pub(super) async fn install(ctx: &Context, so: &ScaledObject, key: ObjectKey, built: Built) {
    let Built {
        writer,
        target,
        formula,
        plan,
        scalers,
        previous,
    } = built;
    let rebuilt = !scalers.reused;
    let reschedule = rebuilt
        || previous.as_ref().is_some_and(|p| {
            p.object.metadata.generation != so.metadata.generation
                || p.object.annotations() != so.annotations()
        });
    let rt = Arc::new(ScaledObjectRuntime {
        key: key.clone(),
        object: runtime_copy(so),
        fingerprint: scalers.fingerprint,
        triggers: scalers.triggers,
        formula,
        target,
        status: writer,
        metrics: std::sync::RwLock::new(
            previous
                .as_ref()
                .and_then(|p| p.metrics.read().ok().map(|m| m.clone()))
                .unwrap_or_default(),
        ),
    });
    let replaced = ctx.runtimes.insert(rt);
    if rebuilt {
        if let Some(old) = replaced {
            // Close the old scalers in the background: a slow close must not delay the new ones.
            tokio::spawn(async move { old.close().await });
        }
        info!(scaledobject = %key, "scalers built");
        // Pod identities are accepted (manifests stay unchanged) but kedge resolves no cloud
        // identity itself: say so once per build, as an Event a user sees in `kubectl describe`.
        if !plan.pod_identities.is_empty() {
            let providers = plan
                .pod_identities
                .into_iter()
                .collect::<Vec<_>>()
                .join(",");
            ctx.publish(
                so,
                EventType::Normal,
                EVENT_SCALER_INFO,
                format!(
                    "podIdentity provider {providers} is recorded, but kedge resolves no cloud identity: scalers use their default credential chain"
                ),
            )
            .await;
        }
        if previous.is_none() {
            ctx.publish(
                so,
                EventType::Normal,
                EVENT_SCALERS_STARTED,
                MESSAGE_SCALERS_STARTED.to_owned(),
            )
            .await;
        }
    }
    if reschedule {
        ctx.scale_loop.schedule(key);
    }
}
