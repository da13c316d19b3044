//! When the caches the reconciler reads are complete: every watch has listed its objects once.
//!
//! Watched from the watch events themselves (their `InitDone`), not from
//! `Store::wait_until_ready`: kube-runtime's readiness wakes only the last task to poll it, and
//! the controller's own runner waits on the ScaledObject store.

use std::sync::{Arc, Mutex};

use kube::runtime::watcher;
use tokio::sync::watch;
use tracing::info;

/// A watch whose first complete list counts.
#[derive(Clone, Copy, Debug)]
#[repr(u8)]
pub(super) enum Watch {
    ScaledObjects = 1,
    TriggerAuthentications = 2,
    ClusterTriggerAuthentications = 4,
}

const ALL: u8 = 1 | 2 | 4;

/// Collects the watches' first lists and says `true` on `synced` once all have listed.
#[derive(Clone)]
pub(super) struct SyncTracker {
    listed: Arc<Mutex<u8>>,
    synced: watch::Sender<bool>,
}

impl SyncTracker {
    pub(super) fn new(synced: watch::Sender<bool>) -> Self {
        Self {
            listed: Arc::default(),
            synced,
        }
    }

    /// Notes `event` of `which` watch.
    pub(super) fn observe<K>(&self, which: Watch, event: &watcher::Event<K>) {
        if !matches!(event, watcher::Event::InitDone) {
            return;
        }
        let mut listed = self
            .listed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let before = *listed;
        *listed |= which as u8;
        if before != ALL && *listed == ALL {
            info!("watches synced");
            self.synced.send_replace(true);
        }
    }

    /// Waits until every watch has listed (at once when they have).
    pub(super) async fn wait(&self) {
        let mut rx = self.synced.subscribe();
        let _ = rx.wait_for(|synced| *synced).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;

    #[tokio::test]
    async fn synced_once_every_watch_has_listed() {
        let (tx, rx) = watch::channel(false);
        let t = SyncTracker::new(tx);
        let done = watcher::Event::<ConfigMap>::InitDone;
        t.observe(Watch::ScaledObjects, &done);
        t.observe(
            Watch::TriggerAuthentications,
            &watcher::Event::<ConfigMap>::Init,
        );
        t.observe(Watch::TriggerAuthentications, &done);
        assert!(!*rx.borrow());
        t.observe(Watch::ClusterTriggerAuthentications, &done);
        assert!(*rx.borrow());
        t.wait().await;
    }
}
