//! Authentication and authorization of every request, as an aggregated API server delegates
//! them to the cluster (kube-apiserver's `--authentication-kubeconfig` /
//! `--authorization-kubeconfig` behaviour, which `system:auth-delegator` permits):
//!
//! 1. Health paths are always allowed, without credentials.
//! 2. Authentication, first that succeeds: the front-proxy certificate plus `X-Remote-*` headers
//!    ([`frontproxy`]); an x509 client certificate from the client CA; a bearer token via
//!    `TokenReview` ([`token`]). Anything else is `401 Unauthorized`.
//! 3. Authorization: members of an always-allowed group (`system:masters`) pass; everyone else
//!    is asked about with a `SubjectAccessReview` ([`sar`]); a denial is `403 Forbidden`.
//!
//! Decisions are cached briefly (tokens 10 s, allowed 10 s, denied 2 s), and the client-CA
//! settings can be refreshed from the cluster while running.
//!
//! Reviews cost the API server, and a caller without credentials can ask for one per request
//! with a new random token each time, so they are bounded: TokenReviews per source address (a
//! token bucket) and reviews of each kind in flight. Beyond that the caller gets `429` with
//! `Retry-After`, and no review is made. Give [`DelegatedAuth::from_cluster`] a client of its
//! own, so reviews never queue behind (or ahead of) the operator's lease renewals and writes.

mod cache;
pub mod frontproxy;
mod limit;
pub mod sar;
pub mod token;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::response::IntoResponse;
use k8s_openapi::api::core::v1::ConfigMap;
use rustls::pki_types::CertificateDer;

use crate::status::ApiError;
use cache::TtlCache;
use frontproxy::{AUTHENTICATION_CONFIGMAP, CertVerdict};
pub use frontproxy::{AuthenticationSettings, CaBundle, RequestHeaderSettings};
pub use sar::{Authorizer, Decision, KubeAuthorizer, RequestAttributes, ResourceRequest};
pub use token::{KubeTokenReviewer, TokenReviewer};

/// An authenticated caller.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct UserInfo {
    /// User name.
    pub username: String,
    /// UID, if known.
    pub uid: String,
    /// Groups.
    pub groups: Vec<String>,
    /// Extra attributes (scopes, …), passed on to the SubjectAccessReview.
    pub extra: BTreeMap<String, Vec<String>>,
}

/// A call to the cluster's TokenReview / SubjectAccessReview / ConfigMap API failed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct AuthApiError(pub String);

/// How requests are authenticated and authorized.
#[derive(Clone)]
pub enum Auth {
    /// Delegated to the cluster (the default, and the only mode for a real cluster).
    Delegated(Arc<DelegatedAuth>),
    /// Every request is served, credentials or not. For `kedge dev` on the local cluster only.
    InsecureDisabled,
}

impl Auth {
    /// No authentication or authorization at all. Only for local mode (`kedge dev`), where the
    /// adapter listens on loopback for a cluster in the same process; never use it in a
    /// cluster.
    pub fn disabled_for_local_mode() -> Self {
        tracing::warn!(
            "metrics adapter authentication and authorization are DISABLED (local mode)"
        );
        Auth::InsecureDisabled
    }
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::Delegated(_) => f.write_str("Auth::Delegated"),
            Auth::InsecureDisabled => f.write_str("Auth::InsecureDisabled"),
        }
    }
}

/// Knobs of delegated authentication and authorization (kube's `DelegatingAuthenticationOptions`
/// / `DelegatingAuthorizationOptions` defaults).
#[derive(Debug, Clone)]
pub struct DelegatedAuthConfig {
    /// Paths served without credentials: an exact path, or a prefix ending in `*`.
    /// Default `/healthz`, `/livez`, `/readyz` and their sub-paths.
    pub always_allow_paths: Vec<String>,
    /// Groups allowed everything without a SubjectAccessReview. Default `system:masters`.
    pub always_allow_groups: Vec<String>,
    /// How long an accepted token is trusted before it is reviewed again. Default 10 s.
    pub token_cache_ttl: Duration,
    /// How long a rejected token is remembered. Default 2 s.
    pub token_reject_cache_ttl: Duration,
    /// Audiences asked for in TokenReviews; empty = the API server's. Default empty.
    pub token_audiences: Vec<String>,
    /// How long an "allowed" SubjectAccessReview answer is reused. Default 10 s.
    pub allow_cache_ttl: Duration,
    /// How long a "denied" answer is reused. Default 2 s, so a fixed RBAC rule takes effect fast.
    pub deny_cache_ttl: Duration,
    /// Timeout of one TokenReview / SubjectAccessReview. Default 5 s.
    pub review_timeout: Duration,
    /// TokenReviews one source address (an IPv6 /64) may cause at once, for tokens not in the
    /// cache. Default 10; 0 turns the per-source limit off.
    pub token_reviews_per_source_burst: u32,
    /// How fast a source's allowance refills, in TokenReviews per second. Default 1.
    pub token_reviews_per_source_per_second: f64,
    /// TokenReviews in flight at once, all sources together. Default 16.
    pub max_token_reviews_in_flight: usize,
    /// SubjectAccessReviews in flight at once. Default 64: an HPA controller reading a thousand
    /// metrics after a restart asks for a thousand reviews at once, which then wait their turn.
    pub max_access_reviews_in_flight: usize,
    /// How long a request waits for a review slot before it is answered `429`. Default 2 s.
    pub review_queue_timeout: Duration,
}

