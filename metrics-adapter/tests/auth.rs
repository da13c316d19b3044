//! Authentication and authorization as kube-apiserver's aggregator and other callers exercise
//! them, over real HTTPS with real client certificates. The only stand-in is the Kubernetes
//! authorizer (the SubjectAccessReview API), because local-cluster allows every review; it
//! records what it was asked so the attributes are checked too. `auth_cluster.rs` runs the
//! same flows against local-cluster's real TokenReview/SubjectAccessReview/ConfigMap APIs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use common::{Ca, Leaf, MapProvider, get_json, https_client, loopback, metric_url};
use metrics_adapter::auth::{
    AuthApiError, AuthenticationSettings, Authorizer, CaBundle, Decision, RequestAttributes,
    RequestHeaderSettings, TokenReviewer, UserInfo,
};
use metrics_adapter::{
    AdapterConfig, AdapterServer, Auth, DelegatedAuth, DelegatedAuthConfig, ServerHandle,
};

/// The cluster's authorizer, as RBAC would answer: everyone but the denied users may read.
#[derive(Default)]
struct FakeKubeAuthorizer {
    denied: HashSet<String>,
    broken: bool,
    asked: Mutex<Vec<(UserInfo, RequestAttributes)>>,
}

#[async_trait::async_trait]
impl Authorizer for FakeKubeAuthorizer {
    async fn authorize(
        &self,
        user: &UserInfo,
        attributes: &RequestAttributes,
    ) -> Result<Decision, AuthApiError> {
        self.asked
            .lock()
            .unwrap()
            .push((user.clone(), attributes.clone()));
        if self.broken {
            return Err(AuthApiError("connection refused".into()));
        }
        let allowed = !self.denied.contains(&user.username);
        Ok(Decision {
            allowed,
            reason: if allowed {
                String::new()
            } else {
                "no RBAC rule allows it".into()
            },
        })
    }
}

struct Fixture {
    server: ServerHandle,
    serving_ca: String,
    front_proxy_ca: Ca,
    client_ca: Ca,
    authorizer: Arc<FakeKubeAuthorizer>,
}

impl Fixture {
    async fn start(authorizer: FakeKubeAuthorizer) -> Self {
        let front_proxy_ca = Ca::new("front-proxy-ca");
        let client_ca = Ca::new("kubernetes-client-ca");
        let settings = AuthenticationSettings::new(
            Some(CaBundle::from_pem(&client_ca.cert_pem, "client-ca-file").unwrap()),
            Some(RequestHeaderSettings::with_default_headers(
                CaBundle::from_pem(&front_proxy_ca.cert_pem, "requestheader-client-ca-file")
                    .unwrap(),
                vec!["front-proxy-client".into()],
            )),
        );
        let authorizer = Arc::new(authorizer);
        let auth = DelegatedAuth::new(
            DelegatedAuthConfig::default(),
            settings,
            None,
            authorizer.clone(),
        );
        let config = AdapterConfig {
            bind: loopback(),
            ..AdapterConfig::default()
        };
        let provider = MapProvider::with(&[("default", "orders", "s0-x", 3.0)]);
        let server = AdapterServer::bind(config, provider, Auth::Delegated(Arc::new(auth)))
            .await
            .unwrap();
        let serving_ca = server.serving_cert_pem().unwrap().to_owned();
        Fixture {
            server: server.spawn().unwrap(),
            serving_ca,
            front_proxy_ca,
            client_ca,
            authorizer,
        }
    }

    fn client(&self, identity: Option<&Leaf>) -> reqwest::Client {
        https_client(&self.serving_ca, identity)
    }

    fn url(&self) -> String {
        metric_url(self.server.local_addr(), "default", "s0-x", "orders")
    }

    fn asked(&self) -> Vec<(UserInfo, RequestAttributes)> {
        self.authorizer.asked.lock().unwrap().clone()
    }
}

