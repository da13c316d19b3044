//! `?watch=1`: a stream of newline-delimited watch events (ADDED / MODIFIED / DELETED / BOOKMARK /
//! ERROR), from a resourceVersion (replayed from the bounded history, or 410 Gone when it was
//! compacted) or from "now" (synthetic ADDED events for what exists), honouring selectors,
//! `allowWatchBookmarks`, `sendInitialEvents` and `timeoutSeconds`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use crate::error::{ApiError, ApiResult};
use crate::objects::{Rendered, render};
use crate::resources::{GroupResource, ResourceType};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::state::State;
use crate::store::{EventType, StoreEvent};
use crate::table::{self, Include};

/// What the client asked for.
#[derive(Debug, Clone)]
pub struct WatchParams {
    /// Only this namespace (None: all).
    pub namespace: Option<String>,
    /// `labelSelector`.
    pub labels: LabelSelector,
    /// `fieldSelector`.
    pub fields: FieldSelector,
    /// `resourceVersion`: `None` for unset or "0" (start with the current state).
    pub resource_version: Option<u64>,
    /// `allowWatchBookmarks`.
    pub bookmarks: bool,
    /// `sendInitialEvents`.
    pub send_initial_events: bool,
    /// `timeoutSeconds`, or the server's default.
    pub timeout: Duration,
    /// Render objects as Table rows (kubectl get -w).
    pub table: Option<Include>,
}

struct Watcher {
    rt: Arc<ResourceType>,
    /// `rt`'s group and resource, compared with every event of the store.
    gr: GroupResource,
    params: WatchParams,
}

impl Watcher {
    fn matches(&self, obj: &Value) -> bool {
        let ns_ok = match &self.params.namespace {
            Some(ns) if self.rt.namespaced => {
                obj.pointer("/metadata/namespace").and_then(Value::as_str) == Some(ns.as_str())
            }
            _ => true,
        };
        // Field selectors name fields of the version being watched; rendering never changes
        // labels, so only a field selector needs the rendered object.
        ns_ok
            && self.params.labels.matches(obj)
            && (self.params.fields.is_empty() || self.params.fields.matches(&render(&self.rt, obj)))
    }