impl Default for DelegatedAuthConfig {
    fn default() -> Self {
        Self {
            always_allow_paths: [
                "/healthz",
                "/healthz/*",
                "/livez",
                "/livez/*",
                "/readyz",
                "/readyz/*",
            ]
            .map(String::from)
            .to_vec(),
            always_allow_groups: vec!["system:masters".into()],
            token_cache_ttl: Duration::from_secs(10),
            token_reject_cache_ttl: Duration::from_secs(2),
            token_audiences: Vec::new(),
            allow_cache_ttl: Duration::from_secs(10),
            deny_cache_ttl: Duration::from_secs(2),
            review_timeout: Duration::from_secs(5),
            token_reviews_per_source_burst: 10,
            token_reviews_per_source_per_second: 1.0,
            max_token_reviews_in_flight: 16,
            max_access_reviews_in_flight: 64,
            review_queue_timeout: Duration::from_secs(2),
        }
    }
}

/// Delegated authentication and authorization.
pub struct DelegatedAuth {
    config: DelegatedAuthConfig,
    settings: RwLock<Arc<AuthenticationSettings>>,
    tokens: Option<Arc<dyn TokenReviewer>>,
    authorizer: Arc<dyn Authorizer>,
    token_cache: TtlCache<[u8; 32], Option<UserInfo>>,
    decision_cache: TtlCache<(UserInfo, RequestAttributes), Decision>,
    token_reviews_per_source: Option<limit::PerSource>,
    token_reviews: limit::InFlight,
    access_reviews: limit::InFlight,
}

/// Sources whose TokenReview allowance is remembered at once.
const SOURCES: usize = 10_000;

/// Decisions about larger users and paths than this (bytes) are not cached: real ones are a
/// few hundred bytes, and a caller varying a long path must not fill memory with them.
const MAX_CACHED_DECISION: usize = 2048;

/// Why a request was refused, ready to be written: a Kubernetes `Status`, and `Retry-After`
/// when the caller is only asked to slow down.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub(crate) error: ApiError,
    retry_after: Option<Duration>,
}

impl From<ApiError> for Refusal {
    fn from(error: ApiError) -> Self {
        Self {
            error,
            retry_after: None,
        }
    }
}

impl Refusal {
    fn too_many(what: &str, retry_after: Duration) -> Self {
        Self {
            error: ApiError::new(
                429,
                "TooManyRequests",
                format!("too many {what}, please try again later"),
            ),
            retry_after: Some(retry_after),
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> axum::response::Response {
        let mut response = self.error.into_response();
        if let Some(after) = self.retry_after {
            // Whole seconds, at least one, as kube-apiserver sends it.
            let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, secs.max(1).into());
        }
        response
    }
}

fn decision_size(user: &UserInfo, attributes: &RequestAttributes) -> usize {
    let strings = |v: &[String]| v.iter().map(String::len).sum::<usize>();
    user.username.len()
        + user.uid.len()
        + strings(&user.groups)
        + user
            .extra
            .iter()
            .map(|(k, v)| k.len() + strings(v))
            .sum::<usize>()
        + attributes.verb.len()
        + attributes.path.len()
        + attributes.resource.as_ref().map_or(0, |r| {
            r.namespace.len()
                + r.group.len()
                + r.version.len()
                + r.resource.len()
                + r.subresource.len()
                + r.name.len()
        })
}

impl DelegatedAuth {
    /// Delegated auth with explicit parts: certificate settings, a token reviewer (`None`: bearer
    /// tokens are not accepted) and the authorizer.
    pub fn new(
        config: DelegatedAuthConfig,
        settings: AuthenticationSettings,
        tokens: Option<Arc<dyn TokenReviewer>>,
        authorizer: Arc<dyn Authorizer>,
    ) -> Self {
        Self {
            token_reviews_per_source: limit::PerSource::new(
                config.token_reviews_per_source_burst,
                config.token_reviews_per_source_per_second,
                SOURCES,
            ),
            token_reviews: limit::InFlight::new(
                config.max_token_reviews_in_flight,
                config.review_queue_timeout,
            ),
            access_reviews: limit::InFlight::new(
                config.max_access_reviews_in_flight,
                config.review_queue_timeout,
            ),
            config,
            settings: RwLock::new(Arc::new(settings)),
            tokens,
            authorizer,
            token_cache: TtlCache::new(10_000),
            decision_cache: TtlCache::new(100_000),
        }
    }

