//! The operator end to end: the real `kedge` binary against `local-cluster`, through the
//! Kubernetes API only, as a user would see it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use chrono::{Timelike as _, Utc};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::events::v1::Event;
use kedge::crd::ScaledObject;
use kedge_e2e::{Cluster, create_deployment, eventually, replicas};
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

const NS: &str = "default";
const MINUTE: Duration = Duration::from_secs(60);

/// A cron window that is open now and closes at the next minute boundary (or the one after,
/// when this one is too close), or one that is closed now and for the next half hour.
fn window(open_now: bool) -> (String, String) {
    let now = Utc::now();
    let m = now.minute();
    if open_now {
        let end = if now.second() < 40 {
            (m + 1) % 60
        } else {
            (m + 2) % 60
        };
        (format!("{m} * * * *"), format!("{end} * * * *"))
    } else {
        (
            format!("{} * * * *", (m + 30) % 60),
            format!("{} * * * *", (m + 31) % 60),
        )
    }
}

async fn scaled_object(
    client: &Client,
    name: &str,
    extra_spec: Value,
    trigger: Value,
) -> ScaledObject {
    let mut spec = json!({
        "scaleTargetRef": {"name": name},
        "pollingInterval": 1,
        "cooldownPeriod": 2,
        "maxReplicaCount": 4,
        "triggers": [trigger],
    });
    if let (Some(s), Some(extra)) = (spec.as_object_mut(), extra_spec.as_object()) {
        s.extend(extra.clone());
    }
    let so: ScaledObject = serde_json::from_value(json!({
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
        "metadata": {"name": name, "namespace": NS},
        "spec": spec,
    }))
    .unwrap();
    let api: Api<ScaledObject> = Api::namespaced(client.clone(), NS);
    api.create(&PostParams::default(), &so).await.unwrap()
}

fn cron(open_now: bool, desired: &str) -> Value {
    let (start, end) = window(open_now);
    json!({"type": "cron", "metadata": {"timezone": "Etc/UTC", "start": start, "end": end, "desiredReplicas": desired}})
}

async fn get_so(client: &Client, name: &str) -> Option<ScaledObject> {
    Api::<ScaledObject>::namespaced(client.clone(), NS)
        .get_opt(name)
        .await
        .ok()
        .flatten()
}

fn condition(so: &ScaledObject, type_: &str) -> Option<(String, String, String)> {
    so.status
        .as_ref()?
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == type_)
        .map(|c| {
            (
                c.status.clone(),
                c.reason.clone().unwrap_or_default(),
                c.message.clone().unwrap_or_default(),
            )
        })
}

