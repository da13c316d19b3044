//! `type: prometheus` — scale on the result of a PromQL query.
//!
//! Compatible with KEDA's prometheus scaler: the same parameters, authentication modes
//! (`authModes`: `basic`, `bearer`, `tls`, `custom`; a `ca` works with any mode), metric name
//! (`s<i>-prometheus`), request (`GET <serverAddress>/api/v1/query?query=…&time=…`, then
//! `namespace` and `queryParameters`) and result handling (see [`response`]).
//!
//! HTTP clients are shared by every trigger with the same TLS settings; credentials travel in
//! each request's headers.

pub mod response;

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use scaler_core::{
    AddressGuard, MetricSpec, MetricTarget, MetricTargetType, MetricValue, MetricsAndActivity,
    ParamSpec, Scaler, ScalerConfig, ScalerError, ScalerFactory, ScalerParams, Secret,
    SharedClients, TriggerId,
};
use url::Url;

use crate::client_tls::TlsSettings;
use crate::http_client::MAX_BODY;

/// Parameters of a prometheus trigger.
#[derive(ScalerParams, Debug, Clone)]
#[params(validate = "Self::validate")]
pub struct PrometheusParams {
    /// Base URL of the Prometheus HTTP API, e.g. `http://prometheus.monitoring:9090` (or a
    /// compatible API such as Thanos, Mimir or VictoriaMetrics' `/select/0/prometheus`).
    pub server_address: String,
    /// The PromQL query; it must return one element (a one-series vector or a scalar).
    pub query: String,
    /// Extra query-string parameters, `key=value,key=value`.
    #[param(optional)]
    pub query_parameters: BTreeMap<String, String>,
    /// Target value per replica.
    pub threshold: f64,
    /// The trigger is active while the value is above this.
    #[param(optional)]
    pub activation_threshold: f64,
    /// Tenant namespace for namespaced queries (e.g. Thanos querier), sent as `namespace=`.
    pub namespace: Option<String>,
    /// Extra request headers, `Name=value,Name=value`. For credentials use `authModes`.
    #[param(optional)]
    pub custom_headers: BTreeMap<String, String>,
    /// An empty result (target lost) or ±Inf/NaN counts as 0 instead of an error.
    #[param(default = true)]
    pub ignore_null_values: bool,
    /// Accept any server certificate.
    #[param(optional)]
    pub unsafe_ssl: bool,
    /// Timeout of this trigger's queries in milliseconds, instead of `KEDA_HTTP_DEFAULT_TIMEOUT`.
    pub timeout: Option<i64>,
    /// Authentication modes, comma-separated: `basic`, `bearer`, `tls`, `custom`.
    #[param(
        name = "authModes",
        alias = "authMode",
        from(metadata, auth),
        one_of("apiKey", "basic", "tls", "bearer", "custom", "oauth")
    )]
    pub auth_modes: Option<Vec<String>>,
    /// Token for `bearer` (sent as `Authorization: Bearer <token>`).
    #[param(name = "bearerToken", alias = "token", from(auth))]
    pub bearer_token: Option<Secret>,
    /// User for `basic`.
    #[param(from(auth))]
    pub username: Option<String>,
    /// Password for `basic` (may be empty).
    #[param(from(auth))]
    pub password: Option<Secret>,
    /// Client certificate (PEM) for `tls`.
    #[param(from(auth))]
    pub cert: Option<Secret>,
    /// Client key (PEM) for `tls`.
    #[param(from(auth))]
    pub key: Option<Secret>,
    /// CA certificate (PEM) trusted besides the system's, with any mode.
    #[param(from(auth))]
    pub ca: Option<Secret>,
    /// Header name for `custom`.
    #[param(from(auth))]
    pub custom_auth_header: Option<String>,
    /// Header value for `custom`.
    #[param(from(auth))]
    pub custom_auth_value: Option<Secret>,
}

impl PrometheusParams {
    fn mode(&self, mode: &str) -> bool {
        self.auth_modes.iter().flatten().any(|m| m == mode)
    }

