//! What must hold before anything is read: the name label the adapter and the HPA select by,
//! and KEDA's admission rules.

use std::sync::Arc;

use kube::ResourceExt as _;
use kube::api::{Api, Patch, PatchParams};

use super::not_ready::NotReady;
use super::{Context, Error};
use crate::crd::ScaledObject;
use crate::hpa::SCALED_OBJECT_NAME_LABEL;
use crate::policy::modifiers::Formula;
use crate::runtime::ObjectKey;

/// The adapter and the HPA find the object by its name label.
pub(super) async fn ensure_name_label(
    ctx: &Context,
    key: &ObjectKey,
    so: Arc<ScaledObject>,
) -> Result<Arc<ScaledObject>, Error> {
    if so.labels().get(SCALED_OBJECT_NAME_LABEL) == Some(&key.name) {
        return Ok(so);
    }
    let api: Api<ScaledObject> = Api::namespaced(ctx.client.clone(), &key.namespace);
    let patch = serde_json::json!({"metadata": {"labels": {SCALED_OBJECT_NAME_LABEL: key.name}}});
    let patched = api
        .patch(&key.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(Arc::new(patched))
}

/// KEDA's admission rules, as its webhook would have applied them, and the one-per-target and
/// HPA-ownership checks against the other ScaledObjects. Returns the compiled
/// `scalingModifiers` formula, if any.
pub(super) fn admit(ctx: &Context, so: &ScaledObject) -> Result<Option<Arc<Formula>>, NotReady> {
    let (findings, formula) = crate::admission::validate_and_compile(so);
    let mut errors = findings.errors;
    errors.extend(
        ctx.scaled_object_index
            .validate_against(so, &ctx.scaled_objects),
    );
    if errors.is_empty() {
        Ok(formula.map(Arc::new))
    } else {
        Err(NotReady::InvalidSpec(errors))
    }
}