async fn events_for(client: &Client, name: &str) -> Vec<(String, String)> {
    let api: Api<Event> = Api::namespaced(client.clone(), NS);
    api.list(&ListParams::default())
        .await
        .map(|l| {
            l.items
                .into_iter()
                .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
                .map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default()
}

async fn hpa(client: &Client, name: &str) -> Option<HorizontalPodAutoscaler> {
    Api::<HorizontalPodAutoscaler>::namespaced(client.clone(), NS)
        .get_opt(name)
        .await
        .ok()
        .flatten()
}

#[tokio::test]
async fn cron_window_scales_from_zero_and_back_after_cooldown() {
    let c = Cluster::start("cron").await;
    // KEDA's client rate limit, as a migrated manifest would pass it: everything below still
    // happens within it.
    let kedge = c.run_kedge("kedge", &["--kube-api-qps=20", "--kube-api-burst=30"]);
    create_deployment(&c.client, NS, "web", 0).await;
    let (start, end) = window(true);
    let trigger = json!({"type": "cron", "metadata": {"timezone": "Etc/UTC", "start": start, "end": end, "desiredReplicas": "3"}});
    scaled_object(&c.client, "web", json!({}), trigger).await;

    // The HPA, shaped as KEDA shapes it.
    let h = eventually(MINUTE, "HPA keda-hpa-web", || {
        hpa(&c.client, "keda-hpa-web")
    })
    .await;
    let spec = serde_json::to_value(&h.spec).unwrap();
    assert_eq!(spec["minReplicas"], 1);
    assert_eq!(spec["maxReplicas"], 4);
    assert_eq!(
        spec["scaleTargetRef"],
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"})
    );
    let metric = &spec["metrics"][0]["external"];
    let expected_name = format!(
        "s0-cron-Etc-UTC-{}-{}",
        start.replace(' ', "").replace('*', "x"),
        end.replace(' ', "").replace('*', "x")
    );
    assert_eq!(metric["metric"]["name"], expected_name);
    assert_eq!(
        metric["metric"]["selector"]["matchLabels"]["scaledobject.keda.sh/name"],
        "web"
    );
    assert_eq!(
        metric["target"],
        json!({"type": "AverageValue", "averageValue": "1"})
    );
    assert_eq!(
        h.metadata.owner_references.as_ref().unwrap()[0].kind,
        "ScaledObject"
    );
    assert!(
        kedge
            .output()
            .contains("client-side rate limit of Kubernetes API requests burst=30 per=1.5s"),
        "{}",
        kedge.output()
    );

    // The window is open: kedge activates the workload itself (the HPA never scales from 0).
    eventually(MINUTE, "scale 0 → 1", || async {
        (replicas(&c.client, NS, "web").await == Some(1)).then_some(())
    })
    .await;
    let so = eventually(MINUTE, "Active=True", || async {
        get_so(&c.client, "web")
            .await
            .filter(|so| condition(so, "Active").is_some_and(|c| c.0 == "True"))
    })
    .await;
    assert_eq!(condition(&so, "Ready").unwrap().1, "ScaledObjectReady");
    assert!(so.status.as_ref().unwrap().last_active_time.is_some());
    assert_eq!(
        so.labels()
            .get("scaledobject.keda.sh/name")
            .map(String::as_str),
        Some("web")
    );
    eventually(MINUTE, "KEDAScaleTargetActivated event", || async {
        events_for(&c.client, "web")
            .await
            .into_iter()
            .find(|(r, n)| r == "KEDAScaleTargetActivated" && n.contains("from 0 to 1"))
    })
    .await;

    // The window closes at the next minute boundary; after the 2 s cooldown, back to zero.
    eventually(3 * MINUTE, "scale 1 → 0", || async {
        (replicas(&c.client, NS, "web").await == Some(0)).then_some(())
    })
    .await;
    eventually(MINUTE, "KEDAScaleTargetDeactivated event", || async {
        events_for(&c.client, "web")
            .await
            .into_iter()
            .find(|(r, _)| r == "KEDAScaleTargetDeactivated")
    })
    .await;
    let so = get_so(&c.client, "web").await.unwrap();
    assert_eq!(
        condition(&so, "Active").unwrap().0,
        "False",
        "{}",
        kedge.output()
    );
}

use kube::ResourceExt as _;

#[tokio::test]
async fn pause_paused_replicas_and_unpause() {
    let c = Cluster::start("pause").await;
    let _kedge = c.run_kedge("kedge", &[]);
    create_deployment(&c.client, NS, "worker", 0).await;
    scaled_object(&c.client, "worker", json!({}), cron(false, "2")).await;
    eventually(MINUTE, "HPA", || hpa(&c.client, "keda-hpa-worker")).await;

    let api: Api<ScaledObject> = Api::namespaced(c.client.clone(), NS);
    let annotate = |v: Value| {
        let api = api.clone();
        async move {
            api.patch(
                "worker",
                &PatchParams::default(),
                &Patch::Merge(&json!({"metadata": {"annotations": v}})),
            )
            .await
            .unwrap();
        }
    };

    annotate(json!({"autoscaling.keda.sh/paused-replicas": "2"})).await;
    eventually(MINUTE, "paused at 2 replicas", || async {
        (replicas(&c.client, NS, "worker").await == Some(2)).then_some(())
    })
    .await;
    let so = eventually(MINUTE, "Paused=True", || async {
        get_so(&c.client, "worker")
            .await
            .filter(|so| condition(so, "Paused").is_some_and(|c| c.0 == "True"))
    })
    .await;
    assert_eq!(so.status.as_ref().unwrap().paused_replica_count, Some(2));
    eventually(MINUTE, "HPA deleted while paused", || async {
        hpa(&c.client, "keda-hpa-worker")
            .await
            .is_none()
            .then_some(())
    })
    .await;

    annotate(json!({"autoscaling.keda.sh/paused-replicas": null})).await;
    let so = eventually(MINUTE, "Paused=False", || async {
        get_so(&c.client, "worker")
            .await
            .filter(|so| condition(so, "Paused").is_some_and(|c| c.0 == "False"))
    })
    .await;
    assert_eq!(condition(&so, "Paused").unwrap().1, "ScaledObjectUnpaused");
    eventually(MINUTE, "HPA back", || hpa(&c.client, "keda-hpa-worker")).await;
    // Inactive trigger, no lastActiveTime, initialCooldownPeriod 0: back to zero.
    eventually(MINUTE, "scaled to 0 after unpause", || async {
        (replicas(&c.client, NS, "worker").await == Some(0)).then_some(())
    })
    .await;

    // A full pause freezes the replicas where they are.
    Api::<Deployment>::namespaced(c.client.clone(), NS)
        .patch_scale(
            "worker",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"replicas": 3}})),
        )
        .await
        .unwrap();
    annotate(json!({"autoscaling.keda.sh/paused": "true"})).await;
    eventually(MINUTE, "HPA deleted", || async {
        hpa(&c.client, "keda-hpa-worker")
            .await
            .is_none()
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        replicas(&c.client, NS, "worker").await,
        Some(3),
        "a paused object is not scaled"
    );
}

