//! The fault suite: kedge while its sources and the API server fail under it.
//!
//! Each test breaks one thing a production cluster breaks — a broker killed mid-scale, the API
//! server answering 500/429 or hanging, the leader frozen while another replica takes over — and
//! checks what a user would notice: replicas that never drop because a source is down, scaling
//! that resumes once it is back, no write landing twice, and no write at all from a replica
//! after it lost the lease, counted from the local cluster's audit of writes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use chrono::Timelike as _;
use k8s_openapi::api::coordination::v1::Lease;
use kedge::crd::ScaledObject;
use kedge_e2e::{
    AuditEntry, Cluster, FaultAction, FaultRule, Recorder, Verb, create_deployment, eventually,
    replicas,
};
use kedge_test_support::kafka::{self, broker::PrivateBroker};
use kedge_test_support::{service_env, unique};
use kube::Client;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

const NS: &str = "default";
const MINUTE: Duration = Duration::from_secs(60);

/// A ScaledObject on Deployment `name`: 0..5 replicas, polled every `polling` seconds, back to
/// zero 2 s after the last activity, and an HPA that scales down at once.
async fn scaled_object(client: &Client, name: &str, polling: u32, trigger: Value) {
    let so: ScaledObject = serde_json::from_value(json!({
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "scaleTargetRef": {"name": name},
            "pollingInterval": polling,
            "cooldownPeriod": 2,
            "minReplicaCount": 0,
            "maxReplicaCount": 5,
            "advanced": {"horizontalPodAutoscalerConfig": {"behavior": {
                "scaleDown": {"stabilizationWindowSeconds": 0}}}},
            "triggers": [trigger],
        }
    }))
    .unwrap();
    Api::<ScaledObject>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &so)
        .await
        .unwrap();
}