    /// KEDA's authentication `Config.Validate` and the timeout check, plus what KEDA would only
    /// find at the first request (address, headers, certificates).
    fn validate(&self) -> Result<(), String> {
        let mut problems = Vec::new();
        let exclusive = ["bearer", "basic", "oauth"];
        if exclusive.iter().filter(|m| self.mode(m)).count() > 1 {
            problems.push(format!(
                "parameter \"authModes,authMode\" value {:?} must contain only one of [{}]",
                self.auth_modes
                    .iter()
                    .flatten()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(","),
                exclusive.join(" ")
            ));
        }
        for unsupported in ["oauth", "apiKey"] {
            if self.mode(unsupported) {
                problems.push(format!(
                    "authModes {unsupported:?} is not supported by the prometheus scaler \
                     (supported: basic, bearer, custom, tls)"
                ));
            }
        }
        if self.mode("bearer") && self.bearer_token.is_none() {
            problems.push("bearer token is required when bearer auth is enabled".to_owned());
        }
        if self.mode("basic") && self.username.is_none() {
            problems.push("username is required when basic auth is enabled".to_owned());
        }
        if self.mode("tls") && (self.cert.is_none() || self.key.is_none()) {
            problems.push("cert and key are required when tls auth is enabled".to_owned());
        }
        if self.mode("custom")
            && (self.custom_auth_header.is_none() || self.custom_auth_value.is_none())
        {
            problems.push(
                "customAuthHeader and customAuthValue are required when custom auth is enabled"
                    .to_owned(),
            );
        }
        if let Some(t) = self.timeout.filter(|t| *t < 0) {
            problems.push(format!("timeout must be greater than 0: {t}"));
        }
        if let Err(e) = query_base(&self.server_address) {
            problems.push(e);
        }
        for name in self.custom_headers.keys() {
            if HeaderName::from_bytes(name.as_bytes()).is_err() {
                problems.push(format!(
                    "customHeaders: {name:?} is not a valid header name"
                ));
            }
        }
        if let Some(name) = &self.custom_auth_header
            && HeaderName::from_bytes(name.as_bytes()).is_err()
        {
            // From the TriggerAuthentication, maybe a Secret: not quoted.
            problems.push("customAuthHeader is not a valid header name".to_owned());
        }
        if let Err(e) = self.tls().validate(("ca", "cert", "key")) {
            problems.push(e);
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }

    fn tls(&self) -> TlsSettings {
        let tls = self.mode("tls");
        TlsSettings {
            ca: self.ca.clone(),
            cert: self.cert.clone().filter(|_| tls),
            key: self.key.clone().filter(|_| tls),
            unsafe_ssl: self.unsafe_ssl,
        }
    }
}

/// `<serverAddress>/api/v1/query`, with any trailing slash of the address dropped.
fn query_base(server_address: &str) -> Result<Url, String> {
    let mut url = Url::parse(server_address)
        .map_err(|e| format!("serverAddress {server_address:?} is not a valid URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        return Err(format!(
            "serverAddress {server_address:?} must be an http:// or https:// URL"
        ));
    }
    let path = format!("{}/api/v1/query", url.path().trim_end_matches('/'));
    url.set_path(&path);
    Ok(url)
}

/// HTTP clients by TLS settings and address guard, shared by every prometheus trigger in the
/// process.
static CLIENTS: LazyLock<SharedClients<(TlsSettings, AddressGuard), reqwest::Client>> =
    LazyLock::new(SharedClients::new);

/// Builds prometheus scalers.
#[derive(Clone, Copy, Debug, Default)]
pub struct PrometheusFactory;

impl ScalerFactory for PrometheusFactory {
    fn trigger_types(&self) -> &'static [&'static str] {
        &["prometheus"]
    }

    fn build(&self, cfg: &ScalerConfig) -> Result<Box<dyn Scaler>, ScalerError> {
        Ok(Box::new(PrometheusScaler::new(cfg)?))
    }

    fn params(&self) -> &'static [ParamSpec] {
        PrometheusParams::PARAMS
    }
}

/// A prometheus trigger.
pub struct PrometheusScaler {
    params: PrometheusParams,
    base_url: Url,
    headers: HeaderMap,
    tls: TlsSettings,
    guard: AddressGuard,
    metric_name: String,
    target_type: MetricTargetType,
    trigger: TriggerId,
    timeout: Duration,
    /// Taken from [`CLIENTS`] at the first poll (building must not do I/O, and reading the
    /// system's certificates is I/O).
    client: Mutex<Option<Arc<reqwest::Client>>>,
}

impl std::fmt::Debug for PrometheusScaler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrometheusScaler")
            .field("trigger", &self.trigger)
            .field("server_address", &self.params.server_address)
            .field("query", &self.params.query)
            .finish_non_exhaustive()
    }
}

impl PrometheusScaler {
    /// Validates the trigger and builds the scaler. Contacts nothing.
    pub fn new(cfg: &ScalerConfig) -> Result<Self, ScalerError> {
        let target_type = cfg.metric_target_type()?;
        let params = PrometheusParams::from_config(cfg)?;
        let invalid = |e: String| ScalerError::invalid(&cfg.trigger, e);
        let base_url = query_base(&params.server_address).map_err(invalid)?;
        cfg.check_address("serverAddress", base_url.host_str().unwrap_or_default())?;
        let headers = request_headers(&params).map_err(invalid)?;
        let timeout = match params.timeout {
            Some(ms) if ms > 0 => Duration::from_millis(ms.unsigned_abs()),
            _ => cfg.timeout,
        };
        Ok(Self {
            tls: params.tls(),
            guard: cfg.address_guard.clone(),
            base_url,
            headers,
            metric_name: cfg.metric_name("prometheus"),
            target_type,
            trigger: cfg.trigger.clone(),
            timeout,
            params,
            client: Mutex::new(None),
        })
    }