#[tokio::test]
async fn deleting_restores_the_original_replica_count() {
    let c = Cluster::start("restore").await;
    let _kedge = c.run_kedge("kedge", &[]);
    create_deployment(&c.client, NS, "api", 3).await;
    scaled_object(
        &c.client,
        "api",
        json!({"advanced": {"restoreToOriginalReplicaCount": true}}),
        cron(false, "2"),
    )
    .await;
    eventually(MINUTE, "originalReplicaCount=3", || async {
        get_so(&c.client, "api")
            .await
            .filter(|so| so.status.as_ref().and_then(|s| s.original_replica_count) == Some(3))
    })
    .await;
    eventually(MINUTE, "scaled to 0 (inactive)", || async {
        (replicas(&c.client, NS, "api").await == Some(0)).then_some(())
    })
    .await;

    Api::<ScaledObject>::namespaced(c.client.clone(), NS)
        .delete("api", &DeleteParams::default())
        .await
        .unwrap();
    eventually(MINUTE, "ScaledObject gone (finalizer removed)", || async {
        get_so(&c.client, "api").await.is_none().then_some(())
    })
    .await;
    assert_eq!(replicas(&c.client, NS, "api").await, Some(3));
    assert!(hpa(&c.client, "keda-hpa-api").await.is_none());
}

