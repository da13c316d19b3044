//! What a tenant's ScaledObject can make kedge reach, end to end: `--scaler-address-deny-cidrs`
//! and `--restrict-secret-access`, against `local-cluster` (which enforces no RBAC: these
//! tests show what kedge itself asks for and what users see).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use chrono::{Timelike as _, Utc};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::api::events::v1::Event;
use kedge::crd::{ClusterTriggerAuthentication, ScaledObject, TriggerAuthentication};
use kedge_e2e::{Cluster, create_deployment, eventually, replicas};
use kube::Client;
use kube::api::{Api, ListParams, PostParams};
use serde_json::{Value, json};

const NS: &str = "default";
const MINUTE: Duration = Duration::from_secs(60);

/// A cron trigger whose window is open now (until the next minute boundary or the one after).
fn cron_open(desired: &str) -> Value {
    let now = Utc::now();
    let m = now.minute();
    let end = if now.second() < 40 {
        (m + 1) % 60
    } else {
        (m + 2) % 60
    };
    json!({"type": "cron", "metadata": {"timezone": "Etc/UTC", "start": format!("{m} * * * *"),
        "end": format!("{end} * * * *"), "desiredReplicas": desired}})
}

async fn scaled_object(client: &Client, name: &str, trigger: Value) {
    let so: ScaledObject = serde_json::from_value(json!({
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"scaleTargetRef": {"name": name}, "pollingInterval": 1, "cooldownPeriod": 2,
                 "maxReplicaCount": 4, "triggers": [trigger]},
    }))
    .unwrap();
    Api::<ScaledObject>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &so)
        .await
        .unwrap();
}

async fn create<K>(client: &Client, namespace: &str, object: Value)
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + k8s_openapi::serde::de::DeserializeOwned
        + k8s_openapi::serde::Serialize
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let object: K = serde_json::from_value(object).unwrap();
    Api::<K>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &object)
        .await
        .unwrap();
}

async fn create_cluster_scoped<K>(client: &Client, object: Value)
where
    K: kube::Resource<Scope = k8s_openapi::ClusterResourceScope>
        + Clone
        + k8s_openapi::serde::de::DeserializeOwned
        + k8s_openapi::serde::Serialize
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let object: K = serde_json::from_value(object).unwrap();
    Api::<K>::all(client.clone())
        .create(&PostParams::default(), &object)
        .await
        .unwrap();
}

async fn secret(client: &Client, namespace: &str, name: &str, data: Value) {
    create::<Secret>(
        client,
        namespace,
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": name, "namespace": namespace}, "stringData": data}),
    )
    .await;
}

/// `Ready` as (status, reason, message), once it is set.
async fn ready(client: &Client, name: &str) -> Option<(String, String, String)> {
    let so = Api::<ScaledObject>::namespaced(client.clone(), NS)
        .get_opt(name)
        .await
        .ok()
        .flatten()?;
    so.status?
        .conditions
        .into_iter()
        .flatten()
        .find(|c| c.type_ == "Ready")
        .map(|c| {
            (
                c.status,
                c.reason.unwrap_or_default(),
                c.message.unwrap_or_default(),
            )
        })
}

async fn not_ready(client: &Client, name: &str) -> (String, String) {
    eventually(MINUTE, &format!("{name}: Ready=False"), || async {
        ready(client, name)
            .await
            .filter(|(status, _, _)| status == "False")
            .map(|(_, reason, message)| (reason, message))
    })
    .await
}

