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

mod cache;
pub mod frontproxy;
pub mod sar;
pub mod token;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

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
    ) -> Result<(), ApiError> {
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
                self.decision_cache
                    .insert(key.clone(), decision.clone(), ttl);
                decision
            }
        };
        if decision.allowed {
            Ok(())
        } else {
            let (user, attributes) = &key;
            Err(ApiError::forbidden(
                attributes.forbidden_message(&user.username, &decision.reason),
            ))
        }
    }

    async fn authenticate(
        &self,
        parts: &http::request::Parts,
        conn: &ConnAuth,
    ) -> Result<UserInfo, ApiError> {
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
            return self.review_token(reviewer.as_ref(), token).await;
        }
        Err(ApiError::unauthorized())
    }

    async fn review_token(
        &self,
        reviewer: &dyn TokenReviewer,
        token: &str,
    ) -> Result<UserInfo, ApiError> {
        let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
        let mut key = [0u8; 32];
        key.copy_from_slice(digest.as_ref());
        let user = match self.token_cache.get(&key) {
            Some(user) => user,
            None => {
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
        user.ok_or_else(ApiError::unauthorized)
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
/// connection).
#[derive(Debug, Default)]
pub(crate) struct ConnAuth {
    chain: Vec<CertificateDer<'static>>,
    verdict: Mutex<Option<(u64, Instant, CertVerdict)>>,
}

const VERDICT_TTL: Duration = Duration::from_secs(60);

impl ConnAuth {
    pub(crate) fn new(chain: Vec<CertificateDer<'static>>) -> Self {
        Self {
            chain,
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
