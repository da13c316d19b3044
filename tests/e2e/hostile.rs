//! Hostile tenants: 50 ScaledObjects built to hurt kedge (memory bombs, huge formulas, 1,000
//! triggers, 1 MiB values, unicode, sources that point nowhere, numbers that are not numbers)
//! applied beside 100 healthy ones, on one `kedge run`. kedge's memory stays bounded, every
//! healthy object keeps scaling, and each hostile one is refused by the API server or ends
//! `Ready=False` with a message naming what is wrong.
//!
//! Objects are written and read as untyped JSON: some hostile ones would not even serialize
//! through the typed ScaledObject, and reading them typed is what kedge itself must survive.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{Timelike as _, Utc};
use futures::StreamExt as _;
use k8s_openapi::api::apps::v1::Deployment;
use kedge::crd::ScaledObject;
use kedge_e2e::{Cluster, create_deployment, eventually};
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

const NS: &str = "default";
const HEALTHY: usize = 100;
const HOSTILE: usize = 50;
/// The bound of the issue: a replica's memory must not follow what tenants write.
const RSS_LIMIT_KIB: u64 = 256 * 1024;
/// How long any one phase may take on a shared 2-core machine.
const PATIENCE: Duration = Duration::from_secs(300);
/// The longest `Ready` message accepted: it is read in `kubectl describe`, and copied into
/// Events and logs at each change.
const MAX_MESSAGE: usize = 4096;

/// A cron trigger whose window opened this minute and stays open for 20 minutes, longer than
/// the test runs.
fn open_cron(desired: &str) -> Value {
    let m = Utc::now().minute();
    json!({"type": "cron", "metadata": {
        "timezone": "Etc/UTC",
        "start": format!("{m} * * * *"),
        "end": format!("{} * * * *", (m + 20) % 60),
        "desiredReplicas": desired,
    }})
}

/// A ScaledObject manifest named `name` scaling the Deployment `name`, with `spec` merged over
/// the defaults of this test.
fn manifest(name: &str, spec: Value) -> Value {
    let mut full = json!({
        "scaleTargetRef": {"name": name},
        "pollingInterval": 2,
        "cooldownPeriod": 300,
        "maxReplicaCount": 4,
    });
    if let (Some(full), Some(extra)) = (full.as_object_mut(), spec.as_object()) {
        full.extend(extra.clone());
    }
    json!({
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
        "metadata": {"name": name, "namespace": NS},
        "spec": full,
    })
}

