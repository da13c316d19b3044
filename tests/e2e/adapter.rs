//! The metrics adapter end to end: `kedge run` serves `external.metrics.k8s.io`, local-cluster's
//! aggregation layer routes the APIService to it (front-proxy client certificate, as
//! kube-apiserver does, so the adapter's authentication and SubjectAccessReview are on), and
//! the simulated HPA controller scales through it. kubectl reads it as a real client.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use chrono::{Timelike as _, Utc};
use k8s_openapi::api::coordination::v1::Lease;
use kedge::crd::ScaledObject;
use kedge_e2e::{Cluster, create_deployment, eventually, external_metric_path, replicas};
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

const NS: &str = "default";
const MINUTE: Duration = Duration::from_secs(60);

/// A cron trigger whose window opened this minute and stays open for five more.
fn cron(desired: &str) -> Value {
    let m = Utc::now().minute();
    json!({"type": "cron", "metadata": {
        "timezone": "Etc/UTC",
        "start": format!("{m} * * * *"),
        "end": format!("{} * * * *", (m + 5) % 60),
        "desiredReplicas": desired,
    }})
}

/// A ScaledObject scaling `name` between 1 and 5 with a cron trigger; the HPA scales down
/// without a stabilization window so "and back" takes seconds.
async fn scaled_object(client: &Client, name: &str, desired: &str) {
    let so: ScaledObject = serde_json::from_value(json!({
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "scaleTargetRef": {"name": name},
            "pollingInterval": 1,
            "minReplicaCount": 1,
            "maxReplicaCount": 5,
            "advanced": {"horizontalPodAutoscalerConfig": {"behavior": {
                "scaleDown": {"stabilizationWindowSeconds": 0}}}},
            "triggers": [cron(desired)],
        }
    }))
    .unwrap();
    Api::<ScaledObject>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &so)
        .await
        .unwrap();
}

async fn metric_name(client: &Client, so: &str) -> String {
    let api: Api<ScaledObject> = Api::namespaced(client.clone(), NS);
    eventually(
        MINUTE,
        "the ScaledObject's external metric name",
        || async {
            api.get_opt(so)
                .await
                .ok()
                .flatten()
                .and_then(|o| o.status)
                .and_then(|s| s.external_metric_names)
                .and_then(|n| n.into_iter().next())
        },
    )
    .await
}

#[tokio::test]
async fn the_hpa_scales_up_and_back_through_the_adapter() {
    let c = Cluster::start("adapter-hpa").await;
    let _kedge = c.run_kedge_serving_metrics("kedge", &[]).await;

    // Discovery through the aggregator, as `kubectl api-resources` and the HPA controller see it.
    let resources = eventually(MINUTE, "external metrics discovery", || async {
        c.get_raw("/apis/external.metrics.k8s.io/v1beta1").ok()
    })
    .await;
    assert_eq!(resources["resources"][0]["name"], "externalmetrics");

    create_deployment(&c.client, NS, "web", 1).await;
    scaled_object(&c.client, "web", "3").await;
    let metric = metric_name(&c.client, "web").await;

    // kubectl reads the value kedge serves, through the front-proxy-authenticated path.
    let value = eventually(MINUTE, "the metric through kubectl", || async {
        c.external_metric_value(NS, &metric, "web").ok()
    })
    .await;
    assert_eq!(value, "3");
    // The HPA controller reads the same metric and scales 1 → 3.
    eventually(MINUTE, "the HPA to scale web to 3", || async {
        (replicas(&c.client, NS, "web").await == Some(3)).then_some(())
    })
    .await;

    // The trigger's value drops: the HPA scales back to 1 through the adapter.
    Api::<ScaledObject>::namespaced(c.client.clone(), NS)
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"triggers": [cron("1")]}})),
        )
        .await
        .unwrap();
    eventually(MINUTE, "the HPA to scale web back to 1", || async {
        (replicas(&c.client, NS, "web").await == Some(1)).then_some(())
    })
    .await;

    // Unknown objects and metrics are Kubernetes errors the user can read, not hangs.
    let err = c
        .get_raw(&external_metric_path(NS, &metric, "nope"))
        .unwrap_err();
    assert!(
        err.contains("NotFound") || err.contains("not found"),
        "{err}"
    );
}

#[tokio::test]
async fn followers_forward_to_the_leader_and_ride_out_its_loss() {
    let c = Cluster::start("adapter-ha").await;
    let common = [
        "--leader-elect",
        "--leader-election-id",
        "kedge-ha",
        "--pod-ip",
        "127.0.0.1",
    ];
    let a = c.run_kedge("a", &[&common[..], &["--identity", "a"]].concat());
    let b = c.run_kedge("b", &[&common[..], &["--identity", "b"]].concat());
    let leases: Api<Lease> = Api::namespaced(c.client.clone(), NS);
    let holder = || async {
        leases
            .get_opt("kedge-ha")
            .await
            .ok()
            .flatten()
            .and_then(|l| l.spec.and_then(|s| s.holder_identity))
    };
    let first = eventually(MINUTE, "a leader", holder).await;
    assert!(
        first.contains("@127.0.0.1:"),
        "the holder identity carries the link address: {first}"
    );
    let (mut leader, follower) = if first.starts_with("a@") {
        (a, b)
    } else {
        (b, a)
    };

    // The aggregator only knows the follower: every read must be forwarded to the leader.
    kedge::dev::route_external_metrics(&c.client, NS, follower.adapter_addr().await)
        .await
        .unwrap();
    create_deployment(&c.client, NS, "web", 1).await;
    scaled_object(&c.client, "web", "2").await;
    let metric = metric_name(&c.client, "web").await;
    let value = eventually(MINUTE, "a forwarded read", || async {
        c.external_metric_value(NS, &metric, "web").ok()
    })
    .await;
    assert_eq!(value, "2");

    // The leader dies. Until the follower takes the lease over (15 s), it answers from the
    // value it last saw; after, from its own scale loop. The HPA never sees an error.
    leader.kill();
    let deadline = tokio::time::Instant::now() + MINUTE;
    let mut took_over = false;
    while tokio::time::Instant::now() < deadline {
        let value = c.external_metric_value(NS, &metric, "web");
        assert_eq!(
            value.as_deref(),
            Ok("2"),
            "read during failover (follower log:\n{})",
            follower.output()
        );
        if holder().await.is_some_and(|h| !h.starts_with(&first)) && !took_over {
            took_over = true;
            // One more read after the takeover, from the new leader's own values.
            tokio::time::sleep(Duration::from_secs(2)).await;
            continue;
        }
        if took_over {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(took_over, "the follower never took the lease over");
}
