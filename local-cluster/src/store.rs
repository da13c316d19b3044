//! Resource-agnostic in-memory storage: JSON objects keyed by group/resource, namespace and name,
//! one cluster-wide resourceVersion counter (as etcd's revision), a bounded event history per
//! resource for watches that resume from an older version, and broadcasts of every change: one of
//! all changes (for the simulated controllers) and one per resource (for watches, so a watcher
//! only wakes for, and can only be overrun by, the resource it watches — as with
//! kube-apiserver's per-resource watch cache).
//!
//! All mutations happen inside a [`Txn`] that holds the lock, so a read-check-write sequence
//! (resourceVersion preconditions, garbage collection) is atomic, and a watch that subscribes
//! inside a transaction sees every later event exactly once.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;
use tokio::sync::broadcast;

use crate::resources::GroupResource;

/// The kind of a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Created.
    Added,
    /// Changed.
    Modified,
    /// Removed.
    Deleted,
}

impl EventType {
    /// Name used in watch events.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One committed change.
#[derive(Debug)]
pub struct StoreEvent {
    /// What happened.
    pub kind: EventType,
    /// Which resource.
    pub gr: GroupResource,
    /// The resourceVersion of this change.
    pub rv: u64,
    /// The object after the change (for deletions: as it was, with the deletion's resourceVersion).
    pub object: Arc<Value>,
    /// The object before the change, so filtered watches can turn "no longer matches" into DELETED.
    pub previous: Option<Arc<Value>>,
}

type Key = (String, String);

#[derive(Default)]
struct History {
    events: VecDeque<Arc<StoreEvent>>,
    /// The highest resourceVersion dropped from `events`; watches from before it get 410 Gone.
    compacted: u64,
    /// Changes of this resource, created by the first watch of it.
    tx: Option<broadcast::Sender<Arc<StoreEvent>>>,
}

/// Events a receiver may fall behind by before it is told it lagged.
const BROADCAST_CAPACITY: usize = 8192;

struct Inner {
    rv: u64,
    /// Stored objects are immutable once stored: a write replaces the `Arc`, so readers (lists,
    /// watch events) share them without copying and can render them after the lock is released.
    objects: HashMap<GroupResource, BTreeMap<Key, Arc<Value>>>,
    history: HashMap<GroupResource, History>,
}

/// The storage.
pub struct Store {
    inner: Mutex<Inner>,
    tx: broadcast::Sender<Arc<StoreEvent>>,
    history_limit: usize,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("history_limit", &self.history_limit)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// An empty store keeping `history_limit` events per resource for watch resumption.
    pub fn new(history_limit: usize) -> Self {
        // The broadcast buffer only has to absorb bursts between a watcher's polls; a watcher
        // that falls further behind gets 410 and re-lists, as with a real API server.
        let (tx, _) = broadcast::channel(BROADCAST_CAPACITY);
        Store {
            inner: Mutex::new(Inner {
                rv: 1,
                objects: HashMap::new(),
                history: HashMap::new(),
            }),
            tx,
            history_limit,
        }
    }

    /// Start a transaction (takes the store lock until dropped; never hold it across `.await`).
    pub fn txn(&self) -> Txn<'_> {
        let inner = self
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Txn { inner, store: self }
    }
}

/// Exclusive access to the store.
pub struct Txn<'a> {
    inner: MutexGuard<'a, Inner>,
    store: &'a Store,
}

/// The outcome of [`Txn::watch_from`].
pub type Subscription = (Vec<Arc<StoreEvent>>, broadcast::Receiver<Arc<StoreEvent>>);

