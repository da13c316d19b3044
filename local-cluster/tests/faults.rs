//! Fault injection and the write audit log, as kube-rs clients meet them: injected status
//! codes (and kube-rs' retries of 429), hangs, connection resets, the audit of every write with
//! its user agent and code, and the `/local-cluster/...` admin endpoints.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{WAIT, within};
use futures::StreamExt;
use http_body_util::BodyExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kedge_test_support::eventually;
use kube::api::{Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::{Api, Client};
use local_cluster::{AuditEntry, Config, FaultAction, FaultRule, LocalCluster, Verb, remote};
use serde_json::{Value, json};

/// A client whose requests say `User-Agent: user_agent`, with kube-rs' default retries or none.
async fn client_as(cluster: &LocalCluster, user_agent: &str, retry: bool) -> Client {
    let kc = kube::config::Kubeconfig::from_yaml(&cluster.kubeconfig_yaml()).unwrap();
    let mut config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    config.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_str(user_agent).unwrap(),
    ));
    config.default_retry = retry;
    Client::try_from(config).unwrap()
}

async fn start() -> LocalCluster {
    common::start_with(|c| *c = Config::api_only()).await
}

fn config_map(name: &str) -> ConfigMap {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "data": {"k": "v"}
    }))
    .unwrap()
}

fn deployment(name: &str) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": [{"name": "app", "image": "busybox"}]}}
        }
    }))
    .unwrap()
}

fn api_code(result: Result<impl std::fmt::Debug, kube::Error>) -> (u16, String) {
    match result {
        Err(kube::Error::Api(s)) => (s.code, s.reason.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn scale_patch(replicas: i32) -> Patch<Value> {
    Patch::Merge(json!({"spec": {"replicas": replicas}}))
}

/// (verb, resource, subresource, name, user agent, handled, answered) of each entry.
type Row = (
    Verb,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<u16>,
    Option<u16>,
);

fn rows(entries: &[AuditEntry]) -> Vec<Row> {
    entries
        .iter()
        .map(|e| {
            (
                e.verb,
                e.resource.clone(),
                e.subresource.clone(),
                e.name.clone(),
                e.user_agent.clone(),
                e.handled,
                e.code,
            )
        })
        .collect()
}

fn row(
    verb: Verb,
    resource: &str,
    sub: Option<&str>,
    name: Option<&str>,
    ua: &str,
    handled: Option<u16>,
    code: Option<u16>,
) -> Row {
    (
        verb,
        resource.into(),
        sub.map(Into::into),
        name.map(Into::into),
        Some(ua.into()),
        handled,
        code,
    )
}

#[tokio::test]
async fn patch_of_scale_fails_once_then_works() {
    let cluster = start().await;
    let client = client_as(&cluster, "replica-a", true).await;
    let deployments: Api<Deployment> = Api::namespaced(client, "default");
    deployments
        .create(&PostParams::default(), &deployment("web"))
        .await
        .unwrap();
    let id = cluster
        .inject_fault(
            FaultRule::new(FaultAction::status(500))
                .verbs([Verb::Patch])
                .resource("apps", "deployments")
                .subresource("scale")
                .times(1),
        )
        .unwrap();

    let pp = PatchParams::default();
    let (code, reason) = api_code(deployments.patch_scale("web", &pp, &scale_patch(3)).await);
    assert_eq!((code, reason.as_str()), (500, "InternalError"));
    assert_eq!(
        deployments
            .get_scale("web")
            .await
            .unwrap()
            .spec
            .unwrap()
            .replicas,
        Some(1),
        "the failed patch did nothing"
    );
    let scale = deployments
        .patch_scale("web", &pp, &scale_patch(3))
        .await
        .unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(3));
    // The main resource was never matched.
    deployments
        .patch(
            "web",
            &pp,
            &Patch::Merge(json!({"metadata": {"labels": {"a": "b"}}})),
        )
        .await
        .unwrap();

    let faults = cluster.faults();
    assert_eq!((faults.len(), faults[0].id, faults[0].hits), (1, id, 1));
    let audit = cluster.audit(0);
    assert_eq!(
        rows(&audit),
        vec![
            row(
                Verb::Create,
                "deployments",
                None,
                None,
                "replica-a",
                Some(201),
                Some(201)
            ),
            row(
                Verb::Patch,
                "deployments",
                Some("scale"),
                Some("web"),
                "replica-a",
                None,
                Some(500)
            ),
            row(
                Verb::Patch,
                "deployments",
                Some("scale"),
                Some("web"),
                "replica-a",
                Some(200),
                Some(200)
            ),
            row(
                Verb::Patch,
                "deployments",
                None,
                Some("web"),
                "replica-a",
                Some(200),
                Some(200)
            ),
        ]
    );
    assert_eq!(audit[1].fault, Some(id));
    assert!(!audit[1].landed() && audit[2].landed());
    assert!(
        audit
            .iter()
            .all(|e| e.fault.is_none() || e.seq == audit[1].seq)
    );
    cluster.shutdown().await;
}

#[tokio::test]
async fn too_many_requests_carries_retry_after_and_kube_rs_retries() {
    let cluster = start().await;
    let client = client_as(&cluster, "replica-a", true).await;
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    cluster
        .inject_fault(
            FaultRule::new(FaultAction::too_many_requests(1))
                .verbs([Verb::Create])
                .resource("", "configmaps")
                .times(1),
        )
        .unwrap();
    let started = Instant::now();
    within(
        "kube-rs to retry the create",
        cms.create(&PostParams::default(), &config_map("a")),
    )
    .await
    .unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "kube-rs waited for Retry-After: {:?}",
        started.elapsed()
    );
    assert_eq!(
        cluster
            .audit(0)
            .iter()
            .map(|e| (e.code, e.landed()))
            .collect::<Vec<_>>(),
        [(Some(429), false), (Some(201), true)],
    );

    // What the client saw on the wire.
    cluster
        .inject_fault(FaultRule::new(FaultAction::too_many_requests(7)).times(1))
        .unwrap();
    let once = client_as(&cluster, "raw", false).await;
    let req = http::Request::get("/api/v1/namespaces/default/configmaps/a")
        .body(kube::client::Body::empty())
        .unwrap();
    let resp = once.send(req).await.unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()[http::header::RETRY_AFTER], "7");
    let body: Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(
        (
            &body["kind"],
            &body["reason"],
            &body["code"],
            &body["details"]["retryAfterSeconds"]
        ),
        (
            &json!("Status"),
            &json!("TooManyRequests"),
            &json!(429),
            &json!(7)
        )
    );
    cluster.shutdown().await;
}

