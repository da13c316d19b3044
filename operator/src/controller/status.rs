//! What the reconciler writes into a ScaledObject's status, and the Events that go with it.
//! (The scale loop writes the rest: activity, health, lastActiveTime.)

use std::collections::BTreeSet;

use kube::runtime::controller::Action;
use tracing::warn;

use super::not_ready::NotReady;
use super::{Context, Error};
use crate::crd::{ScaledObject, ScaledObjectStatus};
use crate::hpa::{self, HpaPlan};
use crate::policy::conditions::{
    self, ConditionChange, ConditionStatus, ConditionType, MESSAGE_CHECK_FAILED, MESSAGE_READY,
    REASON_PARTIAL_TRIGGER_ERROR, REASON_READY, REASON_TRIGGER_ERROR, REASON_UNKNOWN_STATE,
};
use crate::policy::event::{EVENT_READY, EventType, MESSAGE_READY as EVENT_MESSAGE_READY};
use crate::policy::pause::Pause;
use crate::runtime::ObjectKey;
use crate::status::StatusWriter;
use crate::target::Target;

/// Marks the object `Ready=False` with `why`, stops acting on it, and tells the user once per
/// message.
///
/// Polling stops too: kedge makes no scaling decision from a configuration it cannot use, so
/// replicas stay where they are until the object is fixed.
pub(super) async fn not_ready(
    ctx: &Context,
    so: &ScaledObject,
    key: &ObjectKey,
    why: NotReady,
) -> Result<Action, Error> {
    ctx.stop(key).await;
    let retry = ctx.next_retry(key, why.retry_soon());
    // Bounded here too, so the Event and the log say what the condition says.
    let message = conditions::bounded_message(why.to_string());
    let reason = why.reason();
    let msg = message.clone();
    let changed = ctx
        .status_writer(so)
        .update(move |s| {
            let before = conditions::get(s, ConditionType::Ready).and_then(|c| c.message.clone());
            ConditionChange::set(ConditionStatus::False, reason, msg.as_str())
                .apply(s, ConditionType::Ready);
            ConditionChange::set(
                ConditionStatus::Unknown,
                REASON_UNKNOWN_STATE,
                MESSAGE_CHECK_FAILED,
            )
            .apply(s, ConditionType::Active);
            before.as_deref() != Some(msg.as_str())
        })
        .await?;
    if changed {
        ctx.publish(so, EventType::Warning, reason, message.clone())
            .await;
    }
    ctx.metrics
        .scaled_object_errors
        .get_or_create(&crate::telemetry::object_labels(&key.namespace, &key.name))
        .inc();
    warn!(scaledobject = %key, kind = why.kind(), "{message}");
    Ok(Action::requeue(retry))
}

/// What a successful reconcile found, for the status.
pub(super) struct Found<'a> {
    pub target: &'a Target,
    pub current_replicas: i32,
    pub hpa: &'a HpaPlan,
    pub pause: &'a Pause,
    /// The scalers are the previous ones, unchanged.
    pub scalers_reused: bool,
}

/// Writes what the reconcile found and `Ready=True` (unless the scale loop owns `Ready`), and
/// ends a pause.
pub(super) async fn ready(
    ctx: &Context,
    so: &ScaledObject,
    key: &ObjectKey,
    writer: &StatusWriter,
    found: Found<'_>,
) -> Result<(), Error> {
    let trigger_types: BTreeSet<&str> = so.spec.triggers.iter().map(|t| t.type_.as_str()).collect();
    let auth_names: BTreeSet<&str> = so
        .spec
        .triggers
        .iter()
        .filter_map(|t| t.authentication_ref.as_ref().map(|r| r.name.as_str()))
        .collect();
    let (external, resource): (Vec<_>, Vec<_>) =
        found.hpa.metrics.iter().partition(|m| m.kind == "External");
    let external_names: Vec<String> = external.into_iter().map(|m| m.name.clone()).collect();
    let resource_names: Vec<String> = resource.into_iter().map(|m| m.name.clone()).collect();
    let kind_string = found.target.kind_string();
    let gvkr = found.target.gvkr();
    let hpa_name = found.hpa.name.clone();
    let composite = so.spec.scaling_formula().is_some();
    let (current_replicas, scalers_reused, pause) =
        (found.current_replicas, found.scalers_reused, *found.pause);
    let (ready_transition, pause_events) = writer
        .update(move |s: &mut ScaledObjectStatus| {
            s.scale_target_kind = Some(kind_string);
            s.scale_target_gvkr = Some(gvkr);
            if s.original_replica_count.is_none() {
                s.original_replica_count = Some(current_replicas);
            }
            s.hpa_name = Some(hpa_name);
            s.external_metric_names =
                (!external_names.is_empty()).then_some(external_names.clone());
            s.resource_metric_names = (!resource_names.is_empty()).then_some(resource_names);
            s.composite_scaler_name = composite.then(|| hpa::COMPOSITE_METRIC_NAME.to_owned());
            s.triggers_types = Some(trigger_types.into_iter().collect::<Vec<_>>().join(","));
            s.authentications_types = (!auth_names.is_empty())
                .then(|| auth_names.into_iter().collect::<Vec<_>>().join(","));
            s.paused_replica_count = None;
            if let Some(health) = s.health.as_mut() {
                health.retain(|k, _| external_names.contains(k) || k == hpa::COMPOSITE_METRIC_NAME);
            }
            let was_paused = conditions::is(s, ConditionType::Paused, ConditionStatus::True);
            // The scale loop owns `Ready` while the same scalers keep failing: a reconcile
            // that rebuilt nothing must not flip its TriggerError back to True (every status
            // patch of the loop causes a reconcile, so it would flap at every poll).
            let scale_loop_says = conditions::get(s, ConditionType::Ready)
                .and_then(|c| c.reason.as_deref())
                .is_some_and(|r| r == REASON_TRIGGER_ERROR || r == REASON_PARTIAL_TRIGGER_ERROR);
            let ready = !(scalers_reused && scale_loop_says)
                && ConditionChange::set(ConditionStatus::True, REASON_READY, MESSAGE_READY)
                    .apply(s, ConditionType::Ready)
                    .transitioned();
            let plan = pause.plan(was_paused, None);
            plan.paused.apply(s, ConditionType::Paused);
            (ready, (was_paused, plan.events))
        })
        .await?;
    let (was_paused, events) = pause_events;
    for e in events {
        ctx.publish(so, e.type_, e.reason, e.message).await;
    }
    if was_paused && !pause.any() {
        ctx.metrics
            .scaled_object_paused
            .get_or_create(&crate::telemetry::object_labels(&key.namespace, &key.name))
            .set(0);
    }
    if ready_transition {
        ctx.publish(
            so,
            EventType::Normal,
            EVENT_READY,
            EVENT_MESSAGE_READY.to_owned(),
        )
        .await;
    }
    Ok(())
}