#[tokio::test]
async fn a_panic_in_a_reconcile_ends_the_process_non_zero() {
    // A replica whose controller died must not keep serving (and holding a lease) with nothing
    // reconciling: it exits, so the kubelet restarts it. The panic comes from the test-only
    // `failpoints` feature.
    let c = Cluster::start("panic").await;
    let mut kedge = c.run_kedge("kedge", &[]);
    create_deployment(&c.client, NS, "boom", 0).await;
    let created = scaled_object(&c.client, "boom", json!({}), cron(true, "1")).await;
    let api: Api<ScaledObject> = Api::namespaced(c.client.clone(), NS);
    let patch = json!({"metadata": {"annotations": {"kedge.test/panic-in-reconcile": "true"}}});
    api.patch(
        &created.metadata.name.unwrap(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .unwrap();
    let deadline = std::time::Instant::now() + MINUTE;
    let status = loop {
        if let Some(status) = kedge.exited() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "kedge did not exit:\n{}",
            kedge.output()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(!status.success(), "{status:?}\n{}", kedge.output());
    // kube-runtime runs each reconcile in a task of its own and unwraps its result, so the
    // panic reaches the controller wrapped in that.
    let out = kedge.output();
    let said = out
        .lines()
        .find(|l| l.starts_with("kedge run: the controller stopped: panicked"));
    assert!(
        said.is_some_and(|l| l.contains("failpoint kedge.test/panic-in-reconcile")),
        "{out}"
    );
}

#[tokio::test]
async fn a_secret_a_trigger_authentication_names_must_exist() {
    let c = Cluster::start("missingsecret").await;
    let _kedge = c.run_kedge("kedge", &[]);
    create_deployment(&c.client, NS, "sec", 0).await;
    let ta: kedge::crd::TriggerAuthentication = serde_json::from_value(json!({
        "apiVersion": "keda.sh/v1alpha1", "kind": "TriggerAuthentication",
        "metadata": {"name": "creds", "namespace": NS},
        "spec": {"secretTargetRef": [{"parameter": "token", "name": "absent", "key": "t"}]}
    }))
    .unwrap();
    Api::<kedge::crd::TriggerAuthentication>::namespaced(c.client.clone(), NS)
        .create(&PostParams::default(), &ta)
        .await
        .unwrap();
    let mut trigger = cron(true, "2");
    trigger["authenticationRef"] = json!({"name": "creds"});
    scaled_object(&c.client, "sec", json!({}), trigger).await;
    let so = eventually(MINUTE, "sec: Ready=False naming the Secret", || async {
        get_so(&c.client, "sec")
            .await
            .filter(|so| condition(so, "Ready").is_some_and(|c| c.0 == "False"))
    })
    .await;
    let (_, reason, message) = condition(&so, "Ready").unwrap();
    assert_eq!(reason, "ScaledObjectCheckFailed");
    assert_eq!(
        message,
        "TriggerAuthentication default/creds references Secret default/absent, which does not exist"
    );
    eventually(MINUTE, "an Event naming the Secret", || async {
        events_for(&c.client, "sec")
            .await
            .into_iter()
            .find(|(r, n)| r == "ScaledObjectCheckFailed" && n.contains("Secret default/absent"))
    })
    .await;
    // Creating it is a watched change: the object becomes ready without waiting for a resync.
    let secret: k8s_openapi::api::core::v1::Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "absent", "namespace": NS},
        "stringData": {"t": "x"}
    }))
    .unwrap();
    Api::<k8s_openapi::api::core::v1::Secret>::namespaced(c.client.clone(), NS)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    eventually(MINUTE, "sec: Ready=True", || async {
        get_so(&c.client, "sec")
            .await
            .filter(|so| condition(so, "Ready").is_some_and(|c| c.0 == "True"))
    })
    .await;
}

