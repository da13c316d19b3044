//! The ScaledObject reconciler: validate, resolve, build scalers, own the HPA, start polling.
//!
//! Shaped like kube-rs's controller-rs: a small `reconcile` wrapped in the finalizer helper
//! (`finalizer.keda.sh`, KEDA's), typed errors, and watches feeding in-memory indexes
//! (TriggerAuthentications in a reflector store; Secrets and ConfigMaps watched by metadata only,
//! mapped back to the ScaledObjects that read them through [`Dependencies`]).

mod admit;
mod cleanup;
mod departures;
mod deps;
mod hpa_sync;
mod index;
mod inputs;
mod install;
mod not_ready;
mod paused;
mod reconcile;
mod scalers;
mod secrets;
mod status;
mod synced;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::{Event as Finalized, finalizer};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Client, ResourceExt as _};
use scaler_core::Registry;
use tracing::{info, warn};

pub use deps::Dependencies;
pub use index::ScaledObjectIndex;
use synced::{SyncTracker, Watch};

use crate::crd::{ClusterTriggerAuthentication, ScaledObject, TriggerAuthentication};
use crate::events::EventPublisher;
use crate::policy::event::EventType;
use crate::resolve::ResolveSettings;
use crate::runtime::{ObjectKey, Runtimes};
use crate::scale_loop::ScaleLoopHandle;
use crate::status::StatusWriter;
use crate::target::Discovery;
use crate::telemetry::{Metrics, result_labels};

/// With the `failpoints` feature, a ScaledObject with this annotation makes its reconcile
/// panic: how the tests check that a controller that dies takes the process with it.
#[cfg(feature = "failpoints")]
const FAILPOINT_PANIC: &str = "kedge.test/panic-in-reconcile";

/// The finalizer KEDA puts on ScaledObjects; kedge uses the same so the two hand over cleanly.
pub const FINALIZER: &str = "finalizer.keda.sh";

/// Settings of the reconciler.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Auth resolution settings.
    pub resolve: ResolveSettings,
    /// Timeout of calls to data sources (`KEDA_HTTP_DEFAULT_TIMEOUT`).
    pub timeout: Duration,
    /// Namespace to watch; `None` watches all.
    pub namespace: Option<String>,
    /// How often a healthy ScaledObject is reconciled again even without changes.
    pub resync: Duration,
    /// Reconciles that may run at once (`KEDA_SCALEDOBJECT_CTRL_MAX_RECONCILES`). Bounded so a
    /// start with thousands of objects does not open thousands of API connections at once.
    pub max_concurrent_reconciles: u16,
    /// Address ranges scalers must not connect to (`--scaler-address-deny-cidrs`).
    pub address_guard: scaler_core::AddressGuard,
    /// `--restrict-secret-access`: Secrets are read and watched only in the cluster object
    /// namespace (see [`Settings::secret_watch_namespace`]).
    pub restrict_secrets: bool,
}

/// What the reconciler shares.
pub struct Context {
    /// API client.
    pub client: Client,
    /// Trigger type → scaler factory.
    pub registry: Registry,
    /// Settings.
    pub settings: Settings,
    /// Kind → API resource cache.
    pub discovery: Discovery,
    /// Per-object runtimes, shared with the scale loop and the adapter.
    pub runtimes: Runtimes,
    /// The scale loop.
    pub scale_loop: ScaleLoopHandle,
    /// Events on ScaledObjects.
    pub events: EventPublisher,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// TriggerAuthentications.
    pub trigger_auths: Store<TriggerAuthentication>,
    /// ClusterTriggerAuthentications.
    pub cluster_trigger_auths: Store<ClusterTriggerAuthentication>,
    /// ScaledObjects (the controller's own cache), for the one-per-workload checks.
    pub scaled_objects: Store<ScaledObject>,
    /// ScaledObjects by target and HPA name, kept from the same watch as `scaled_objects`.
    pub scaled_object_index: ScaledObjectIndex,
    /// Who reads what.
    pub deps: Dependencies,
    /// Whether every watch has listed its objects.
    sync: SyncTracker,
    /// Consecutive reconciles that found each object's target missing (for the backoff).
    retries: std::sync::Mutex<std::collections::HashMap<ObjectKey, u32>>,
    /// Status writers by object, shared with the scale loop through the runtimes.
    pub writers: std::sync::Mutex<std::collections::HashMap<ObjectKey, Arc<StatusWriter>>>,
}