#[tokio::test]
async fn hangs_delay_requests_until_their_time_or_removal() {
    let cluster = start().await;
    let client = client_as(&cluster, "replica-a", true).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    cms.create(&PostParams::default(), &config_map("a"))
        .await
        .unwrap();

    // For a while.
    cluster
        .inject_fault(
            FaultRule::new(FaultAction::hang(Duration::from_millis(1500)))
                .verbs([Verb::Get])
                .name("a")
                .times(1),
        )
        .unwrap();
    let started = Instant::now();
    within("the hung get", cms.get("a")).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(1500));
    let started = Instant::now();
    cms.get("a").await.unwrap();
    assert!(started.elapsed() < Duration::from_millis(1500), "once only");

    // Until the rule is removed.
    let id = cluster
        .inject_fault(FaultRule::new(FaultAction::hang_until_removed()).verbs([Verb::List]))
        .unwrap();
    let list = tokio::spawn({
        let cms = cms.clone();
        async move { cms.list(&Default::default()).await }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!list.is_finished(), "held");
    assert_eq!(cluster.remove_fault(id).unwrap().hits, 1);
    let listed = within("the released list", list).await.unwrap().unwrap();
    assert_eq!(listed.items.len(), 1);

    // After handling: the write lands, its answer waits.
    let id = cluster
        .inject_fault(
            FaultRule::new(FaultAction::hang_until_removed())
                .verbs([Verb::Create])
                .resource("", "configmaps")
                .after_handling(),
        )
        .unwrap();
    let create = tokio::spawn({
        let cms = cms.clone();
        async move { cms.create(&PostParams::default(), &config_map("b")).await }
    });
    eventually(WAIT, "the held create to land", || async {
        cms.get_opt("b").await.unwrap()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!create.is_finished());
    let held = cluster.audit(0);
    assert!(
        !held.iter().any(|e| e.name.is_none() && e.fault == Some(id)),
        "recorded once answered"
    );
    cluster.remove_fault(id);
    within("the released create", create)
        .await
        .unwrap()
        .unwrap();
    let last = cluster.audit(0).pop().unwrap();
    assert_eq!(
        (last.verb, last.fault, last.handled, last.code),
        (Verb::Create, Some(id), Some(201), Some(201))
    );
    assert!(last.finished - last.received >= chrono::TimeDelta::milliseconds(100));
    cluster.shutdown().await;
}

#[tokio::test]
async fn reset_drops_the_connection() {
    let cluster = start().await;
    let client = client_as(&cluster, "replica-a", true).await;
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    cms.create(&PostParams::default(), &config_map("a"))
        .await
        .unwrap();
    cluster
        .inject_fault(
            FaultRule::new(FaultAction::Reset)
                .verbs([Verb::Get])
                .resource("", "configmaps")
                .times(1),
        )
        .unwrap();
    match cms.get("a").await {
        Err(kube::Error::Api(s)) => panic!("expected no answer, got {s:?}"),
        Err(e) => assert!(format!("{e:?}").contains("ConnectionReset"), "{e:?}"),
        Ok(_) => panic!("expected the connection to be reset"),
    }
    cms.get("a").await.unwrap();

    // After handling: the write took effect, the client cannot know.
    let id = cluster
        .inject_fault(
            FaultRule::new(FaultAction::Reset)
                .verbs([Verb::Create])
                .after_handling()
                .times(1),
        )
        .unwrap();
    assert!(
        cms.create(&PostParams::default(), &config_map("b"))
            .await
            .is_err()
    );
    cms.get("b").await.unwrap();
    let last = cluster.audit(0).pop().unwrap();
    assert_eq!(
        (last.fault, last.handled, last.code, last.landed()),
        (Some(id), Some(201), None, true)
    );
    cluster.shutdown().await;
}

#[tokio::test]
async fn watches_can_fail() {
    let cluster = start().await;
    let client = client_as(&cluster, "replica-a", true).await;
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    cluster
        .inject_fault(
            FaultRule::new(FaultAction::status(500))
                .verbs([Verb::Watch])
                .resource("", "configmaps")
                .times(1),
        )
        .unwrap();
    let (code, _) = api_code(cms.watch(&WatchParams::default(), "0").await.map(|_| ()));
    assert_eq!(code, 500);
    let mut events = Box::pin(cms.watch(&WatchParams::default(), "0").await.unwrap());
    cms.create(&PostParams::default(), &config_map("a"))
        .await
        .unwrap();
    let event = within("an event", events.next()).await.unwrap().unwrap();
    assert!(matches!(event, WatchEvent::Added(_)));
    cluster.shutdown().await;
}

#[tokio::test]
async fn rules_match_user_agent_namespace_and_name() {
    let cluster = start().await;
    let a: Api<ConfigMap> = Api::namespaced(
        client_as(&cluster, "kedge (replica-a)", true).await,
        "default",
    );
    let b: Api<ConfigMap> = Api::namespaced(
        client_as(&cluster, "kedge (replica-b)", true).await,
        "default",
    );
    let system: Api<ConfigMap> = Api::namespaced(
        client_as(&cluster, "kedge (replica-b)", true).await,
        "kube-system",
    );
    cluster
        .inject_fault(
            FaultRule::new(FaultAction::status(503))
                .user_agent("replica-b")
                .namespace("default")
                .name("x"),
        )
        .unwrap();
    let pp = PostParams::default();
    a.create(&pp, &config_map("x")).await.unwrap();
    // Creates have no name in their path, so the rule does not match them.
    b.create(&pp, &config_map("y")).await.unwrap();
    system.create(&pp, &config_map("x")).await.unwrap();
    a.get("x").await.unwrap();
    b.get("y").await.unwrap();
    system.get("x").await.unwrap();
    let once = Api::<ConfigMap>::namespaced(
        client_as(&cluster, "kedge (replica-b)", false).await,
        "default",
    );
    assert_eq!(api_code(once.get("x").await).0, 503);
    cluster.shutdown().await;
}

#[tokio::test]
async fn audit_records_every_write_and_no_read() {
    let cluster = start().await;
    assert!(
        cluster.audit(0).is_empty(),
        "bootstrap is not a client write"
    );
    let a_client = client_as(&cluster, "replica-a", true).await;
    let b_client = client_as(&cluster, "replica-b", true).await;
    let a: Api<ConfigMap> = Api::namespaced(a_client.clone(), "default");
    let b: Api<ConfigMap> = Api::namespaced(b_client.clone(), "default");
    let pp = PostParams::default();
    a.create(&pp, &config_map("x")).await.unwrap();
    assert_eq!(api_code(b.create(&pp, &config_map("x")).await).0, 409);
    a.patch(
        "x",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "w"}})),
    )
    .await
    .unwrap();
    let mut cm = a.get("x").await.unwrap();
    a.list(&Default::default()).await.unwrap();
    cm.data = Some([("k".to_string(), "z".to_string())].into());
    b.replace("x", &pp, &cm).await.unwrap();
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    a.create(&dry, &config_map("dry")).await.unwrap();
    let deployments: Api<Deployment> = Api::namespaced(b_client, "default");
    deployments.create(&pp, &deployment("web")).await.unwrap();
    deployments
        .patch_scale("web", &PatchParams::default(), &scale_patch(2))
        .await
        .unwrap();
    deployments
        .patch_status(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"observedGeneration": 1}})),
        )
        .await
        .unwrap();
    a.delete("x", &Default::default()).await.unwrap();
    assert_eq!(api_code(a.delete("x", &Default::default()).await).0, 404);

    let audit = cluster.audit(0);
    assert_eq!(
        rows(&audit),
        vec![
            row(
                Verb::Create,
                "configmaps",
                None,
                None,
                "replica-a",
                Some(201),
                Some(201)
            ),
            row(
                Verb::Create,
                "configmaps",
                None,
                None,
                "replica-b",
                Some(409),
                Some(409)
            ),
            row(
                Verb::Patch,
                "configmaps",
                None,
                Some("x"),
                "replica-a",
                Some(200),
                Some(200)
            ),
            row(
                Verb::Update,
                "configmaps",
                None,
                Some("x"),
                "replica-b",
                Some(200),
                Some(200)
            ),
            row(
                Verb::Create,
                "configmaps",
                None,
                None,
                "replica-a",
                Some(201),
                Some(201)
            ),
            row(
                Verb::Create,
                "deployments",
                None,
                None,
                "replica-b",
                Some(201),
                Some(201)
            ),
            row(
                Verb::Patch,
                "deployments",
                Some("scale"),
                Some("web"),
                "replica-b",
                Some(200),
                Some(200)
            ),
            row(
                Verb::Patch,
                "deployments",
                Some("status"),
                Some("web"),
                "replica-b",
                Some(200),
                Some(200)
            ),
            row(
                Verb::Delete,
                "configmaps",
                None,
                Some("x"),
                "replica-a",
                Some(200),
                Some(200)
            ),
            row(
                Verb::Delete,
                "configmaps",
                None,
                Some("x"),
                "replica-a",
                Some(404),
                Some(404)
            ),
        ]
    );
    assert_eq!(
        audit.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=10).collect::<Vec<u64>>()
    );
    assert!(audit[4].dry_run && !audit[4].landed());
    assert!(
        audit
            .iter()
            .all(|e| e.namespace.as_deref() == Some("default")
                && e.source.ip().is_loopback()
                && e.received <= e.finished
                && e.fault.is_none())
    );
    assert!(audit.windows(2).all(|w| w[0].finished <= w[1].finished));
    assert_eq!(audit[6].group, "apps");
    assert_eq!(
        cluster.audit(8).iter().map(|e| e.seq).collect::<Vec<_>>(),
        [9, 10]
    );
    assert!(cluster.audit(10).is_empty());
    cluster.shutdown().await;
}

