//! The kafka scaler against a real Kafka-protocol broker: tansu on the SQLite engine, started by
//! `scripts/services.sh` (`KEDGE_KAFKA_BOOTSTRAP`). Tests that count requests or take the broker
//! away start a private tansu (`KEDGE_TANSU_BIN`) behind a counting proxy.
//!
//! Every test uses fresh topic and group names.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kedge_test_support::kafka::broker::{self, PrivateBroker};
use kedge_test_support::kafka::{commit_blocking, create_topic, produce_blocking};
use kedge_test_support::{service_env, unique};
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use scaler_core::{MetricsAndActivity, Scaler, ScalerConfig, ScalerError, ScalerFactory};
use scalers::kafka::KafkaFactory;

fn bootstrap() -> Option<String> {
    service_env("KEDGE_KAFKA_BOOTSTRAP")
}

fn private_broker() -> Option<PrivateBroker> {
    service_env("KEDGE_TANSU_BIN").map(|bin| PrivateBroker::start(&bin))
}

fn scaler(index: usize, meta: &[(&str, &str)]) -> Box<dyn Scaler> {
    let cfg = meta
        .iter()
        .fold(ScalerConfig::new("kafka", index), |c, (k, v)| {
            c.with_metadata(*k, *v)
        });
    KafkaFactory.build(&cfg).unwrap()
}

async fn poll(s: &dyn Scaler) -> Result<MetricsAndActivity, ScalerError> {
    let name = s.metric_specs().await.unwrap().remove(0).name;
    s.metrics_and_activity(&name).await
}

async fn lag(s: &dyn Scaler) -> (String, bool) {
    let m = poll(s).await.unwrap();
    (m.metrics[0].value.to_string(), m.active)
}

/// A topic with 34/33/33 records on partitions 0/1/2; the group committed 5 on partition 1 and
/// 33 (everything) on partition 2, and never committed on partition 0.
async fn three_partitions(bs: &str) -> (String, String) {
    let (topic, group) = (unique("lag"), unique("g"));
    create_topic(bs, &topic, 3).await;
    produce_blocking(bs, &topic, &[34, 33, 33]);
    commit_blocking(bs, &group, &topic, &[(1, 5), (2, 33)]);
    (topic, group)
}

#[tokio::test]
async fn lag_across_partitions_with_one_never_committed() {
    let Some(bs) = bootstrap() else { return };
    let (topic, group) = three_partitions(&bs).await;
    let base = [
        ("bootstrapServers", bs.as_str()),
        ("consumerGroup", group.as_str()),
        ("topic", topic.as_str()),
    ];

    // latest: the uncommitted partition counts 1; 1 + 28 + 0.
    let latest = scaler(0, &base);
    assert_eq!(
        latest.metric_specs().await.unwrap()[0].name,
        format!("s0-kafka-{topic}")
    );
    assert_eq!(lag(&*latest).await, ("29".into(), true));

    // earliest: it counts its whole high watermark; 34 + 28 + 0 = 62, which asks for 7
    // consumers on 3 partitions: capped at 3 × lagThreshold unless idle consumers are allowed.
    let mut earliest = base.to_vec();
    earliest.push(("offsetResetPolicy", "earliest"));
    assert_eq!(lag(&*scaler(0, &earliest)).await, ("30".into(), true));
    earliest.push(("allowIdleConsumers", "true"));
    assert_eq!(lag(&*scaler(0, &earliest)).await, ("62".into(), true));

    // scaleToZeroOnInvalidOffset: the uncommitted partition counts 0.
    let mut zero = base.to_vec();
    zero.push(("scaleToZeroOnInvalidOffset", "true"));
    assert_eq!(lag(&*scaler(0, &zero)).await, ("28".into(), true));

    // partitionLimitation: only partitions 1 and 2.
    let mut limited = base.to_vec();
    limited.push(("partitionLimitation", "1-2"));
    assert_eq!(lag(&*scaler(0, &limited)).await, ("28".into(), true));
}