/// What a hostile kind must end as.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// `Ready=False`, the message containing this.
    NotReady(&'static str),
    /// `Ready=False/TriggerError` once polls fail. Its message is KEDA's fixed one, and kedge
    /// writes no Event for a failing poll (KEDA writes `KEDAScalerFailed`): only kedge's log
    /// names the trigger, `(<type>)` with this type.
    TriggerError(&'static str),
    /// Refused at create with a 4xx, the API's message containing this.
    Rejected(&'static str),
}

/// One kind of hostile ScaledObject.
struct Kind {
    name: &'static str,
    expect: Expect,
    /// The manifest, for an object (and a Deployment) called by the given name.
    build: fn(&str) -> Value,
}

fn prometheus(address: &str, extra: Value) -> Value {
    let mut metadata = json!({"serverAddress": address, "query": "up", "threshold": "1"});
    if let (Some(m), Some(extra)) = (metadata.as_object_mut(), extra.as_object()) {
        m.extend(extra.clone());
    }
    json!({"type": "prometheus", "metadata": metadata})
}

/// A formula of `n` additions of the trigger `a`: about `4 * n` bytes.
fn long_formula(n: usize) -> String {
    let mut f = String::with_capacity(4 * n + 1);
    f.push('a');
    for _ in 0..n {
        f.push_str(" + a");
    }
    f
}

/// 1 MiB values are stored by a real cluster too: under kube-apiserver's 3 MiB request limit
/// (which local-cluster applies) and etcd's default 1.5 MiB per object.
const MIB: usize = 1024 * 1024;

fn kinds() -> Vec<Kind> {
    vec![
        Kind {
            name: "kafka partitionLimitation 0-2147483647",
            expect: Expect::NotReady("partitionLimitation"),
            build: |n| {
                manifest(
                    n,
                    json!({"triggers": [{"type": "kafka", "metadata": {
                        "bootstrapServers": "127.0.0.1:9", "consumerGroup": "g", "topic": "t",
                        "lagThreshold": "5", "partitionLimitation": "0-2147483647"}}]}),
                )
            },
        },
        Kind {
            name: "formula count(1..2000000000, ...)",
            expect: Expect::NotReady("advanced.scalingModifiers.formula"),
            build: |n| {
                let mut t = open_cron("1");
                t["name"] = json!("a");
                manifest(
                    n,
                    json!({"triggers": [t], "advanced": {"scalingModifiers": {
                        "formula": "count(1..2000000000, {# > 0}) + count(1..2000000000, {# > a})",
                        "target": "1"}}}),
                )
            },
        },
        Kind {
            name: "formula of 400 KiB",
            expect: Expect::NotReady("advanced.scalingModifiers.formula"),
            build: |n| {
                let mut t = open_cron("1");
                t["name"] = json!("a");
                manifest(
                    n,
                    json!({"triggers": [t], "advanced": {"scalingModifiers": {
                        "formula": long_formula(100 * 1024), "target": "1"}}}),
                )
            },
        },
        Kind {
            name: "1,000 triggers",
            expect: Expect::NotReady("triggers"),
            build: |n| {
                let triggers: Vec<Value> = (0..1000).map(|_| open_cron("1")).collect();
                manifest(n, json!({"triggers": triggers}))
            },
        },
        Kind {
            name: "1 MiB cron start",
            expect: Expect::NotReady("start"),
            build: |n| {
                let mut t = open_cron("1");
                // DEL is one byte in JSON and six in a `{:?}` echo.
                t["metadata"]["start"] = json!("\u{7f}".repeat(MIB));
                manifest(n, json!({"triggers": [t]}))
            },
        },
        Kind {
            name: "1 MiB value of an unknown key",
            expect: Expect::NotReady("padding"),
            build: |n| {
                let mut t = open_cron("1");
                t["metadata"]["padding"] = json!("x".repeat(MIB));
                manifest(n, json!({"triggers": [t]}))
            },
        },
        Kind {
            name: "unicode trigger name, keys, values",
            expect: Expect::NotReady("desiredReplicas"),
            build: |n| {
                let mut t = open_cron("三");
                t["name"] = json!("触发器-🚀-\u{202e}lmth");
                t["metadata"]["ключ"] = json!("значение ✓ \u{200b}");
                manifest(n, json!({"triggers": [t]}))
            },
        },
        Kind {
            name: "unicode object name",
            expect: Expect::Rejected("metadata.name"),
            build: |n| {
                let mut m = manifest(n, json!({"triggers": [open_cron("1")]}));
                m["metadata"]["name"] = json!(format!("skalierer-ü-{n}"));
                m
            },
        },
        Kind {
            name: "prometheus at a closed port",
            expect: Expect::TriggerError("prometheus"),
            build: |n| {
                manifest(
                    n,
                    json!({"triggers": [prometheus("http://127.0.0.1:9", json!({}))]}),
                )
            },
        },
        Kind {
            name: "prometheus at a black hole",
            expect: Expect::TriggerError("prometheus"),
            build: |n| {
                manifest(
                    n,
                    json!({"triggers": [prometheus("http://10.255.255.1:9090", json!({}))]}),
                )
            },
        },
        Kind {
            name: "rabbitmq at a closed port",
            expect: Expect::TriggerError("rabbitmq"),
            build: |n| {
                manifest(
                    n,
                    json!({"triggers": [{"type": "rabbitmq", "metadata": {
                        "host": "amqp://guest:guest@127.0.0.1:9/", "queueName": "q",
                        "mode": "QueueLength", "value": "5"}}]}),
                )
            },
        },
        Kind {
            name: "nested metadata value",
            expect: Expect::Rejected("metadata"),
            build: |n| {
                manifest(
                    n,
                    json!({"triggers": [{"type": "prometheus", "metadata": {
                        "serverAddress": "http://127.0.0.1:9", "query": "up",
                        "threshold": {"a": {"b": [1, {"c": [[[]]]}]}}}}]}),
                )
            },
        },
        Kind {
            name: "YAML-ish threshold",
            expect: Expect::NotReady("threshold"),
            build: |n| {
                manifest(
                    n,
                    json!({"triggers": [prometheus("http://127.0.0.1:9",
                        json!({"threshold": "!!float &x 1e3\n- [*x, {b: *x}]: ? |\n  ---"}))]}),
                )
            },
        },
        Kind {
            name: "60 KiB threshold (echoed?)",
            expect: Expect::NotReady("threshold"),
            build: |n| {
                manifest(
                    n,
                    json!({"triggers": [prometheus("http://127.0.0.1:9",
                        json!({"threshold": "\u{7f}".repeat(60 * 1024)}))]}),
                )
            },
        },
        Kind {
            name: "activationThreshold NaN",
            expect: Expect::NotReady("activationThreshold"),
            build: |n| {
                manifest(
                    n,
                    json!({"triggers": [prometheus("http://127.0.0.1:9",
                        json!({"activationThreshold": "NaN"}))]}),
                )
            },
        },
        Kind {
            name: "activationThreshold 1e309",
            expect: Expect::NotReady("activationThreshold"),
            build: |n| {
                manifest(
                    n,
                    json!({"triggers": [prometheus("http://127.0.0.1:9",
                        json!({"activationThreshold": "1e309"}))]}),
                )
            },
        },
        Kind {
            name: "pollingInterval 2^31 (past int32)",
            expect: Expect::Rejected("pollingInterval"),
            build: |n| {
                manifest(
                    n,
                    json!({"pollingInterval": 2_147_483_648_i64, "triggers": [open_cron("1")]}),
                )
            },
        },
        Kind {
            name: "negative counts",
            expect: Expect::Rejected("minReplicaCount"),
            build: |n| {
                manifest(
                    n,
                    json!({"minReplicaCount": -1, "cooldownPeriod": -300,
                        "fallback": {"failureThreshold": -3, "replicas": -1},
                        "triggers": [open_cron("1")]}),
                )
            },
        },
    ]
}

fn scaled_objects(client: &Client) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), NS, &ApiResource::erase::<ScaledObject>(&()))
}