    fn frame(&self, kind: &str, obj: &Value) -> Bytes {
        let Some(include) = self.params.table else {
            // `{"object":…,"type":…}`: the bytes `line(&json!({"type": kind, "object": rendered}))`
            // gives, without copying the object to render it.
            let mut buf = b"{\"object\":".to_vec();
            if serde_json::to_writer(&mut buf, &Rendered { rt: &self.rt, obj }).is_err() {
                return line(&json!({"type": kind, "object": render(&self.rt, obj)}));
            }
            buf.extend_from_slice(b",\"type\":");
            let _ = serde_json::to_writer(&mut buf, kind);
            buf.extend_from_slice(b"}\n");
            return Bytes::from(buf);
        };
        let rendered = render(&self.rt, obj);
        let rv = obj
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let object = table::table(&self.rt, &[rendered], rv, include);
        line(&json!({"type": kind, "object": object}))
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Bytes {
        let mut metadata = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        line(
            &json!({"type": "BOOKMARK", "object": {"kind": self.rt.kind, "apiVersion": self.rt.api_version(), "metadata": metadata}}),
        )
    }

    /// Translate a store event for this watcher: selector changes turn MODIFIED into ADDED/DELETED.
    fn translate(&self, ev: &StoreEvent) -> Option<Bytes> {
        if ev.gr != self.gr {
            return None;
        }
        let now = self.matches(&ev.object);
        let before = ev.previous.as_ref().map(|p| self.matches(p));
        let kind = match (ev.kind, before, now) {
            (EventType::Added, _, true) => EventType::Added,
            (EventType::Modified, Some(true), true) => EventType::Modified,
            (EventType::Modified, Some(false) | None, true) => EventType::Added,
            (EventType::Modified, Some(true), false) => EventType::Deleted,
            (EventType::Deleted, Some(true), _) | (EventType::Deleted, None, true) => {
                EventType::Deleted
            }
            _ => return None,
        };
        Some(self.frame(kind.as_str(), &ev.object))
    }
}

fn line(v: &Value) -> Bytes {
    let mut buf = serde_json::to_vec(v).unwrap_or_default();
    buf.push(b'\n');
    Bytes::from(buf)
}

/// Start a watch; the returned channel yields the response body's chunks and closes when the
/// watch ends (timeout, shutdown, client gone, or the watcher fell too far behind).
pub fn start(
    state: Arc<State>,
    rt: Arc<ResourceType>,
    params: WatchParams,
) -> ApiResult<mpsc::Receiver<Bytes>> {
    let gr = rt.group_resource();
    let watcher = Watcher {
        rt,
        gr: gr.clone(),
        params,
    };
    // Under the lock: what exists or happened up to now, and the subscription for the rest.
    // Selectors and serialization run after it is released (stored objects are immutable).
    enum Start {
        Replay(Vec<Arc<StoreEvent>>),
        Snapshot(Vec<Arc<Value>>),
    }
    let (start, rx, start_rv) = {
        let mut txn = state.store.txn();
        let start_rv = txn.resource_version();
        match watcher.params.resource_version {
            Some(rv) if !watcher.params.send_initial_events => {
                match txn.watch_from(&gr, rv) {
                    Some((events, rx)) => (Start::Replay(events), rx, start_rv),
                    None => {
                        // Like kube-apiserver: 200 and a single ERROR event carrying 410 Expired.
                        let status =
                            ApiError::gone(format!("too old resource version: {rv} ({start_rv})"))
                                .to_status();
                        let (tx, out) = mpsc::channel(1);
                        let _ = tx.try_send(line(&json!({"type": "ERROR", "object": status})));
                        return Ok(out);
                    }
                }
            }
            _ => {
                let ns = if watcher.rt.namespaced {
                    watcher.params.namespace.as_deref()
                } else {
                    None
                };
                let objects = txn.list_shared(&gr, ns).cloned().collect();
                (
                    Start::Snapshot(objects),
                    txn.subscribe_resource(&gr),
                    start_rv,
                )
            }
        }
    };
    let first: Vec<Bytes> = match start {
        Start::Replay(events) => events.iter().filter_map(|e| watcher.translate(e)).collect(),
        Start::Snapshot(objects) => {
            let mut first: Vec<Bytes> = objects
                .iter()
                .filter(|obj| watcher.matches(obj))
                .map(|obj| watcher.frame("ADDED", obj))
                .collect();
            if watcher.params.send_initial_events {
                first.push(watcher.bookmark(start_rv, true));
            }
            first
        }
    };
    let (tx, out) = mpsc::channel(64);
    tokio::spawn(run(state, watcher, first, rx, start_rv, tx));
    Ok(out)
}

async fn run(
    state: Arc<State>,
    watcher: Watcher,
    first: Vec<Bytes>,
    mut rx: broadcast::Receiver<Arc<StoreEvent>>,
    mut latest_rv: u64,
    tx: mpsc::Sender<Bytes>,
) {
    let deadline = tokio::time::sleep(watcher.params.timeout);
    tokio::pin!(deadline);
    let mut shutdown = state.shutdown.clone();
    let mut ticker = tokio::time::interval(state.bookmark_interval);
    ticker.tick().await;
    for chunk in first {
        if tx.send(chunk).await.is_err() {
            return;
        }
    }
    loop {
        let chunk = tokio::select! {
            ev = rx.recv() => match ev {
                Ok(ev) => {
                    latest_rv = latest_rv.max(ev.rv);
                    match watcher.translate(&ev) {
                        Some(chunk) => chunk,
                        None => continue,
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    // Too far behind to be exact: tell the client to re-list, as etcd compaction would.
                    let status = ApiError::gone("the watch fell behind; re-list and watch again").to_status();
                    let _ = tx.send(line(&json!({"type": "ERROR", "object": status}))).await;
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = ticker.tick() => {
                if !watcher.params.bookmarks {
                    continue;
                }
                watcher.bookmark(latest_rv, false)
            }
            _ = &mut deadline => return,
            _ = tx.closed() => return,
            _ = shutdown.changed() => return,
        };
        if tx.send(chunk).await.is_err() {
            return;
        }
    }
}