#[tokio::test]
async fn a_target_created_after_its_scaled_object_is_picked_up_within_seconds() {
    // kedge watches no workloads: it retries a missing target with a short backoff instead of
    // waiting for the 5-minute resync.
    let c = Cluster::start("latetarget").await;
    let _kedge = c.run_kedge("kedge", &[]);
    scaled_object(&c.client, "late", json!({}), cron(true, "2")).await;
    eventually(MINUTE, "late: Ready=False, target missing", || async {
        get_so(&c.client, "late").await.filter(|so| {
            condition(so, "Ready").is_some_and(|c| c.0 == "False" && c.2.contains("scaleTargetRef"))
        })
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    create_deployment(&c.client, NS, "late", 0).await;
    eventually(
        Duration::from_secs(30),
        "late: Ready=True and scaled from zero",
        || async {
            let so = get_so(&c.client, "late").await?;
            let ready = condition(&so, "Ready").is_some_and(|c| c.0 == "True");
            let scaled = replicas(&c.client, NS, "late")
                .await
                .is_some_and(|r| r >= 1);
            (ready && scaled).then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn an_invalid_object_is_reported_and_does_not_disturb_a_valid_one() {
    let c = Cluster::start("invalid").await;
    let _kedge = c.run_kedge("kedge", &[]);
    create_deployment(&c.client, NS, "good", 0).await;
    create_deployment(&c.client, NS, "bad", 0).await;
    scaled_object(
        &c.client,
        "bad",
        json!({}),
        json!({"type": "carrier-pigeon", "metadata": {"loft": "north"}}),
    )
    .await;
    scaled_object(&c.client, "good", json!({}), cron(true, "2")).await;

    let so = eventually(MINUTE, "bad: Ready=False", || async {
        get_so(&c.client, "bad")
            .await
            .filter(|so| condition(so, "Ready").is_some_and(|c| c.0 == "False"))
    })
    .await;
    let (_, reason, message) = condition(&so, "Ready").unwrap();
    assert_eq!(reason, "ScaledObjectCheckFailed");
    assert!(
        message.contains("no scaler found for type: carrier-pigeon"),
        "{message}"
    );
    eventually(MINUTE, "ScaledObjectCheckFailed event", || async {
        events_for(&c.client, "bad")
            .await
            .into_iter()
            .find(|(r, n)| r == "ScaledObjectCheckFailed" && n.contains("carrier-pigeon"))
    })
    .await;
    eventually(MINUTE, "good: scaled 0 → 1", || async {
        (replicas(&c.client, NS, "good").await == Some(1)).then_some(())
    })
    .await;
    assert_eq!(replicas(&c.client, NS, "bad").await, Some(0));
}

#[tokio::test]
async fn leader_failover_between_two_processes() {
    let c = Cluster::start("leader").await;
    let args = ["--leader-elect", "--leader-election-id", "kedge-e2e"];
    let a = c.run_kedge("a", &[&args[..], &["--identity", "a"]].concat());
    let b = c.run_kedge("b", &[&args[..], &["--identity", "b"]].concat());
    let leases: Api<Lease> = Api::namespaced(c.client.clone(), NS);
    let holder = |leases: Api<Lease>| async move {
        leases
            .get_opt("kedge-e2e")
            .await
            .ok()
            .flatten()
            .and_then(|l| l.spec.and_then(|s| s.holder_identity))
            // The identity carries the replica's follower-link address: `a@127.0.0.1:port`.
            .map(|h| h.split('@').next().unwrap_or_default().to_owned())
    };
    let first = eventually(MINUTE, "a leader", || holder(leases.clone())).await;
    let (leader, follower, other) = if first == "a" {
        (a, b, "b")
    } else {
        (b, a, "a")
    };

    create_deployment(&c.client, NS, "one", 0).await;
    scaled_object(&c.client, "one", json!({}), cron(false, "2")).await;
    eventually(MINUTE, "HPA from the leader", || {
        hpa(&c.client, "keda-hpa-one")
    })
    .await;

    // Freeze the leader: the other replica takes the lease over once it expires (15 s).
    leader.signal("STOP");
    eventually(MINUTE, "failover", || async {
        holder(leases.clone()).await.filter(|h| h == other)
    })
    .await;
    create_deployment(&c.client, NS, "two", 0).await;
    scaled_object(&c.client, "two", json!({}), cron(false, "2")).await;
    eventually(MINUTE, "HPA from the new leader", || {
        hpa(&c.client, "keda-hpa-two")
    })
    .await;

    // The old leader wakes up, finds the lease taken, and stops writing at once.
    leader.signal("CONT");
    eventually(MINUTE, "old leader steps down", || async {
        let out = leader.output();
        (out.contains("stepping down") || out.contains("lost the lease")).then_some(())
    })
    .await;
    assert!(
        !follower.output().contains("stepping down"),
        "{}",
        follower.output()
    );
}

/// `GET http://{addr}{path}` with curl: the body, then the status code on its own line.
async fn http_get(addr: &str, path: &str) -> Option<String> {
    let out = std::process::Command::new("curl")
        .args([
            "-s",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
            &format!("http://{addr}{path}"),
        ])
        .output()
        .ok()?;
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn free_loopback_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

#[tokio::test]
async fn ready_only_once_the_watches_have_listed_everything() {
    // Before kedge's CRDs are served the ScaledObject watch cannot list anything: a replica
    // that said ready then would serve and act on empty caches.
    let c = Cluster::start_without_crds("readyz", 1).await;
    let addr = free_loopback_addr();
    let kedge = c.run_kedge("kedge", &["--metrics-bind-address", &addr]);
    let unready = eventually(MINUTE, "/readyz to answer", || async {
        http_get(&addr, "/readyz")
            .await
            .filter(|r| r.ends_with("503"))
    })
    .await;
    assert!(unready.starts_with("starting"), "{unready}");
    // It stays unready while the CRDs are missing, and stays up.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        http_get(&addr, "/readyz").await.unwrap().ends_with("503"),
        "{}",
        kedge.output()
    );
    kedge::dev::install_crds(&c.client).await.unwrap();
    eventually(
        MINUTE,
        "/readyz to turn 200 once the watches synced",
        || async {
            http_get(&addr, "/readyz")
                .await
                .filter(|r| r.ends_with("200"))
        },
    )
    .await;
    assert!(
        kedge.output().contains("watches synced"),
        "{}",
        kedge.output()
    );
}

#[tokio::test]
async fn metrics_and_health_endpoints_use_keda_names() {
    let c = Cluster::start("metrics").await;
    let addr = free_loopback_addr();
    let _kedge = c.run_kedge("kedge", &["--metrics-bind-address", &addr]);
    create_deployment(&c.client, NS, "m", 0).await;
    scaled_object(&c.client, "m", json!({}), cron(true, "2")).await;
    eventually(MINUTE, "scale 0 → 1", || async {
        (replicas(&c.client, NS, "m").await == Some(1)).then_some(())
    })
    .await;
    let get = |path: &'static str| http_get(&addr, path);
    let metrics = eventually(MINUTE, "/metrics with scaler values", || async {
        get("/metrics")
            .await
            .filter(|m| m.contains("keda_scaler_metrics_value{"))
    })
    .await;
    for name in [
        "keda_scaler_active{",
        "keda_scaler_metrics_latency_seconds{",
        "keda_internal_scale_loop_latency_seconds{",
        "kedge_scale_loop_lag_seconds_bucket",
        "kedge_reconcile_duration_seconds_bucket",
    ] {
        assert!(metrics.contains(name), "{name} missing from:\n{metrics}");
    }
    assert!(metrics.contains("scaledObject=\"m\""), "{metrics}");
    assert!(get("/healthz").await.unwrap().ends_with("200"));
    let ready = get("/readyz").await.unwrap();
    assert!(ready.ends_with("200"), "{ready}");
}

#[tokio::test]
async fn pod_identity_is_recorded_and_said_in_an_event() {
    let c = Cluster::start("podidentity").await;
    let _kedge = c.run_kedge("kedge", &[]);
    create_deployment(&c.client, NS, "aws", 0).await;
    let ta: kedge::crd::TriggerAuthentication = serde_json::from_value(json!({
        "apiVersion": "keda.sh/v1alpha1", "kind": "TriggerAuthentication",
        "metadata": {"name": "irsa", "namespace": NS},
        "spec": {"podIdentity": {"provider": "aws"}}
    }))
    .unwrap();
    Api::<kedge::crd::TriggerAuthentication>::namespaced(c.client.clone(), NS)
        .create(&PostParams::default(), &ta)
        .await
        .unwrap();
    let mut trigger = cron(false, "2");
    trigger["authenticationRef"] = json!({"name": "irsa"});
    scaled_object(&c.client, "aws", json!({}), trigger).await;
    let (_, note) = eventually(MINUTE, "KEDAScalerInfo event", || async {
        events_for(&c.client, "aws")
            .await
            .into_iter()
            .find(|(r, _)| r == "KEDAScalerInfo")
    })
    .await;
    assert!(
        note.contains("podIdentity provider aws is recorded"),
        "{note}"
    );
    let so = get_so(&c.client, "aws").await.unwrap();
    assert_eq!(
        so.status.unwrap().authentications_types.as_deref(),
        Some("irsa")
    );
}

#[tokio::test]
async fn a_failing_trigger_keeps_ready_false_across_polls() {
    let c = Cluster::start("triggererror").await;
    let kedge = c.run_kedge("kedge", &[]);
    create_deployment(&c.client, NS, "broken", 1).await;
    // Nothing listens on port 9: every poll fails.
    let trigger = json!({"type": "prometheus", "metadata": {
        "serverAddress": "http://127.0.0.1:9", "query": "up", "threshold": "1"}});
    scaled_object(&c.client, "broken", json!({}), trigger).await;
    let trigger_error = |so: Option<ScaledObject>| {
        so.and_then(|so| condition(&so, "Ready"))
            .filter(|(status, reason, _)| status == "False" && reason == "TriggerError")
    };
    eventually(MINUTE, "Ready=False/TriggerError", || async {
        trigger_error(get_so(&c.client, "broken").await)
    })
    .await;
    // It stays so: the reconcile each status patch causes does not flip it back to True.
    for _ in 0..25 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let so = get_so(&c.client, "broken").await;
        assert!(
            trigger_error(so.clone()).is_some(),
            "Ready changed while the trigger still fails: {:?}\n{}",
            so.and_then(|so| condition(&so, "Ready")),
            kedge.output()
        );
    }
}

#[tokio::test]
async fn a_scaled_object_gone_without_its_finalizer_stops_being_polled_at_once() {
    let c = Cluster::start("gone").await;
    let addr = free_loopback_addr();
    let kedge = c.run_kedge("kedge", &["--metrics-bind-address", &addr]);
    create_deployment(&c.client, NS, "gone", 0).await;
    scaled_object(&c.client, "gone", json!({}), cron(true, "2")).await;
    eventually(MINUTE, "scale 0 → 1", || async {
        (replicas(&c.client, NS, "gone").await >= Some(1)).then_some(())
    })
    .await;
    eventually(MINUTE, "its series in /metrics", || async {
        http_get(&addr, "/metrics")
            .await
            .filter(|m| m.contains(r#"scaledObject="gone""#))
    })
    .await;

    // The finalizer is removed by hand, then the object deleted: kedge's cleanup never runs.
    let api: Api<ScaledObject> = Api::namespaced(c.client.clone(), NS);
    api.patch(
        "gone",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    api.delete("gone", &DeleteParams::default()).await.unwrap();
    // Without the HPA kedge owned (a real cluster's garbage collector deletes it), only kedge
    // could still scale the Deployment.
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(c.client.clone(), NS);
    let _ = hpas.delete("keda-hpa-gone", &DeleteParams::default()).await;
    eventually(MINUTE, "the departure noticed", || async {
        kedge
            .output()
            .contains("ScaledObject is gone: stopped polling it")
            .then_some(())
    })
    .await;
    let deployments: Api<Deployment> = Api::namespaced(c.client.clone(), NS);
    deployments
        .patch_scale(
            "gone",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 0}})),
        )
        .await
        .unwrap();
    // Three polling intervals: a poll of the open cron window would scale 0 → 1 again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        replicas(&c.client, NS, "gone").await,
        Some(0),
        "{}",
        kedge.output()
    );
    let metrics = http_get(&addr, "/metrics").await.unwrap();
    assert!(
        !metrics.contains(r#"scaledObject="gone""#) && !metrics.contains(r#"resource="gone""#),
        "series of a deleted object remain:\n{metrics}"
    );
}
