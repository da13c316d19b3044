//! Conformance of the API dialect as kube-rs uses it: CRUD, conflicts, selectors, patches,
//! watches, CRDs registered at run time with schema validation, status and scale subresources,
//! finalizers, garbage collection, and a kube-runtime Controller.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{WAIT, within};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kedge_test_support::eventually;
use kube::api::{
    DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalized, finalizer};
use kube::runtime::wait::{await_condition, conditions};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Api, Client, CustomResource, CustomResourceExt, Resource, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, JsonSchema)]
#[kube(
    group = "test.kedge.dev",
    version = "v1",
    kind = "Widget",
    namespaced,
    status = "WidgetStatus",
    shortname = "wd",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    )
)]
pub struct WidgetSpec {
    #[schemars(range(min = 1, max = 100))]
    size: i32,
    color: Color,
    #[serde(default)]
    replicas: i32,
}

#[derive(Deserialize, Serialize, Clone, Debug, JsonSchema, PartialEq)]
enum Color {
    Red,
    Blue,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, JsonSchema)]
pub struct WidgetStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    observed_size: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    selector: Option<String>,
}

fn api_error(err: kube::Error) -> (u16, String) {
    match err {
        kube::Error::Api(s) => (s.code, s.reason.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn config_map(name: &str, labels: &[(&str, &str)]) -> ConfigMap {
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some(name.into());
    cm.metadata.labels = Some(
        labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    cm.data = Some(BTreeMap::from([("k".to_string(), "v".to_string())]));
    cm
}

async fn install_widget_crd(client: &Client) -> Api<Widget> {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &Widget::crd())
        .await
        .unwrap();
    let established = await_condition(
        crds,
        "widgets.test.kedge.dev",
        conditions::is_crd_established(),
    );
    within("CRD established", established).await.unwrap();
    Api::namespaced(client.clone(), "default")
}

fn widget(name: &str, size: i32) -> Widget {
    Widget::new(
        name,
        WidgetSpec {
            size,
            color: Color::Red,
            replicas: 1,
        },
    )
}

#[tokio::test]
async fn crud_conflicts_and_selectors() {
    let cluster = common::start().await;
    let client = cluster.client().await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");

    let a = cms
        .create(&PostParams::default(), &config_map("a", &[("app", "x")]))
        .await
        .unwrap();
    assert!(a.metadata.uid.is_some() && a.metadata.creation_timestamp.is_some());
    assert!(a.resource_version().is_some());
    cms.create(&PostParams::default(), &config_map("b", &[("app", "y")]))
        .await
        .unwrap();
    assert_eq!(
        api_error(
            cms.create(&PostParams::default(), &config_map("a", &[]))
                .await
                .unwrap_err()
        ),
        (409, "AlreadyExists".into())
    );

    let names = |l: kube::core::ObjectList<ConfigMap>| {
        l.items.iter().map(|c| c.name_any()).collect::<Vec<_>>()
    };
    assert_eq!(
        names(
            cms.list(&ListParams::default().labels("app=x"))
                .await
                .unwrap()
        ),
        ["a"]
    );
    assert_eq!(
        names(
            cms.list(&ListParams::default().labels("app in (x,y)"))
                .await
                .unwrap()
        ),
        ["a", "b"]
    );
    assert_eq!(
        names(
            cms.list(&ListParams::default().fields("metadata.name=b"))
                .await
                .unwrap()
        ),
        ["b"]
    );
    // Across namespaces (kube-system holds the cluster's own ConfigMaps, as on a real cluster).
    let everywhere: Api<ConfigMap> = Api::all(client.clone());
    assert_eq!(
        names(
            everywhere
                .list(&ListParams::default().labels("app"))
                .await
                .unwrap()
        ),
        ["a", "b"]
    );

    // Update with the current resourceVersion works; the same body again is stale.
    let mut changed = a.clone();
    changed.data = Some(BTreeMap::from([("k".to_string(), "v2".to_string())]));
    let updated = cms
        .replace("a", &PostParams::default(), &changed)
        .await
        .unwrap();
    assert_ne!(updated.resource_version(), a.resource_version());
    assert_eq!(
        api_error(
            cms.replace("a", &PostParams::default(), &changed)
                .await
                .unwrap_err()
        ),
        (409, "Conflict".into())
    );

    // Merge and JSON patches.
    let merged = cms
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"n": "1"}})),
        )
        .await
        .unwrap();
    assert_eq!(merged.data.unwrap().get("n").map(String::as_str), Some("1"));
    let json_patch: json_patch::Patch = serde_json::from_value(
        json!([{"op": "add", "path": "/metadata/labels/extra", "value": "yes"}]),
    )
    .unwrap();
    let patched = cms
        .patch("a", &PatchParams::default(), &Patch::<()>::Json(json_patch))
        .await
        .unwrap();
    assert_eq!(
        patched.labels().get("extra").map(String::as_str),
        Some("yes")
    );

    // A write that changes nothing keeps the resourceVersion.
    let same = cms
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"n": "1"}})),
        )
        .await
        .unwrap();
    assert_eq!(same.resource_version(), patched.resource_version());

    assert_eq!(
        api_error(cms.get("missing").await.unwrap_err()),
        (404, "NotFound".into())
    );
    let dry = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let answered = cms.create(&dry, &config_map("dry", &[])).await.unwrap();
    assert_eq!(answered.name_any(), "dry");
    assert_eq!(
        api_error(cms.get("dry").await.unwrap_err()).0,
        404,
        "dry runs store nothing"
    );
    let deleted = cms.delete("a", &DeleteParams::default()).await.unwrap();
    assert!(
        deleted.is_right(),
        "an object without finalizers is gone at once"
    );
    assert_eq!(api_error(cms.get("a").await.unwrap_err()).0, 404);

    // Objects in missing namespaces are refused.
    let nowhere: Api<ConfigMap> = Api::namespaced(client.clone(), "nowhere");
    assert_eq!(
        api_error(
            nowhere
                .create(&PostParams::default(), &config_map("c", &[]))
                .await
                .unwrap_err()
        )
        .0,
        404
    );
    cluster.shutdown().await;
}