    /// Delegated auth against the cluster `client` talks to: certificate settings from
    /// `kube-system/extension-apiserver-authentication` (bearer tokens only if it does not
    /// exist, as kube-apiserver's extension servers do with a warning), TokenReview and
    /// SubjectAccessReview through the same client. Keep the settings current with
    /// [`DelegatedAuth::spawn_refresh`].
    ///
    /// `client` should be this adapter's own, without the operator's client-side rate limit:
    /// reviews are bounded here, and must neither wait behind nor delay lease renewals.
    pub async fn from_cluster(
        client: kube::Client,
        config: DelegatedAuthConfig,
    ) -> Result<Arc<Self>, AuthApiError> {
        let settings = load_settings(&client).await?;
        Ok(Arc::new(Self::new(
            config,
            settings,
            Some(Arc::new(KubeTokenReviewer::new(client.clone()))),
            Arc::new(KubeAuthorizer::new(client)),
        )))
    }

    /// Re-reads the ConfigMap every `interval` until the returned task is aborted, so a rotated
    /// front-proxy CA is picked up without a restart. A failed read keeps the current settings.
    pub fn spawn_refresh(
        self: &Arc<Self>,
        client: kube::Client,
        interval: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                match load_settings(&client).await {
                    Ok(settings) => this.set_settings(settings),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot refresh client CA settings; keeping the current ones")
                    }
                }
            }
        })
    }

    /// Replaces the certificate settings; connections re-check their certificate on their next
    /// request.
    pub fn set_settings(&self, settings: AuthenticationSettings) {
        *self.settings.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(settings);
    }

    /// The certificate settings in force.
    pub fn settings(&self) -> Arc<AuthenticationSettings> {
        Arc::clone(&self.settings.read().unwrap_or_else(|e| e.into_inner()))
    }

    fn always_allowed_path(&self, path: &str) -> bool {
        self.config
            .always_allow_paths
            .iter()
            .any(|p| match p.strip_suffix('*') {
                Some(prefix) => path.starts_with(prefix),
                None => path == p,
            })
    }

    /// Authenticates and authorizes one request arriving on `conn`.
    pub(crate) async fn check(
        &self,
        parts: &http::request::Parts,
        conn: &ConnAuth,
    ) -> Result<(), Refusal> {
        let path = parts.uri.path();
        if self.always_allowed_path(path) {
            return Ok(());
        }
        let user = self.authenticate(parts, conn).await?;
        if user
            .groups
            .iter()
            .any(|g| self.config.always_allow_groups.contains(g))
        {
            return Ok(());
        }
        let attributes = RequestAttributes::from_request(&parts.method, path);
        let key = (user, attributes);
        let decision = match self.decision_cache.get(&key) {
            Some(d) => d,
            None => {
                let (user, attributes) = &key;
                let Some(_slot) = self.access_reviews.acquire().await else {
                    tracing::warn!("too many SubjectAccessReviews in flight; answering 429");
                    return Err(Refusal::too_many(
                        "authorization reviews",
                        Duration::from_secs(1),
                    ));
                };
                let decision = tokio::time::timeout(
                    self.config.review_timeout,
                    self.authorizer.authorize(user, attributes),
                )
                .await
                .map_err(|_| AuthApiError("SubjectAccessReview timed out".into()))
                .and_then(|r| r)
                .map_err(|e| {
                    tracing::warn!(error = %e, "cannot authorize request");
                    ApiError::internal(format!("error authorizing the request: {e}"))
                })?;
                let ttl = if decision.allowed {
                    self.config.allow_cache_ttl
                } else {
                    self.config.deny_cache_ttl
                };
                if decision_size(user, attributes) <= MAX_CACHED_DECISION {
                    self.decision_cache
                        .insert(key.clone(), decision.clone(), ttl);
                }
                decision
            }
        };
        if decision.allowed {
            Ok(())
        } else {
            let (user, attributes) = &key;
            Err(
                ApiError::forbidden(attributes.forbidden_message(&user.username, &decision.reason))
                    .into(),
            )
        }
    }

    async fn authenticate(
        &self,
        parts: &http::request::Parts,
        conn: &ConnAuth,
    ) -> Result<UserInfo, Refusal> {
        let settings = self.settings();
        match conn.verdict(&settings) {
            CertVerdict::FrontProxy => {
                if let Some(user) = settings.user_from_headers(&parts.headers) {
                    return Ok(user);
                }
            }
            CertVerdict::User(user) => return Ok(user),
            CertVerdict::Rejected(why) => {
                tracing::debug!(reason = %why, "client certificate not accepted");
            }
            CertVerdict::NoCertificate => {}
        }
        if let Some(token) = bearer_token(&parts.headers)
            && let Some(reviewer) = &self.tokens
        {
            return self.review_token(reviewer.as_ref(), token, conn.peer).await;
        }
        Err(ApiError::unauthorized().into())
    }

    async fn review_token(
        &self,
        reviewer: &dyn TokenReviewer,
        token: &str,
        peer: Option<IpAddr>,
    ) -> Result<UserInfo, Refusal> {
        let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
        let mut key = [0u8; 32];
        key.copy_from_slice(digest.as_ref());
        let user = match self.token_cache.get(&key) {
            Some(user) => user,
            None => {
                // Only tokens not in the cache cost a review, so only they are limited: a
                // caller whose token was accepted goes on being served during a flood.
                if let (Some(limit), Some(peer)) = (&self.token_reviews_per_source, peer)
                    && let Err(after) = limit.take(limit::Source::from(peer))
                {
                    tracing::debug!(%peer, "TokenReview allowance of this source used up");
                    return Err(Refusal::too_many("authentication attempts", after));
                }
                let Some(_slot) = self.token_reviews.acquire().await else {
                    tracing::warn!("too many TokenReviews in flight; answering 429");
                    return Err(Refusal::too_many(
                        "authentication attempts",
                        Duration::from_secs(1),
                    ));
                };
                let reviewed = tokio::time::timeout(
                    self.config.review_timeout,
                    reviewer.review(token, &self.config.token_audiences),
                )
                .await
                .map_err(|_| AuthApiError("TokenReview timed out".into()))
                .and_then(|r| r);
                match reviewed {
                    Ok(user) => {
                        let ttl = if user.is_some() {
                            self.config.token_cache_ttl
                        } else {
                            self.config.token_reject_cache_ttl
                        };
                        self.token_cache.insert(key, user.clone(), ttl);
                        user
                    }
                    // As kube-apiserver: a failed review is an unauthenticated request (logged).
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot review bearer token");
                        None
                    }
                }
            }
        };
        user.ok_or_else(|| ApiError::unauthorized().into())
    }
}