impl Context {
    /// The one status writer of `so`, created from the status it was read with.
    fn status_writer(&self, so: &ScaledObject) -> Arc<StatusWriter> {
        let key = ObjectKey::of(so);
        let mut writers = self
            .writers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::clone(writers.entry(key.clone()).or_insert_with(|| {
            Arc::new(StatusWriter::new(
                Api::namespaced(self.client.clone(), &key.namespace),
                key.name.clone(),
                so.status.clone().unwrap_or_default(),
            ))
        }))
    }

    /// Records an Event on `so`; a failure to record it is logged, never fatal.
    async fn publish(&self, so: &ScaledObject, type_: EventType, reason: &str, note: String) {
        use kube::Resource as _;
        if let Err(e) = self
            .events
            .publish(&so.object_ref(&()), type_, reason, &note)
            .await
        {
            warn!("cannot publish event {reason}: {e}");
        }
    }

    /// Stops polling an object and closes its scalers.
    async fn stop(&self, key: &ObjectKey) {
        self.scale_loop.unschedule(key.clone());
        if let Some(rt) = self.runtimes.remove(key) {
            rt.close().await;
        }
    }

    /// When to reconcile a not-ready object again: soon when `soon` (1 s, doubling to the
    /// resync period over consecutive failures, as controller-runtime's backoff), else at the
    /// resync.
    fn next_retry(&self, key: &ObjectKey, soon: bool) -> Duration {
        let mut retries = self
            .retries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !soon {
            retries.remove(key);
            return self.settings.resync;
        }
        let n = retries.entry(key.clone()).or_insert(0);
        let delay = Duration::from_secs(1u64 << (*n).min(16)).min(self.settings.resync);
        *n = n.saturating_add(1);
        delay
    }

    /// A reconcile went through: the next failure starts the backoff afresh.
    fn succeeded(&self, key: &ObjectKey) {
        self.retries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(key);
    }

    /// Drops what is kept of a deleted object, its metric series included.
    fn forget(&self, key: &ObjectKey) {
        self.succeeded(key);
        self.deps.forget(key);
        self.metrics.forget_object(&key.namespace, &key.name);
        self.writers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(key);
    }
}

/// A reconcile failure that is retried.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server refused or failed a request.
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// Adding or removing the finalizer failed.
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
}

impl Error {
    fn label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::Finalizer(_) => "finalizer",
        }
    }
}

