//! Cost of the kafka scaler: one poll of a 100-partition topic (wall time, requests sent), the
//! bare librdkafka calls it wraps, and the memory of many Kafka ScaledObjects.
//!
//! Needs tansu (`KEDGE_TANSU_BIN`, installed by `scripts/services.sh start`); starts its own
//! broker behind a request-counting proxy:
//!
//! ```text
//! cargo run --release -p kedge-scalers --features kafka --example kafka_bench [objects] [groups]
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kedge_test_support::kafka::broker;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use scaler_core::{Scaler, ScalerConfig, ScalerFactory};
use scalers::kafka::KafkaFactory;

const PARTITIONS: i32 = 100;
const POLLS: usize = 200;

fn status(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

fn percentiles(mut d: Vec<Duration>) -> String {
    d.sort();
    let at = |q: f64| d[((d.len() as f64 * q) as usize).min(d.len() - 1)];
    format!(
        "p50 {:.2} ms, p99 {:.2} ms",
        at(0.50).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3
    )
}

fn per_poll(sent: &BTreeMap<i16, u64>, polls: usize) -> String {
    sent.iter()
        .map(|(k, v)| format!("{} {:.2}", broker::api_name(*k), *v as f64 / polls as f64))
        .collect::<Vec<_>>()
        .join(", ")
}

fn scaler(bs: &str, group: &str, topic: &str, index: usize) -> Box<dyn Scaler> {
    let cfg = ScalerConfig::new("kafka", index)
        .with_metadata("bootstrapServers", bs)
        .with_metadata("consumerGroup", group)
        .with_metadata("topic", topic);
    KafkaFactory.build(&cfg).unwrap()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let objects: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000);
    let groups: usize = std::env::args()
        .nth(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(objects);
    let tansu =
        std::env::var("KEDGE_TANSU_BIN").expect("KEDGE_TANSU_BIN (scripts/services.sh start)");
    let b = broker::PrivateBroker::start(&tansu);
    let bs = b.bootstrap.clone();
    let topic = "bench";
    let group = "bench-group";

    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bs)
        .create()
        .unwrap();
    for r in admin
        .create_topics(
            &[NewTopic::new(topic, PARTITIONS, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .unwrap()
    {
        r.unwrap();
    }
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &bs)
        .create()
        .unwrap();
    for p in 0..PARTITIONS {
        for i in 0..10 {
            let v = format!("{i}");
            producer
                .send(BaseRecord::to(topic).partition(p).key("k").payload(&v))
                .map_err(|(e, _)| e)
                .unwrap();
        }
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    let committer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bs)
        .set("group.id", group)
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS / 2 {
        tpl.add_partition_offset(topic, p, Offset::Offset(5))
            .unwrap();
    }
    committer.commit(&tpl, CommitMode::Sync).unwrap();
    drop((admin, producer, committer));
    println!("librdkafka {}", rdkafka::util::get_rdkafka_version().1);
    println!("topic: {PARTITIONS} partitions, 10 records each; group committed 5 on half of them");

    // 1. One poll of the scaler.
    let s = scaler(&bs, group, topic, 0);
    let name = s.metric_specs().await.unwrap().remove(0).name;
    let (_, first) = b.requests_during(|| {
        tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(s.metrics_and_activity(&name))
        })
    });
    println!(
        "first poll (connect, coordinator, metadata): {}",
        per_poll(&first, 1)
    );
    let mut times = Vec::with_capacity(POLLS);
    let (value, sent) = b.requests_during(|| {
        tokio::task::block_in_place(|| {
            tokio::runtime::Handle::current().block_on(async {
                let mut last = None;
                for _ in 0..POLLS {
                    let t = Instant::now();
                    last = Some(s.metrics_and_activity(&name).await.unwrap());
                    times.push(t.elapsed());
                }
                last
            })
        })
    });
    let value = value.unwrap();
    println!(
        "scaler poll x{POLLS}: {} ; requests per poll: {} ; value {} active {}",
        percentiles(times),
        per_poll(&sent, POLLS),
        value.metrics[0].value,
        value.active
    );

    // 2. The bare librdkafka calls the poll wraps, on clients made once.
    let cluster: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bs)
        .create()
        .unwrap();
    let member: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bs)
        .set("group.id", group)
        .create()
        .unwrap();
    let mut latest = TopicPartitionList::new();
    let mut committed = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        latest.add_partition_offset(topic, p, Offset::End).unwrap();
        committed.add_partition(topic, p);
    }
    let t = Duration::from_secs(3);
    cluster.offsets_for_times(latest.clone(), t).unwrap();
    member.committed_offsets(committed.clone(), t).unwrap();
    let mut times = Vec::with_capacity(POLLS);
    let (_, sent) = b.requests_during(|| {
        for _ in 0..POLLS {
            let s = Instant::now();
            cluster.offsets_for_times(latest.clone(), t).unwrap();
            member.committed_offsets(committed.clone(), t).unwrap();
            times.push(s.elapsed());
        }
    });
    println!(
        "bare offsets_for_times + committed_offsets (sequential) x{POLLS}: {} ; requests per call pair: {}",
        percentiles(times),
        per_poll(&sent, POLLS)
    );
    // What a watermark-per-partition client does (librdkafka's query_watermark_offsets).
    let mut times = Vec::with_capacity(20);
    let (_, sent) = b.requests_during(|| {
        for _ in 0..20 {
            let s = Instant::now();
            for p in 0..PARTITIONS {
                cluster.fetch_watermarks(topic, p, t).unwrap();
            }
            times.push(s.elapsed());
        }
    });
    println!(
        "per-partition fetch_watermarks for {PARTITIONS} partitions x20: {} ; requests per round: {}",
        percentiles(times),
        per_poll(&sent, 20)
    );
    drop((cluster, member));

    // 3. Memory of many Kafka ScaledObjects on one cluster. Straight to the shared broker when
    // there is one (KEDGE_KAFKA_BOOTSTRAP): the proxy's own sockets would blur the fd count.
    drop(s);
    let (bs, topic) = match std::env::var("KEDGE_KAFKA_BOOTSTRAP") {
        Ok(shared) => {
            let topic = format!("bench-{}", std::process::id());
            let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
                .set("bootstrap.servers", &shared)
                .create()
                .unwrap();
            for r in admin
                .create_topics(
                    &[NewTopic::new(
                        &topic,
                        PARTITIONS,
                        TopicReplication::Fixed(1),
                    )],
                    &AdminOptions::new(),
                )
                .await
                .unwrap()
            {
                r.unwrap();
            }
            (shared, topic)
        }
        Err(_) => (bs, topic.to_owned()),
    };
    let topic = topic.as_str();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (rss0, threads0, fds0) = (status("VmRSS:"), status("Threads:"), fds());
    let scalers: Vec<Box<dyn Scaler>> = (0..objects)
        .map(|i| scaler(&bs, &format!("so-group-{}", i % groups), topic, 0))
        .collect();
    let rss_built = status("VmRSS:");
    let names: Vec<String> = {
        let mut v = Vec::new();
        for s in &scalers {
            v.push(s.metric_specs().await.unwrap().remove(0).name);
        }
        v
    };
    let started = Instant::now();
    for chunk in scalers.chunks(50).zip(names.chunks(50)) {
        let polls = chunk
            .0
            .iter()
            .zip(chunk.1)
            .map(|(s, n)| s.metrics_and_activity(n));
        for r in futures_join_all(polls).await {
            r.unwrap();
        }
    }
    let first_round = started.elapsed();
    let started = Instant::now();
    for chunk in scalers.chunks(50).zip(names.chunks(50)) {
        let polls = chunk
            .0
            .iter()
            .zip(chunk.1)
            .map(|(s, n)| s.metrics_and_activity(n));
        for r in futures_join_all(polls).await {
            r.unwrap();
        }
    }
    let second_round = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (rss1, threads1, fds1) = (status("VmRSS:"), status("Threads:"), fds());
    println!(
        "{objects} ScaledObjects ({groups} groups, one topic of {PARTITIONS} partitions): \
         RSS {} KiB -> {} KiB built (no I/O) -> {} KiB after polling; {:.1} KiB per object; \
         threads {threads0} -> {threads1}; open fds {fds0} -> {fds1}; \
         polling all (50 at a time): first {:.2} s, then {:.2} s",
        rss0,
        rss_built,
        rss1,
        (rss1.saturating_sub(rss0)) as f64 / objects as f64,
        first_round.as_secs_f64(),
        second_round.as_secs_f64(),
    );
    drop(scalers);
}

/// Awaits futures concurrently (a tiny join_all, so the example needs no extra crate).
async fn futures_join_all<F: std::future::Future>(futs: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut set = Vec::new();
    for f in futs {
        set.push(Box::pin(f));
    }
    let mut out = Vec::with_capacity(set.len());
    // Sequential awaits of already-created futures would not overlap; poll them together.
    let mut pending: Vec<Option<std::pin::Pin<Box<F>>>> = set.into_iter().map(Some).collect();
    let mut results: Vec<Option<F::Output>> = (0..pending.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut all = true;
        for (i, slot) in pending.iter_mut().enumerate() {
            if let Some(f) = slot {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => {
                        results[i] = Some(v);
                        *slot = None;
                    }
                    std::task::Poll::Pending => all = false,
                }
            }
        }
        if all {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    out.extend(results.into_iter().map(|r| r.unwrap()));
    out
}
