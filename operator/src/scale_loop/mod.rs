//! The scale loop: every served ScaledObject is polled at its `pollingInterval`.
//!
//! One task owns a timer wheel (`DelayQueue`) of due times; due objects are polled by spawned
//! tasks under a semaphore, so ten thousand objects cost ten thousand timer entries, not ten
//! thousand threads or sleeping tasks. The next poll is scheduled from the previous due time,
//! not from when the poll finished, so slow polls do not make an object drift; how late each
//! poll starts is exported as `keda_internal_scale_loop_latency_seconds`.

mod poll;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;
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

/// Starts the scale loop; it runs until every handle is dropped.
pub fn spawn(runtimes: Runtimes, ctx: Arc<PollContext>, concurrency: usize) -> ScaleLoopHandle {
    let (tx, rx) = mpsc::unbounded_channel();
    let handle = ScaleLoopHandle { tx: tx.clone() };
    tokio::spawn(run(runtimes, ctx, rx, tx, concurrency));
    handle
}

async fn run(
    runtimes: Runtimes,
    ctx: Arc<PollContext>,
    mut rx: mpsc::UnboundedReceiver<Command>,
    tx: mpsc::UnboundedSender<Command>,
    concurrency: usize,
) {
    let mut queue: DelayQueue<ObjectKey> = DelayQueue::new();
    let mut entries: HashMap<ObjectKey, delay_queue::Key> = HashMap::new();
    let mut in_flight: HashSet<ObjectKey> = HashSet::new();
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));

    let start = |key: ObjectKey, due: Instant, in_flight: &mut HashSet<ObjectKey>| {
        if !in_flight.insert(key.clone()) {
            return; // still polling; the Done handler reschedules
        }
        let (runtimes, ctx, tx, permits) = (
            runtimes.clone(),
            Arc::clone(&ctx),
            tx.clone(),
            Arc::clone(&permits),
        );
        tokio::spawn(async move {
            if let Ok(_permit) = permits.acquire_owned().await
                && let Some(rt) = runtimes.get(&key)
            {
                ctx.observe_lag(&rt, Instant::now().saturating_duration_since(due));
                poll::poll(&ctx, &rt).await;
            }
            let _ = tx.send(Command::Done(key, due));
        });
    };

    loop {
        tokio::select! {
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
