//! One reconcile of one ScaledObject.

use std::collections::BTreeSet;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash as _, Hasher as _};
use std::sync::Arc;
use std::time::Instant;

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, PodTemplateSpec, Secret};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalized, finalizer};
use kube::{Resource as _, ResourceExt as _};
use scaler_core::{ScalerConfig, TriggerId};
use serde_json::Value;
use tracing::{info, warn};

use super::{Context, Error, FINALIZER};
use crate::crd::{AuthenticationRefKind, ScaledObject, ScaledObjectStatus};
use crate::decision::{EventType, Pause};
use crate::hpa::{self, SCALED_OBJECT_NAME_LABEL, TargetRef};
use crate::resolve::{self, Snapshot};
use crate::runtime::{ObjectKey, ScaledObjectRuntime, TriggerRuntime};
use crate::status::{StatusWriter, condition_status, set_condition};
use crate::target::Target;

/// The entry point the controller calls.
pub async fn reconcile(so: Arc<ScaledObject>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let namespace = so.namespace().unwrap_or_default();
    let api: Api<ScaledObject> = Api::namespaced(ctx.client.clone(), &namespace);
    let result = finalizer(&api, FINALIZER, so, |event| async {
        match event {
            Finalized::Apply(so) => apply(so, &ctx).await,
            Finalized::Cleanup(so) => cleanup(so, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    ctx.metrics
        .reconcile_duration
        .observe(started.elapsed().as_secs_f64());
    if result.is_ok() {
        ctx.metrics
            .reconciles
            .get_or_create(&crate::telemetry::result_labels("ok"))
            .inc();
    }
    result
}

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

fn key_of(so: &ScaledObject) -> ObjectKey {
    ObjectKey {
        namespace: so.namespace().unwrap_or_default(),
        name: so.name_any(),
    }
}

fn writer(ctx: &Context, so: &ScaledObject) -> Arc<StatusWriter> {
    let key = key_of(so);
    let mut writers = ctx
        .writers
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    Arc::clone(writers.entry(key.clone()).or_insert_with(|| {
        Arc::new(StatusWriter::new(
            Api::namespaced(ctx.client.clone(), &key.namespace),
            key.name.clone(),
            so.status.clone().unwrap_or_default(),
        ))
    }))
}

async fn publish(ctx: &Context, so: &ScaledObject, type_: EventType, reason: &str, note: String) {
    if let Err(e) = ctx
        .events
        .publish(&so.object_ref(&()), type_, reason, &note)
        .await
    {
        warn!("cannot publish event {reason}: {e}");
    }
}

/// Stops polling an object and closes its scalers.
async fn stop(ctx: &Context, key: &ObjectKey) {
    ctx.scale_loop.unschedule(key.clone());
    if let Some(rt) = ctx.runtimes.remove(key) {
        rt.close().await;
    }
}

async fn delete_hpa(ctx: &Context, namespace: &str, name: &str) -> Result<(), Error> {
    let api: Api<HorizontalPodAutoscaler> = Api::namespaced(ctx.client.clone(), namespace);
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Marks the object not ready with `message`, stops acting on it, and tells the user.
///
/// Polling stops too: kedge makes no scaling decision from a configuration it cannot use, so
/// replicas stay where they are until the object is fixed.
async fn fail(ctx: &Context, so: &ScaledObject, message: String) -> Result<Action, Error> {
    let key = key_of(so);
    stop(ctx, &key).await;
    let w = writer(ctx, so);
    let msg = message.clone();
    let changed = w
        .update(move |s| {
            let before = s
                .conditions
                .iter()
                .flatten()
                .find(|c| c.type_ == "Ready")
                .and_then(|c| c.message.clone());
            set_condition(s, "Ready", "False", "ScaledObjectCheckFailed", &msg);
            set_condition(
                s,
                "Active",
                "Unknown",
                "UnknownState",
                "ScaledObject check failed",
            );
            before.as_deref() != Some(msg.as_str())
        })
        .await?;
    if changed {
        publish(
            ctx,
            so,
            EventType::Warning,
            "ScaledObjectCheckFailed",
            message.clone(),
        )
        .await;
    }
    ctx.metrics
        .scaled_object_errors
        .get_or_create(&crate::telemetry::object_labels(&key.namespace, &key.name))
        .inc();
    warn!(scaledobject = %key, "{message}");
    Ok(Action::requeue(ctx.settings.resync))
}

async fn apply(so: Arc<ScaledObject>, ctx: &Context) -> Result<Action, Error> {
    let key = key_of(&so);
    let namespace = key.namespace.as_str();
    let api: Api<ScaledObject> = Api::namespaced(ctx.client.clone(), namespace);

    // The adapter and the HPA find the object by this label.
    let so = if so.labels().get(SCALED_OBJECT_NAME_LABEL) != Some(&key.name) {
        let patch =
            serde_json::json!({"metadata": {"labels": {SCALED_OBJECT_NAME_LABEL: key.name}}});
        Arc::new(
            api.patch(&key.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?,
        )
    } else {
        so
    };
    let w = writer(ctx, &so);
    let annotations = so.annotations().clone();
    let pause = Pause::from_annotations(&annotations);
    let current_hpa_name = w.current().await.hpa_name;

    if pause.paused {
        stop(ctx, &key).await;
        let hpa_name = current_hpa_name.unwrap_or_else(|| so.spec.hpa_name(&key.name));
        delete_hpa(ctx, namespace, &hpa_name).await?;
        if let Some(n) = pause.paused_replicas {
            match Target::resolve(
                &ctx.client,
                &ctx.discovery,
                namespace,
                &so.spec.scale_target_ref,
            )
            .await
            {
                Ok((target, current)) if current != n => {
                    if let Err(e) = target.scale_to(n).await {
                        return fail(
                            ctx,
                            &so,
                            format!("failed to scale to paused-replicas {n}: {e}"),
                        )
                        .await;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    return fail(
                        ctx,
                        &so,
                        format!(
                            "ScaledObject doesn't have correct scaleTargetRef specification: {e}"
                        ),
                    )
                    .await;
                }
            }
        }
        let paused_replicas = pause.paused_replicas;
        let transitioned = w
            .update(move |s| {
                s.paused_replica_count = paused_replicas;
                s.hpa_name = None;
                set_condition(
                    s,
                    "Ready",
                    "True",
                    "ScaledObjectReady",
                    "ScaledObject is paused",
                );
                set_condition(
                    s,
                    "Paused",
                    "True",
                    "ScaledObjectPaused",
                    "ScaledObject is paused",
                )
            })
            .await?;
        if transitioned {
            publish(
                ctx,
                &so,
                EventType::Normal,
                "ScaledObjectPaused",
                "ScaledObject is paused".into(),
            )
            .await;
        }
        ctx.metrics
            .scaled_object_paused
            .get_or_create(&crate::telemetry::object_labels(&key.namespace, &key.name))
            .set(1);
        return Ok(Action::await_change());
    }

    // Admission rules, as KEDA's webhook would have applied them.
    let findings = crate::admission::validate(&so);
    let mut errors = findings.errors;
    errors.extend(
        ctx.scaled_object_index
            .validate_against(&so, &ctx.scaled_objects),
    );
    if !errors.is_empty() {
        return fail(ctx, &so, errors.join("; ")).await;
    }

    let (target, current_replicas) = match Target::resolve(
        &ctx.client,
        &ctx.discovery,
        namespace,
        &so.spec.scale_target_ref,
    )
    .await
    {
        Ok(t) => t,
        Err(e) => {
            return fail(
                ctx,
                &so,
                format!("ScaledObject doesn't have correct scaleTargetRef specification: {e}"),
            )
            .await;
        }
    };

    // Everything resolution reads, fetched once for this reconcile.
    let mut snapshot = Snapshot::default();
    let mut deps: Vec<super::deps::Dependency> = Vec::new();
    let template = target.pod_template().await.ok().flatten();
    if let Some(t) = &template {
        snapshot.insert_workload(
            namespace,
            target.api_version(),
            target.kind(),
            target.name(),
            t.clone(),
        );
    }
    let mut secrets: BTreeSet<(String, String)> = BTreeSet::new();
    let mut config_maps: BTreeSet<(String, String)> = BTreeSet::new();
    if let Some(t) = &template {
        referenced_by_template(namespace, t, &mut secrets, &mut config_maps);
    }
    for trigger in &so.spec.triggers {
        let Some(r) = &trigger.authentication_ref else {
            continue;
        };
        let (spec, objects_ns) = match r.kind() {
            AuthenticationRefKind::TriggerAuthentication => {
                deps.push((
                    "TriggerAuthentication",
                    namespace.to_owned(),
                    r.name.clone(),
                ));
                let found = ctx
                    .trigger_auths
                    .get(&kube::runtime::reflector::ObjectRef::new(&r.name).within(namespace));
                let Some(ta) = found else { continue };
                snapshot.insert_trigger_authentication(namespace, &r.name, Arc::new((*ta).clone()));
                (ta.spec.clone(), namespace.to_owned())
            }
            AuthenticationRefKind::ClusterTriggerAuthentication => {
                deps.push((
                    "ClusterTriggerAuthentication",
                    String::new(),
                    r.name.clone(),
                ));
                let found = ctx
                    .cluster_trigger_auths
                    .get(&kube::runtime::reflector::ObjectRef::new(&r.name));
                let Some(cta) = found else { continue };
                snapshot.insert_cluster_trigger_authentication(&r.name, Arc::new((*cta).clone()));
                (
                    cta.spec.0.clone(),
                    ctx.settings.resolve.cluster_object_namespace.clone(),
                )
            }
        };
        for s in spec.secret_target_ref.iter().flatten() {
            secrets.insert((objects_ns.clone(), s.name.clone()));
        }
        for c in spec.config_map_target_ref.iter().flatten() {
            config_maps.insert((objects_ns.clone(), c.name.clone()));
        }
    }
    for (ns, name) in &secrets {
        deps.push(("Secret", ns.clone(), name.clone()));
        let api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
        if let Some(s) = api.get_opt(name).await? {
            snapshot.insert_secret(ns, name, Arc::new(s));
        }
    }
    for (ns, name) in &config_maps {
        deps.push(("ConfigMap", ns.clone(), name.clone()));
        let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
        if let Some(c) = api.get_opt(name).await? {
            snapshot.insert_config_map(ns, name, Arc::new(c));
        }
    }
    ctx.deps.record(&key, deps);

    let env = match resolve::resolve_env(&snapshot, namespace, &so.spec.scale_target_ref) {
        Ok(env) => env,
        Err(e) => {
            return fail(
                ctx,
                &so,
                format!("error resolving secrets for ScaleTarget: {e}"),
            )
            .await;
        }
    };
    let modifiers = so
        .spec
        .scaling_modifiers()
        .is_some_and(|m| m.formula.as_deref().is_some_and(|f| !f.trim().is_empty()));

    // Configurations of every non-resource trigger, and their fingerprint.
    let mut configs = Vec::new();
    let mut resource_metrics = Vec::new();
    let mut pod_identities: BTreeSet<String> = BTreeSet::new();
    let mut hasher = DefaultHasher::new();
    for (index, trigger) in so.spec.triggers.iter().enumerate() {
        let id = TriggerId {
            index,
            trigger_type: trigger.type_.clone(),
            name: trigger.name.clone().filter(|n| !n.is_empty()),
        };
        if matches!(trigger.type_.as_str(), "cpu" | "memory") {
            match hpa::resource_metric(trigger) {
                Ok(m) => resource_metrics.push(m),
                Err(e) => return fail(ctx, &so, format!("{id}: {e}")).await,
            }
            continue;
        }
        let auth =
            resolve::resolve_auth(&snapshot, &ctx.settings.resolve, namespace, trigger, &env);
        for w in &auth.warnings {
            warn!(scaledobject = %key, "{id}: {w}");
        }
        if let Some(provider) = &auth.pod_identity {
            pod_identities.insert(provider.clone());
        }
        let cfg = resolve::scaler_config(
            &resolve::TriggerContext {
                namespace,
                scaled_object: &key.name,
                timeout: ctx.settings.timeout,
                as_metric_source: modifiers,
            },
            index,
            trigger,
            auth,
            &env,
        );
        fingerprint(&cfg, &mut hasher);
        configs.push(cfg);
    }
    let fingerprint = hasher.finish();

    // Reuse the scalers (and their connections) when nothing they were built from changed.
    let previous = ctx.runtimes.get(&key);
    let scalers_reused = previous
        .as_ref()
        .is_some_and(|p| p.fingerprint == fingerprint);
    let triggers: Vec<TriggerRuntime> = match previous
        .as_ref()
        .filter(|p| p.fingerprint == fingerprint)
    {
        Some(p) => p
            .triggers
            .iter()
            .map(|t| TriggerRuntime {
                id: t.id.clone(),
                scaler: Arc::clone(&t.scaler),
                specs: t.specs.clone(),
                use_cached_metrics: t.use_cached_metrics,
            })
            .collect(),
        None => {
            let mut built = Vec::new();
            for cfg in &configs {
                let scaler = match ctx.registry.build(cfg) {
                    Ok(s) => Arc::<dyn scaler_core::Scaler>::from(s),
                    Err(e) => {
                        publish(
                            ctx,
                            &so,
                            EventType::Warning,
                            "KEDAScalerFailed",
                            e.to_string(),
                        )
                        .await;
                        return fail(ctx, &so, format!("error building scalers: {e}")).await;
                    }
                };
                let specs = match tokio::time::timeout(cfg.timeout, scaler.metric_specs()).await {
                    Ok(Ok(specs)) if !specs.is_empty() => specs,
                    Ok(Ok(_)) => {
                        return fail(ctx, &so, format!("{}: got empty metric spec", cfg.trigger))
                            .await;
                    }
                    Ok(Err(e)) => {
                        return fail(ctx, &so, format!("error getting metric specs: {e}")).await;
                    }
                    Err(_) => {
                        return fail(
                            ctx,
                            &so,
                            format!("{}: no metric specs within {:?}", cfg.trigger, cfg.timeout),
                        )
                        .await;
                    }
                };
                built.push(TriggerRuntime {
                    id: cfg.trigger.clone(),
                    scaler,
                    specs,
                    use_cached_metrics: cfg.use_cached_metrics,
                });
            }
            built
        }
    };

    let external: Vec<_> = triggers
        .iter()
        .flat_map(|t| t.specs.iter().cloned())
        .collect();
    let plan = match hpa::plan(&so, &external, resource_metrics) {
        Ok(p) => p,
        Err(e) => return fail(ctx, &so, e).await,
    };
    let target_ref = TargetRef {
        api_version: target.api_version().to_owned(),
        kind: target.kind().to_owned(),
        name: target.name().to_owned(),
    };
    let desired = hpa::to_hpa(
        &plan,
        &so,
        &target_ref,
        pause.paused_scale_in,
        pause.paused_scale_out,
    );
    if let Some(old) = current_hpa_name.as_ref().filter(|n| **n != plan.name) {
        delete_hpa(ctx, namespace, old).await?;
    }
    ensure_hpa(ctx, namespace, desired).await?;

    // Status.
    let trigger_types: BTreeSet<&str> = so.spec.triggers.iter().map(|t| t.type_.as_str()).collect();
    let auth_names: BTreeSet<&str> = so
        .spec
        .triggers
        .iter()
        .filter_map(|t| t.authentication_ref.as_ref().map(|r| r.name.as_str()))
        .collect();
    let external_names: Vec<String> = plan
        .metrics
        .iter()
        .filter(|m| m.kind == "External")
        .map(|m| m.name.clone())
        .collect();
    let resource_names: Vec<String> = plan
        .metrics
        .iter()
        .filter(|m| m.kind != "External")
        .map(|m| m.name.clone())
        .collect();
    let kind_string = target.kind_string();
    let gvkr = target.gvkr();
    let hpa_name = plan.name.clone();
    let (ready_transition, unpaused) = w
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
            s.composite_scaler_name = modifiers.then(|| hpa::COMPOSITE_METRIC_NAME.to_owned());
            s.triggers_types = Some(trigger_types.into_iter().collect::<Vec<_>>().join(","));
            s.authentications_types = (!auth_names.is_empty())
                .then(|| auth_names.into_iter().collect::<Vec<_>>().join(","));
            s.paused_replica_count = None;
            if let Some(health) = s.health.as_mut() {
                health.retain(|k, _| external_names.contains(k) || k == hpa::COMPOSITE_METRIC_NAME);
            }
            let was_paused = condition_status(s, "Paused") == Some("True");
            // The scale loop owns `Ready` while the same scalers keep failing: a reconcile
            // that rebuilt nothing must not flip its TriggerError back to True (every status
            // patch of the loop causes a reconcile, so it would flap at every poll).
            let scale_loop_says = s
                .conditions
                .iter()
                .flatten()
                .find(|c| c.type_ == "Ready")
                .and_then(|c| c.reason.as_deref())
                .is_some_and(|r| {
                    r == crate::decision::REASON_TRIGGER_ERROR
                        || r == crate::decision::REASON_PARTIAL_TRIGGER_ERROR
                });
            let ready = if scalers_reused && scale_loop_says {
                false
            } else {
                set_condition(
                    s,
                    "Ready",
                    "True",
                    "ScaledObjectReady",
                    "ScaledObject is defined correctly and is ready for scaling",
                )
            };
            if was_paused {
                set_condition(
                    s,
                    "Paused",
                    "False",
                    "ScaledObjectUnpaused",
                    "pause annotation removed for ScaledObject",
                );
            }
            (ready, was_paused)
        })
        .await?;
    if unpaused {
        publish(
            ctx,
            &so,
            EventType::Normal,
            "ScaledObjectUnpaused",
            "pause annotation removed for ScaledObject".into(),
        )
        .await;
        ctx.metrics
            .scaled_object_paused
            .get_or_create(&crate::telemetry::object_labels(&key.namespace, &key.name))
            .set(0);
    }
    if ready_transition {
        publish(
            ctx,
            &so,
            EventType::Normal,
            "ScaledObjectReady",
            "ScaledObject is ready for scaling".into(),
        )
        .await;
    }

    let rebuilt = previous
        .as_ref()
        .is_none_or(|p| p.fingerprint != fingerprint);
    let reschedule = rebuilt
        || previous.as_ref().is_some_and(|p| {
            p.object.metadata.generation != so.metadata.generation
                || p.object.annotations() != so.annotations()
        });
    let only_resource_triggers = !so.spec.triggers.is_empty()
        && so
            .spec
            .triggers
            .iter()
            .all(|t| matches!(t.type_.as_str(), "cpu" | "memory"));
    let rt = Arc::new(ScaledObjectRuntime {
        key: key.clone(),
        object: runtime_copy(&so),
        fingerprint,
        triggers,
        only_resource_triggers,
        target,
        status: w,
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
        if !pod_identities.is_empty() {
            let providers = pod_identities.into_iter().collect::<Vec<_>>().join(",");
            publish(
                ctx,
                &so,
                EventType::Normal,
                "KEDAScalerInfo",
                format!(
                    "podIdentity provider {providers} is recorded, but kedge resolves no cloud identity: scalers use their default credential chain"
                ),
            )
            .await;
        }
        if previous.is_none() {
            publish(
                ctx,
                &so,
                EventType::Normal,
                "KEDAScalersStarted",
                "Started scalers watch".into(),
            )
            .await;
        }
    }
    if reschedule {
        ctx.scale_loop.schedule(key);
    }
    Ok(Action::requeue(ctx.settings.resync))
}

/// Hashes what a scaler is built from. Secret values go into the hash, never into a log.
fn fingerprint(cfg: &ScalerConfig, h: &mut DefaultHasher) {
    cfg.trigger.hash(h);
    cfg.metadata.hash(h);
    for (k, v) in &cfg.auth_params {
        k.hash(h);
        v.expose().hash(h);
    }
    for (k, v) in &cfg.resolved_env {
        k.hash(h);
        v.expose().hash(h);
    }
    cfg.metric_type.hash(h);
    cfg.use_cached_metrics.hash(h);
    cfg.as_metric_source.hash(h);
    cfg.timeout.hash(h);
}

fn referenced_by_template(
    namespace: &str,
    template: &PodTemplateSpec,
    secrets: &mut BTreeSet<(String, String)>,
    config_maps: &mut BTreeSet<(String, String)>,
) {
    for c in template.spec.iter().flat_map(|s| s.containers.iter()) {
        for f in c.env_from.iter().flatten() {
            if let Some(r) = &f.secret_ref {
                secrets.insert((namespace.to_owned(), r.name.clone()));
            }
            if let Some(r) = &f.config_map_ref {
                config_maps.insert((namespace.to_owned(), r.name.clone()));
            }
        }
        for e in c.env.iter().flatten() {
            let Some(from) = &e.value_from else { continue };
            if let Some(r) = &from.secret_key_ref {
                secrets.insert((namespace.to_owned(), r.name.clone()));
            }
            if let Some(r) = &from.config_map_key_ref {
                config_maps.insert((namespace.to_owned(), r.name.clone()));
            }
        }
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

/// Creates the HPA, or replaces it when it drifted from what kedge wants (manual edits are
/// reverted, as KEDA does).
async fn ensure_hpa(
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
            let d = serde_json::json!({
                "spec": desired.spec,
                "labels": desired.metadata.labels,
                "annotations": desired.metadata.annotations,
                "ownerReferences": desired.metadata.owner_references,
            });
            let l = serde_json::json!({
                "spec": live.spec,
                "labels": live.metadata.labels,
                "annotations": live.metadata.annotations,
                "ownerReferences": live.metadata.owner_references,
            });
            let metric_count =
                |h: &HorizontalPodAutoscaler| h.spec.metrics.as_ref().map_or(0, Vec::len);
            if !is_subset(&d, &l) || metric_count(&live) != metric_count(&desired) {
                desired.metadata.resource_version = live.metadata.resource_version.clone();
                desired.status = live.status.clone();
                api.replace(&name, &PostParams::default(), &desired).await?;
                info!(hpa = %format!("{namespace}/{name}"), "updated HPA");
            }
        }
    }
    Ok(())
}

async fn cleanup(so: Arc<ScaledObject>, ctx: &Context) -> Result<Action, Error> {
    let key = key_of(&so);
    stop(ctx, &key).await;
    let status = so.status.clone().unwrap_or_default();
    let hpa_name = status
        .hpa_name
        .clone()
        .unwrap_or_else(|| so.spec.hpa_name(&key.name));
    delete_hpa(ctx, &key.namespace, &hpa_name).await?;
    if so.spec.restore_to_original_replica_count()
        && let Some(original) = status.original_replica_count
    {
        match Target::resolve(
            &ctx.client,
            &ctx.discovery,
            &key.namespace,
            &so.spec.scale_target_ref,
        )
        .await
        {
            Ok((target, current)) if current != original => {
                if let Err(e) = target.scale_to(original).await {
                    warn!(scaledobject = %key, "cannot restore {original} replicas: {e}");
                }
            }
            Ok(_) => {}
            Err(e) => warn!(scaledobject = %key, "cannot restore replicas: {e}"),
        }
    }
    ctx.deps.forget(&key);
    ctx.writers
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .remove(&key);
    publish(
        ctx,
        &so,
        EventType::Warning,
        "ScaledObjectDeleted",
        "ScaledObject was deleted".into(),
    )
    .await;
    Ok(Action::await_change())
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
