//! The HPA kedge owns for a ScaledObject: planned from the scalers' metric specs, created, kept
//! as planned (manual edits are reverted, as KEDA does) and deleted.

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::Value;
use tracing::info;

use super::not_ready::Halt;
use super::not_ready::NotReady;
use super::{Context, Error};
use crate::crd::ScaledObject;
use crate::hpa::{self, HpaPlan, PlannedMetric, TargetRef};
use crate::policy::pause::Pause;
use crate::runtime::TriggerRuntime;
use crate::target::Target;

/// Plans the HPA of `so` and makes the cluster hold exactly it; an HPA of a former name goes.
pub(super) async fn sync(
    ctx: &Context,
    so: &ScaledObject,
    target: &Target,
    triggers: &[TriggerRuntime],
    resource_metrics: Vec<PlannedMetric>,
    pause: &Pause,
    current_name: Option<&str>,
) -> Result<HpaPlan, Halt> {
    let external: Vec<_> = triggers
        .iter()
        .flat_map(|t| t.specs.iter().cloned())
        .collect();
    let plan = hpa::plan(so, &external, resource_metrics).map_err(NotReady::Hpa)?;
    let target_ref = TargetRef {
        api_version: target.api_version().to_owned(),
        kind: target.kind().to_owned(),
        name: target.name().to_owned(),
    };
    let desired = hpa::to_hpa(
        &plan,
        so,
        &target_ref,
        pause.paused_scale_in,
        pause.paused_scale_out,
    );
    let namespace = target.namespace();
    if let Some(old) = current_name.filter(|n| *n != plan.name) {
        delete(ctx, namespace, old).await?;
    }
    ensure(ctx, namespace, desired).await?;
    Ok(plan)
}

/// Deletes HPA `name`; one that is already gone is fine.
pub(super) async fn delete(ctx: &Context, namespace: &str, name: &str) -> Result<(), Error> {
    let api: Api<HorizontalPodAutoscaler> = Api::namespaced(ctx.client.clone(), namespace);
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// True when every field of `desired` is present and equal in `live` (KEDA's DeepDerivative):
/// the API server may add defaults, which are not drift.
fn is_subset(desired: &Value, live: &Value) -> bool {
    match (desired, live) {
        (Value::Object(d), Value::Object(l)) => d
            .iter()
            .all(|(k, dv)| dv.is_null() || l.get(k).is_some_and(|lv| is_subset(dv, lv))),
        (Value::Array(d), Value::Array(l)) => {
            d.len() == l.len() && d.iter().zip(l).all(|(dv, lv)| is_subset(dv, lv))
        }
        (d, l) => d == l,
    }
}

/// Creates the HPA, or replaces it when it drifted from what kedge wants.
async fn ensure(
    ctx: &Context,
    namespace: &str,
    mut desired: HorizontalPodAutoscaler,
) -> Result<(), Error> {
    let api: Api<HorizontalPodAutoscaler> = Api::namespaced(ctx.client.clone(), namespace);
    let name = desired.metadata.name.clone().unwrap_or_default();
    match api.get_opt(&name).await? {
        None => {
            api.create(&PostParams::default(), &desired).await?;
            info!(hpa = %format!("{namespace}/{name}"), "created HPA");
        }
        Some(live) => {
            let owned = |h: &HorizontalPodAutoscaler| {
                serde_json::json!({
                    "spec": h.spec,
                    "labels": h.metadata.labels,
                    "annotations": h.metadata.annotations,
                    "ownerReferences": h.metadata.owner_references,
                })
            };
            let metric_count =
                |h: &HorizontalPodAutoscaler| h.spec.metrics.as_ref().map_or(0, Vec::len);
            if !is_subset(&owned(&desired), &owned(&live))
                || metric_count(&live) != metric_count(&desired)
            {
                desired.metadata.resource_version = live.metadata.resource_version.clone();
                desired.status = live.status.clone();
                api.replace(&name, &PostParams::default(), &desired).await?;
                info!(hpa = %format!("{namespace}/{name}"), "updated HPA");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::is_subset;
    use serde_json::json;

    #[test]
    fn server_defaults_are_not_drift_but_edits_are() {
        let desired = json!({"spec": {"minReplicas": 1, "metrics": [{"type": "External"}]}});
        let defaulted = json!({"spec": {"minReplicas": 1, "behavior": {"scaleUp": {}}, "metrics": [{"type": "External", "x": 1}]}});
        assert!(is_subset(&desired, &defaulted));
        let edited = json!({"spec": {"minReplicas": 3, "metrics": [{"type": "External"}]}});
        assert!(!is_subset(&desired, &edited));
        let extra_metric = json!({"spec": {"minReplicas": 1, "metrics": [{"type": "External"}, {"type": "Resource"}]}});
        assert!(!is_subset(&desired, &extra_metric));
    }
}
