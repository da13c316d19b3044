//! The librdkafka clients behind the kafka scaler, shared by every ScaledObject.
//!
//! Per connection identity (bootstrap servers + TLS + SASL settings) there is one
//! [`ClusterClient`]: a librdkafka consumer *without* a group that fetches topic metadata (for
//! the topics in use only, cached for [`METADATA_TTL`]) and latest offsets (one ListOffsets
//! request per partition leader, for all partitions of a poll at once).
//!
//! Committed offsets are read with OffsetFetch, which librdkafka only sends for the group a
//! client is configured with: so each measured group gets a [`GroupClient`], a librdkafka
//! consumer with that `group.id` which never subscribes, is never assigned partitions and never
//! commits. It sends FindCoordinator and OffsetFetch only: it does not join the group, so the
//! user's consumers see no rebalance. Group clients are shared too, keyed by group.
//!
//! Every call here blocks (librdkafka waits on its own threads) and takes a deadline; the scaler
//! runs them on tokio's blocking pool. Dropping a librdkafka handle also blocks (it closes
//! connections and joins threads), so handles are dropped on a thread of their own.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use scaler_core::{Secret, SharedClients};

/// How long the partition list of a topic is reused before it is fetched again. Partitions are
/// only ever added to a topic; a new one is measured at most this long after it appears.
pub const METADATA_TTL: Duration = Duration::from_secs(60);

/// librdkafka settings that identify a connection: bootstrap servers, TLS and SASL. Two
/// triggers with equal keys share one client. Values are [`Secret`]s so passwords never print.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClientKey(pub Vec<(&'static str, Secret)>);

/// A failed broker call: what was being done and the client error.
#[derive(Debug)]
pub struct CallError {
    /// What failed, e.g. `error listing consumer group offsets`.
    pub message: String,
    /// The librdkafka error, if any.
    pub source: Option<KafkaError>,
}

impl CallError {
    fn new(message: impl Into<String>, source: Option<KafkaError>) -> Self {
        Self {
            message: message.into(),
            source,
        }
    }
}

/// Logs librdkafka through `tracing` and remembers its last error, so a failed call can say
/// why (e.g. "Connection refused") instead of only "Timed out".
#[derive(Default)]
pub struct KafkaContext {
    last_error: Mutex<Option<(String, Instant)>>,
}

impl KafkaContext {
    /// The last error librdkafka reported in the past minute.
    fn recent_error(&self) -> Option<String> {
        let last = self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        last.as_ref()
            .filter(|(_, at)| at.elapsed() < Duration::from_secs(60))
            .map(|(e, _)| e.clone())
    }
}

impl KafkaContext {
    fn remember(&self, reason: &str) {
        *self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some((reason.to_owned(), Instant::now()));
    }
}

impl ClientContext for KafkaContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        // Connection errors repeat on every reconnect attempt while a broker is down; they reach
        // the user through the scaler's errors, so librdkafka's own lines are debug output.
        tracing::debug!(target: "kedge::kafka::librdkafka", ?level, fac, "{message}");
        if (level as i32) <= (RDKafkaLogLevel::Error as i32) {
            self.remember(message);
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!(target: "kedge::kafka::librdkafka", %error, "{reason}");
        self.remember(reason);
    }
}

impl ConsumerContext for KafkaContext {}

type Handle = BaseConsumer<KafkaContext>;

/// Owns a librdkafka handle and drops it on a thread of its own: librdkafka's destroy blocks
/// until its threads exit, which must not happen on an async worker.
struct DropOffThread(Option<Handle>);

impl DropOffThread {
    fn get(&self) -> &Handle {
        // Only `drop` takes the handle out.
        self.0
            .as_ref()
            .unwrap_or_else(|| unreachable!("handle taken before drop"))
    }
}

impl Drop for DropOffThread {
    fn drop(&mut self) {
        if let Some(handle) = self.0.take() {
            // If no thread can be started the closure (and the handle) is dropped here instead.
            let _ = std::thread::Builder::new()
                .name("kafka-close".into())
                .spawn(move || drop(handle));
        }
    }
}

