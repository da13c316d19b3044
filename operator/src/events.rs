//! Kubernetes Events on ScaledObjects (`events.k8s.io/v1`), with KEDA's reasons.
//!
//! An Event that repeats (same object, type, reason and note) within [`SERIES_WINDOW`] is not
//! written again: the first one's `series` count and `lastObservedTime` are patched, as
//! client-go's recorders do, so a trigger failing at every poll is one Event, not thousands.
//!
//! kube-rs's `Recorder` does this by keeping a full copy of every Event it wrote (the object
//! reference twice, the note, all metadata) in one map that it scans whole at every publish: at
//! 10,000 ScaledObjects about 50 MB, and an O(n) scan per Event under one lock. This publisher
//! keeps per series only what a repeat needs — a hash of the key, the Event's name, its count
//! and when it was last seen — and sweeps expired series at most once per [`SWEEP_EVERY`].
//! It also puts the note in the key (kube-rs and client-go's `events.k8s.io` recorder do not, so
//! a repeat with a new message kept showing the old one) and cuts notes to the 1 KiB the API
//! server accepts.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};

use crate::policy::event::EventType;

/// A repeat within this long after the last occurrence joins its series (client-go's window).
pub const SERIES_WINDOW: Duration = Duration::from_secs(6 * 60);
/// How often expired series are dropped.
pub const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// The API server rejects longer notes (`NoteLengthLimit`).
pub const NOTE_LIMIT: usize = 1024;

/// Writes Events for one controller instance; cheap to clone.
#[derive(Clone)]
pub struct EventPublisher {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    controller: String,
    instance: String,
    hasher: std::collections::hash_map::RandomState,
    series: Mutex<SeriesCache>,
    /// Last timestamp used in a name, so two Events of one object never share a name.
    last_nanos: AtomicI64,
}

struct SeriesCache {
    by_key: HashMap<u64, Series>,
    swept: Instant,
}

/// What a repeat needs to know of the Event it repeats.
struct Series {
    namespace: Box<str>,
    name: Box<str>,
    count: i32,
    last_seen: Instant,
}

impl EventPublisher {
    /// A publisher writing as `reportingController: controller`,
    /// `reportingInstance: instance`.
    pub fn new(client: Client, controller: &str, instance: &str) -> Self {
        Self {
            inner: Arc::new(Inner {
                client,
                controller: controller.to_owned(),
                instance: instance.to_owned(),
                hasher: Default::default(),
                series: Mutex::new(SeriesCache {
                    by_key: HashMap::new(),
                    swept: Instant::now(),
                }),
                last_nanos: AtomicI64::new(0),
            }),
        }
    }

