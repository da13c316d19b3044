//! A rotated Secret rebuilds the scaler that reads it, without touching the ScaledObject.
//! Uses the real PostgreSQL with password authentication that scripts/services.sh starts
//! (`KEDGE_POSTGRESQL_AUTH_URL`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use kedge::crd::{ScaledObject, TriggerAuthentication};
use kedge_e2e::{Cluster, eventually};
use kedge_test_support::service_env;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

const NS: &str = "default";

#[tokio::test]
async fn rotating_the_secret_rebuilds_the_scaler() {
    let Some(url) = service_env("KEDGE_POSTGRESQL_AUTH_URL") else {
        return;
    };
    // postgres://user:password@host:port/db
    let rest = url.trim_start_matches("postgres://");
    let (creds, hostpart) = rest.split_once('@').unwrap();
    let (user, password) = creds.split_once(':').unwrap();
    let (hostport, db) = hostpart.split_once('/').unwrap();
    let (host, port) = hostport.split_once(':').unwrap();

    let c = Cluster::start("rotation").await;
    let kedge = c.run_kedge("kedge", &[]);
    let client = c.client.clone();
    let d: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "jobs"},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "jobs"}},
                 "template": {"metadata": {"labels": {"app": "jobs"}},
                              "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}
    }))
    .unwrap();
    Api::<Deployment>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &d)
        .await
        .unwrap();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "pg"},
        "stringData": {"password": "not-the-password"}
    }))
    .unwrap();
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let ta: TriggerAuthentication = serde_json::from_value(json!({
        "apiVersion": "keda.sh/v1alpha1", "kind": "TriggerAuthentication", "metadata": {"name": "pg"},
        "spec": {"secretTargetRef": [{"parameter": "password", "name": "pg", "key": "password"}]}
    }))
    .unwrap();
    Api::<TriggerAuthentication>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &ta)
        .await
        .unwrap();
    let so: ScaledObject = serde_json::from_value(json!({
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "jobs"},
        "spec": {"scaleTargetRef": {"name": "jobs"}, "pollingInterval": 1, "cooldownPeriod": 5,
                 "triggers": [{"type": "postgresql", "authenticationRef": {"name": "pg"},
                               "metadata": {"host": host, "port": port, "userName": user, "dbName": db,
                                            "sslmode": "disable", "query": "SELECT 7",
                                            "targetQueryValue": "2"}}]}
    }))
    .unwrap();
    let sos: Api<ScaledObject> = Api::namespaced(client.clone(), NS);
    sos.create(&PostParams::default(), &so).await.unwrap();

    let ready = |want: &'static str| {
        let sos = sos.clone();
        move || {
            let sos = sos.clone();
            async move {
                let so = sos.get_opt("jobs").await.ok().flatten()?;
                let c = so
                    .status?
                    .conditions?
                    .into_iter()
                    .find(|c| c.type_ == "Ready")?;
                (c.status == want).then_some(c)
            }
        }
    };
    // The wrong password: the trigger fails, kedge reports it and does not scale.
    let c1 = eventually(
        Duration::from_secs(60),
        "Ready=False with the wrong password",
        ready("False"),
    )
    .await;
    assert_eq!(
        c1.reason.as_deref(),
        Some("TriggerError"),
        "{}",
        kedge.output()
    );
    let replicas = |client: kube::Client| async move {
        Api::<Deployment>::namespaced(client, NS)
            .get_scale("jobs")
            .await
            .ok()
            .and_then(|s| s.spec.and_then(|s| s.replicas))
    };
    assert_eq!(replicas(client.clone()).await, Some(0));

    // Rotate the Secret only. The reconciler sees the change and rebuilds the scaler.
    secrets
        .patch(
            "pg",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"password": password}})),
        )
        .await
        .unwrap();
    eventually(
        Duration::from_secs(60),
        "Ready=True after rotation",
        ready("True"),
    )
    .await;
    eventually(Duration::from_secs(60), "scale 0 → 1", || {
        let client = client.clone();
        async move { (replicas(client).await == Some(1)).then_some(()) }
    })
    .await;
}