fn base_config(key: &ClientKey) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    for (k, v) in &key.0 {
        cfg.set(*k, v.expose());
    }
    cfg.set("client.id", "kedge")
        // The scaler never consumes, commits or creates anything.
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        // Latest offset = high watermark, as KEDA reads it (read_committed would give the last
        // stable offset, and make OffsetFetch wait for pending transactional commits).
        .set("isolation.level", "read_uncommitted")
        .set("allow.auto.create.topics", "false")
        .set("socket.keepalive.enable", "true")
        // No KIP-714 telemetry: it costs a request per connection and tells nobody anything.
        .set("enable.metrics.push", "false")
        // Come back quickly after a broker restart; polls are seconds apart anyway.
        .set("reconnect.backoff.max.ms", "2000")
        .set_log_level(RDKafkaLogLevel::Info);
    cfg
}

fn create(cfg: &ClientConfig) -> Result<DropOffThread, CallError> {
    cfg.create_with_context(KafkaContext::default())
        .map(|h| DropOffThread(Some(h)))
        .map_err(|e| CallError::new("error creating kafka client", Some(e)))
}

/// Time left until `deadline`, at least a millisecond (librdkafka reads 0 as "don't wait").
fn left(deadline: Instant) -> Duration {
    deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1))
}

/// Serves librdkafka's queued events (logs, errors) so they neither pile up nor go unseen.
fn drain(handle: &Handle) {
    for _ in 0..1000 {
        if handle.poll(Duration::ZERO).is_none() {
            break;
        }
    }
}

/// Wraps a failed call, naming librdkafka's last connection error when there is one.
fn failed(handle: &Handle, message: &str, err: KafkaError) -> CallError {
    drain(handle);
    match handle.context().recent_error() {
        Some(reason) => CallError::new(
            format!("{message} (last broker error: {reason})"),
            Some(err),
        ),
        None => CallError::new(message, Some(err)),
    }
}

/// Topics with their partition ids.
pub type TopicList = Arc<Vec<(String, Vec<i32>)>>;

/// Partition ids by topic, with when they were fetched.
type TopicCache = HashMap<String, (Arc<[i32]>, Instant)>;

/// One client per connection identity: metadata and latest offsets, and the group clients.
pub struct ClusterClient {
    key: ClientKey,
    handle: DropOffThread,
    topics: Mutex<TopicCache>,
    all_topics: Mutex<Option<(TopicList, Instant)>>,
    groups: SharedClients<String, GroupClient>,
    batch: LatestBatch,
}

/// The process-wide cache of cluster clients.
pub fn clusters() -> &'static SharedClients<ClientKey, ClusterClient> {
    static CLUSTERS: std::sync::OnceLock<SharedClients<ClientKey, ClusterClient>> =
        std::sync::OnceLock::new();
    CLUSTERS.get_or_init(SharedClients::new)
}

impl ClusterClient {
    /// Creates the client; connects lazily, at the first call.
    pub fn new(key: &ClientKey) -> Result<Self, CallError> {
        Ok(Self {
            key: key.clone(),
            handle: create(&base_config(key))?,
            topics: Mutex::new(HashMap::new()),
            all_topics: Mutex::new(None),
            groups: SharedClients::new(),
            batch: LatestBatch::default(),
        })
    }

    /// The client that reads `group`'s committed offsets, shared by all triggers measuring it.
    pub fn group(&self, group: &str) -> Result<Arc<GroupClient>, CallError> {
        self.groups.get_or_try_init(group.to_owned(), |g| {
            let mut cfg = base_config(&self.key);
            cfg.set("group.id", g);
            Ok(GroupClient {
                handle: create(&cfg)?,
            })
        })
    }

    /// The partition ids of `topic` (Metadata for that topic only, cached for [`METADATA_TTL`]).
    pub fn partitions(&self, topic: &str, deadline: Instant) -> Result<Arc<[i32]>, CallError> {
        if let Some((parts, at)) = self.lock_topics().get(topic)
            && at.elapsed() < METADATA_TTL
        {
            return Ok(Arc::clone(parts));
        }
        let handle = self.handle.get();
        let md = handle
            .fetch_metadata(Some(topic), left(deadline))
            .map_err(|e| failed(handle, "error describing topics", e));
        drain(handle);
        let md = md?;
        let Some(t) = md.topics().iter().find(|t| t.name() == topic) else {
            return Err(CallError::new(
                format!("error describing topics: no metadata for topic {topic:?}"),
                None,
            ));
        };
        if let Some(err) = t.error() {
            let code = RDKafkaErrorCode::from(err);
            return Err(CallError::new(
                format!("error describing topics: topic {topic:?}: {code}"),
                Some(KafkaError::MetadataFetch(code)),
            ));
        }
        let parts: Arc<[i32]> = t.partitions().iter().map(|p| p.id()).collect();
        self.lock_topics()
            .insert(topic.to_owned(), (Arc::clone(&parts), Instant::now()));
        Ok(parts)
    }