/// Samples Deployment `name` for `seconds` while `source` is down: its replicas must stay at
/// `want` throughout.
async fn assert_replicas_hold(
    client: &Client,
    name: &str,
    want: i32,
    seconds: u32,
    source: &str,
    recorder: &Recorder,
    kedge: &kedge_e2e::Process,
) {
    let down = Instant::now();
    while down.elapsed() < Duration::from_secs(u64::from(seconds)) {
        assert_eq!(
            replicas(client, NS, name).await,
            Some(want),
            "replicas changed while the {source} was down: {:?}\n{}",
            recorder.seen(),
            kedge.output()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The replica counts `seen` rose to `peak` without ever going down on the way.
fn assert_rose_without_a_drop(seen: &[i32], peak: i32) {
    let top = seen.iter().position(|&r| r == peak).unwrap();
    assert!(
        seen[..=top].windows(2).all(|w| w[0] < w[1]),
        "replicas dropped on the way up: {seen:?}"
    );
}

/// The first external metric name kedge gave `name`, once it is Ready.
async fn metric_name(client: &Client, name: &str) -> String {
    eventually(MINUTE, "the ScaledObject to be Ready", || async {
        let so = Api::<ScaledObject>::namespaced(client.clone(), NS)
            .get_opt(name)
            .await
            .ok()
            .flatten()?;
        let status = so.status?;
        let ready = status
            .conditions
            .as_ref()?
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        ready.then_some(status.external_metric_names?.into_iter().next()?)
    })
    .await
}

#[tokio::test]
async fn a_kafka_broker_killed_mid_scale_drops_no_replica_and_scaling_resumes() {
    let Some(tansu) = service_env("KEDGE_TANSU_BIN") else {
        return;
    };
    let polling = 2;
    let mut broker = PrivateBroker::start(&tansu);
    let bs = broker.bootstrap.clone();
    let (topic, group) = (unique("faults-orders"), unique("faults-workers"));
    kafka::create_topic(&bs, &topic, 3).await;
    kafka::produce(&bs, &topic, &[1, 1, 1]).await;
    kafka::commit(&bs, &group, &topic, &[(0, 1), (1, 1), (2, 1)]).await;

    let c = Cluster::start("faults-kafka").await;
    let kedge = c.run_kedge_serving_metrics("kedge", &[]).await;
    create_deployment(&c.client, NS, "orders", 0).await;
    let recorder = Recorder::start(c.client.clone(), NS, "orders");
    scaled_object(
        &c.client,
        "orders",
        polling,
        json!({"type": "kafka", "metadata": {
            "bootstrapServers": bs, "consumerGroup": group, "topic": topic, "lagThreshold": "5"}}),
    )
    .await;
    let metric = metric_name(&c.client, "orders").await;
    // 15 records of lag at 5 per replica: 3 replicas.
    kafka::produce(&bs, &topic, &[5, 5, 5]).await;
    eventually(2 * MINUTE, "3 replicas", || async {
        (replicas(&c.client, NS, "orders").await == Some(3)).then_some(())
    })
    .await;

    // The broker dies (SIGKILL) with the workload at 3, and stays dead for five polls.
    broker.kill();
    assert_replicas_hold(
        &c.client,
        "orders",
        3,
        5 * polling,
        "broker",
        &recorder,
        &kedge,
    )
    .await;
    assert!(
        kedge.output().contains("orders"),
        "kedge says nothing about the failing trigger:\n{}",
        kedge.output()
    );

    // It comes back, on the same data; the workers caught up meanwhile (lag 0).
    broker.restart();
    let back = Instant::now();
    kafka::commit(&bs, &group, &topic, &[(0, 6), (1, 6), (2, 6)]).await;
    let committed = back.elapsed();
    eventually(MINUTE, "kedge to read the source again", || async {
        (c.external_metric_value(NS, &metric, "orders")
            .ok()
            .as_deref()
            == Some("0"))
        .then_some(())
    })
    .await;
    let resumed = back.elapsed();
    eventually(MINUTE, "back to 0", || async {
        (replicas(&c.client, NS, "orders").await == Some(0)).then_some(())
    })
    .await;
    eprintln!(
        "broker back: offsets committed after {committed:?}, kedge read it after {resumed:?}, \
         scaled to 0 after {:?} (cooldown 2 s); replicas seen {:?}",
        back.elapsed(),
        recorder.seen()
    );
    assert!(
        resumed <= committed + Duration::from_secs(2 * u64::from(polling)) + Duration::from_secs(1),
        "kedge needed {resumed:?} to read the source again (offsets committed after \
         {committed:?}, polling every {polling} s)\n{}",
        kedge.output()
    );
    assert_rose_without_a_drop(&recorder.seen(), 3);
}

/// A cron trigger whose window is open now and for the next half hour.
fn open_cron(desired: &str) -> Value {
    let m = chrono::Utc::now().minute();
    json!({"type": "cron", "metadata": {"timezone": "Etc/UTC",
        "start": format!("{m} * * * *"), "end": format!("{} * * * *", (m + 30) % 60),
        "desiredReplicas": desired}})
}

/// Writes kedge made (its User-Agent says `kedge/`) to the `/scale` of Deployment `name`.
fn scale_writes<'a>(
    audit: &'a [AuditEntry],
    name: &'a str,
) -> impl Iterator<Item = &'a AuditEntry> {
    audit.iter().filter(move |e| {
        e.resource == "deployments"
            && e.subresource.as_deref() == Some("scale")
            && e.name.as_deref() == Some(name)
            && e.user_agent
                .as_deref()
                .is_some_and(|u| u.starts_with("kedge/"))
    })
}

fn scale_rule(action: FaultAction, name: &str) -> FaultRule {
    FaultRule::new(action)
        .verbs([Verb::Patch])
        .resource("apps", "deployments")
        .subresource("scale")
        .name(name)
}

#[tokio::test]
async fn api_server_errors_and_hangs_lose_no_write_and_land_none_twice() {
    let c = Cluster::start("faults-api").await;
    let mut kedge = c.run_kedge("kedge", &[]);
    for name in ["flaky", "hung", "healthy"] {
        create_deployment(&c.client, NS, name, 0).await;
    }
    // The API server fails kedge's writes: three 500s on the workload's /scale, three 429s on
    // the ScaledObject's status, three 500s on Events.
    c.inject_fault(scale_rule(FaultAction::status(500), "flaky").times(3))
        .await;
    c.inject_fault(
        FaultRule::new(FaultAction::too_many_requests(1))
            .verbs([Verb::Patch])
            .resource("keda.sh", "scaledobjects")
            .subresource("status")
            .times(3),
    )
    .await;
    c.inject_fault(
        FaultRule::new(FaultAction::status(500))
            .verbs([Verb::Create])
            .resource("events.k8s.io", "events")
            .times(3),
    )
    .await;
    scaled_object(&c.client, "flaky", 1, open_cron("1")).await;
    eventually(MINUTE, "flaky woken 0 → 1 despite the 500s", || async {
        (replicas(&c.client, NS, "flaky").await == Some(1)).then_some(())
    })
    .await;

    // Then the API server hangs on one object's /scale for 30 s, and handles the write late.
    c.inject_fault(scale_rule(FaultAction::hang(Duration::from_secs(30)), "hung").times(1))
        .await;
    let hang_started = Instant::now();
    scaled_object(&c.client, "hung", 1, open_cron("1")).await;
    scaled_object(&c.client, "healthy", 1, open_cron("1")).await;
    eventually(
        MINUTE,
        "healthy woken while the other write hangs",
        || async { (replicas(&c.client, NS, "healthy").await == Some(1)).then_some(()) },
    )
    .await;
    let healthy_after = hang_started.elapsed();
    eventually(
        MINUTE,
        "hung woken after kedge gave up the stuck write",
        || async { (replicas(&c.client, NS, "hung").await == Some(1)).then_some(()) },
    )
    .await;
    let hung_after = hang_started.elapsed();
    // Until the held write has been handled by the API server.
    tokio::time::sleep(Duration::from_secs(32).saturating_sub(hang_started.elapsed())).await;
    eventually(MINUTE, "the held write to be handled", || async {
        let audit = c.audit(0).await;
        scale_writes(&audit, "hung")
            .any(|e| e.fault.is_some() && e.handled.is_some())
            .then_some(())
    })
    .await;

    let audit = c.audit(0).await;
    for name in ["flaky", "hung", "healthy"] {
        let writes: Vec<_> = scale_writes(&audit, name).collect();
        let landed = writes.iter().filter(|e| e.landed()).count();
        eprintln!(
            "{name}: {} scale writes, {landed} landed: {:?}",
            writes.len(),
            writes
                .iter()
                .map(|e| (e.handled, e.code))
                .collect::<Vec<_>>()
        );
        assert_eq!(
            landed, 1,
            "{name}: one activation, one write landed\n{writes:#?}"
        );
    }
    // The held write reached the API server after kedge's later write: its precondition (the
    // resourceVersion it was decided on) made it a 409, not a second scale.
    let held = scale_writes(&audit, "hung")
        .find(|e| e.fault.is_some())
        .unwrap();
    assert_eq!(held.handled, Some(409), "{held:#?}");
    eprintln!("healthy scaled {healthy_after:?} into the hang, hung after {hung_after:?}");
    assert!(
        healthy_after < Duration::from_secs(10),
        "one hung write held up another object for {healthy_after:?}"
    );
    assert!(
        kedge.exited().is_none(),
        "kedge exited:\n{}",
        kedge.output()
    );
    let so = Api::<ScaledObject>::namespaced(c.client.clone(), NS)
        .get("flaky")
        .await
        .unwrap();
    let ready = so
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .into_iter()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    assert!(ready, "status written once the 429s passed");
}

/// The holder of Lease `name` (without the address part of its identity).
async fn holder(client: &Client, name: &str) -> Option<String> {
    Api::<Lease>::namespaced(client.clone(), NS)
        .get_opt(name)
        .await
        .ok()
        .flatten()
        .and_then(|l| l.spec.and_then(|s| s.holder_identity))
        .map(|h| h.split('@').next().unwrap_or_default().to_owned())
}

#[tokio::test]
async fn a_leader_frozen_mid_poll_writes_nothing_once_another_took_over() {
    let c = Cluster::start("faults-fence").await;
    let args = ["--leader-elect", "--leader-election-id", "kedge-fence"];
    let a = c.run_kedge("a", &[&args[..], &["--identity", "a"]].concat());
    let b = c.run_kedge("b", &[&args[..], &["--identity", "b"]].concat());
    let first = eventually(MINUTE, "a leader", || holder(&c.client, "kedge-fence")).await;
    let (leader, _follower, me, other) = if first == "a" {
        (a, b, "a", "b")
    } else {
        (b, a, "b", "a")
    };
    let mine = |e: &AuditEntry| {
        e.user_agent
            .as_deref()
            .is_some_and(|u| u.contains(&format!("({me}@")))
    };
    // Ten objects polled every second, each with a workload to wake.
    for i in 0..10 {
        let name = format!("w{i}");
        create_deployment(&c.client, NS, &name, 0).await;
        scaled_object(&c.client, &name, 1, open_cron("1")).await;
    }
    eventually(MINUTE, "every workload woken by the leader", || async {
        for i in 0..10 {
            if replicas(&c.client, NS, &format!("w{i}")).await != Some(1) {
                return None;
            }
        }
        Some(())
    })
    .await;
    // Every poll of the leader now hangs in its read of /scale: frozen mid-poll, each with a
    // write still to make. The user sets the workloads back to zero, so every poll that wakes
    // up would scale.
    c.inject_fault(
        FaultRule::new(FaultAction::hang(Duration::from_secs(20)))
            .verbs([Verb::Get])
            .resource("apps", "deployments")
            .subresource("scale")
            .user_agent(&format!("({me}@")),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    leader.signal("STOP");
    let stopped_at = c.audit(0).await.last().map_or(0, |e| e.seq);
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(c.client.clone(), NS);
    for i in 0..10 {
        deployments
            .patch_scale(
                &format!("w{i}"),
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(json!({"spec": {"replicas": 0}})),
            )
            .await
            .unwrap();
    }
    eventually(MINUTE, "the other replica to take the lease", || async {
        holder(&c.client, "kedge-fence")
            .await
            .filter(|h| h == other)
    })
    .await;
    // The new leader wakes the workloads again.
    eventually(MINUTE, "every workload woken by the new leader", || async {
        for i in 0..10 {
            if replicas(&c.client, NS, &format!("w{i}")).await != Some(1) {
                return None;
            }
        }
        Some(())
    })
    .await;
    // The old leader resumes: its polls' reads return, and it would write.
    leader.signal("CONT");
    eventually(MINUTE, "the old leader to step down", || async {
        let out = leader.output();
        (out.contains("stepping down") || out.contains("lost the lease")).then_some(())
    })
    .await;
    // Long enough for the held reads (20 s) to return and their polls to try to write.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let after: Vec<AuditEntry> = c
        .audit(stopped_at)
        .await
        .into_iter()
        .filter(|e| mine(e))
        .collect();
    let writes: Vec<_> = after.iter().filter(|e| e.resource != "leases").collect();
    let landed: Vec<_> = after.iter().filter(|e| e.landed()).collect();
    let refused = leader
        .output()
        .matches("write refused: not leading")
        .count();
    eprintln!(
        "old leader after the freeze: {} requests audited, {} writes other than its lease, \
         {} landed, {refused} writes refused by its fence",
        after.len(),
        writes.len(),
        landed.len()
    );
    assert!(
        writes.is_empty(),
        "the old leader wrote after losing the lease: {writes:#?}\n{}",
        leader.output()
    );
    assert!(landed.is_empty(), "{landed:#?}");
}

/// A PostgreSQL cluster of the test's own (initdb, trust auth, a free port), which the test can
/// crash and start again, leaving the machine's server alone.
struct PrivatePostgres {
    dir: std::path::PathBuf,
    bindir: std::path::PathBuf,
    port: u16,
}

impl PrivatePostgres {
    fn bindir() -> Option<std::path::PathBuf> {
        let from_config = std::process::Command::new("pg_config")
            .arg("--bindir")
            .output()
            .ok()
            .map(|o| std::path::PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
        let mut candidates: Vec<_> = from_config.into_iter().collect();
        let mut versions: Vec<_> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path().join("bin"))
            .collect();
        versions.sort();
        candidates.extend(versions.into_iter().rev());
        candidates.into_iter().find(|d| d.join("initdb").exists())
    }

    /// As the `postgres` user (the server refuses to run as root).
    fn as_postgres(&self, program: &str, args: &[&str]) {
        let out = std::process::Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bindir.join(program))
            .args(args)
            .output()
            .expect("runuser");
        assert!(
            out.status.success(),
            "{program} {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `None` (the test is skipped) where no server binaries or `runuser` exist.
    fn start() -> Option<Self> {
        let bindir = Self::bindir();
        let runuser = std::process::Command::new("runuser")
            .arg("--help")
            .output()
            .is_ok();
        let Some(bindir) = bindir.filter(|_| runuser) else {
            assert!(
                std::env::var("KEDGE_REQUIRE_SERVICES").as_deref() != Ok("1"),
                "PostgreSQL server binaries (initdb) or runuser not found"
            );
            eprintln!("skipping: no PostgreSQL server binaries");
            return None;
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir =
            std::env::temp_dir().join(format!("kedge-faults-pg-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let status = std::process::Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&dir)
            .status()
            .unwrap();
        assert!(status.success());
        let pg = Self { dir, bindir, port };
        let data = pg.dir.join("data");
        pg.as_postgres(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        pg.start_server();
        Some(pg)
    }

    fn start_server(&self) {
        let data = self.dir.join("data");
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off",
            self.port,
            self.dir.display()
        );
        self.as_postgres(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-l",
                self.dir.join("server.log").to_str().unwrap(),
                "-w",
                "-t",
                "30",
                "-o",
                &options,
                "start",
            ],
        );
    }

    /// Crashes the server: `immediate` ends every process at once, without a checkpoint, and
    /// the next start recovers as after a crash.
    fn crash(&self) {
        let data = self.dir.join("data");
        self.as_postgres(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        );
    }

    fn url(&self) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/postgres?sslmode=disable",
            self.port
        )
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        let _ = std::process::Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bindir.join("pg_ctl"))
            .args([
                "-D",
                data.to_str().unwrap_or_default(),
                "-m",
                "immediate",
                "stop",
            ])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn a_database_crashed_mid_scale_drops_no_replica_and_scaling_resumes() {
    use sqlx::{Connection as _, Executor as _, PgConnection};

    let Some(pg) = PrivatePostgres::start() else {
        return;
    };
    let polling = 2;
    let mut conn = PgConnection::connect(&pg.url()).await.unwrap();
    conn.execute("CREATE TABLE jobs (id serial PRIMARY KEY)")
        .await
        .unwrap();
    drop(conn);

    let c = Cluster::start("faults-postgresql").await;
    let kedge = c.run_kedge_serving_metrics("kedge", &[]).await;
    create_deployment(&c.client, NS, "jobs", 0).await;
    let recorder = Recorder::start(c.client.clone(), NS, "jobs");
    scaled_object(
        &c.client,
        "jobs",
        polling,
        json!({"type": "postgresql", "metadata": {
            "host": "127.0.0.1", "port": pg.port.to_string(), "userName": "postgres",
            "dbName": "postgres", "sslmode": "disable",
            "query": "SELECT count(*) FROM jobs", "targetQueryValue": "5"}}),
    )
    .await;
    let metric = metric_name(&c.client, "jobs").await;
    let mut conn = PgConnection::connect(&pg.url()).await.unwrap();
    conn.execute("INSERT INTO jobs SELECT FROM generate_series(1, 15)")
        .await
        .unwrap();
    drop(conn);
    eventually(2 * MINUTE, "3 replicas", || async {
        (replicas(&c.client, NS, "jobs").await == Some(3)).then_some(())
    })
    .await;

    // The database crashes with the workload at 3, and stays down for five polls.
    pg.crash();
    assert_replicas_hold(
        &c.client,
        "jobs",
        3,
        5 * polling,
        "database",
        &recorder,
        &kedge,
    )
    .await;

    // It comes back (crash recovery); the work was done meanwhile.
    pg.start_server();
    let back = Instant::now();
    let mut conn = PgConnection::connect(&pg.url()).await.unwrap();
    conn.execute("DELETE FROM jobs").await.unwrap();
    let emptied = back.elapsed();
    eventually(MINUTE, "kedge to read the database again", || async {
        (c.external_metric_value(NS, &metric, "jobs").ok().as_deref() == Some("0")).then_some(())
    })
    .await;
    let resumed = back.elapsed();
    eventually(MINUTE, "back to 0", || async {
        (replicas(&c.client, NS, "jobs").await == Some(0)).then_some(())
    })
    .await;
    eprintln!(
        "database back: emptied after {emptied:?}, kedge read it after {resumed:?}, scaled to 0 \
         after {:?}; replicas seen {:?}",
        back.elapsed(),
        recorder.seen()
    );
    assert!(
        resumed <= emptied + Duration::from_secs(2 * u64::from(polling)) + Duration::from_secs(1),
        "kedge needed {resumed:?} to read the database again (emptied after {emptied:?})\n{}",
        kedge.output()
    );
    assert_rose_without_a_drop(&recorder.seen(), 3);
}