#[tokio::test]
async fn topic_omitted_measures_every_topic_the_group_committed_on() {
    let Some(bs) = bootstrap() else { return };
    let (a, b, other, group) = (unique("a"), unique("b"), unique("other"), unique("g"));
    create_topic(&bs, &a, 2).await;
    create_topic(&bs, &b, 1).await;
    create_topic(&bs, &other, 1).await;
    produce_blocking(&bs, &a, &[10, 10]);
    produce_blocking(&bs, &b, &[7]);
    produce_blocking(&bs, &other, &[100]);
    commit_blocking(&bs, &group, &a, &[(0, 4), (1, 10)]);
    commit_blocking(&bs, &group, &b, &[(0, 2)]);

    let s = scaler(
        1,
        &[
            ("bootstrapServers", bs.as_str()),
            ("consumerGroup", group.as_str()),
            ("allowIdleConsumers", "true"),
        ],
    );
    assert_eq!(
        s.metric_specs().await.unwrap()[0].name,
        format!("s1-kafka-{group}-topics")
    );
    // a: 6 + 0, b: 5; `other` is not the group's.
    assert_eq!(lag(&*s).await, ("11".into(), true));
}

#[tokio::test]
async fn persistent_lag_is_excluded_but_keeps_the_trigger_active() {
    let Some(bs) = bootstrap() else { return };
    let (topic, group) = (unique("stuck"), unique("g"));
    create_topic(&bs, &topic, 1).await;
    produce_blocking(&bs, &topic, &[20]);
    commit_blocking(&bs, &group, &topic, &[(0, 5)]);
    let s = scaler(
        0,
        &[
            ("bootstrapServers", bs.as_str()),
            ("consumerGroup", group.as_str()),
            ("topic", topic.as_str()),
            ("excludePersistentLag", "true"),
            ("allowIdleConsumers", "true"),
        ],
    );
    assert_eq!(lag(&*s).await, ("15".into(), true));
    // The consumer did not move: its lag no longer asks for replicas, but the workload stays.
    assert_eq!(lag(&*s).await, ("0".into(), true));
    commit_blocking(&bs, &group, &topic, &[(0, 12)]);
    assert_eq!(lag(&*s).await, ("8".into(), true));
}

#[tokio::test]
async fn limit_to_partitions_with_lag_caps_at_lagging_partitions() {
    let Some(bs) = bootstrap() else { return };
    let (topic, group) = (unique("hot"), unique("g"));
    create_topic(&bs, &topic, 3).await;
    produce_blocking(&bs, &topic, &[100, 3, 3]);
    commit_blocking(&bs, &group, &topic, &[(0, 0), (1, 3), (2, 3)]);
    let base = [
        ("bootstrapServers", bs.as_str()),
        ("consumerGroup", group.as_str()),
        ("topic", topic.as_str()),
    ];
    assert_eq!(lag(&*scaler(0, &base)).await, ("30".into(), true));
    let mut limited = base.to_vec();
    limited.push(("limitToPartitionsWithLag", "true"));
    assert_eq!(lag(&*scaler(0, &limited)).await, ("10".into(), true));
    let mut idle = base.to_vec();
    idle.push(("allowIdleConsumers", "true"));
    assert_eq!(lag(&*scaler(0, &idle)).await, ("100".into(), true));
}

#[tokio::test]
async fn activation_threshold() {
    let Some(bs) = bootstrap() else { return };
    let (topic, group) = (unique("act"), unique("g"));
    create_topic(&bs, &topic, 1).await;
    produce_blocking(&bs, &topic, &[10]);
    commit_blocking(&bs, &group, &topic, &[(0, 10)]);
    let s = scaler(
        0,
        &[
            ("bootstrapServers", bs.as_str()),
            ("consumerGroup", group.as_str()),
            ("topic", topic.as_str()),
            ("activationLagThreshold", "5"),
            // librdkafka negotiates versions itself; this is only its fallback.
            ("version", "2.8.1"),
        ],
    );
    assert_eq!(lag(&*s).await, ("0".into(), false));
    produce_blocking(&bs, &topic, &[5]);
    assert_eq!(lag(&*s).await, ("5".into(), false));
    produce_blocking(&bs, &topic, &[1]);
    assert_eq!(lag(&*s).await, ("6".into(), true));
}

#[tokio::test]
async fn unknown_topic_and_group_errors() {
    let Some(bs) = bootstrap() else { return };
    let missing = unique("missing");
    let err = poll(&*scaler(
        0,
        &[
            ("bootstrapServers", bs.as_str()),
            ("consumerGroup", "g"),
            ("topic", missing.as_str()),
        ],
    ))
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with("triggers[0] (kafka): error describing topics: topic")
            && err.contains(&missing),
        "{err}"
    );

    // An unknown group on a known topic is a group with nothing committed, as in Kafka and
    // KEDA: each partition counts 1 (offsetResetPolicy latest).
    let topic = unique("known");
    create_topic(&bs, &topic, 2).await;
    produce_blocking(&bs, &topic, &[3, 3]);
    let fresh = unique("never-seen");
    let s = scaler(
        0,
        &[
            ("bootstrapServers", bs.as_str()),
            ("consumerGroup", fresh.as_str()),
            ("topic", topic.as_str()),
        ],
    );
    assert_eq!(lag(&*s).await, ("2".into(), true));

    // Without a topic, an unknown group has no topics to measure: an error that says what to do.
    let err = poll(&*scaler(
        2,
        &[
            ("bootstrapServers", bs.as_str()),
            ("consumerGroup", fresh.as_str()),
        ],
    ))
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with("triggers[2] (kafka): consumer group") && err.contains("set `topic`"),
        "{err}"
    );
}