#[tokio::test]
async fn generate_name_secrets_and_server_side_apply() {
    let cluster = common::start().await;
    let client = cluster.client().await.unwrap();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    let s: Secret = serde_json::from_value(
        json!({"metadata": {"generateName": "tok-"}, "stringData": {"password": "hunter2"}}),
    )
    .unwrap();
    let created = secrets.create(&PostParams::default(), &s).await.unwrap();
    assert!(created.name_any().starts_with("tok-") && created.name_any().len() == 9);
    assert_eq!(created.data.unwrap()["password"].0, b"hunter2");

    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let apply = PatchParams::apply("kedge-test").force();
    let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied"}, "data": {"a": "1"}});
    let first = cms
        .patch("applied", &apply, &Patch::Apply(&body))
        .await
        .unwrap();
    let entry = &first.managed_fields()[0];
    assert_eq!(
        (entry.manager.as_deref(), entry.operation.as_deref()),
        (Some("kedge-test"), Some("Apply"))
    );
    let stored = cms.get("applied").await.unwrap();
    assert_eq!(
        stored.managed_fields().len(),
        1,
        "the applier is recorded in storage"
    );
    let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied"}, "data": {"b": "2"}});
    let second = cms
        .patch("applied", &apply, &Patch::Apply(&body))
        .await
        .unwrap();
    assert_eq!(second.data.unwrap().len(), 2, "apply is treated as a merge");
    cluster.shutdown().await;
}