fn assert_status(body: &serde_json::Value, code: u16, reason: &str) {
    assert_eq!(body["kind"], "Status", "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["reason"], reason, "{body}");
}

#[tokio::test]
async fn no_client_certificate_is_unauthorized() {
    let f = Fixture::start(FakeKubeAuthorizer::default()).await;
    let client = f.client(None);
    let (code, body) = get_json(&client, &f.url(), &[]).await;
    assert_eq!(code, 401);
    assert_status(&body, 401, "Unauthorized");

    // Headers alone prove nothing: they are only trusted from a verified front proxy.
    let (code, _) = get_json(
        &client,
        &f.url(),
        &[
            ("X-Remote-User", "admin"),
            ("X-Remote-Group", "system:masters"),
        ],
    )
    .await;
    assert_eq!(code, 401);
    // Discovery needs credentials too; health does not.
    let base = format!("https://localhost:{}", f.server.local_addr().port());
    let (code, _) = get_json(
        &client,
        &format!("{base}/apis/external.metrics.k8s.io/v1beta1"),
        &[],
    )
    .await;
    assert_eq!(code, 401);
    for path in ["/healthz", "/livez", "/readyz"] {
        let resp = client.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{path}");
    }
    assert!(f.asked().is_empty());
    f.server.shutdown().await;
}

#[tokio::test]
async fn certificate_from_another_ca_is_unauthorized() {
    let f = Fixture::start(FakeKubeAuthorizer::default()).await;
    // Same CN as the real front proxy, wrong issuer.
    let impostor = Ca::new("front-proxy-ca").client("front-proxy-client", None);
    let (code, body) = get_json(
        &f.client(Some(&impostor)),
        &f.url(),
        &[
            ("X-Remote-User", "admin"),
            ("X-Remote-Group", "system:masters"),
        ],
    )
    .await;
    assert_eq!(code, 401);
    assert_status(&body, 401, "Unauthorized");

    // The right CA but a common name outside the allowed names.
    let stranger = f.front_proxy_ca.client("not-the-proxy", None);
    let (code, _) = get_json(
        &f.client(Some(&stranger)),
        &f.url(),
        &[
            ("X-Remote-User", "admin"),
            ("X-Remote-Group", "system:masters"),
        ],
    )
    .await;
    assert_eq!(code, 401);

    // The real front proxy without a user header.
    let proxy = f.front_proxy_ca.client("front-proxy-client", None);
    let (code, _) = get_json(&f.client(Some(&proxy)), &f.url(), &[]).await;
    assert_eq!(code, 401);
    assert!(f.asked().is_empty());
    f.server.shutdown().await;
}

#[tokio::test]
async fn front_proxy_user_denied_by_subject_access_review_is_forbidden() {
    let f = Fixture::start(FakeKubeAuthorizer {
        denied: ["mallory".to_owned()].into(),
        ..Default::default()
    })
    .await;
    let proxy = f.front_proxy_ca.client("front-proxy-client", None);
    let (code, body) = get_json(
        &f.client(Some(&proxy)),
        &f.url(),
        &[("X-Remote-User", "mallory"), ("X-Remote-Group", "devs")],
    )
    .await;
    assert_eq!(code, 403);
    assert_status(&body, 403, "Forbidden");
    assert_eq!(
        body["message"],
        "s0-x.external.metrics.k8s.io is forbidden: User \"mallory\" cannot list resource \"s0-x\" in API group \"external.metrics.k8s.io\" in the namespace \"default\": no RBAC rule allows it"
    );
    let asked = f.asked();
    assert_eq!(asked.len(), 1);
    let (user, attrs) = &asked[0];
    assert_eq!(user.username, "mallory");
    assert_eq!(user.groups, vec!["devs"]);
    // What kube-apiserver's request-info parser derives for this path.
    assert_eq!(attrs.verb, "list");
    let r = attrs.resource.as_ref().unwrap();
    assert_eq!(
        (
            r.namespace.as_str(),
            r.group.as_str(),
            r.version.as_str(),
            r.resource.as_str(),
            r.name.as_str()
        ),
        ("default", "external.metrics.k8s.io", "v1beta1", "s0-x", "")
    );
    f.server.shutdown().await;
}

#[tokio::test]
async fn front_proxy_user_allowed_by_subject_access_review_gets_values() {
    let f = Fixture::start(FakeKubeAuthorizer::default()).await;
    let proxy = f.front_proxy_ca.client("front-proxy-client", None);
    let client = f.client(Some(&proxy));
    let headers = [
        (
            "X-Remote-User",
            "system:serviceaccount:kube-system:horizontal-pod-autoscaler",
        ),
        ("X-Remote-Group", "system:serviceaccounts"),
        ("X-Remote-Group", "system:authenticated"),
        (
            "X-Remote-Extra-Authentication.kubernetes.io%2fpod-name",
            "kcm-0",
        ),
    ];
    let (code, body) = get_json(&client, &f.url(), &headers).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["items"][0]["value"], "3");

    let asked = f.asked();
    assert_eq!(asked.len(), 1);
    let user = &asked[0].0;
    assert_eq!(
        user.username,
        "system:serviceaccount:kube-system:horizontal-pod-autoscaler"
    );
    assert_eq!(
        user.groups,
        vec!["system:serviceaccounts", "system:authenticated"]
    );
    assert_eq!(
        user.extra.get("authentication.kubernetes.io/pod-name"),
        Some(&vec!["kcm-0".to_owned()])
    );

    // The decision is cached: the HPA asking again does not cost another review.
    let (code, _) = get_json(&client, &f.url(), &headers).await;
    assert_eq!(code, 200);
    assert_eq!(f.asked().len(), 1);

    // Discovery as the aggregator probes it: system:masters needs no review.
    let base = format!("https://localhost:{}", f.server.local_addr().port());
    let (code, body) = get_json(
        &client,
        &format!("{base}/apis/external.metrics.k8s.io/v1beta1"),
        &[
            ("X-Remote-User", "system:kube-aggregator"),
            ("X-Remote-Group", "system:masters"),
        ],
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(f.asked().len(), 1);

    // Anyone else's discovery read is a non-resource review of the path.
    let (code, _) = get_json(
        &client,
        &format!("{base}/apis"),
        &[("X-Remote-User", "carol")],
    )
    .await;
    assert_eq!(code, 200);
    let asked = f.asked();
    let (user, attrs) = asked.last().unwrap();
    assert_eq!(user.username, "carol");
    assert!(attrs.resource.is_none());
    assert_eq!((attrs.verb.as_str(), attrs.path.as_str()), ("get", "/apis"));
    f.server.shutdown().await;
}

#[tokio::test]
async fn x509_client_certificate_users() {
    let f = Fixture::start(FakeKubeAuthorizer {
        denied: ["eve".to_owned()].into(),
        ..Default::default()
    })
    .await;
    let bob = f.client_ca.client("bob", Some("team-a"));
    // Headers from a non-proxy certificate are ignored: bob stays bob.
    let (code, body) = get_json(&f.client(Some(&bob)), &f.url(), &[("X-Remote-User", "eve")]).await;
    assert_eq!(code, 200, "{body}");
    let asked = f.asked();
    assert_eq!(asked[0].0.username, "bob");
    assert_eq!(asked[0].0.groups, vec!["team-a"]);

    let eve = f.client_ca.client("eve", None);
    let (code, _) = get_json(&f.client(Some(&eve)), &f.url(), &[]).await;
    assert_eq!(code, 403);

    // Members of system:masters are allowed without a review.
    let admin = f.client_ca.client("admin", Some("system:masters"));
    let before = f.asked().len();
    let (code, _) = get_json(&f.client(Some(&admin)), &f.url(), &[]).await;
    assert_eq!(code, 200);
    assert_eq!(f.asked().len(), before);
    f.server.shutdown().await;
}

#[tokio::test]
async fn authorizer_failure_is_an_internal_error() {
    let f = Fixture::start(FakeKubeAuthorizer {
        broken: true,
        ..Default::default()
    })
    .await;
    let proxy = f.front_proxy_ca.client("front-proxy-client", None);
    let (code, body) = get_json(
        &f.client(Some(&proxy)),
        &f.url(),
        &[("X-Remote-User", "alice")],
    )
    .await;
    assert_eq!(code, 500);
    assert_status(&body, 500, "InternalError");
    f.server.shutdown().await;
}

/// The cluster's TokenReview API: one known token. (local-cluster's real one is exercised in
/// `cluster.rs` once it accepts reviews without `metadata.name`.)
#[derive(Default)]
struct FakeTokenReview {
    reviews: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl TokenReviewer for FakeTokenReview {
    async fn review(
        &self,
        token: &str,
        _audiences: &[String],
    ) -> Result<Option<UserInfo>, AuthApiError> {
        self.reviews
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok((token == "hpa-token").then(|| UserInfo {
            username: "system:serviceaccount:kube-system:horizontal-pod-autoscaler".into(),
            groups: vec!["system:serviceaccounts".into()],
            ..UserInfo::default()
        }))
    }
}

#[tokio::test]
async fn bearer_tokens_via_token_review() {
    let reviewer = Arc::new(FakeTokenReview::default());
    let authorizer = Arc::new(FakeKubeAuthorizer::default());
    let auth = DelegatedAuth::new(
        DelegatedAuthConfig::default(),
        AuthenticationSettings::none(),
        Some(reviewer.clone()),
        authorizer.clone(),
    );
    let config = AdapterConfig {
        bind: loopback(),
        ..AdapterConfig::default()
    };
    let provider = MapProvider::with(&[("default", "orders", "s0-x", 3.0)]);
    let server = AdapterServer::bind(config, provider, Auth::Delegated(Arc::new(auth)))
        .await
        .unwrap();
    let client = https_client(server.serving_cert_pem().unwrap(), None);
    let server = server.spawn().unwrap();
    let url = metric_url(server.local_addr(), "default", "s0-x", "orders");

    let (code, body) = get_json(&client, &url, &[("Authorization", "Bearer hpa-token")]).await;
    assert_eq!(code, 200, "{body}");
    let asked = authorizer.asked.lock().unwrap().clone();
    assert_eq!(
        asked[0].0.username,
        "system:serviceaccount:kube-system:horizontal-pod-autoscaler"
    );
    // Reviews are cached.
    let (code, _) = get_json(&client, &url, &[("Authorization", "Bearer hpa-token")]).await;
    assert_eq!(code, 200);
    assert_eq!(
        reviewer.reviews.load(std::sync::atomic::Ordering::SeqCst),
        1
    );

    let (code, body) = get_json(&client, &url, &[("Authorization", "Bearer stolen")]).await;
    assert_eq!(code, 401);
    assert_status(&body, 401, "Unauthorized");
    let (code, _) = get_json(&client, &url, &[("Authorization", "Basic dXNlcjpwdw==")]).await;
    assert_eq!(code, 401);
    server.shutdown().await;
}

#[tokio::test]
async fn bearer_tokens_are_refused_without_a_token_reviewer() {
    let f = Fixture::start(FakeKubeAuthorizer::default()).await;
    let (code, _) = get_json(
        &f.client(None),
        &f.url(),
        &[("Authorization", "Bearer abc")],
    )
    .await;
    assert_eq!(code, 401);
    f.server.shutdown().await;
}

/// A TokenReview API that accepts tokens starting with `good-`, takes `delay` per review, and
/// records how many reviews it served and how many ran at once.
#[derive(Default)]
struct CountingTokenReview {
    delay: std::time::Duration,
    reviews: std::sync::atomic::AtomicUsize,
    running: std::sync::atomic::AtomicUsize,
    most_at_once: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl TokenReviewer for CountingTokenReview {
    async fn review(
        &self,
        token: &str,
        _audiences: &[String],
    ) -> Result<Option<UserInfo>, AuthApiError> {
        use std::sync::atomic::Ordering::SeqCst;
        self.reviews.fetch_add(1, SeqCst);
        let now = self.running.fetch_add(1, SeqCst) + 1;
        self.most_at_once.fetch_max(now, SeqCst);
        tokio::time::sleep(self.delay).await;
        self.running.fetch_sub(1, SeqCst);
        Ok(token.starts_with("good-").then(|| UserInfo {
            username: format!("system:serviceaccount:monitoring:{token}"),
            ..UserInfo::default()
        }))
    }
}

async fn token_server(
    config: DelegatedAuthConfig,
    reviewer: Arc<CountingTokenReview>,
) -> (ServerHandle, String) {
    let auth = DelegatedAuth::new(
        config,
        AuthenticationSettings::none(),
        Some(reviewer),
        Arc::new(FakeKubeAuthorizer::default()),
    );
    let server = AdapterServer::bind(
        AdapterConfig {
            bind: loopback(),
            ..AdapterConfig::default()
        },
        MapProvider::with(&[("default", "orders", "s0-x", 3.0)]),
        Auth::Delegated(Arc::new(auth)),
    )
    .await
    .unwrap();
    let ca = server.serving_cert_pem().unwrap().to_owned();
    (server.spawn().unwrap(), ca)
}

/// GET `url` with a bearer token: status and Retry-After.
async fn with_token(client: &reqwest::Client, url: &str, token: &str) -> (u16, Option<String>) {
    let resp = client
        .get(url)
        .header("Authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (resp.status().as_u16(), retry_after)
}

#[tokio::test]
async fn a_flood_of_bad_tokens_from_one_source_costs_a_bounded_number_of_reviews() {
    use std::sync::atomic::Ordering::SeqCst;
    let reviewer = Arc::new(CountingTokenReview::default());
    let (server, ca) = token_server(
        DelegatedAuthConfig {
            token_reviews_per_source_burst: 5,
            token_reviews_per_source_per_second: 1.0,
            ..DelegatedAuthConfig::default()
        },
        reviewer.clone(),
    )
    .await;
    let url = metric_url(server.local_addr(), "default", "s0-x", "orders");
    let attacker = common::https_client_at(&ca, [127, 0, 0, 1].into());

    // A caller from the same address whose token was accepted before the flood.
    let (code, _) = with_token(&attacker, &url, "good-early").await;
    assert_eq!(code, 200);

    let started = std::time::Instant::now();
    let flood = (0..200).map(|i| {
        let attacker = attacker.clone();
        let url = url.clone();
        async move { with_token(&attacker, &url, &format!("random-{i}")).await }
    });
    let answers = futures::future::join_all(flood).await;
    let elapsed = started.elapsed();
    let limited = answers.iter().filter(|(code, _)| *code == 429).count();
    assert!(
        answers.iter().all(|(code, _)| *code == 401 || *code == 429),
        "{answers:?}"
    );
    assert!(
        answers
            .iter()
            .filter(|(code, _)| *code == 429)
            .all(|(_, after)| after.as_deref().and_then(|s| s.parse::<u64>().ok()) >= Some(1)),
        "429 without Retry-After: {answers:?}"
    );
    // The burst of 5 (one already spent on the early token), plus one per second of flood.
    let allowed = 5 + elapsed.as_secs() as usize + 1;
    let reviews = reviewer.reviews.load(SeqCst);
    assert!(
        reviews <= allowed,
        "{reviews} reviews for a flood of 200 tokens in {elapsed:?}"
    );
    assert!(limited >= 200 - allowed, "{limited} answered 429");

    // The cached token still works from the flooded address, without a review.
    let (code, _) = with_token(&attacker, &url, "good-early").await;
    assert_eq!(code, 200);
    assert_eq!(reviewer.reviews.load(SeqCst), reviews);
    // A caller from another address has its own allowance.
    let other = common::https_client_at(&ca, [127, 0, 0, 2].into());
    let (code, _) = with_token(&other, &url, "good-prometheus").await;
    assert_eq!(code, 200);
    assert_eq!(reviewer.reviews.load(SeqCst), reviews + 1);
    server.shutdown().await;
}

#[tokio::test]
async fn token_reviews_in_flight_are_bounded_across_sources() {
    use std::sync::atomic::Ordering::SeqCst;
    let reviewer = Arc::new(CountingTokenReview {
        delay: std::time::Duration::from_millis(300),
        ..CountingTokenReview::default()
    });
    let (server, ca) = token_server(
        DelegatedAuthConfig {
            // No per-source limit: only the global bound is at work.
            token_reviews_per_source_burst: 0,
            max_token_reviews_in_flight: 3,
            review_queue_timeout: std::time::Duration::from_millis(400),
            ..DelegatedAuthConfig::default()
        },
        reviewer.clone(),
    )
    .await;
    let url = metric_url(server.local_addr(), "default", "s0-x", "orders");
    // Thirty sources at once, each with a token of its own.
    let callers = (2..32u8).map(|i| {
        let client = common::https_client_at(&ca, [127, 0, 0, i].into());
        let url = url.clone();
        async move { with_token(&client, &url, &format!("random-{i}")).await }
    });
    let answers = futures::future::join_all(callers).await;
    assert!(reviewer.most_at_once.load(SeqCst) <= 3);
    let limited: Vec<_> = answers.iter().filter(|(code, _)| *code == 429).collect();
    assert!(!limited.is_empty(), "{answers:?}");
    assert!(
        limited
            .iter()
            .all(|(_, after)| after.as_deref() == Some("1"))
    );
    // Everyone who got a review was answered 401, everyone else 429; nobody waited for ever.
    assert_eq!(
        answers.iter().filter(|(code, _)| *code == 401).count(),
        reviewer.reviews.load(SeqCst)
    );
    // Once the flood is over, a good token is served.
    let (code, _) = with_token(&https_client(&ca, None), &url, "good-late").await;
    assert_eq!(code, 200);
    server.shutdown().await;
}