impl std::fmt::Debug for DelegatedAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DelegatedAuth")
            .field("config", &self.config)
            .field("settings", &self.settings())
            .finish_non_exhaustive()
    }
}

fn bearer_token(headers: &http::HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Reads `kube-system/extension-apiserver-authentication`.
pub async fn load_settings(client: &kube::Client) -> Result<AuthenticationSettings, AuthApiError> {
    let (namespace, name) = AUTHENTICATION_CONFIGMAP;
    let api: kube::Api<ConfigMap> = kube::Api::namespaced(client.clone(), namespace);
    let cm = tokio::time::timeout(Duration::from_secs(10), api.get_opt(name))
        .await
        .map_err(|_| AuthApiError(format!("reading ConfigMap {namespace}/{name} timed out")))?
        .map_err(|e| AuthApiError(format!("reading ConfigMap {namespace}/{name}: {e}")))?;
    match cm {
        None => {
            tracing::warn!(
                "ConfigMap {namespace}/{name} not found: client certificates (the aggregator's \
                 front proxy) cannot be authenticated, only bearer tokens"
            );
            Ok(AuthenticationSettings::none())
        }
        Some(cm) => AuthenticationSettings::from_configmap(&cm.data.unwrap_or_default())
            .map_err(|e| AuthApiError(e.to_string())),
    }
}

/// A connection's client certificate and what it proves, re-checked when the settings change
/// or a minute has passed (so an expiring certificate stops working on a kept-alive
/// connection), and the address it comes from (what per-source limits count by).
#[derive(Debug, Default)]
pub(crate) struct ConnAuth {
    chain: Vec<CertificateDer<'static>>,
    peer: Option<IpAddr>,
    verdict: Mutex<Option<(u64, Instant, CertVerdict)>>,
}

const VERDICT_TTL: Duration = Duration::from_secs(60);

impl ConnAuth {
    pub(crate) fn new(chain: Vec<CertificateDer<'static>>, peer: IpAddr) -> Self {
        Self {
            chain,
            peer: Some(peer),
            verdict: Mutex::new(None),
        }
    }

    fn verdict(&self, settings: &AuthenticationSettings) -> CertVerdict {
        let mut cached = self.verdict.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((generation, at, verdict)) = cached.as_ref()
            && *generation == settings.generation
            && at.elapsed() < VERDICT_TTL
        {
            return verdict.clone();
        }
        let verdict = settings.check_certificate(&self.chain);
        *cached = Some((settings.generation, Instant::now(), verdict.clone()));
        verdict
    }
}