#[tokio::test]
async fn strategic_merge_and_scale_of_deployments() {
    let cluster = common::start_with(|c| c.simulate_workloads = false).await;
    let client = cluster.client().await.unwrap();
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
                {"name": "app", "image": "app:1"}, {"name": "sidecar", "image": "side:1"}
            ]}}
        }
    }))
    .unwrap();
    let created = deploys.create(&PostParams::default(), &d).await.unwrap();
    assert_eq!(created.spec.replicas, Some(1), "replicas defaults to 1");
    assert_eq!(created.metadata.generation, Some(1));

    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "image": "side:2"}]}}}});
    let patched = deploys
        .patch("web", &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .unwrap();
    let containers = patched.spec.template.spec.unwrap().containers;
    assert_eq!(
        containers
            .iter()
            .map(|c| c.image.clone().unwrap())
            .collect::<Vec<_>>(),
        ["app:1", "side:2"]
    );
    assert_eq!(
        patched.metadata.generation,
        Some(2),
        "spec changes bump generation"
    );

    let scale = deploys.get_scale("web").await.unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(1));
    assert_eq!(scale.status.unwrap().selector.as_deref(), Some("app=web"));
    let scaled = deploys
        .patch_scale(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 4}})),
        )
        .await
        .unwrap();
    assert_eq!(scaled.spec.unwrap().replicas, Some(4));
    assert_eq!(deploys.get("web").await.unwrap().spec.replicas, Some(4));

    // Status writes change only status; main writes ignore status.
    let with_status = deploys
        .patch_status(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"replicas": 4}, "spec": {"replicas": 9}})),
        )
        .await
        .unwrap();
    assert_eq!(with_status.status.unwrap().replicas, Some(4));
    assert_eq!(with_status.spec.replicas, Some(4));
    let main = deploys
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"replicas": 0}})),
        )
        .await
        .unwrap();
    assert_eq!(main.status.unwrap().replicas, Some(4));

    // Validation: a Deployment needs a selector.
    let bad: Deployment =
        serde_json::from_value(json!({"metadata": {"name": "bad"}, "spec": {"template": {}}}))
            .unwrap();
    assert_eq!(
        api_error(
            deploys
                .create(&PostParams::default(), &bad)
                .await
                .unwrap_err()
        ),
        (422, "Invalid".into())
    );
    cluster.shutdown().await;
}