#[tokio::test]
async fn the_audit_log_is_bounded() {
    let cluster = common::start_with(|c| {
        *c = Config {
            audit_capacity: 2,
            ..Config::api_only()
        }
    })
    .await;
    let cms: Api<ConfigMap> = Api::namespaced(cluster.client().await.unwrap(), "default");
    for name in ["a", "b", "c"] {
        cms.create(&PostParams::default(), &config_map(name))
            .await
            .unwrap();
    }
    let audit = cluster.audit(0);
    assert_eq!(audit.iter().map(|e| e.seq).collect::<Vec<_>>(), [2, 3]);
    assert_eq!(audit[0].user_agent, None, "kube-rs sends none by default");
    cluster.shutdown().await;
}

#[tokio::test]
async fn admin_endpoints_work_and_need_the_token() {
    let cluster = start().await;
    let client = client_as(&cluster, "test", true).await;

    let rule = FaultRule::new(FaultAction::status(500))
        .verbs([Verb::Create])
        .resource("", "configmaps")
        .times(2);
    let id = remote::inject_fault(&client, &rule).await.unwrap();
    let listed = remote::faults(&client).await.unwrap();
    assert_eq!(
        (listed.len(), listed[0].id, &listed[0].rule),
        (1, id, &rule)
    );
    assert_eq!(cluster.faults(), listed, "one rule set");
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    assert_eq!(
        api_code(cms.create(&PostParams::default(), &config_map("a")).await).0,
        500
    );
    assert_eq!(remote::faults(&client).await.unwrap()[0].hits, 1);
    let removed = remote::remove_fault(&client, id).await.unwrap();
    assert_eq!((removed.id, removed.hits), (id, 1));
    cms.create(&PostParams::default(), &config_map("a"))
        .await
        .unwrap();

    let audit = remote::audit(&client, 0).await.unwrap();
    assert_eq!(audit, cluster.audit(0), "the admin log is the log");
    assert_eq!(
        audit.iter().map(|e| (e.code, e.fault)).collect::<Vec<_>>(),
        [(Some(500), Some(id)), (Some(201), None)]
    );
    assert_eq!(remote::audit(&client, 1).await.unwrap(), audit[1..]);
    assert!(
        !audit.iter().any(|e| e.resource.contains("local-cluster")),
        "admin requests are not audited"
    );

    remote::inject_fault(&client, &FaultRule::new(FaultAction::Reset).name("p"))
        .await
        .unwrap();
    remote::inject_fault(&client, &FaultRule::new(FaultAction::Reset).name("q"))
        .await
        .unwrap();
    assert_eq!(remote::clear_faults(&client).await.unwrap().len(), 2);
    assert!(cluster.faults().is_empty());

    // Mistakes answer Status errors.
    assert_eq!(api_code(remote::remove_fault(&client, id).await).0, 404);
    let raw = |method: &str, path: &str, body: &str| {
        http::Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", "application/json")
            .body(body.as_bytes().to_vec())
            .unwrap()
    };
    let (code, _) = api_code(
        client
            .request::<Value>(raw(
                "POST",
                "/local-cluster/faults",
                r#"{"verb": "patch", "action": "reset"}"#,
            ))
            .await,
    );
    assert_eq!(code, 400, "a misspelt matcher");
    let (code, _) = api_code(
        client
            .request::<Value>(raw(
                "POST",
                "/local-cluster/faults",
                r#"{"action": {"respond": {"code": 200}}}"#,
            ))
            .await,
    );
    assert_eq!(code, 400);
    assert!(
        cluster
            .inject_fault(FaultRule::new(FaultAction::status(302)))
            .is_err()
    );
    let (code, _) = api_code(
        client
            .request::<Value>(raw("GET", "/local-cluster/audit?since=x", ""))
            .await,
    );
    assert_eq!(code, 400);
    let (code, _) = api_code(
        client
            .request::<Value>(raw("PUT", "/local-cluster/faults", "{}"))
            .await,
    );
    assert_eq!(code, 405);
    let (code, _) = api_code(
        client
            .request::<Value>(raw("GET", "/local-cluster/nothing", ""))
            .await,
    );
    assert_eq!(code, 404);

    // Without the token.
    let kc = kube::config::Kubeconfig::from_yaml(&cluster.kubeconfig_yaml()).unwrap();
    let mut config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    config.auth_info.token = None;
    let anonymous = Client::try_from(config).unwrap();
    assert_eq!(api_code(remote::faults(&anonymous).await).0, 401);
    assert_eq!(api_code(remote::audit(&anonymous, 0).await).0, 401);
    assert_eq!(
        api_code(remote::inject_fault(&anonymous, &FaultRule::new(FaultAction::Reset)).await).0,
        401
    );
    assert_eq!(api_code(remote::clear_faults(&anonymous).await).0, 401);
    assert!(cluster.faults().is_empty());
    cluster.shutdown().await;
}