async fn events_for(client: &Client, name: &str) -> Vec<(String, String)> {
    Api::<Event>::namespaced(client.clone(), NS)
        .list(&ListParams::default())
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

#[tokio::test]
async fn a_trigger_at_a_denied_address_is_not_ready_naming_it_and_others_keep_working() {
    let c = Cluster::start("addressguard").await;
    let kedge = c.run_kedge(
        "kedge",
        &[
            "--scaler-address-deny-cidrs",
            "169.254.169.254/32,127.0.0.0/8,::1/128",
        ],
    );
    for name in ["metadata", "loopback", "fromsecret"] {
        create_deployment(&c.client, NS, name, 1).await;
    }
    create_deployment(&c.client, NS, "allowed", 0).await;

    // An address literal, a name that resolves into a denied range, and a connection string
    // read from a Secret (its value must not be echoed).
    scaled_object(
        &c.client,
        "metadata",
        json!({"type": "prometheus", "metadata": {
            "serverAddress": "http://169.254.169.254/latest", "query": "up", "threshold": "1"}}),
    )
    .await;
    scaled_object(
        &c.client,
        "loopback",
        json!({"type": "prometheus", "name": "local", "metadata": {
            "serverAddress": "http://localhost:9090", "query": "up", "threshold": "1"}}),
    )
    .await;
    secret(
        &c.client,
        NS,
        "pg",
        json!({"conn": "postgresql://kedge:hunter2@127.0.0.1:5432/jobs"}),
    )
    .await;
    create::<TriggerAuthentication>(
        &c.client,
        NS,
        json!({"apiVersion": "keda.sh/v1alpha1", "kind": "TriggerAuthentication",
               "metadata": {"name": "pg", "namespace": NS},
               "spec": {"secretTargetRef": [{"parameter": "connection", "name": "pg", "key": "conn"}]}}),
    )
    .await;
    scaled_object(
        &c.client,
        "fromsecret",
        json!({"type": "postgresql", "authenticationRef": {"name": "pg"}, "metadata": {
            "query": "SELECT 1", "targetQueryValue": "1"}}),
    )
    .await;
    scaled_object(&c.client, "allowed", cron_open("2")).await;

    let (reason, message) = not_ready(&c.client, "metadata").await;
    assert_eq!(reason, "ScaledObjectCheckFailed");
    assert_eq!(
        message,
        "error building scalers: triggers[0] (prometheus): parameter \"serverAddress\": its host \
         resolves into 169.254.169.254/32, a range scalers may not connect to \
         (--scaler-address-deny-cidrs)"
    );
    let (_, message) = not_ready(&c.client, "loopback").await;
    assert!(
        message.starts_with(
            "error building scalers: triggers[0] \"local\" (prometheus): parameter \
             \"serverAddress\": its host resolves into "
        ),
        "{message}"
    );
    assert!(!message.contains("localhost"), "{message}");
    let (_, message) = not_ready(&c.client, "fromsecret").await;
    assert_eq!(
        message,
        "error building scalers: triggers[0] (postgresql): parameter \"connection\": its host \
         resolves into 127.0.0.0/8, a range scalers may not connect to \
         (--scaler-address-deny-cidrs)"
    );
    eventually(MINUTE, "an Event naming the parameter", || async {
        events_for(&c.client, "fromsecret")
            .await
            .into_iter()
            .find(|(_, note)| note.contains("parameter \"connection\""))
    })
    .await;
    assert!(
        events_for(&c.client, "fromsecret")
            .await
            .iter()
            .all(|(_, note)| !note.contains("hunter2")),
        "an Event echoes the connection string"
    );

    // The other object is unaffected, and nothing was scaled for the refused ones.
    // kedge activates from zero (to 1); the HPA takes it further.
    eventually(MINUTE, "allowed: scaled from zero", || async {
        (replicas(&c.client, NS, "allowed").await >= Some(1)).then_some(())
    })
    .await;
    assert_eq!(
        ready(&c.client, "allowed").await.map(|r| r.0).as_deref(),
        Some("True")
    );
    for name in ["metadata", "loopback", "fromsecret"] {
        assert_eq!(replicas(&c.client, NS, name).await, Some(1), "{name}");
    }
    assert!(
        !kedge.output().contains("hunter2"),
        "the log echoes the Secret"
    );
}

#[tokio::test]
async fn restricted_secret_access_reads_secrets_only_in_the_cluster_object_namespace() {
    let c = Cluster::start("restrictsecrets").await;
    create_cluster_scoped::<Namespace>(
        &c.client,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kedge"}}),
    )
    .await;
    let _kedge = c.run_kedge(
        "kedge",
        &["--pod-namespace", "kedge", "--restrict-secret-access"],
    );

    // A TriggerAuthentication in the tenant's namespace naming an existing Secret there.
    secret(&c.client, NS, "creds", json!({"token": "t0ken"})).await;
    create::<TriggerAuthentication>(
        &c.client,
        NS,
        json!({"apiVersion": "keda.sh/v1alpha1", "kind": "TriggerAuthentication",
               "metadata": {"name": "creds", "namespace": NS},
               "spec": {"secretTargetRef": [{"parameter": "token", "name": "creds", "key": "token"}]}}),
    )
    .await;
    create_deployment(&c.client, NS, "tenant", 0).await;
    let mut trigger = cron_open("2");
    trigger["authenticationRef"] = json!({"name": "creds"});
    scaled_object(&c.client, "tenant", trigger).await;

    // A ClusterTriggerAuthentication, whose Secret (in kedge's namespace) is created later; its
    // target's env names a tenant Secret, which no trigger reads.
    create_cluster_scoped::<ClusterTriggerAuthentication>(
        &c.client,
        json!({"apiVersion": "keda.sh/v1alpha1", "kind": "ClusterTriggerAuthentication",
               "metadata": {"name": "shared"},
               "spec": {"secretTargetRef": [{"parameter": "token", "name": "shared", "key": "token"}]}}),
    )
    .await;
    create::<Deployment>(
        &c.client,
        NS,
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "shared", "namespace": NS},
               "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "shared"}},
                        "template": {"metadata": {"labels": {"app": "shared"}},
                                     "spec": {"containers": [{"name": "app", "image": "busybox",
                                              "envFrom": [{"secretRef": {"name": "app-env"}}]}]}}}}),
    )
    .await;
    let mut trigger = cron_open("3");
    trigger["authenticationRef"] =
        json!({"name": "shared", "kind": "ClusterTriggerAuthentication"});
    scaled_object(&c.client, "shared", trigger).await;
    // A trigger that reads the target's env, whose Secret kedge may not read.
    create::<Deployment>(
        &c.client,
        NS,
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "envuser", "namespace": NS},
               "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "envuser"}},
                        "template": {"metadata": {"labels": {"app": "envuser"}},
                                     "spec": {"containers": [{"name": "app", "image": "busybox",
                                              "envFrom": [{"secretRef": {"name": "app-env"}}]}]}}}}),
    )
    .await;
    let mut trigger = cron_open("2");
    trigger["metadata"]["desiredReplicasFromEnv"] = json!("REPLICAS");
    scaled_object(&c.client, "envuser", trigger).await;

    let (reason, message) = not_ready(&c.client, "tenant").await;
    assert_eq!(reason, "ScaledObjectCheckFailed");
    assert_eq!(
        message,
        "cannot read Secret default/creds: kedge reads Secrets only in namespace kedge \
         (--restrict-secret-access): use a ClusterTriggerAuthentication with its Secrets there"
    );
    let (_, message) = not_ready(&c.client, "envuser").await;
    assert_eq!(
        message,
        "cannot read Secret default/app-env: kedge reads Secrets only in namespace kedge \
         (--restrict-secret-access): use a ClusterTriggerAuthentication with its Secrets there"
    );
    let (_, message) = not_ready(&c.client, "shared").await;
    assert_eq!(
        message,
        "ClusterTriggerAuthentication shared references Secret kedge/shared, which does not exist"
    );
    // Creating it there is a watched change (a missing Secret is otherwise only looked at
    // again at the 5-minute resync): the Secret watch covers the cluster object namespace.
    secret(&c.client, "kedge", "shared", json!({"token": "t0ken"})).await;
    eventually(
        Duration::from_secs(30),
        "shared: Ready=True and scaled from zero",
        || async {
            let ready = ready(&c.client, "shared")
                .await
                .is_some_and(|r| r.0 == "True");
            let scaled = replicas(&c.client, NS, "shared").await >= Some(1);
            (ready && scaled).then_some(())
        },
    )
    .await;
    for name in ["tenant", "envuser"] {
        assert_eq!(replicas(&c.client, NS, name).await, Some(0), "{name}");
    }
}