#[tokio::test]
async fn crds_registered_at_runtime_are_validated() {
    let cluster = common::start().await;
    let client = cluster.client().await.unwrap();
    let widgets = install_widget_crd(&client).await;

    let created = widgets
        .create(&PostParams::default(), &widget("w1", 5))
        .await
        .unwrap();
    assert_eq!(created.spec.size, 5);
    assert_eq!(created.metadata.generation, Some(1));

    // Schema: minimum/maximum, enums, types, required fields; 422 with a Status body.
    let too_big = widgets
        .create(&PostParams::default(), &widget("w2", 1000))
        .await
        .unwrap_err();
    let kube::Error::Api(status) = too_big else {
        panic!("expected a Status")
    };
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    assert!(status.message.contains("spec.size"), "{}", status.message);
    let raw: Api<kube::api::DynamicObject> = Api::namespaced_with(
        client.clone(),
        "default",
        &kube::api::ApiResource::erase::<Widget>(&()),
    );
    for bad in [
        json!({"size": 5, "color": "Green"}),
        json!({"size": "five", "color": "Red"}),
        json!({"color": "Red"}),
    ] {
        let obj: kube::api::DynamicObject = serde_json::from_value(json!({
            "apiVersion": "test.kedge.dev/v1", "kind": "Widget", "metadata": {"name": "bad"}, "spec": bad
        }))
        .unwrap();
        assert_eq!(
            api_error(raw.create(&PostParams::default(), &obj).await.unwrap_err()).0,
            422,
            "{bad}"
        );
    }

    // Unknown fields are pruned (and rejected under fieldValidation=Strict).
    let extra: kube::api::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "test.kedge.dev/v1", "kind": "Widget", "metadata": {"name": "extra"},
        "spec": {"size": 1, "color": "Blue", "bogus": true}
    }))
    .unwrap();
    let pruned = raw.create(&PostParams::default(), &extra).await.unwrap();
    assert!(pruned.data["spec"].get("bogus").is_none());
    // Status subresource: status patches do not bump generation, spec changes do.
    let st = widgets
        .patch_status(
            "w1",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"observed_size": 5}})),
        )
        .await
        .unwrap();
    assert_eq!(st.status.unwrap().observed_size, Some(5));
    assert_eq!(st.metadata.generation, Some(1));
    let sp = widgets
        .patch(
            "w1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 6}})),
        )
        .await
        .unwrap();
    assert_eq!(sp.metadata.generation, Some(2));
    assert_eq!(
        sp.status.unwrap().observed_size,
        Some(5),
        "main writes keep status"
    );

    // Scale subresource through the CRD's paths.
    widgets
        .patch_status(
            "w1",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"replicas": 1, "selector": "app=w1"}})),
        )
        .await
        .unwrap();
    let scale = widgets.get_scale("w1").await.unwrap();
    assert_eq!(
        scale.status.as_ref().unwrap().selector.as_deref(),
        Some("app=w1")
    );
    let scaled = widgets
        .patch_scale(
            "w1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .unwrap();
    assert_eq!(scaled.spec.unwrap().replicas, Some(3));
    assert_eq!(widgets.get("w1").await.unwrap().spec.replicas, 3);

    // Discovery serves the new kind, and deleting the CRD removes kind and objects.
    let discovery = kube::Discovery::new(client.clone()).run().await.unwrap();
    let group = discovery.get("test.kedge.dev").expect("group discovered");
    let (ar, caps) = group.recommended_kind("Widget").expect("kind discovered");
    assert_eq!(ar.plural, "widgets");
    assert!(
        caps.subresources
            .iter()
            .any(|(s, _)| s.plural == "widgets/scale" || s.plural == "scale")
    );
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.delete("widgets.test.kedge.dev", &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(api_error(widgets.get("w1").await.unwrap_err()).0, 404);
    cluster.shutdown().await;
}

#[tokio::test]
async fn finalizers_and_garbage_collection() {
    let cluster = common::start().await;
    let client = cluster.client().await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let mut held = config_map("held", &[]);
    held.metadata.finalizers = Some(vec!["test.kedge.dev/hold".into()]);
    cms.create(&PostParams::default(), &held).await.unwrap();
    let pending = cms.delete("held", &DeleteParams::default()).await.unwrap();
    let obj = pending
        .left()
        .expect("object returned while finalizers remain");
    assert!(obj.metadata.deletion_timestamp.is_some());
    assert!(
        cms.get("held").await.is_ok(),
        "object stays until its finalizers are removed"
    );
    // No new finalizers on a deleting object.
    let add = cms
        .patch(
            "held",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": ["a", "test.kedge.dev/hold"]}})),
        )
        .await;
    assert_eq!(api_error(add.unwrap_err()).0, 422);
    cms.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    assert_eq!(api_error(cms.get("held").await.unwrap_err()).0, 404);

    // Owner references: dependents go with their owner, unless orphaned.
    let owner = cms
        .create(&PostParams::default(), &config_map("owner", &[]))
        .await
        .unwrap();
    let reference = json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.uid().unwrap()}]);
    for name in ["dep1", "dep2"] {
        let mut dep = config_map(name, &[]);
        dep.metadata.owner_references = Some(serde_json::from_value(reference.clone()).unwrap());
        cms.create(&PostParams::default(), &dep).await.unwrap();
    }
    cms.delete("owner", &DeleteParams::default()).await.unwrap();
    assert_eq!(api_error(cms.get("dep1").await.unwrap_err()).0, 404);
    assert_eq!(api_error(cms.get("dep2").await.unwrap_err()).0, 404);

    let owner = cms
        .create(&PostParams::default(), &config_map("owner2", &[]))
        .await
        .unwrap();
    let mut dep = config_map("kept", &[]);
    dep.metadata.owner_references = Some(
        serde_json::from_value(json!([{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner2", "uid": owner.uid().unwrap()}])).unwrap(),
    );
    cms.create(&PostParams::default(), &dep).await.unwrap();
    cms.delete("owner2", &DeleteParams::orphan()).await.unwrap();
    let kept = cms.get("kept").await.unwrap();
    assert!(kept.owner_references().is_empty());

    // Deleting a namespace deletes what is in it.
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "scratch"}})).unwrap();
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let scratch: Api<ConfigMap> = Api::namespaced(client.clone(), "scratch");
    scratch
        .create(&PostParams::default(), &config_map("x", &[]))
        .await
        .unwrap();
    namespaces
        .delete("scratch", &DeleteParams::default())
        .await
        .unwrap();
    assert_eq!(api_error(scratch.get("x").await.unwrap_err()).0, 404);
    assert_eq!(
        api_error(namespaces.get("scratch").await.unwrap_err()).0,
        404
    );

    // A namespace whose contents have finalizers stays Terminating and refuses new objects.
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "sticky"}})).unwrap();
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let sticky: Api<ConfigMap> = Api::namespaced(client.clone(), "sticky");
    sticky.create(&PostParams::default(), &held).await.unwrap();
    namespaces
        .delete("sticky", &DeleteParams::default())
        .await
        .unwrap();
    let terminating = namespaces.get("sticky").await.unwrap();
    assert_eq!(
        terminating.status.unwrap().phase.as_deref(),
        Some("Terminating")
    );
    let refused = sticky
        .create(&PostParams::default(), &config_map("new", &[]))
        .await;
    assert_eq!(api_error(refused.unwrap_err()), (403, "Forbidden".into()));
    let unhold = Patch::Merge(json!({"metadata": {"finalizers": null}}));
    sticky
        .patch("held", &PatchParams::default(), &unhold)
        .await
        .unwrap();
    assert_eq!(
        api_error(namespaces.get("sticky").await.unwrap_err()).0,
        404
    );
    cluster.shutdown().await;
}

