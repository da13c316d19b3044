//! The scale loop: every served ScaledObject is polled at its `pollingInterval`.
//!
//! One task owns a timer wheel (`DelayQueue`) of due times; due objects are polled by spawned
//! tasks under a semaphore, so ten thousand objects cost ten thousand timer entries, not ten
//! thousand threads or sleeping tasks. The next poll is scheduled from the previous due time,
//! not from when the poll finished, so slow polls do not make an object drift; how late each
//! poll starts is exported as `keda_internal_scale_loop_latency_seconds`.
//!
//! A loop lives for one leadership term: cancelling its token (on a step-down) ends the loop and
//! aborts every poll in flight at its next await, so a poll that started while leading cannot
//! go on to query, decide and write after the lease is gone.

mod poll;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::time::{DelayQueue, delay_queue};
use tracing::debug;

pub use poll::PollContext;

use crate::runtime::{ObjectKey, Runtimes};

/// What the scale loop is told.
#[derive(Debug)]
enum Command {
    /// Poll this object now and then at its interval (replacing any schedule).
    Schedule(ObjectKey),
    /// Stop polling this object.
    Unschedule(ObjectKey),
    /// A poll finished.
    Done(ObjectKey, Instant),
}

/// A handle to the scale loop. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ScaleLoopHandle {
    tx: mpsc::UnboundedSender<Command>,
}

impl ScaleLoopHandle {
    /// Starts polling `key` now and at its interval.
    pub fn schedule(&self, key: ObjectKey) {
        let _ = self.tx.send(Command::Schedule(key));
    }

    /// Stops polling `key`.
    pub fn unschedule(&self, key: ObjectKey) {
        let _ = self.tx.send(Command::Unschedule(key));
    }
}

/// How many polls may run at once. Polls mostly wait on the network, so this bounds open
/// connections and API writes rather than CPU: 10,000 objects at a 30 s interval are 333 polls
/// a second, about 4 in flight at 10 ms each.
pub const DEFAULT_CONCURRENCY: usize = 64;

/// Starts the scale loop; it runs until `stop` is cancelled, which also aborts the polls in
/// flight. The returned task ends with the loop.
pub fn spawn(
    runtimes: Runtimes,
    ctx: Arc<PollContext>,
    concurrency: usize,
    stop: CancellationToken,
) -> (ScaleLoopHandle, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let handle = ScaleLoopHandle { tx: tx.clone() };
    let task = tokio::spawn(run(runtimes, ctx, rx, tx, concurrency, stop));
    (handle, task)
}

async fn run(
    runtimes: Runtimes,
    ctx: Arc<PollContext>,
    mut rx: mpsc::UnboundedReceiver<Command>,
    tx: mpsc::UnboundedSender<Command>,
    concurrency: usize,
    stop: CancellationToken,
) {
    let mut queue: DelayQueue<ObjectKey> = DelayQueue::new();
    let mut entries: HashMap<ObjectKey, delay_queue::Key> = HashMap::new();
    let mut in_flight: HashSet<ObjectKey> = HashSet::new();
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));

    let start = |key: ObjectKey, due: Instant, in_flight: &mut HashSet<ObjectKey>| {
        if !in_flight.insert(key.clone()) {
            return; // still polling; the Done handler reschedules
        }
        let (runtimes, ctx, tx, permits, stop) = (
            runtimes.clone(),
            Arc::clone(&ctx),
            tx.clone(),
            Arc::clone(&permits),
            stop.clone(),
        );
        tokio::spawn(async move {
            let polled = stop.run_until_cancelled(async {
                if let Ok(_permit) = permits.acquire_owned().await
                    && let Some(rt) = runtimes.get(&key)
                {
                    ctx.observe_lag(&rt, Instant::now().saturating_duration_since(due));
                    poll::poll(&ctx, &rt).await;
                }
            });
            if polled.await.is_none() {
                debug!(%key, "poll aborted: the scale loop stopped");
            }
            let _ = tx.send(Command::Done(key, due));
        });
    };

    loop {
        tokio::select! {
            () = stop.cancelled() => {
                debug!("scale loop stopped");
                return;
            }
            cmd = rx.recv() => {
                let Some(cmd) = cmd else { return };
                match cmd {
                    Command::Schedule(key) => {
                        if let Some(k) = entries.remove(&key) {
                            queue.remove(&k);
                        }
                        let k = queue.insert_at(key.clone(), Instant::now());
                        entries.insert(key, k);
                    }
                    Command::Unschedule(key) => {
                        if let Some(k) = entries.remove(&key) {
                            queue.remove(&k);
                        }
                    }
                    Command::Done(key, due) => {
                        in_flight.remove(&key);
                        // Reschedule only objects still served, and only if no newer schedule
                        // (from Schedule) replaced this one.
                        if entries.contains_key(&key) {
                            continue;
                        }
                        let Some(rt) = runtimes.get(&key) else { continue };
                        let interval = rt.polling_interval();
                        let mut next = due + interval;
                        let now = Instant::now();
                        if next < now {
                            // Fell behind by more than an interval: skip the missed polls.
                            next = now + Duration::from_millis(1);
                        }
                        let k = queue.insert_at(key.clone(), next);
                        entries.insert(key, k);
                    }
                }
            }
            Some(expired) = queue.next(), if !queue.is_empty() => {
                let due = expired.deadline();
                let key = expired.into_inner();
                // The entry is consumed; Done puts the next one in.
                entries.remove(&key);
                debug!(%key, "poll due");
                start(key, due, &mut in_flight);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[tokio::test]
    async fn a_cancelled_loop_ends_and_leaves_no_task_behind() {
        let client =
            kube::Client::try_from(kube::Config::new("http://127.0.0.1:1".parse().unwrap()))
                .unwrap();
        let mut registry = prometheus_client::registry::Registry::default();
        let ctx = Arc::new(PollContext {
            events: crate::events::EventPublisher::new(client, "kedge", "test"),
            metrics: Arc::new(crate::telemetry::Metrics::new(&mut registry)),
            timeout: Duration::from_secs(1),
        });
        let term = CancellationToken::new();
        let (handle, task) = spawn(Runtimes::default(), ctx, 4, term.clone());
        handle.schedule(ObjectKey {
            namespace: "ns".into(),
            name: "gone".into(),
        });
        // Handles still exist (the controller keeps one); the loop must end anyway.
        let _kept = handle.clone();
        term.cancel();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the loop ends when its term is cancelled")
            .unwrap();
    }
}