    /// Every topic of the cluster but Kafka's internal ones (`__consumer_offsets`, ...), with
    /// its partitions; for triggers without `topic`. Cached for [`METADATA_TTL`].
    pub fn all_topics(&self, deadline: Instant) -> Result<TopicList, CallError> {
        {
            let cached = self
                .all_topics
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some((all, at)) = cached.as_ref()
                && at.elapsed() < METADATA_TTL
            {
                return Ok(Arc::clone(all));
            }
        }
        let handle = self.handle.get();
        let md = handle
            .fetch_metadata(None, left(deadline))
            .map_err(|e| failed(handle, "error listing topics", e));
        drain(handle);
        let all: TopicList = Arc::new(
            md?.topics()
                .iter()
                .filter(|t| t.error().is_none() && !t.name().starts_with("__"))
                .map(|t| {
                    (
                        t.name().to_owned(),
                        t.partitions().iter().map(|p| p.id()).collect(),
                    )
                })
                .collect(),
        );
        let now = Instant::now();
        {
            // The same answer serves `partitions` for these topics.
            let mut topics = self.lock_topics();
            for (name, ids) in all.iter() {
                topics.insert(name.clone(), (ids.iter().copied().collect(), now));
            }
        }
        *self
            .all_topics
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some((Arc::clone(&all), now));
        Ok(all)
    }

    /// Forgets the cached partitions of `topic` (after an error that may mean it changed).
    pub fn forget(&self, topic: &str) {
        self.lock_topics().remove(topic);
    }

    /// The latest offset (high watermark) of each partition: ListOffsets(latest), one request
    /// per partition leader. A partition the broker did not answer for is absent.
    ///
    /// Concurrent calls from different triggers are coalesced: while a request is in flight,
    /// the partitions asked for meanwhile are collected and fetched together in the next one
    /// (see [`LatestBatch`]), so a thousand triggers polling at once cost a handful of
    /// ListOffsets requests rather than a thousand queued on the same connection.
    pub fn latest_offsets(
        &self,
        partitions: &[(String, i32)],
        deadline: Instant,
    ) -> Result<HashMap<(String, i32), i64>, CallError> {
        const WHAT: &str = "error listing latest offsets";
        let all = self.batch.join(partitions, deadline, |union, deadline| {
            self.list_latest(union, deadline)
        })?;
        let mut out = HashMap::with_capacity(partitions.len());
        for key in partitions {
            match all.get(key) {
                Some(Ok(n)) => {
                    out.insert(key.clone(), *n);
                }
                Some(Err(err)) => {
                    return Err(CallError::new(
                        format!("{WHAT}: topic {:?} partition {}", key.0, key.1),
                        Some(err.clone()),
                    ));
                }
                None => {}
            }
        }
        Ok(out)
    }

    /// One offsets_for_times call for `partitions`; per-partition errors are kept per partition
    /// so one trigger's deleted topic does not fail the others batched with it.
    fn list_latest(&self, partitions: &[(String, i32)], deadline: Instant) -> BatchResult {
        const WHAT: &str = "error listing latest offsets";
        let mut tpl = TopicPartitionList::with_capacity(partitions.len());
        for (topic, p) in partitions {
            // librdkafka's offsets_for_times reads the offset field as a timestamp; -1
            // (Offset::End) is ListOffsets' "latest", so this is a batched watermark query.
            tpl.add_partition_offset(topic, *p, Offset::End)
                .map_err(|e| Arc::new(CallError::new(WHAT, Some(e))))?;
        }
        let handle = self.handle.get();
        let result = handle
            .offsets_for_times(tpl, left(deadline))
            .map_err(|e| Arc::new(failed(handle, WHAT, e)));
        drain(handle);
        let mut out = HashMap::with_capacity(partitions.len());
        for e in result?.elements() {
            let key = (e.topic().to_owned(), e.partition());
            match (e.error(), e.offset()) {
                (Err(err), _) => {
                    out.insert(key, Err(err));
                }
                (Ok(()), Offset::Offset(n)) => {
                    out.insert(key, Ok(n));
                }
                _ => {}
            }
        }
        Ok(Arc::new(out))
    }