impl Txn<'_> {
    /// The latest resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.inner.rv
    }

    /// One object.
    pub fn get(&self, gr: &GroupResource, namespace: &str, name: &str) -> Option<&Value> {
        self.get_shared(gr, namespace, name).map(|v| &**v)
    }

    /// One object, shared (a reference count, not a copy).
    pub fn get_shared(
        &self,
        gr: &GroupResource,
        namespace: &str,
        name: &str,
    ) -> Option<&Arc<Value>> {
        self.inner
            .objects
            .get(gr)?
            .get(&(namespace.to_string(), name.to_string()))
    }

    /// Objects of one resource, optionally of one namespace, ordered by namespace then name.
    pub fn list(&self, gr: &GroupResource, namespace: Option<&str>) -> Vec<&Value> {
        self.list_shared(gr, namespace).map(|v| &**v).collect()
    }

    /// [`Txn::list`], shared: clone the `Arc`s to keep them past the transaction.
    pub fn list_shared<'s>(
        &'s self,
        gr: &GroupResource,
        namespace: Option<&str>,
    ) -> impl Iterator<Item = &'s Arc<Value>> + use<'s> {
        let map = self.inner.objects.get(gr);
        let ns = namespace.map(str::to_string);
        let range = map.map(|map| match &ns {
            Some(ns) => map.range((ns.clone(), String::new())..),
            None => map.range::<Key, _>(..),
        });
        range
            .into_iter()
            .flatten()
            .take_while(move |((n, _), _)| ns.as_ref().is_none_or(|ns| n == ns))
            .map(|(_, v)| v)
    }

    /// Every object of every resource (for garbage collection and namespace deletion).
    pub fn all(&self) -> Vec<(GroupResource, &Value)> {
        self.inner
            .objects
            .iter()
            .flat_map(|(gr, map)| map.values().map(move |v| (gr.clone(), &**v)))
            .collect()
    }

    /// Store an object, assigning the next resourceVersion; returns the stored object.
    pub fn put(&mut self, gr: &GroupResource, mut object: Value) -> Arc<Value> {
        let (namespace, name) = key_of(&object);
        self.inner.rv += 1;
        let rv = self.inner.rv;
        if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
        }
        let object = Arc::new(object);
        let previous = self
            .inner
            .objects
            .entry(gr.clone())
            .or_default()
            .insert((namespace, name), object.clone());
        let kind = if previous.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        self.record(StoreEvent {
            kind,
            gr: gr.clone(),
            rv,
            object: object.clone(),
            previous,
        });
        object
    }

    /// Remove an object; the DELETED event carries it with a fresh resourceVersion.
    pub fn remove(
        &mut self,
        gr: &GroupResource,
        namespace: &str,
        name: &str,
    ) -> Option<Arc<Value>> {
        let previous = self
            .inner
            .objects
            .get_mut(gr)?
            .remove(&(namespace.to_string(), name.to_string()))?;
        let mut object = (*previous).clone();
        self.inner.rv += 1;
        let rv = self.inner.rv;
        if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
        }
        let object = Arc::new(object);
        self.record(StoreEvent {
            kind: EventType::Deleted,
            gr: gr.clone(),
            rv,
            object: object.clone(),
            previous: Some(previous),
        });
        Some(object)
    }

    fn record(&mut self, event: StoreEvent) {
        let event = Arc::new(event);
        let limit = self.store.history_limit.max(1);
        let history = self.inner.history.entry(event.gr.clone()).or_default();
        history.events.push_back(event.clone());
        while history.events.len() > limit {
            if let Some(old) = history.events.pop_front() {
                history.compacted = old.rv;
            }
        }
        // No receivers is fine: nobody is watching.
        if let Some(tx) = &history.tx {
            let _ = tx.send(event.clone());
        }
        let _ = self.store.tx.send(event);
    }

    /// Events of one resource after `since`, plus a receiver for everything later. `None` when
    /// events after `since` were already compacted away (the caller answers 410 Gone).
    pub fn watch_from(&mut self, gr: &GroupResource, since: u64) -> Option<Subscription> {
        let rx = self.subscribe_resource(gr);
        let history = self.inner.history.get(gr)?;
        if since < history.compacted {
            return None;
        }
        let events = history
            .events
            .iter()
            .filter(|e| e.rv > since)
            .cloned()
            .collect();
        Some((events, rx))
    }

    /// A receiver for all future events.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<StoreEvent>> {
        self.store.tx.subscribe()
    }

    /// A receiver for the future events of one resource.
    pub fn subscribe_resource(
        &mut self,
        gr: &GroupResource,
    ) -> broadcast::Receiver<Arc<StoreEvent>> {
        let history = self.inner.history.entry(gr.clone()).or_default();
        history
            .tx
            .get_or_insert_with(|| broadcast::channel(BROADCAST_CAPACITY).0)
            .subscribe()
    }
}

/// `(namespace, name)` of an object; namespace is `""` for cluster-scoped objects.
pub fn key_of(object: &Value) -> (String, String) {
    let meta = object.get("metadata");
    let s = |k: &str| {
        meta.and_then(|m| m.get(k))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    (s("namespace"), s("name"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use serde_json::json;

    fn obj(ns: &str, name: &str) -> Value {
        json!({"metadata": {"namespace": ns, "name": name}})
    }

    #[test]
    fn versions_increase_and_history_is_bounded() {
        let store = Store::new(3);
        let gr = GroupResource::new("", "configmaps");
        let mut txn = store.txn();
        let first = txn.put(&gr, obj("a", "x"));
        assert_eq!(first["metadata"]["resourceVersion"], "2");
        for i in 0..5 {
            txn.put(&gr, obj("a", &format!("y{i}")));
        }
        assert_eq!(txn.list(&gr, Some("a")).len(), 6);
        assert!(txn.list(&gr, Some("b")).is_empty());
        assert!(
            txn.watch_from(&gr, 2).is_none(),
            "events after rv 2 were compacted"
        );
        let (events, _) = txn.watch_from(&gr, 5).expect("recent history is kept");
        assert_eq!(events.iter().map(|e| e.rv).collect::<Vec<_>>(), vec![6, 7]);
        let removed = txn.remove(&gr, "a", "x").unwrap();
        assert_eq!(removed["metadata"]["resourceVersion"], "8");
        assert!(txn.get(&gr, "a", "x").is_none());
    }

    #[test]
    fn resource_subscriptions_see_only_their_resource() {
        let store = Store::new(10);
        let (cms, secrets) = (
            GroupResource::new("", "configmaps"),
            GroupResource::new("", "secrets"),
        );
        let mut txn = store.txn();
        let mut all = txn.subscribe();
        let mut only_cms = txn.subscribe_resource(&cms);
        txn.put(&secrets, obj("a", "s"));
        txn.put(&cms, obj("a", "c"));
        txn.put(&cms, obj("b", "c"));
        assert_eq!(
            txn.list_shared(&cms, Some("a")).count(),
            1,
            "namespace ranges stop at the namespace"
        );
        assert_eq!(txn.list_shared(&cms, None).count(), 2);
        assert_eq!(txn.list_shared(&secrets, Some("b")).count(), 0);
        drop(txn);
        let rvs = |rx: &mut broadcast::Receiver<Arc<StoreEvent>>| {
            std::iter::from_fn(|| rx.try_recv().ok().map(|e| e.rv)).collect::<Vec<_>>()
        };
        assert_eq!(rvs(&mut all), vec![2, 3, 4]);
        assert_eq!(rvs(&mut only_cms), vec![3, 4]);
    }
}
