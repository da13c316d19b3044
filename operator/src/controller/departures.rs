//! ScaledObjects that are gone without their finalizer having run.
//!
//! The finalizer is how a deletion normally reaches the reconciler, but it can be bypassed: a
//! user removes it by hand, a namespace is force-deleted, or the object disappears while kedge
//! was not watching. kube's controller does not reconcile an object that is no longer in its
//! cache, so without this the scale loop would go on polling and scaling for an object that does
//! not exist. The ScaledObject watch reports each departure here — a `Delete` event, or an
//! object missing from a re-list — and kedge stops polling it within that one event.

use std::collections::HashSet;

use kube::ResourceExt as _;
use kube::runtime::watcher;
use tokio::sync::mpsc;

use crate::crd::ScaledObject;
use crate::runtime::{ObjectKey, Runtimes};

/// An object that left the cluster: its key, and its uid when known (so that a newer object
/// created under the same name is not stopped in its place).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Departure {
    pub key: ObjectKey,
    pub uid: Option<String>,
}

/// Watches the ScaledObject events for departures.
pub(super) struct Departures {
    runtimes: Runtimes,
    /// Keys seen since the current re-list began.
    listed: Option<HashSet<ObjectKey>>,
    gone: mpsc::UnboundedSender<Departure>,
}

impl Departures {
    pub(super) fn new(runtimes: Runtimes) -> (Self, mpsc::UnboundedReceiver<Departure>) {
        let (gone, rx) = mpsc::unbounded_channel();
        (
            Self {
                runtimes,
                listed: None,
                gone,
            },
            rx,
        )
    }

    /// Notes one event of the ScaledObject watch.
    pub(super) fn observe(&mut self, event: &watcher::Event<ScaledObject>) {
        match event {
            watcher::Event::Delete(so) => self.depart(ObjectKey::of(so), so.uid()),
            watcher::Event::Init => self.listed = Some(HashSet::new()),
            watcher::Event::InitApply(so) => {
                if let Some(listed) = &mut self.listed {
                    listed.insert(ObjectKey::of(so));
                }
            }
            watcher::Event::InitDone => {
                // Objects served before the re-list that it no longer holds were deleted while
                // the watch was down.
                let listed = self.listed.take().unwrap_or_default();
                for rt in self.runtimes.all() {
                    if !listed.contains(&rt.key) {
                        self.depart(rt.key.clone(), rt.object.uid());
                    }
                }
            }
            watcher::Event::Apply(_) => {}
        }
    }

    fn depart(&self, key: ObjectKey, uid: Option<String>) {
        let _ = self.gone.send(Departure { key, uid });
    }
}

/// Whether the runtime kedge holds under a departed key belongs to the departed object (and not
/// to one created since under the same name).
pub(super) fn is_same_object(departure: &Departure, runtime_uid: Option<&str>) -> bool {
    match (&departure.uid, runtime_uid) {
        (Some(gone), Some(held)) => gone == held,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn so(name: &str, uid: &str) -> ScaledObject {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
            "metadata": {"name": name, "namespace": "ns", "uid": uid},
            "spec": {"scaleTargetRef": {"name": name}, "triggers": []},
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn deletes_and_objects_missing_from_a_relist_depart() {
        let (mut d, mut gone) = Departures::new(Runtimes::default());
        d.observe(&watcher::Event::Apply(so("a", "1")));
        assert!(gone.try_recv().is_err());
        d.observe(&watcher::Event::Delete(so("a", "1")));
        assert_eq!(
            gone.try_recv().unwrap(),
            Departure {
                key: ObjectKey {
                    namespace: "ns".into(),
                    name: "a".into()
                },
                uid: Some("1".into())
            }
        );
        // A re-list: nothing is served, so nothing departs.
        d.observe(&watcher::Event::Init);
        d.observe(&watcher::Event::InitApply(so("b", "2")));
        d.observe(&watcher::Event::InitDone);
        assert!(gone.try_recv().is_err());
    }

    #[test]
    fn a_newer_object_under_the_same_name_is_not_the_departed_one() {
        let departure = Departure {
            key: ObjectKey {
                namespace: "ns".into(),
                name: "a".into(),
            },
            uid: Some("1".into()),
        };
        assert!(is_same_object(&departure, Some("1")));
        assert!(!is_same_object(&departure, Some("2")));
        assert!(is_same_object(&departure, None));
    }
}