    fn lock_topics(&self) -> std::sync::MutexGuard<'_, TopicCache> {
        self.topics.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Reads one group's committed offsets without joining the group.
pub struct GroupClient {
    handle: DropOffThread,
}

impl GroupClient {
    /// The committed offset of each partition (`None`: nothing committed). One OffsetFetch to
    /// the group's coordinator.
    pub fn committed(
        &self,
        partitions: &[(String, i32)],
        deadline: Instant,
    ) -> Result<HashMap<(String, i32), Option<i64>>, CallError> {
        const WHAT: &str = "error listing consumer group offsets";
        let mut tpl = TopicPartitionList::with_capacity(partitions.len());
        for (topic, p) in partitions {
            tpl.add_partition(topic, *p);
        }
        let handle = self.handle.get();
        let result = handle
            .committed_offsets(tpl, left(deadline))
            .map_err(|e| failed(handle, WHAT, e));
        drain(handle);
        let mut out = HashMap::with_capacity(partitions.len());
        for e in result?.elements() {
            if let Err(err) = e.error() {
                return Err(CallError::new(
                    format!("{WHAT}: topic {:?} partition {}", e.topic(), e.partition()),
                    Some(err),
                ));
            }
            let committed = match e.offset() {
                Offset::Offset(n) if n >= 0 => Some(n),
                _ => None,
            };
            out.insert((e.topic().to_owned(), e.partition()), committed);
        }
        Ok(out)
    }
}

/// Latest offsets of a batch, per partition.
type LatestMap = Arc<HashMap<(String, i32), Result<i64, KafkaError>>>;

/// What a batch's callers get.
type BatchResult = Result<LatestMap, Arc<CallError>>;

enum BatchMsg {
    /// The batch holding this caller's partitions is done.
    Done(BatchResult),
    /// The previous leader finished: this caller sends the next batch.
    Lead,
}

struct Waiter {
    id: u64,
    partitions: Vec<(String, i32)>,
    deadline: Instant,
    reply: SyncSender<BatchMsg>,
}

#[derive(Default)]
struct BatchState {
    busy: bool,
    waiting: Vec<Waiter>,
}

/// Coalesces concurrent requests (leader/follower): the first caller sends a request; callers
/// arriving while it is in flight queue up, and when it completes one of them sends a single
/// request for all of them. Each caller waits at most until its own deadline.
#[derive(Default)]
pub struct LatestBatch {
    state: Mutex<BatchState>,
}

impl LatestBatch {
    fn lock(&self) -> std::sync::MutexGuard<'_, BatchState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn join(
        &self,
        partitions: &[(String, i32)],
        deadline: Instant,
        send: impl Fn(&[(String, i32)], Instant) -> BatchResult,
    ) -> Result<LatestMap, CallError> {
        static IDS: AtomicU64 = AtomicU64::new(0);
        let id = IDS.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = sync_channel(2);
        let leads = {
            let mut st = self.lock();
            st.waiting.push(Waiter {
                id,
                partitions: partitions.to_vec(),
                deadline,
                reply: tx,
            });
            !std::mem::replace(&mut st.busy, true)
        };
        if !leads {
            match rx.recv_timeout(left(deadline)) {
                Ok(BatchMsg::Done(r)) => return unshare(r),
                Ok(BatchMsg::Lead) => {}
                Err(_) => {
                    // Leave the queue; if the lead was handed to us meanwhile, pass it on, or
                    // the batch would stall for everyone after us.
                    let mut st = self.lock();
                    st.waiting.retain(|w| w.id != id);
                    match rx.try_recv() {
                        Ok(BatchMsg::Done(r)) => return unshare(r),
                        Ok(BatchMsg::Lead) => Self::hand_over(&mut st),
                        Err(_) => {}
                    }
                    return Err(CallError::new(
                        "error listing latest offsets: timed out waiting for the batched request",
                        None,
                    ));
                }
            }
        }
        let batch = std::mem::take(&mut self.lock().waiting);
        let mut union: Vec<(String, i32)> = batch
            .iter()
            .flat_map(|w| w.partitions.iter().cloned())
            .collect();
        union.sort();
        union.dedup();
        let latest_deadline = batch.iter().map(|w| w.deadline).max().unwrap_or(deadline);
        let result = send(&union, latest_deadline);
        for w in &batch {
            // A caller that gave up has dropped its receiver; nothing to do for it.
            let _ = w.reply.try_send(BatchMsg::Done(result.clone()));
        }
        Self::hand_over(&mut self.lock());
        match rx.try_recv() {
            Ok(BatchMsg::Done(r)) => unshare(r),
            _ => unshare(result),
        }
    }
}