    fn client(&self) -> Result<Arc<reqwest::Client>, ScalerError> {
        let mut slot = self.client.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(client) = &*slot {
            return Ok(Arc::clone(client));
        }
        let client = CLIENTS
            .get_or_try_init((self.tls.clone(), self.guard.clone()), |(tls, guard)| {
                let config = tls.client_config(&[b"h2", b"http/1.1"])?;
                let builder = reqwest::Client::builder()
                    .use_preconfigured_tls(config)
                    .redirect(crate::http_client::same_host_redirects());
                crate::http_client::guarded(builder, guard, "serverAddress")
                    .build()
                    .map_err(|e| format!("HTTP client: {e}"))
            })
            .map_err(|e| ScalerError::invalid(&self.trigger, e))?;
        *slot = Some(Arc::clone(&client));
        Ok(client)
    }

    /// The query URL at `time` (RFC 3339), as KEDA builds it.
    pub fn query_url(&self, time: &str) -> Url {
        let mut url = self.base_url.clone();
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("query", &self.params.query);
            q.append_pair("time", time);
            if let Some(ns) = &self.params.namespace {
                q.append_pair("namespace", ns);
            }
            for (k, v) in &self.params.query_parameters {
                q.append_pair(k, v);
            }
        }
        url
    }

    /// Runs the query once and returns its value.
    pub async fn query_value(&self) -> Result<f64, ScalerError> {
        let client = self.client()?;
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let request = client
            .get(self.query_url(&now))
            .headers(self.headers.clone())
            .timeout(self.timeout);
        let fetch = async {
            let response = request.send().await?;
            let status = response.status().as_u16();
            let body = crate::http_client::read_capped(response, MAX_BODY).await?;
            Ok::<_, reqwest::Error>((status, body))
        };
        let timeout = || ScalerError::Timeout {
            trigger: self.trigger.clone(),
            timeout: self.timeout,
        };
        let (status, body) = match tokio::time::timeout(self.timeout, fetch).await {
            Err(_) => return Err(timeout()),
            Ok(Err(e)) if e.is_timeout() => return Err(timeout()),
            Ok(Err(e)) => {
                return Err(ScalerError::source(
                    &self.trigger,
                    format!(
                        "prometheus query to {} failed: {}",
                        self.params.server_address,
                        error_chain(&e)
                    ),
                ));
            }
            Ok(Ok(answer)) => answer,
        };
        let Some(body) = body else {
            return Err(ScalerError::source(
                &self.trigger,
                format!(
                    "prometheus query {} returned more than {MAX_BODY} bytes",
                    self.params.query
                ),
            ));
        };
        response::interpret(
            status,
            &body,
            &self.params.query,
            self.params.ignore_null_values,
        )
        .map_err(|e| ScalerError::source(&self.trigger, e))
    }
}

/// Custom headers first (added, as Go's `Header.Add`), then the authentication header
/// (replacing, as `Header.Set`).
fn request_headers(params: &PrometheusParams) -> Result<HeaderMap, String> {
    let mut headers = HeaderMap::new();
    for (name, value) in &params.custom_headers {
        headers.append(
            HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("customHeaders: {name:?} is not a valid header name"))?,
            HeaderValue::from_str(value).map_err(|_| {
                format!("customHeaders: the value of {name:?} is not a valid header value")
            })?,
        );
    }
    let secret_value = |text: String, what: &str| {
        let mut v = HeaderValue::from_str(&text)
            .map_err(|_| format!("{what} is not a valid header value"))?;
        v.set_sensitive(true);
        Ok::<_, String>(v)
    };
    if params.mode("bearer") {
        let token = params
            .bearer_token
            .as_ref()
            .map(Secret::expose)
            .unwrap_or_default();
        headers.insert(
            AUTHORIZATION,
            secret_value(format!("Bearer {token}"), "bearerToken")?,
        );
    } else if params.mode("basic") {
        let user = params.username.as_deref().unwrap_or_default();
        let password = params
            .password
            .as_ref()
            .map(Secret::expose)
            .unwrap_or_default();
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        headers.insert(
            AUTHORIZATION,
            secret_value(format!("Basic {encoded}"), "username/password")?,
        );
    } else if params.mode("custom") {
        let name = params.custom_auth_header.as_deref().unwrap_or_default();
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| "customAuthHeader is not a valid header name".to_owned())?;
        let value = params
            .custom_auth_value
            .as_ref()
            .map(Secret::expose)
            .unwrap_or_default();
        headers.insert(name, secret_value(value.to_owned(), "customAuthValue")?);
    }
    Ok(headers)
}

/// An error with its causes (reqwest's own message omits them, e.g. "connection refused").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[async_trait]
impl Scaler for PrometheusScaler {
    async fn metric_specs(&self) -> Result<Vec<MetricSpec>, ScalerError> {
        Ok(vec![MetricSpec {
            name: self.metric_name.clone(),
            target: MetricTarget::new(self.target_type, self.params.threshold),
        }])
    }

    async fn metrics_and_activity(
        &self,
        metric_name: &str,
    ) -> Result<MetricsAndActivity, ScalerError> {
        let value = self.query_value().await?;
        Ok(MetricsAndActivity {
            metrics: vec![MetricValue::new(metric_name, value)],
            active: value > self.params.activation_threshold,
        })
    }

    async fn close(&self) {
        // Dropping our handle lets the shared client (and its idle connections) go once no
        // other trigger uses it.
        self.client
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }
}

#[cfg(test)]
mod tests;