fn api_for<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// What the controller is wired to.
pub struct Wiring {
    /// API client.
    pub client: Client,
    /// Trigger type → scaler factory.
    pub registry: Registry,
    /// Settings.
    pub settings: Settings,
    /// Per-object runtimes, shared with the scale loop and the adapter.
    pub runtimes: Runtimes,
    /// The scale loop.
    pub scale_loop: ScaleLoopHandle,
    /// Events on ScaledObjects.
    pub events: EventPublisher,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Set to true once every watch has listed its objects (the caches the reconciler reads
    /// are complete), so `/readyz` does not report a replica ready on empty caches.
    pub synced: tokio::sync::watch::Sender<bool>,
}

/// A hash of what a reconcile acts on: the spec (by `generation`), labels, annotations (paused,
/// paused-replicas, ...), finalizers and deletion. A write of only the status — the scale
/// loop's, at every activity change — leaves it unchanged and does not reconcile again.
fn reconcile_relevant(so: &ScaledObject) -> Option<u64> {
    use std::hash::{DefaultHasher, Hash as _, Hasher as _};
    let meta = &so.metadata;
    let mut h = DefaultHasher::new();
    meta.generation.hash(&mut h);
    meta.labels.hash(&mut h);
    meta.annotations.hash(&mut h);
    meta.finalizers.hash(&mut h);
    meta.deletion_timestamp
        .as_ref()
        .map(|t| t.0.as_second())
        .hash(&mut h);
    Some(h.finish())
}

/// Builds the controller's watches and runs it until `shutdown` resolves.
pub async fn run(
    wiring: Wiring,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let Wiring {
        client,
        registry,
        settings,
        runtimes,
        scale_loop,
        events,
        metrics,
        synced,
    } = wiring;
    let ns = settings.namespace.clone();
    let so_api: Api<ScaledObject> = api_for(&client, ns.as_deref());
    let hpa_api: Api<HorizontalPodAutoscaler> = api_for(&client, ns.as_deref());
    let ta_api: Api<TriggerAuthentication> = api_for(&client, ns.as_deref());
    let cta_api: Api<ClusterTriggerAuthentication> = Api::all(client.clone());
    let secret_api: Api<PartialObjectMeta<Secret>> =
        api_for(&client, settings.secret_watch_namespace());
    let cm_api: Api<PartialObjectMeta<ConfigMap>> = api_for(&client, ns.as_deref());

    let (ta_store, ta_writer) = reflector::store();
    let (cta_store, cta_writer) = reflector::store();
    let sync = SyncTracker::new(synced);
    let ta_stream = reflector::reflector(ta_writer, watcher(ta_api, watcher::Config::default()))
        .inspect_ok({
            let sync = sync.clone();
            move |e| sync.observe(Watch::TriggerAuthentications, e)
        })
        .default_backoff()
        .touched_objects();
    let cta_stream = reflector::reflector(cta_writer, watcher(cta_api, watcher::Config::default()))
        .inspect_ok({
            let sync = sync.clone();
            move |e| sync.observe(Watch::ClusterTriggerAuthentications, e)
        })
        .default_backoff()
        .touched_objects();
    // Secrets and ConfigMaps: metadata only (values are fetched when a dependent reconciles),
    // so memory follows what ScaledObjects use, not how many Secrets the cluster has.
    let secret_stream = watcher(secret_api, watcher::Config::default())
        .default_backoff()
        .touched_objects();
    let cm_stream = watcher(cm_api, watcher::Config::default())
        .default_backoff()
        .touched_objects();

    // What `Controller::new` builds, with the index fed from the same events as the store, and
    // without managedFields, which nothing here reads (they are most of a large object's
    // metadata on a real cluster, and the store holds every ScaledObject).
    let (so_store, so_writer) = reflector::store();
    let so_index = ScaledObjectIndex::default();
    let (mut departures, mut departed) = departures::Departures::new(runtimes.clone());
    let so_events = {
        let index = so_index.clone();
        let sync = sync.clone();
        watcher(so_api, watcher::Config::default()).map(move |event| {
            event.map(|event| {
                let event = event.modify(|so| so.metadata.managed_fields = None);
                index.apply(&event);
                departures.observe(&event);
                sync.observe(Watch::ScaledObjects, &event);
                event
            })
        })
    };
    let so_stream = reflector::reflector(so_writer, so_events)
        .applied_objects()
        .predicate_filter(reconcile_relevant, Default::default());
    let controller = Controller::for_stream(so_stream, so_store).with_config(
        kube::runtime::controller::Config::default()
            .concurrency(settings.max_concurrent_reconciles.max(1)),
    );
    let ctx = Arc::new(Context {
        client,
        registry,
        settings,
        discovery: Discovery::default(),
        runtimes,
        scale_loop,
        events,
        metrics,
        trigger_auths: ta_store,
        cluster_trigger_auths: cta_store,
        scaled_objects: controller.store(),
        scaled_object_index: so_index,
        deps: Dependencies::default(),
        sync,
        retries: Default::default(),
        writers: Default::default(),
    });
    // Objects gone without their finalizer: stop polling them and forget them at once.
    let forgetting = {
        let ctx = Arc::clone(&ctx);
        tokio::spawn(async move {
            while let Some(departure) = departed.recv().await {
                let Some(rt) = ctx.runtimes.get(&departure.key) else {
                    ctx.forget(&departure.key);
                    continue;
                };
                if departures::is_same_object(&departure, rt.object.uid().as_deref()) {
                    info!(scaledobject = %departure.key, "ScaledObject is gone: stopped polling it");
                    ctx.stop(&departure.key).await;
                    ctx.forget(&departure.key);
                }
            }
        })
    };
    let (c1, c2, c3, c4) = (
        Arc::clone(&ctx),
        Arc::clone(&ctx),
        Arc::clone(&ctx),
        Arc::clone(&ctx),
    );
    controller
        .owns(
            hpa_api,
            watcher::Config::default().labels("app.kubernetes.io/managed-by=keda-operator"),
        )
        .watches_stream(ta_stream, move |ta| {
            c1.deps.dependents(
                "TriggerAuthentication",
                &ta.namespace().unwrap_or_default(),
                &ta.name_any(),
            )
        })
        .watches_stream(cta_stream, move |cta| {
            c2.deps
                .dependents("ClusterTriggerAuthentication", "", &cta.name_any())
        })
        .watches_stream(secret_stream, move |s| {
            c3.deps
                .dependents("Secret", &s.namespace().unwrap_or_default(), &s.name_any())
        })
        .watches_stream(cm_stream, move |cm| {
            c4.deps.dependents(
                "ConfigMap",
                &cm.namespace().unwrap_or_default(),
                &cm.name_any(),
            )
        })
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok((obj, _)) => tracing::debug!(object = %obj, "reconciled"),
                Err(e) => warn!("reconcile: {e}"),
            }
        })
        .await;
    forgetting.abort();
    info!("controller stopped");
}

