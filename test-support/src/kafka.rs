//! Kafka from the test's side, with librdkafka: topics, records, committed offsets; and a
//! private broker whose requests can be counted and which can be taken away ([`broker`]).

pub mod broker;

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// Creates `topic` with `partitions` partitions (replication factor 1) on the broker at
/// `bootstrap`.
///
/// # Panics
///
/// When the broker refuses (the topic exists already, say) or does not answer in 10 s.
pub async fn create_topic(bootstrap: &str, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("a Kafka admin client");
    let results = admin
        .create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .expect("CreateTopics");
    for result in results {
        if let Err((topic, code)) = result {
            panic!("creating topic {topic}: {code}");
        }
    }
}

/// Produces `counts[p]` records to each partition `p` of `topic` and waits for every delivery
/// (up to 20 s). Blocks the calling thread: see [`produce`] for async callers.
///
/// # Panics
///
/// When a record cannot be queued or is not delivered in time.
#[track_caller]
pub fn produce_blocking(bootstrap: &str, topic: &str, counts: &[usize]) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("a Kafka producer");
    for (p, n) in counts.iter().enumerate() {
        let partition = i32::try_from(p).expect("a partition number");
        for i in 0..*n {
            let payload = format!("record {i}");
            if let Err((e, _)) = producer.send(
                BaseRecord::to(topic)
                    .partition(partition)
                    .key("k")
                    .payload(&payload),
            ) {
                panic!("producing to {topic}/{partition}: {e}");
            }
        }
    }
    producer
        .flush(Duration::from_secs(20))
        .expect("every record delivered");
}

/// Commits `offsets` (partition, offset) of `topic` for `group` without joining the group: a
/// "simple" commit from a standalone client, as a consumer that is done with those records.
/// Blocks the calling thread: see [`commit`] for async callers.
///
/// # Panics
///
/// When the commit fails.
#[track_caller]
pub fn commit_blocking(bootstrap: &str, group: &str, topic: &str, offsets: &[(i32, i64)]) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("a Kafka consumer");
    let mut tpl = TopicPartitionList::new();
    for (p, o) in offsets {
        tpl.add_partition_offset(topic, *p, Offset::Offset(*o))
            .expect("a valid offset");
    }
    consumer
        .commit(&tpl, CommitMode::Sync)
        .expect("OffsetCommit");
}

/// [`produce_blocking`] on tokio's blocking threads, off the async ones (librdkafka blocks).
pub async fn produce(bootstrap: &str, topic: &str, counts: &[usize]) {
    let (bootstrap, topic, counts) = (bootstrap.to_owned(), topic.to_owned(), counts.to_vec());
    unblock(move || produce_blocking(&bootstrap, &topic, &counts)).await;
}

/// [`commit_blocking`] on tokio's blocking threads, off the async ones (librdkafka blocks).
pub async fn commit(bootstrap: &str, group: &str, topic: &str, offsets: &[(i32, i64)]) {
    let (bootstrap, group, topic, offsets) = (
        bootstrap.to_owned(),
        group.to_owned(),
        topic.to_owned(),
        offsets.to_vec(),
    );
    unblock(move || commit_blocking(&bootstrap, &group, &topic, &offsets)).await;
}

/// Runs `f` with `spawn_blocking`, passing its panic (the test failing) on to the caller.
async fn unblock(f: impl FnOnce() + Send + 'static) {
    if let Err(e) = tokio::task::spawn_blocking(f).await {
        match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => panic!("blocking Kafka call: {e}"),
        }
    }
}