/// `(status, reason, message)` of the object's `Ready` condition.
fn ready(so: &DynamicObject) -> Option<(String, String, String)> {
    let c = so
        .data
        .pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")?;
    let s = |k: &str| c[k].as_str().unwrap_or_default().to_owned();
    Some((s("status"), s("reason"), s("message")))
}

/// Replica counts of every Deployment, by name.
async fn all_replicas(client: &Client) -> std::collections::BTreeMap<String, i32> {
    Api::<Deployment>::namespaced(client.clone(), NS)
        .list(&ListParams::default())
        .await
        .map(|l| {
            l.items
                .into_iter()
                .map(|d| {
                    let r = d.spec.replicas.unwrap_or_default();
                    (d.metadata.name.unwrap_or_default(), r)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `field` of `/proc/<pid>/status` in KiB (`VmRSS`, `VmHWM`), `None` once the process is gone.
fn proc_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The first `n` characters of `s`, on one line.
fn prefix(s: &str, n: usize) -> String {
    let one_line = s.replace('\n', " ");
    let mut out: String = one_line.chars().take(n).collect();
    if one_line.chars().count() > n {
        out.push('…');
    }
    out
}

/// What the API server said to a create: `Err((code, message))` when it refused it.
type Created = Result<(), (u16, String)>;

/// How one hostile object ended.
struct Outcome {
    kind: &'static str,
    name: String,
    expect: Expect,
    created: Created,
}

#[tokio::test]
async fn hostile_scaled_objects_do_not_hurt_kedge_or_healthy_ones() {
    // The HPA simulator at kube-controller-manager's pace: this test is about kedge.
    let c = Cluster::start_with_hpa_sync("hostile", 15).await;
    let mut kedge = c.run_kedge("kedge", &[]);

    // The peak resident memory of kedge (VmHWM, which the kernel keeps), sampled until the
    // end; `pid` follows the restart below.
    let pid = Arc::new(AtomicU32::new(kedge.pid()));
    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = tokio::spawn({
        let (pid, stop, peak) = (pid.clone(), stop.clone(), peak.clone());
        async move {
            while !stop.load(Ordering::Relaxed) {
                if let Some(hwm) = proc_kib(pid.load(Ordering::Relaxed), "VmHWM:") {
                    peak.fetch_max(hwm, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });

    let kinds = kinds();
    let healthy: Vec<String> = (0..HEALTHY).map(|i| format!("ok-{i:03}")).collect();
    let hostile: Vec<(usize, String)> = (0..HOSTILE)
        .map(|i| (i % kinds.len(), format!("bad-{i:02}")))
        .collect();
    futures::stream::iter(healthy.iter().chain(hostile.iter().map(|(_, n)| n)))
        .for_each_concurrent(16, |name| create_deployment(&c.client, NS, name, 0))
        .await;

    // Interleaved, so hostile objects are in the cache and the queue while healthy ones are
    // being reconciled and polled.
    let mut manifests: Vec<(Option<usize>, String, Value)> = Vec::new();
    let mut bad = hostile.iter();
    for (i, name) in healthy.iter().enumerate() {
        // Polled every 1 to 5 seconds.
        let spec = json!({"pollingInterval": i % 5 + 1, "triggers": [open_cron("1")]});
        manifests.push((None, name.clone(), manifest(name, spec)));
        if i % 2 == 1
            && let Some((k, name)) = bad.next()
        {
            manifests.push((Some(*k), name.clone(), (kinds[*k].build)(name)));
        }
    }
    let api = scaled_objects(&c.client);
    let started = Instant::now();
    let created: Vec<(Option<usize>, String, Created)> = futures::stream::iter(manifests)
        .map(|(kind, name, m)| {
            let api = api.clone();
            async move {
                let obj: DynamicObject = serde_json::from_value(m).unwrap();
                let result = match api.create(&PostParams::default(), &obj).await {
                    Ok(_) => Ok(()),
                    Err(kube::Error::Api(s)) => Err((s.code, s.message)),
                    Err(e) => Err((0, e.to_string())),
                };
                (kind, name, result)
            }
        })
        .buffered(8)
        .collect()
        .await;
    let mut outcomes = Vec::new();
    for (kind, name, result) in created {
        match kind {
            None => assert!(result.is_ok(), "healthy {name}: {result:?}"),
            Some(k) => outcomes.push(Outcome {
                kind: kinds[k].name,
                name,
                expect: kinds[k].expect,
                created: result,
            }),
        }
    }
    assert_eq!(outcomes.len(), HOSTILE);

    // Every healthy object scales 0 → 1 (kedge's activation, the cron window being open).
    let is_healthy = |n: &str| n.starts_with("ok-");
    eventually(PATIENCE, "all healthy objects active", || async {
        let r = all_replicas(&c.client).await;
        let active = r.iter().filter(|(n, r)| is_healthy(n) && **r >= 1).count();
        (active == HEALTHY).then_some(())
    })
    .await;
    let all_active = started.elapsed();

    // Each hostile one was refused, or ends Ready=False naming what is wrong, in a message a
    // user can read (not an echo of a megabyte).
    for o in &outcomes {
        match (o.expect, &o.created) {
            (Expect::Rejected(field), Err((code, message))) => assert!(
                (400..500).contains(code) && message.contains(field),
                "{} ({}): refused with {code} {message:?}, expected a 4xx naming {field}",
                o.name,
                o.kind
            ),
            (Expect::Rejected(field), Ok(())) => panic!(
                "{} ({}): accepted, expected a 4xx naming {field}",
                o.name, o.kind
            ),
            (Expect::NotReady(_) | Expect::TriggerError(_), Err((code, message))) => panic!(
                "{} ({}): refused with {code} {}, expected Ready=False",
                o.name,
                o.kind,
                prefix(message, 300)
            ),
            (Expect::NotReady(_) | Expect::TriggerError(_), Ok(())) => {}
        }
    }
    let deadline = Instant::now() + PATIENCE;
    let table = loop {
        let list = api.list(&ListParams::default()).await.unwrap();
        let log = kedge.output();
        let mut table = Vec::new();
        let mut wrong = Vec::new();
        for o in &outcomes {
            let (state, message) = match (&o.created, o.expect) {
                (Err((code, message)), _) => (format!("rejected {code}"), message.clone()),
                (Ok(()), Expect::NotReady(field) | Expect::TriggerError(field)) => {
                    let so = list
                        .items
                        .iter()
                        .find(|so| so.metadata.name == Some(o.name.clone()));
                    let (status, reason, mut message) = so.and_then(ready).unwrap_or_default();
                    let named = if matches!(o.expect, Expect::TriggerError(_)) {
                        let object = format!("scaledobject={NS}/{}", o.name);
                        let trigger = format!("({field}): ");
                        let logged = log.lines().rev().find(|l| {
                            l.contains(" WARN ")
                                && l.split_whitespace().any(|w| w == object)
                                && l.contains(&trigger)
                        });
                        message = format!(
                            "{message} [log: {}]",
                            logged.map_or("", |l| l.split_once(": ").map_or(l, |(_, m)| m))
                        );
                        reason == "TriggerError" && logged.is_some()
                    } else {
                        message.contains(field)
                    };
                    if status != "False" || !named || message.len() > MAX_MESSAGE {
                        wrong.push(format!(
                            "{} ({}): Ready={status:?} {reason} {} bytes: {}",
                            o.name,
                            o.kind,
                            message.len(),
                            prefix(&message, 200)
                        ));
                    }
                    (format!("Ready=False {reason}"), message)
                }
                (Ok(()), Expect::Rejected(_)) => unreachable!("checked above"),
            };
            table.push((o.kind, state, message));
        }
        if wrong.is_empty() {
            break table;
        }
        assert!(
            Instant::now() < deadline,
            "hostile objects not refused as expected:\n{}",
            wrong.join("\n")
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    };

    // What kedge's ScaledObject watch does first: list them all as typed objects. One object
    // that does not deserialize would fail the whole list, and every object with it.
    let typed = Api::<ScaledObject>::namespaced(c.client.clone(), NS)
        .list(&ListParams::default())
        .await;
    assert!(typed.is_ok(), "a typed list fails: {:?}", typed.err());

    // A replica that starts with all of them stored (a restart, a new leader) syncs its
    // watches and takes over.
    if let Some(hwm) = proc_kib(kedge.pid(), "VmHWM:") {
        peak.fetch_max(hwm, Ordering::Relaxed);
    }
    assert!(
        kedge.exited().is_none(),
        "kedge exited:\n{}",
        kedge.output()
    );
    kedge.kill();
    let mut kedge = c.run_kedge("kedge-restarted", &[]);
    pid.store(kedge.pid(), Ordering::Relaxed);
    eventually(
        Duration::from_secs(120),
        "the restarted kedge to sync",
        || async { kedge.output().contains("watches synced").then_some(()) },
    )
    .await;

    // Healthy objects keep being polled and scaled, hostile ones beside them: back to 0 by
    // hand, each is activated again at its next poll.
    let deployments: Api<Deployment> = Api::namespaced(c.client.clone(), NS);
    futures::stream::iter(&healthy)
        .for_each_concurrent(16, |name| {
            let deployments = deployments.clone();
            async move {
                deployments
                    .patch_scale(
                        name,
                        &PatchParams::default(),
                        &Patch::Merge(json!({"spec": {"replicas": 0}})),
                    )
                    .await
                    .unwrap();
            }
        })
        .await;
    let rescaled_at = Instant::now();
    eventually(PATIENCE, "all healthy objects active again", || async {
        let r = all_replicas(&c.client).await;
        let active = r.iter().filter(|(n, r)| is_healthy(n) && **r >= 1).count();
        (active == HEALTHY).then_some(())
    })
    .await;
    let reactivated = rescaled_at.elapsed();

    // At the end: every healthy object Ready=True, no hostile one scaled anything.
    let list = api.list(&ListParams::default()).await.unwrap();
    let mut not_ready = Vec::new();
    for so in &list.items {
        let name = so.metadata.name.clone().unwrap_or_default();
        if is_healthy(&name) && ready(so).is_none_or(|(s, _, _)| s != "True") {
            not_ready.push(format!("{name}: {:?}", ready(so)));
        }
    }
    assert!(
        not_ready.is_empty(),
        "healthy objects not ready: {not_ready:?}"
    );
    let r = all_replicas(&c.client).await;
    let scaled: Vec<_> = r
        .iter()
        .filter(|(n, r)| n.starts_with("bad-") && **r != 0)
        .collect();
    assert!(scaled.is_empty(), "hostile objects scaled: {scaled:?}");
    assert!(
        kedge.exited().is_none(),
        "kedge exited:\n{}",
        kedge.output()
    );

    if let Some(hwm) = proc_kib(kedge.pid(), "VmHWM:") {
        peak.fetch_max(hwm, Ordering::Relaxed);
    }
    stop.store(true, Ordering::Relaxed);
    sampler.await.unwrap();
    let peak = peak.load(Ordering::Relaxed);

    println!("\nhostile ScaledObjects ({HOSTILE}, beside {HEALTHY} healthy ones):");
    println!("{:<40} {:<36} message", "kind", "outcome");
    let mut table = table;
    table.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    table.dedup_by(|a, b| (a.0, &a.1) == (b.0, &b.1));
    for (kind, reason, message) in &table {
        println!("{kind:<40} {reason:<36} {}", prefix(message, 110));
    }
    println!(
        "\nkedge peak RSS {:.1} MiB (limit {} MiB); all {HEALTHY} healthy objects active {:.1} s after the first create, and again {:.1} s after being scaled to 0 by hand (restarted kedge)",
        peak as f64 / 1024.0,
        RSS_LIMIT_KIB / 1024,
        all_active.as_secs_f64(),
        reactivated.as_secs_f64(),
    );
    assert!(
        peak < RSS_LIMIT_KIB,
        "kedge peak RSS {peak} KiB, over {RSS_LIMIT_KIB} KiB"
    );
}