/// The entry point the controller calls.
async fn reconcile(so: Arc<ScaledObject>, ctx: Arc<Context>) -> Result<Action, Error> {
    // kube's controller starts once the ScaledObject cache is complete; an auth that is not in
    // the TriggerAuthentication caches yet would read as missing.
    ctx.sync.wait().await;
    #[cfg(feature = "failpoints")]
    if so.annotations().contains_key(FAILPOINT_PANIC) {
        panic!("failpoint {FAILPOINT_PANIC}");
    }
    let started = Instant::now();
    let api: Api<ScaledObject> = Api::namespaced(ctx.client.clone(), &ObjectKey::of(&so).namespace);
    let result = finalizer(&api, FINALIZER, so, |event| async {
        match event {
            Finalized::Apply(so) => reconcile::apply(so, &ctx).await,
            Finalized::Cleanup(so) => cleanup::cleanup(so, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    let m = &ctx.metrics;
    m.reconcile_duration
        .observe(started.elapsed().as_secs_f64());
    if result.is_ok() {
        m.reconciles.get_or_create(&result_labels("ok")).inc();
    }
    result
}

fn error_policy(so: Arc<ScaledObject>, error: &Error, ctx: Arc<Context>) -> Action {
    warn!(
        scaledobject = %format!("{}/{}", so.namespace().unwrap_or_default(), so.name_any()),
        "reconcile failed, retrying: {error}"
    );
    ctx.metrics
        .reconciles
        .get_or_create(&crate::telemetry::result_labels(error.label()))
        .inc();
    Action::requeue(Duration::from_secs(10))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn so(extra: serde_json::Value) -> ScaledObject {
        let mut obj = serde_json::json!({
            "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
            "metadata": {"name": "web", "namespace": "default", "generation": 1,
                         "finalizers": [FINALIZER]},
            "spec": {"scaleTargetRef": {"name": "web"},
                     "triggers": [{"type": "cron", "metadata": {}}]},
        });
        json_patch_merge(&mut obj, extra);
        serde_json::from_value(obj).unwrap()
    }

    fn json_patch_merge(base: &mut serde_json::Value, patch: serde_json::Value) {
        match (base, patch) {
            (serde_json::Value::Object(b), serde_json::Value::Object(p)) => {
                for (k, v) in p {
                    json_patch_merge(b.entry(k).or_insert(serde_json::Value::Null), v);
                }
            }
            (b, p) => *b = p,
        }
    }

    #[test]
    fn status_writes_do_not_reconcile_but_spec_and_metadata_changes_do() {
        let base = reconcile_relevant(&so(serde_json::json!({})));
        let status_only = so(serde_json::json!({
            "status": {"lastActiveTime": "2026-01-01T00:00:00Z", "hpaName": "keda-hpa-web"},
            "metadata": {"resourceVersion": "42"},
        }));
        assert_eq!(reconcile_relevant(&status_only), base);
        for change in [
            serde_json::json!({"metadata": {"generation": 2}}),
            serde_json::json!({"metadata": {"annotations": {"autoscaling.keda.sh/paused": "true"}}}),
            serde_json::json!({"metadata": {"labels": {"team": "a"}}}),
            serde_json::json!({"metadata": {"finalizers": []}}),
            serde_json::json!({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}}),
        ] {
            assert_ne!(
                reconcile_relevant(&so(change.clone())),
                base,
                "{change} must reconcile"
            );
        }
    }
}