#[tokio::test]
async fn watches_replay_from_a_version_and_expire() {
    let cluster = common::start_with(|c| c.watch_history = 5).await;
    let client = cluster.client().await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let first = cms
        .create(&PostParams::default(), &config_map("w", &[("app", "x")]))
        .await
        .unwrap();
    let rv = first.resource_version().unwrap();

    let mut stream = cms
        .watch(&WatchParams::default().timeout(10), &rv)
        .await
        .unwrap()
        .boxed();
    cms.patch(
        "w",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "2"}})),
    )
    .await
    .unwrap();
    cms.delete("w", &DeleteParams::default()).await.unwrap();
    let ev = within("MODIFIED", stream.try_next())
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(ev, WatchEvent::Modified(ref c) if c.data.as_ref().unwrap()["k"] == "2"),
        "{ev:?}"
    );
    let ev = within("DELETED", stream.try_next()).await.unwrap().unwrap();
    assert!(matches!(ev, WatchEvent::Deleted(_)), "{ev:?}");

    // Label-filtered watches see an object leave the selection as DELETED.
    cms.create(&PostParams::default(), &config_map("sel", &[("app", "x")]))
        .await
        .unwrap();
    let mut filtered = cms
        .watch(&WatchParams::default().labels("app=x").timeout(10), "0")
        .await
        .unwrap()
        .boxed();
    let ev = within("initial ADDED", filtered.try_next())
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(ev, WatchEvent::Added(ref c) if c.name_any() == "sel"),
        "{ev:?}"
    );
    cms.patch(
        "sel",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "y"}}})),
    )
    .await
    .unwrap();
    let ev = within("DELETED on selector change", filtered.try_next())
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(ev, WatchEvent::Deleted(_)), "{ev:?}");

    // Push the old version out of the bounded history: 410 Expired as a watch ERROR event.
    for i in 0..8 {
        cms.create(&PostParams::default(), &config_map(&format!("n{i}"), &[]))
            .await
            .unwrap();
    }
    let mut expired = cms
        .watch(&WatchParams::default().timeout(10), &rv)
        .await
        .unwrap()
        .boxed();
    let ev = within("ERROR", expired.try_next()).await.unwrap().unwrap();
    match ev {
        WatchEvent::Error(e) => assert_eq!(e.code, 410),
        other => panic!("expected 410, got {other:?}"),
    }
    cluster.shutdown().await;
}

