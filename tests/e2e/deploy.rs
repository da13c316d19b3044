//! `deploy/` against local-cluster: the manifests a user applies with
//! `kubectl apply --server-side -k deploy/` are accepted by the API server, and kedge, running
//! with what they configure (namespace `kedge`, Service `kedge-metrics-apiserver`, APIService
//! `v1beta1.external.metrics.k8s.io` without a caBundle), makes the external metrics API
//! available through them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use kedge_e2e::{Cluster, eventually};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use serde_json::{Value, json};

const MINUTE: Duration = Duration::from_secs(60);

fn apiservices(c: &Cluster) -> Api<DynamicObject> {
    Api::all_with(
        c.client.clone(),
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("apiregistration.k8s.io", "v1", "APIService"),
            "apiservices",
        ),
    )
}

#[tokio::test]
async fn deploy_applies_server_side_and_kedge_serves_through_it() {
    let c = Cluster::start("deploy").await;
    let applied = c
        .kubectl(&["apply", "--server-side", "-k", "deploy/"])
        .unwrap();
    for object in [
        "namespace/kedge",
        "serviceaccount/kedge",
        "deployment.apps/kedge",
        "service/kedge-metrics-apiserver",
        "poddisruptionbudget.policy/kedge",
        "apiservice.apiregistration.k8s.io/v1beta1.external.metrics.k8s.io",
        "customresourcedefinition.apiextensions.k8s.io/scaledobjects.keda.sh",
    ] {
        assert!(applied.contains(object), "{object} not in:\n{applied}");
    }
    assert!(applied.contains("clusterrole.rbac.authorization.k8s.io/kedge"));
    // Re-applying is a no-op, as a GitOps loop does it.
    c.kubectl(&["apply", "--server-side", "-k", "deploy/"])
        .unwrap();
    let deployment = Api::<Deployment>::namespaced(c.client.clone(), "kedge")
        .get("kedge")
        .await
        .unwrap();
    assert_eq!(deployment.spec.replicas, Some(2));

    // The namespaced overlay applies too.
    c.kubectl(&["apply", "--server-side", "-k", "deploy/namespaced/"])
        .unwrap();

    // kedge as the Deployment runs it (namespace kedge, default names), reached through the
    // Service's Endpoints, which the endpoints controller would write for its pod.
    let kedge = c.run_kedge("kedge", &["--pod-namespace", "kedge"]);
    let addr = kedge.adapter_addr().await;
    let endpoints: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "kedge-metrics-apiserver", "namespace": "kedge"},
        "subsets": [{"addresses": [{"ip": addr.ip().to_string()}],
                     "ports": [{"name": "https", "port": addr.port()}]}]
    }))
    .unwrap();
    Api::<DynamicObject>::namespaced_with(
        c.client.clone(),
        "kedge",
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("", "v1", "Endpoints"),
            "endpoints",
        ),
    )
    .create(&Default::default(), &endpoints)
    .await
    .unwrap();

    // kedge writes its CA into the APIService the manifests left without one; it turns Available.
    let api = apiservices(&c);
    eventually(MINUTE, "the APIService to become Available", || async {
        let a = api.get("v1beta1.external.metrics.k8s.io").await.ok()?;
        a.data.pointer("/spec/caBundle").and_then(Value::as_str)?;
        let available = a
            .data
            .pointer("/status/conditions")?
            .as_array()?
            .iter()
            .any(|c| c["type"] == "Available" && c["status"] == "True");
        available.then_some(())
    })
    .await;
    let discovery = eventually(MINUTE, "discovery through the APIService", || async {
        c.kubectl(&["get", "--raw", "/apis/external.metrics.k8s.io/v1beta1"])
            .ok()
    })
    .await;
    assert!(discovery.contains("externalmetrics"), "{discovery}");
}
