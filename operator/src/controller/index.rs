//! Which ScaledObjects name a workload or an HPA, kept from the same watch events as the
//! controller's store, so the one-per-workload checks look at the few ScaledObjects that can
//! conflict instead of every ScaledObject in the cluster (O(1) per reconcile, not O(N)).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;

use crate::crd::ScaledObject;

/// `(namespace, name)`.
type Name = (String, String);

/// What an object is indexed under: its target's name and its HPA's name. Only names are
/// indexed; [`crate::admission::validate_against`] makes the exact comparison (kind, group).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    target: String,
    hpa: String,
}

impl Entry {
    fn of(so: &ScaledObject) -> (Name, Entry) {
        let name = so.metadata.name.clone().unwrap_or_default();
        let entry = Entry {
            target: so.spec.scale_target_ref.name.clone(),
            hpa: so.spec.hpa_name(&name),
        };
        (
            (so.metadata.namespace.clone().unwrap_or_default(), name),
            entry,
        )
    }
}

#[derive(Default)]
struct Entries {
    by_object: HashMap<Name, Entry>,
    /// `(namespace, target name)` → ScaledObject names.
    by_target: HashMap<Name, BTreeSet<String>>,
    /// `(namespace, HPA name)` → ScaledObject names.
    by_hpa: HashMap<Name, BTreeSet<String>>,
}

fn unlink(map: &mut HashMap<Name, BTreeSet<String>>, key: Name, name: &str) {
    if let Some(names) = map.get_mut(&key) {
        names.remove(name);
        if names.is_empty() {
            map.remove(&key);
        }
    }
}

impl Entries {
    fn apply(&mut self, so: &ScaledObject) {
        let (key, entry) = Entry::of(so);
        if self.by_object.get(&key) == Some(&entry) {
            return;
        }
        self.delete(so);
        let (ns, name) = key.clone();
        self.by_target
            .entry((ns.clone(), entry.target.clone()))
            .or_default()
            .insert(name.clone());
        self.by_hpa
            .entry((ns, entry.hpa.clone()))
            .or_default()
            .insert(name);
        self.by_object.insert(key, entry);
    }

    fn delete(&mut self, so: &ScaledObject) {
        let (key, _) = Entry::of(so);
        let Some(old) = self.by_object.remove(&key) else {
            return;
        };
        let (ns, name) = key;
        unlink(&mut self.by_target, (ns.clone(), old.target), &name);
        unlink(&mut self.by_hpa, (ns, old.hpa), &name);
    }
}

#[derive(Default)]
struct Inner {
    live: Entries,
    /// Filled between a re-list's `Init` and `InitDone`, then swapped in, as the store does.
    relisting: Option<Entries>,
}

/// The index; cheap to clone (shared).
#[derive(Clone, Default)]
pub struct ScaledObjectIndex(Arc<Mutex<Inner>>);

impl std::fmt::Debug for ScaledObjectIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScaledObjectIndex").finish_non_exhaustive()
    }
}

impl ScaledObjectIndex {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Follow one watch event, with the semantics of the reflector's store.
    pub fn apply(&self, event: &watcher::Event<ScaledObject>) {
        let mut inner = self.lock();
        match event {
            watcher::Event::Apply(so) => inner.live.apply(so),
            watcher::Event::Delete(so) => inner.live.delete(so),
            watcher::Event::Init => inner.relisting = Some(Entries::default()),
            watcher::Event::InitApply(so) => inner.relisting.get_or_insert_default().apply(so),
            watcher::Event::InitDone => {
                if let Some(fresh) = inner.relisting.take() {
                    inner.live = fresh;
                }
            }
        }
    }

    /// Other ScaledObjects in `so`'s namespace that name the same target or HPA, by name.
    fn candidates(&self, so: &ScaledObject) -> BTreeSet<String> {
        let ((ns, name), entry) = Entry::of(so);
        let inner = self.lock();
        let mut out = BTreeSet::new();
        for (map, key) in [
            (&inner.live.by_target, (ns.clone(), entry.target)),
            (&inner.live.by_hpa, (ns, entry.hpa)),
        ] {
            out.extend(map.get(&key).into_iter().flatten().cloned());
        }
        out.remove(&name);
        out
    }

    /// [`crate::admission::validate_against`] against the ScaledObjects of `store` that can
    /// conflict with `so` (the same answer as passing all of them, in a stable order).
    pub fn validate_against(&self, so: &ScaledObject, store: &Store<ScaledObject>) -> Vec<String> {
        let namespace = so.metadata.namespace.as_deref().unwrap_or_default();
        let others: Vec<Arc<ScaledObject>> = self
            .candidates(so)
            .iter()
            .filter_map(|name| store.get(&ObjectRef::new(name).within(namespace)))
            .collect();
        let refs: Vec<&ScaledObject> = others.iter().map(AsRef::as_ref).collect();
        crate::admission::validate_against(so, &refs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn so(ns: &str, name: &str, target: &str, hpa: Option<&str>) -> ScaledObject {
        let mut so: ScaledObject = match serde_json::from_value(serde_json::json!({
            "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"scaleTargetRef": {"name": target},
                     "triggers": [{"type": "cron", "metadata": {}}]}
        })) {
            Ok(so) => so,
            Err(e) => panic!("fixture: {e}"),
        };
        if let Some(h) = hpa {
            so.spec.advanced = Some(crate::crd::AdvancedConfig {
                horizontal_pod_autoscaler_config: Some(crate::crd::HorizontalPodAutoscalerConfig {
                    name: Some(h.into()),
                    behavior: None,
                }),
                ..Default::default()
            });
        }
        so
    }

    fn names(index: &ScaledObjectIndex, so: &ScaledObject) -> Vec<String> {
        index.candidates(so).into_iter().collect()
    }

    #[test]
    fn finds_objects_sharing_a_target_or_hpa_in_the_namespace() {
        let index = ScaledObjectIndex::default();
        let a = so("default", "a", "web", None);
        let b = so("default", "b", "web", None);
        let c = so("default", "c", "other", Some("keda-hpa-a"));
        let d = so("elsewhere", "d", "web", None);
        for o in [&a, &b, &c, &d] {
            index.apply(&watcher::Event::Apply(o.clone()));
        }
        assert_eq!(names(&index, &a), ["b", "c"]);
        assert_eq!(names(&index, &c), ["a"]);
        assert!(names(&index, &d).is_empty());

        // A changed target moves the entry; a deletion removes it.
        let b2 = so("default", "b", "api", None);
        index.apply(&watcher::Event::Apply(b2.clone()));
        assert_eq!(names(&index, &a), ["c"]);
        assert!(names(&index, &b2).is_empty());
        index.apply(&watcher::Event::Delete(c.clone()));
        assert!(names(&index, &a).is_empty());
    }

    #[test]
    fn relist_replaces_the_contents_when_done() {
        let index = ScaledObjectIndex::default();
        let a = so("default", "a", "web", None);
        let b = so("default", "b", "web", None);
        index.apply(&watcher::Event::Apply(a.clone()));
        index.apply(&watcher::Event::Apply(b.clone()));
        index.apply(&watcher::Event::Init);
        index.apply(&watcher::Event::InitApply(a.clone()));
        // Until InitDone the old contents answer.
        assert_eq!(names(&index, &a), ["b"]);
        index.apply(&watcher::Event::InitDone);
        assert!(names(&index, &a).is_empty(), "b was gone from the re-list");
    }
}