    /// Series kept in memory (for tests and benchmarks).
    #[cfg(test)]
    pub fn series_len(&self) -> usize {
        self.lock().by_key.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SeriesCache> {
        // A panic while holding the lock leaves a consistent map; keep using it.
        self.inner
            .series
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn key(&self, regarding: &ObjectReference, type_: EventType, reason: &str, note: &str) -> u64 {
        let mut h = self.inner.hasher.build_hasher();
        (
            regarding.uid.as_deref(),
            regarding.namespace.as_deref(),
            regarding.kind.as_deref(),
            regarding.name.as_deref(),
        )
            .hash(&mut h);
        (type_.as_str(), reason, note).hash(&mut h);
        h.finish()
    }

    /// Records `reason`/`note` on `regarding`: a new Event, or one more of a recent series.
    pub async fn publish(
        &self,
        regarding: &ObjectReference,
        type_: EventType,
        reason: &str,
        note: &str,
    ) -> Result<(), kube::Error> {
        let note = truncate(note, NOTE_LIMIT);
        let key = self.key(regarding, type_, reason, note);
        let now = Instant::now();
        let repeat = {
            let mut cache = self.lock();
            if now.duration_since(cache.swept) >= SWEEP_EVERY {
                cache
                    .by_key
                    .retain(|_, s| now.duration_since(s.last_seen) < SERIES_WINDOW);
                cache.swept = now;
            }
            match cache.by_key.get_mut(&key) {
                Some(s) if now.duration_since(s.last_seen) < SERIES_WINDOW => {
                    s.count = s.count.saturating_add(1);
                    s.last_seen = now;
                    Some((s.namespace.clone(), s.name.clone(), s.count))
                }
                _ => None,
            }
        };
        if let Some((namespace, name, count)) = repeat {
            let api: Api<Event> = Api::namespaced(self.inner.client.clone(), &namespace);
            let patch = serde_json::json!({
                "series": EventSeries {
                    count,
                    last_observed_time: MicroTime(Timestamp::now()),
                }
            });
            match api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => return Ok(()),
                // Gone (the API server keeps Events an hour): start a new series below.
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        let event = self.new_event(regarding, type_, reason, note);
        let namespace = event.metadata.namespace.clone().unwrap_or_default();
        let name = event.metadata.name.clone().unwrap_or_default();
        Api::<Event>::namespaced(self.inner.client.clone(), &namespace)
            .create(&PostParams::default(), &event)
            .await?;
        self.lock().by_key.insert(
            key,
            Series {
                namespace: namespace.into(),
                name: name.into(),
                count: 1,
                last_seen: now,
            },
        );
        Ok(())
    }

    fn new_event(
        &self,
        regarding: &ObjectReference,
        type_: EventType,
        reason: &str,
        note: &str,
    ) -> Event {
        let now = Timestamp::now();
        // Names as client-go's: `<object>.<hex nanoseconds>`, made strictly increasing.
        let clock = i64::try_from(now.as_nanosecond()).unwrap_or(i64::MAX);
        let next = |last: i64| clock.max(last.saturating_add(1));
        let nanos =
            match self
                .inner
                .last_nanos
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| {
                    Some(next(last))
                }) {
                Ok(last) | Err(last) => next(last),
            };
        let object = regarding.name.as_deref().unwrap_or(&self.inner.controller);
        Event {
            metadata: ObjectMeta {
                name: Some(format!("{object}.{nanos:x}")),
                namespace: Some(
                    regarding
                        .namespace
                        .clone()
                        .unwrap_or_else(|| "default".into()),
                ),
                ..Default::default()
            },
            event_time: Some(MicroTime(now)),
            action: Some(reason.to_owned()),
            reason: Some(reason.to_owned()),
            note: Some(note.to_owned()),
            type_: Some(type_.as_str().to_owned()),
            regarding: Some(regarding.clone()),
            reporting_controller: Some(self.inner.controller.clone()),
            reporting_instance: Some(self.inner.instance.clone()),
            ..Default::default()
        }
    }
}

/// `s` cut to at most `limit` bytes, on a character boundary.
fn truncate(s: &str, limit: usize) -> &str {
    if s.len() <= limit {
        return s;
    }
    let mut end = limit;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use kube::Resource as _;
    use kube::api::ListParams;

    #[test]
    fn notes_are_cut_on_a_character_boundary() {
        assert_eq!(truncate("short", 1024), "short");
        let long = "é".repeat(600); // 1,200 bytes
        let cut = truncate(&long, NOTE_LIMIT);
        assert_eq!(cut.len(), 1024);
        assert!(long.starts_with(cut));
        assert_eq!(truncate("aé", 2), "a");
    }

    #[tokio::test]
    async fn repeats_join_a_series_and_new_notes_make_new_events() {
        use k8s_openapi::api::core::v1::ConfigMap;
        let cluster = local_cluster::LocalCluster::start(local_cluster::Config::api_only())
            .await
            .unwrap();
        let client = cluster.client().await.unwrap();
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        let cm = cms
            .create(
                &PostParams::default(),
                &serde_json::from_value(serde_json::json!({"metadata": {"name": "so"}})).unwrap(),
            )
            .await
            .unwrap();
        let regarding = cm.object_ref(&());
        let events = EventPublisher::new(client.clone(), "kedge", "kedge-0");

        for _ in 0..3 {
            events
                .publish(&regarding, EventType::Warning, "KEDAScalerFailed", "down")
                .await
                .unwrap();
        }
        events
            .publish(
                &regarding,
                EventType::Warning,
                "KEDAScalerFailed",
                "still down",
            )
            .await
            .unwrap();
        // Longer than the API server takes: cut, not lost.
        events
            .publish(
                &regarding,
                EventType::Normal,
                "KEDAScaleTargetActivated",
                &"x".repeat(5000),
            )
            .await
            .unwrap();

        let api: Api<Event> = Api::namespaced(client.clone(), "default");
        let mut list = api.list(&ListParams::default()).await.unwrap().items;
        list.sort_by_key(|e| e.metadata.name.clone());
        let seen: Vec<_> = list
            .iter()
            .map(|e| {
                (
                    e.reason.clone().unwrap(),
                    e.note.clone().unwrap().len(),
                    e.series.as_ref().map(|s| s.count),
                )
            })
            .collect();
        assert_eq!(
            seen,
            vec![
                ("KEDAScalerFailed".into(), 4, Some(3)),
                ("KEDAScalerFailed".into(), 10, None),
                ("KEDAScaleTargetActivated".into(), NOTE_LIMIT, None),
            ]
        );
        let first = &list[0];
        assert_eq!(first.note.as_deref(), Some("down"));
        assert_eq!(first.reporting_controller.as_deref(), Some("kedge"));
        assert_eq!(first.reporting_instance.as_deref(), Some("kedge-0"));
        assert_eq!(first.type_.as_deref(), Some("Warning"));
        assert_eq!(
            first.regarding.as_ref().and_then(|r| r.uid.clone()),
            cm.metadata.uid
        );
        assert_eq!(events.series_len(), 3);

        // A series whose Event is gone (expired on the server) starts again.
        api.delete(first.metadata.name.as_deref().unwrap(), &Default::default())
            .await
            .unwrap();
        events
            .publish(&regarding, EventType::Warning, "KEDAScalerFailed", "down")
            .await
            .unwrap();
        let again = api.list(&ListParams::default()).await.unwrap().items;
        assert_eq!(again.len(), 3);
        assert!(
            again
                .iter()
                .any(|e| e.note.as_deref() == Some("down") && e.series.is_none())
        );
        cluster.shutdown().await;
    }
}