#[tokio::test]
async fn watcher_with_bookmarks_and_streaming_lists() {
    let cluster =
        common::start_with(|c| c.watch_bookmark_interval = Duration::from_millis(300)).await;
    let client = cluster.client().await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    cms.create(&PostParams::default(), &config_map("pre", &[]))
        .await
        .unwrap();

    for config in [
        watcher::Config::default(),
        watcher::Config::default().streaming_lists(),
    ] {
        let mut stream = watcher(cms.clone(), config).applied_objects().boxed();
        let first = within("initial object", stream.try_next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(first.name_any(), "pre");
        let name = format!("post-{}", uuid_like());
        cms.create(&PostParams::default(), &config_map(&name, &[]))
            .await
            .unwrap();
        let next = within("new object", stream.try_next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(next.name_any(), name);
        cms.delete(&name, &DeleteParams::default()).await.unwrap();
    }

    // Raw bookmarks arrive on a quiet watch.
    let mut raw = cms
        .watch(&WatchParams::default().timeout(10), "0")
        .await
        .unwrap()
        .boxed();
    let saw_bookmark = within("BOOKMARK", async {
        while let Some(ev) = raw.try_next().await.unwrap() {
            if matches!(ev, WatchEvent::Bookmark(_)) {
                return true;
            }
        }
        false
    })
    .await;
    assert!(saw_bookmark);
    cluster.shutdown().await;
}

fn uuid_like() -> String {
    format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
            % 0xffffff
    )
}

#[derive(Debug, thiserror::Error)]
enum ReconcileError {
    #[error(transparent)]
    Finalizer(#[from] Box<kube::runtime::finalizer::Error<kube::Error>>),
}

struct Ctx {
    client: Client,
    cleanups: AtomicUsize,
}

async fn reconcile(w: Arc<Widget>, ctx: Arc<Ctx>) -> Result<Action, ReconcileError> {
    let api: Api<Widget> = Api::namespaced(ctx.client.clone(), &w.namespace().unwrap());
    finalizer(&api, "test.kedge.dev/cleanup", w, |event| async {
        match event {
            Finalized::Apply(w) => {
                let status = json!({"status": {"observed_size": w.spec.size}});
                api.patch_status(
                    &w.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(status),
                )
                .await?;
                Ok(Action::await_change())
            }
            Finalized::Cleanup(_) => {
                ctx.cleanups.fetch_add(1, Ordering::SeqCst);
                Ok(Action::await_change())
            }
        }
    })
    .await
    .map_err(|e| ReconcileError::Finalizer(Box::new(e)))
}

fn error_policy(_: Arc<Widget>, _: &ReconcileError, _: Arc<Ctx>) -> Action {
    Action::requeue(Duration::from_millis(500))
}

#[tokio::test]
async fn controller_reconciles_with_status_and_finalizer() {
    let cluster = common::start().await;
    let client = cluster.client().await.unwrap();
    let widgets = install_widget_crd(&client).await;
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        cleanups: AtomicUsize::new(0),
    });
    let controller = tokio::spawn(
        Controller::new(widgets.clone(), watcher::Config::default())
            .run(reconcile, error_policy, ctx.clone())
            .for_each(|_| async {}),
    );

    widgets
        .create(&PostParams::default(), &widget("ctl", 7))
        .await
        .unwrap();
    let reconciled = eventually(WAIT, "status observed_size = 7", || async {
        let w = widgets.get("ctl").await.ok()?;
        (w.status.as_ref()?.observed_size == Some(7)).then_some(w)
    })
    .await;
    assert_eq!(reconciled.finalizers(), ["test.kedge.dev/cleanup"]);

    widgets
        .patch(
            "ctl",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 9}})),
        )
        .await
        .unwrap();
    eventually(WAIT, "status follows spec", || async {
        let w = widgets.get("ctl").await.ok()?;
        (w.status?.observed_size == Some(9)).then_some(())
    })
    .await;

    widgets
        .delete("ctl", &DeleteParams::default())
        .await
        .unwrap();
    eventually(WAIT, "finalizer ran and object is gone", || async {
        let gone = matches!(widgets.get("ctl").await, Err(kube::Error::Api(s)) if s.code == 404);
        (gone && ctx.cleanups.load(Ordering::SeqCst) == 1).then_some(())
    })
    .await;
    controller.abort();
    cluster.shutdown().await;
}

