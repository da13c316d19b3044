//! Which ScaledObjects read which objects, so a change of a Secret, ConfigMap or
//! TriggerAuthentication re-reconciles exactly the ScaledObjects that use it.

use std::collections::{HashMap, HashSet};
use std::sync::RwLock;

use kube::runtime::reflector::ObjectRef;

use crate::crd::ScaledObject;
use crate::runtime::ObjectKey;

/// A referenced object: kind, namespace ("" for cluster-scoped), name.
pub type Dependency = (&'static str, String, String);

/// The dependency index, written at each reconcile and read by the watch mappers.
#[derive(Default)]
pub struct Dependencies {
    inner: RwLock<Index>,
}

#[derive(Default)]
struct Index {
    by_object: HashMap<Dependency, HashSet<ObjectKey>>,
    by_scaled_object: HashMap<ObjectKey, Vec<Dependency>>,
}

impl Dependencies {
    /// Replaces what `so` depends on.
    pub fn record(&self, so: &ObjectKey, deps: Vec<Dependency>) {
        let Ok(mut index) = self.inner.write() else {
            return;
        };
        index.remove(so);
        for d in &deps {
            index
                .by_object
                .entry(d.clone())
                .or_default()
                .insert(so.clone());
        }
        index.by_scaled_object.insert(so.clone(), deps);
    }

    /// Forgets `so`.
    pub fn forget(&self, so: &ObjectKey) {
        if let Ok(mut index) = self.inner.write() {
            index.remove(so);
        }
    }

    /// The ScaledObjects that read `kind` `namespace`/`name`.
    pub fn dependents(
        &self,
        kind: &'static str,
        namespace: &str,
        name: &str,
    ) -> Vec<ObjectRef<ScaledObject>> {
        let key = (kind, namespace.to_owned(), name.to_owned());
        self.inner
            .read()
            .ok()
            .and_then(|index| {
                index.by_object.get(&key).map(|set| {
                    set.iter()
                        .map(|k| ObjectRef::new(&k.name).within(&k.namespace))
                        .collect()
                })
            })
            .unwrap_or_default()
    }
}

impl Index {
    fn remove(&mut self, so: &ObjectKey) {
        for d in self.by_scaled_object.remove(so).unwrap_or_default() {
            if let Some(set) = self.by_object.get_mut(&d) {
                set.remove(so);
                if set.is_empty() {
                    self.by_object.remove(&d);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_replace_and_forget() {
        let deps = Dependencies::default();
        let a = ObjectKey {
            namespace: "ns".into(),
            name: "a".into(),
        };
        deps.record(&a, vec![("Secret", "ns".into(), "s".into())]);
        assert_eq!(deps.dependents("Secret", "ns", "s").len(), 1);
        deps.record(&a, vec![("ConfigMap", "ns".into(), "c".into())]);
        assert!(deps.dependents("Secret", "ns", "s").is_empty());
        assert_eq!(deps.dependents("ConfigMap", "ns", "c").len(), 1);
        deps.forget(&a);
        assert!(deps.dependents("ConfigMap", "ns", "c").is_empty());
    }
}