#[tokio::test]
async fn broker_down_is_an_error_and_recovery_follows_when_it_is_back() {
    let Some(b) = private_broker() else { return };
    let (topic, group) = (unique("down"), unique("g"));
    create_topic(&b.bootstrap, &topic, 2).await;
    produce_blocking(&b.bootstrap, &topic, &[4, 4]);
    commit_blocking(&b.bootstrap, &group, &topic, &[(0, 1), (1, 1)]);
    let s = scaler(
        0,
        &[
            ("bootstrapServers", b.bootstrap.as_str()),
            ("consumerGroup", group.as_str()),
            ("topic", topic.as_str()),
        ],
    );
    assert_eq!(lag(&*s).await, ("6".into(), true));

    b.proxy_down();
    for _ in 0..2 {
        let started = Instant::now();
        let err = poll(&*s).await.expect_err("a lag while the broker is down");
        let text = err.to_string();
        eprintln!("broker down: {text}");
        assert!(text.starts_with("triggers[0] (kafka): "), "{text}");
        // Bounded by the trigger's timeout (3 s), with room for a slow machine.
        assert!(started.elapsed() < Duration::from_secs(10), "{text}");
    }

    b.proxy_up();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match poll(&*s).await {
            Ok(m) => {
                assert_eq!(m.metrics[0].value.to_string(), "6");
                break;
            }
            Err(e) if Instant::now() < deadline => {
                eprintln!("not yet: {e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => panic!("no recovery after the broker came back: {e}"),
        }
    }
    s.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_poll_costs_one_list_offsets_and_one_offset_fetch() {
    let Some(b) = private_broker() else { return };
    let (topic, group) = (unique("cost"), unique("g"));
    create_topic(&b.bootstrap, &topic, 8).await;
    produce_blocking(&b.bootstrap, &topic, &[3; 8]);
    commit_blocking(&b.bootstrap, &group, &topic, &[(0, 1)]);
    let s = scaler(
        0,
        &[
            ("bootstrapServers", b.bootstrap.as_str()),
            ("consumerGroup", group.as_str()),
            ("topic", topic.as_str()),
            ("allowIdleConsumers", "true"),
        ],
    );
    // The first poll connects, finds the coordinator and fetches the topic's metadata.
    let name = s.metric_specs().await.unwrap().remove(0).name;
    let first = s.metrics_and_activity(&name).await.unwrap();
    // Partition 0: 3 − 1; the 7 partitions without a committed offset count 1 each.
    assert_eq!(first.metrics[0].value.to_string(), "9");

    // Later polls: the 8 partitions' watermarks in one ListOffsets, their committed offsets in
    // one OffsetFetch, and nothing else.
    //
    // librdkafka finishes setting up connections in the background after the first answers
    // (e.g. moving from the bootstrap connection to the broker's advertised one): wait until a
    // poll is only the two requests, then check that every following poll is.
    let rt = tokio::runtime::Handle::current();
    let poll_counting = || {
        let (polled, sent) = tokio::task::block_in_place(|| {
            b.requests_during(|| rt.block_on(s.metrics_and_activity(&name)))
        });
        polled.unwrap();
        sent.iter()
            .map(|(k, v)| (broker::api_name(*k), *v))
            .collect::<HashMap<String, u64>>()
    };
    let steady = HashMap::from([("ListOffsets".to_owned(), 1), ("OffsetFetch".to_owned(), 1)]);
    let mut settled = false;
    for _ in 0..50 {
        if poll_counting() == steady {
            settled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(settled, "no poll ever cost just ListOffsets + OffsetFetch");
    let connections = b.connections();
    for _ in 0..5 {
        assert_eq!(poll_counting(), steady);
    }
    assert_eq!(b.connections(), connections, "polls opened connections");

    // Another trigger measuring the same group and topic (another ScaledObject, or another
    // trigger of this one) shares the clients, their connections and the cached metadata.
    let s2 = scaler(
        1,
        &[
            ("bootstrapServers", b.bootstrap.as_str()),
            ("consumerGroup", group.as_str()),
            ("topic", topic.as_str()),
            ("lagThreshold", "100"),
        ],
    );
    let name2 = s2.metric_specs().await.unwrap().remove(0).name;
    let (polled, sent) = tokio::task::block_in_place(|| {
        b.requests_during(|| rt.block_on(s2.metrics_and_activity(&name2)))
    });
    assert_eq!(polled.unwrap().metrics[0].value.to_string(), "9");
    assert_eq!(
        sent,
        [(broker::LIST_OFFSETS, 1), (broker::OFFSET_FETCH, 1)].into(),
        "{sent:?}"
    );
    assert_eq!(
        b.connections(),
        connections,
        "the second trigger opened connections"
    );
}

/// Records the rebalances a real consumer goes through.
struct Recorder(Arc<Mutex<Vec<String>>>);

impl ClientContext for Recorder {}

impl ConsumerContext for Recorder {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let what = match rebalance {
            Rebalance::Assign(tpl) => format!("assign {}", tpl.count()),
            Rebalance::Revoke(tpl) => format!("revoke {}", tpl.count()),
            Rebalance::Error(e) => format!("error {e}"),
        };
        self.0.lock().unwrap().push(what);
    }
}

/// A consumer in `group` subscribed to `topic`, polling on its own thread until dropped.
struct RunningConsumer {
    events: Arc<Mutex<Vec<String>>>,
    consumed: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RunningConsumer {
    fn start(bs: &str, group: &str, topic: &str) -> Self {
        let events = Arc::new(Mutex::new(Vec::new()));
        let consumer: BaseConsumer<Recorder> = ClientConfig::new()
            .set("bootstrap.servers", bs)
            .set("group.id", group)
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .set("session.timeout.ms", "10000")
            .create_with_context(Recorder(Arc::clone(&events)))
            .unwrap();
        consumer.subscribe(&[topic]).unwrap();
        let (stop, consumed) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicU64::new(0)),
        );
        let (s, n) = (Arc::clone(&stop), Arc::clone(&consumed));
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
                    n.fetch_add(1, Ordering::SeqCst);
                    let mut tpl = TopicPartitionList::new();
                    tpl.add_partition_offset(
                        m.topic(),
                        m.partition(),
                        Offset::Offset(m.offset() + 1),
                    )
                    .unwrap();
                    let _ = consumer.commit(&tpl, CommitMode::Sync);
                }
            }
        });
        Self {
            events,
            consumed,
            stop,
            thread: Some(thread),
        }
    }

    fn events(&self) -> Vec<String> {
        self.events.lock().unwrap().clone()
    }

    async fn wait_for(&self, what: &str, f: impl Fn(&Self) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !f(self) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {:?}",
                self.events()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for RunningConsumer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[tokio::test]
async fn measuring_lag_does_not_rebalance_a_running_consumer_group() {
    let Some(bs) = bootstrap() else { return };
    let (topic, group) = (unique("live"), unique("g"));
    create_topic(&bs, &topic, 3).await;
    produce_blocking(&bs, &topic, &[5, 5, 5]);

    let running = RunningConsumer::start(&bs, &group, &topic);
    running
        .wait_for("the consumer to get all 3 partitions and drain them", |c| {
            c.events() == ["assign 3"] && c.consumed.load(Ordering::SeqCst) == 15
        })
        .await;

    // Measure repeatedly while it runs, including when there is lag to see.
    let s = scaler(
        0,
        &[
            ("bootstrapServers", bs.as_str()),
            ("consumerGroup", group.as_str()),
            ("topic", topic.as_str()),
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (value, _) = lag(&*s).await;
        if value == "0" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the consumer's commits never showed: lag {value}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    produce_blocking(&bs, &topic, &[2, 2, 2]);
    for _ in 0..10 {
        poll(&*s).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    running
        .wait_for("the new records to be consumed", |c| {
            c.consumed.load(Ordering::SeqCst) == 21
        })
        .await;
    // Still the one assignment it started with: no revoke, no new assign.
    assert_eq!(running.events(), ["assign 3"]);

    // The check can see a rebalance: a second consumer that does join causes one.
    let joiner = RunningConsumer::start(&bs, &group, &topic);
    running
        .wait_for("a rebalance when a real member joins", |c| {
            c.events().len() > 1
        })
        .await;
    drop(joiner);
}
