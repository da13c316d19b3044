//! What kedge keeps in memory for each ScaledObject it serves: its scalers, its scale target,
//! its status writer and the last metric values. The reconciler builds it, the scale loop polls
//! it, and the metrics adapter reads it.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use scaler_core::{MetricSpec, MetricValue, Scaler, TriggerId};

use crate::crd::ScaledObject;
use crate::status::StatusWriter;
use crate::target::Target;

/// Namespace and name of a ScaledObject.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl ObjectKey {
    /// The key of `so`.
    pub fn of(so: &ScaledObject) -> Self {
        use kube::ResourceExt as _;
        Self {
            namespace: so.namespace().unwrap_or_default(),
            name: so.name_any(),
        }
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// One trigger, built.
pub struct TriggerRuntime {
    /// Which trigger.
    pub id: TriggerId,
    /// The scaler.
    pub scaler: Arc<dyn Scaler>,
    /// Its metric specs, as reported when it was built.
    pub specs: Vec<MetricSpec>,
    /// `useCachedMetrics`.
    pub use_cached_metrics: bool,
}

/// The outcome of the last query of one metric.
#[derive(Clone, Debug)]
pub struct CachedMetric {
    /// The values, or the error.
    pub result: Result<Vec<MetricValue>, String>,
    /// When it was taken.
    pub at: SystemTime,
}

/// Everything kedge holds for one ScaledObject.
pub struct ScaledObjectRuntime {
    /// Which object.
    pub key: ObjectKey,
    /// The object as last reconciled.
    pub object: ScaledObject,
    /// Fingerprint of everything the scalers were built from; equal fingerprints reuse scalers.
    pub fingerprint: u64,
    /// The built triggers, in `spec.triggers` order (cpu/memory excluded).
    pub triggers: Vec<TriggerRuntime>,
    /// `advanced.scalingModifiers.formula`, compiled once when the object was reconciled.
    pub formula: Option<Arc<crate::policy::modifiers::Formula>>,
    /// The scale target.
    pub target: Target,
    /// The status writer shared with the reconciler.
    pub status: Arc<StatusWriter>,
    /// Last metric values by lower-cased metric name (the adapter matches case-insensitively).
    pub metrics: RwLock<HashMap<String, CachedMetric>>,
}

impl ScaledObjectRuntime {
    /// `pollingInterval`.
    pub fn polling_interval(&self) -> Duration {
        Duration::from_secs(u64::try_from(self.object.spec.polling_interval().max(1)).unwrap_or(30))
    }

    /// Records a metric's latest outcome.
    pub fn record(&self, metric: &str, cached: CachedMetric) {
        if let Ok(mut m) = self.metrics.write() {
            m.insert(metric.to_ascii_lowercase(), cached);
        }
    }

    /// The latest outcome of a metric, matched case-insensitively.
    pub fn cached(&self, metric: &str) -> Option<CachedMetric> {
        self.metrics
            .read()
            .ok()
            .and_then(|m| m.get(&metric.to_ascii_lowercase()).cloned())
    }

    /// Closes every scaler.
    pub async fn close(&self) {
        for t in &self.triggers {
            t.scaler.close().await;
        }
    }
}

/// The runtimes of every served ScaledObject.
#[derive(Clone, Default)]
pub struct Runtimes {
    map: Arc<RwLock<HashMap<ObjectKey, Arc<ScaledObjectRuntime>>>>,
}

impl Runtimes {
    /// The runtime of `key`.
    pub fn get(&self, key: &ObjectKey) -> Option<Arc<ScaledObjectRuntime>> {
        self.map.read().ok().and_then(|m| m.get(key).cloned())
    }

    /// Stores a runtime, returning the one it replaces.
    pub fn insert(&self, rt: Arc<ScaledObjectRuntime>) -> Option<Arc<ScaledObjectRuntime>> {
        self.map
            .write()
            .ok()
            .and_then(|mut m| m.insert(rt.key.clone(), rt))
    }

    /// Removes a runtime.
    pub fn remove(&self, key: &ObjectKey) -> Option<Arc<ScaledObjectRuntime>> {
        self.map.write().ok().and_then(|mut m| m.remove(key))
    }

    /// All runtimes (a snapshot).
    pub fn all(&self) -> Vec<Arc<ScaledObjectRuntime>> {
        self.map
            .read()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }
}