#[tokio::test]
async fn requests_need_the_token() {
    let cluster = common::start().await;
    let mut config = kube::Config::new(cluster.url().parse().unwrap());
    config.root_cert = Some(vec![pem_to_der(cluster.ca_pem().unwrap())]);
    let anonymous = Client::try_from(config).unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(anonymous.clone(), "default");
    assert_eq!(
        api_error(cms.list(&ListParams::default()).await.unwrap_err()).0,
        401
    );
    // /version is public, as on kube-apiserver.
    let v = anonymous.apiserver_version().await.unwrap();
    assert_eq!((v.major.as_str(), v.minor.as_str()), ("1", "32"));
    cluster.shutdown().await;
}

fn pem_to_der(pem: &str) -> Vec<u8> {
    use base64::Engine as _;
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap()
}

#[tokio::test]
async fn recorder_events_are_visible_as_core_events() {
    use kube::runtime::events::{Event as RecordedEvent, EventType, Recorder, Reporter};
    let cluster = common::start().await;
    let client = cluster.client().await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let cm = cms
        .create(&PostParams::default(), &config_map("observed", &[]))
        .await
        .unwrap();
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "kedge-test".into(),
            instance: None,
        },
    );
    let event = RecordedEvent {
        type_: EventType::Warning,
        reason: "Checked".into(),
        note: Some("looked at it".into()),
        action: "Check".into(),
        secondary: None,
    };
    recorder.publish(&event, &cm.object_ref(&())).await.unwrap();
    recorder.publish(&event, &cm.object_ref(&())).await.unwrap();

    // kubectl describe reads core/v1 Events by involvedObject.
    let core: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), "default");
    let list = core
        .list(
            &ListParams::default()
                .fields("involvedObject.name=observed,involvedObject.kind=ConfigMap"),
        )
        .await
        .unwrap();
    assert_eq!(list.items.len(), 1);
    let e = &list.items[0];
    assert_eq!(
        (
            e.message.as_deref(),
            e.reason.as_deref(),
            e.type_.as_deref()
        ),
        (Some("looked at it"), Some("Checked"), Some("Warning"))
    );
    assert_eq!(e.reporting_component.as_deref(), Some("kedge-test"));
    assert_eq!(e.series.as_ref().and_then(|s| s.count), Some(2));
    // And events.k8s.io/v1 reads them back in its own shape.
    let v1: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), "default");
    let list = v1
        .list(&ListParams::default().fields("regarding.name=observed"))
        .await
        .unwrap();
    assert_eq!(list.items[0].note.as_deref(), Some("looked at it"));
    cluster.shutdown().await;
}

#[tokio::test]
async fn events_v1_are_validated_as_kube_apiserver_does() {
    use k8s_openapi::api::events::v1::Event;
    let cluster = common::start().await;
    let client = cluster.client().await.unwrap();
    let api: Api<Event> = Api::namespaced(client.clone(), "default");
    let event = |name: &str, note: String| {
        serde_json::from_value::<Event>(json!({
            "metadata": {"name": name},
            "eventTime": "2026-01-01T00:00:00.000000Z",
            "reportingController": "kedge", "reportingInstance": "kedge-0",
            "action": "Scaled", "reason": "Scaled", "type": "Normal",
            "regarding": {"kind": "ConfigMap", "name": "x", "namespace": "default"},
            "note": note,
        }))
        .unwrap()
    };
    api.create(&PostParams::default(), &event("fits", "n".repeat(1024)))
        .await
        .unwrap();
    let err = api
        .create(&PostParams::default(), &event("long", "n".repeat(1025)))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 422 && s.message.contains("note")),
        "{err:?}"
    );
    let mut no_action = event("no-action", "hi".into());
    no_action.action = None;
    no_action.event_time = None;
    let err = api
        .create(&PostParams::default(), &no_action)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 422
            && s.message.contains("action") && s.message.contains("eventTime")),
        "{err:?}"
    );
    cluster.shutdown().await;
}