impl LatestBatch {
    /// Makes the first caller still waiting the leader, or marks the batch idle.
    fn hand_over(st: &mut BatchState) {
        while !st.waiting.is_empty() {
            if st.waiting[0].reply.try_send(BatchMsg::Lead).is_ok() {
                st.busy = true;
                return;
            }
            // That caller gave up.
            st.waiting.remove(0);
        }
        st.busy = false;
    }
}

fn unshare(r: BatchResult) -> Result<LatestMap, CallError> {
    r.map_err(|e| CallError::new(e.message.clone(), e.source.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn fake(calls: &AtomicUsize, union: &[(String, i32)], pause: Duration) -> BatchResult {
        calls.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(pause);
        Ok(Arc::new(
            union
                .iter()
                .map(|(t, p)| ((t.clone(), *p), Ok(i64::from(*p) * 10)))
                .collect(),
        ))
    }

    #[test]
    fn concurrent_callers_share_requests_and_each_gets_its_partitions() {
        let batch = Arc::new(LatestBatch::default());
        let calls = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..32)
            .map(|i| {
                let (batch, calls) = (Arc::clone(&batch), Arc::clone(&calls));
                std::thread::spawn(move || {
                    let mine = vec![(format!("t{i}"), i), ("shared".to_owned(), 1)];
                    let deadline = Instant::now() + Duration::from_secs(10);
                    let got = batch
                        .join(&mine, deadline, |u, _| {
                            fake(&calls, u, Duration::from_millis(20))
                        })
                        .map_err(|e| e.message)?;
                    for key in &mine {
                        assert_eq!(got.get(key), Some(&Ok(i64::from(key.1) * 10)));
                    }
                    Ok::<_, String>(())
                })
            })
            .collect();
        for t in threads {
            assert_eq!(t.join().ok(), Some(Ok(())));
        }
        let n = calls.load(Ordering::SeqCst);
        assert!(n < 32, "{n} requests for 32 concurrent callers");
        assert!(
            !batch.lock().busy,
            "the batch stays busy after everyone left"
        );
    }

    #[test]
    fn a_caller_that_gives_up_does_not_stall_the_others() {
        let batch = Arc::new(LatestBatch::default());
        let calls = Arc::new(AtomicUsize::new(0));
        let slow = {
            let (batch, calls) = (Arc::clone(&batch), Arc::clone(&calls));
            std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(10);
                batch
                    .join(&[("a".to_owned(), 0)], deadline, |u, _| {
                        fake(&calls, u, Duration::from_millis(300))
                    })
                    .is_ok()
            })
        };
        std::thread::sleep(Duration::from_millis(50));
        // Queued behind the slow request with a deadline it cannot meet.
        let impatient = batch.join(
            &[("b".to_owned(), 0)],
            Instant::now() + Duration::from_millis(20),
            |u, _| fake(&calls, u, Duration::ZERO),
        );
        assert!(impatient.is_err());
        assert_eq!(slow.join().ok(), Some(true));
        // Later callers are served.
        let later = batch.join(
            &[("c".to_owned(), 3)],
            Instant::now() + Duration::from_secs(5),
            |u, _| fake(&calls, u, Duration::ZERO),
        );
        assert_eq!(
            later
                .ok()
                .and_then(|m| m.get(&("c".to_owned(), 3)).cloned()),
            Some(Ok(30))
        );
        assert!(!batch.lock().busy);
    }
}
