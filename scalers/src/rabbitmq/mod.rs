//! `type: rabbitmq` — scale on a RabbitMQ queue's length or message rates.
//!
//! Compatible with KEDA's RabbitMQ scaler: the same parameters (including the legacy
//! `queueLength` form), defaults, validation messages, metric name
//! (`s<i>-rabbitmq-<url-escaped queueName>`), values and activation, through either protocol:
//!
//! * **AMQP** (`amqp://`, `amqps://`): a passive `queue.declare` per poll. The count is the
//!   *ready* messages only (the broker does not report unacknowledged ones over AMQP).
//! * **HTTP** (`http://`, `https://`, the management plugin): `messages` (ready +
//!   unacknowledged, or ready only with `excludeUnacknowledged`), the publish and deliver/get
//!   rates, and `useRegex` over several queues combined by `operation`.
//!
//! Connections are shared: one AMQP connection per broker identity (host, port, vhost, user,
//! password, TLS) and one HTTP client per management origin and TLS setup, whatever the number
//! of ScaledObjects. A dropped AMQP connection is re-established on a later poll, with backoff.

mod amqp;
mod http;
mod target;
mod value;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::client_tls::TlsSettings;
use async_trait::async_trait;
use scaler_core::{
    AddressGuard, MetricSpec, MetricTarget, MetricValue, MetricsAndActivity, ParamSpec, Scaler,
    ScalerConfig, ScalerError, ScalerFactory, ScalerParams, Secret, SharedClients, TriggerId,
    normalize_metric_name,
};

pub use amqp::{AmqpClient, AmqpError};
pub use target::{Credentials, Protocol, anonymize, query_escape};
pub use value::{Mode, Operation, QueueCounters, compose, value_and_activity};

/// The management API reply parsers, for the fuzz targets in `fuzz/`; not a stable API.
#[doc(hidden)]
pub mod fuzzing {
    pub use super::http::{HttpError, parse_page, parse_queue};
}

/// Slack on top of the trigger's timeout for the outer bound of a poll.
const SAFETY_MARGIN: Duration = Duration::from_millis(500);

/// KEDA's default target when neither `mode`/`value` nor `queueLength` is given.
pub const DEFAULT_QUEUE_LENGTH: f64 = 20.0;

/// Parameters of a rabbitmq trigger, as KEDA declares them.
#[derive(ScalerParams, Debug, Clone)]
pub struct RabbitMqParams {
    /// Name of the queue; a regular expression over the vhost's queue names with `useRegex`.
    pub queue_name: String,
    /// What to scale on: `QueueLength`, `MessageRate`, `DeliverGetRate`,
    /// `PublishedToDeliveredRatio` or `ExpectedQueueConsumptionTime` (all but `QueueLength`
    /// need the HTTP protocol). Goes with `value`.
    pub mode: Option<String>,
    /// Legacy form of `mode: QueueLength` + `value`; cannot be combined with them.
    pub queue_length: Option<f64>,
    /// Target per replica: messages, or messages per second for the rate modes.
    pub value: Option<f64>,
    /// The trigger is active above this value.
    #[param(default = 0)]
    pub activation_value: f64,
    /// `amqp(s)://user:password@host:port/vhost` or `http(s)://user:password@host:port/vhost`.
    #[param(from(metadata, auth, env))]
    pub host: Secret,
    /// `amqp`, `http`, or `auto` to choose from the host's scheme.
    #[param(from(metadata, auth), default = "auto")]
    pub protocol: String,
    /// Overrides the vhost of the host URL.
    #[param(from(metadata, auth))]
    pub vhost_name: Option<String>,
    /// `queueName` is a regular expression (HTTP only).
    #[param(optional)]
    pub use_regex: bool,
    /// Count ready messages only, leaving out unacknowledged ones (HTTP only).
    #[param(optional)]
    pub exclude_unacknowledged: bool,
    /// Queues fetched in one request with `useRegex`; more matches is an error.
    #[param(default = 100)]
    pub page_size: i64,
    /// How several queues matched by `useRegex` combine: `sum`, `avg` or `max`.
    #[param(default = "sum")]
    pub operation: String,
    /// Timeout of the management API calls (HTTP only), e.g. `1000` (ms) or `2s`.
    pub timeout: Option<Duration>,
    /// User name; overrides the one in the host URL.
    #[param(from(auth, env))]
    pub username: Option<Secret>,
    /// Password; overrides the one in the host URL.
    #[param(from(auth, env))]
    pub password: Option<Secret>,
    /// `enable` to use `ca`/`cert`/`key`; `disable` (the default) ignores them.
    #[param(from(auth), default = "disable")]
    pub tls: String,
    /// CA certificate(s), PEM, trusted in addition to the system's.
    #[param(from(auth))]
    pub ca: Option<Secret>,
    /// Client certificate, PEM.
    #[param(from(auth))]
    pub cert: Option<Secret>,
    /// Client private key, PEM.
    #[param(from(auth))]
    pub key: Option<Secret>,
    /// Password of an encrypted client key (not supported: give the key unencrypted).
    #[param(from(auth))]
    pub key_password: Option<Secret>,
    /// Skip verification of the server's certificate.
    #[param(optional)]
    pub unsafe_ssl: bool,
    /// Azure AD Workload Identity resource (not supported by kedge).
    #[param(from(auth))]
    pub workload_identity_resource: Option<String>,
    /// OAuth2 token endpoint (not supported by kedge).
    #[param(name = "oauthTokenURI", from(auth))]
    pub oauth_token_uri: Option<String>,
    /// OAuth2 client id (not supported by kedge).
    #[param(name = "clientID", from(auth))]
    pub oauth_client_id: Option<String>,
    /// OAuth2 client secret (not supported by kedge).
    #[param(name = "clientSecret", from(auth))]
    pub oauth_client_secret: Option<Secret>,
    /// Ignored, as in KEDA since 2.12: the metric is always named after the queue.
    pub metric_name: Option<String>,
}

/// A trigger's parameters after KEDA's cross-field validation: the effective protocol, mode
/// and target.
#[derive(Clone, Debug)]
pub struct RabbitMqSettings {
    /// Queue name or pattern.
    pub queue_name: String,
    /// What the value measures.
    pub mode: Mode,
    /// Target per replica.
    pub value: f64,
    /// Activation threshold.
    pub activation: f64,
    /// The protocol, `auto` resolved.
    pub protocol: Protocol,
    /// Host URL (may carry credentials).
    pub host: Secret,
    /// vhost override.
    pub vhost_name: Option<String>,
    /// `queueName` is a pattern.
    pub use_regex: bool,
    /// Ready messages only (HTTP).
    pub exclude_unacknowledged: bool,
    /// Page size of the regex listing.
    pub page_size: i64,
    /// How matched queues combine.
    pub operation: Operation,
    /// HTTP timeout override.
    pub timeout: Option<Duration>,
    /// Credentials overriding the URL's.
    pub credentials: Option<Credentials>,
    /// TLS setup (`ca`/`cert`/`key` only with `tls: enable`).
    pub(crate) tls: TlsSettings,
}

impl RabbitMqSettings {
    /// Reads and validates a trigger as KEDA's `parseRabbitMQMetadata` does, reporting every
    /// problem. Contacts nothing and builds no TLS configuration.
    pub fn from_config(cfg: &ScalerConfig) -> Result<Self, ScalerError> {
        let p = RabbitMqParams::from_config(cfg)?;
        Self::from_params(p).map_err(|problems| ScalerError::InvalidConfig {
            trigger: cfg.trigger.clone(),
            problems,
        })
    }

    fn from_params(p: RabbitMqParams) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        let protocol = match p.protocol.as_str() {
            "amqp" => Some(Protocol::Amqp),
            "http" => Some(Protocol::Http),
            "auto" => None,
            other => {
                problems.push(format!(
                    "the protocol has to be either `amqp`, `http`, or `auto` but is `{other}`"
                ));
                None
            }
        };
        let tls_enabled = match p.tls.as_str() {
            "enable" => true,
            "disable" => false,
            // `tls` comes from the TriggerAuthentication, maybe from a Secret: not quoted.
            _ => {
                problems.push(
                    "incorrect value for TLS given: auth parameter \"tls\" must be `enable` or `disable`"
                        .to_owned(),
                );
                false
            }
        };
        if p.cert.is_some() != p.key.is_some() {
            problems.push("both key and certificate must be provided".to_owned());
        }
        if p.key_password.is_some() && tls_enabled {
            problems.push(
                "keyPassword: encrypted client keys are not supported by kedge; give the key unencrypted"
                    .to_owned(),
            );
        }
        if p.page_size < 1 {
            problems.push("pageSize should be 1 or greater".to_owned());
        }
        let credentials = match (&p.username, &p.password) {
            (Some(u), Some(pw)) => Some(Credentials {
                username: u.clone(),
                password: pw.clone(),
            }),
            (None, None) => None,
            _ => {
                problems.push("username and password must be given together".to_owned());
                None
            }
        };
        let protocol = match (protocol, p.protocol.as_str()) {
            (Some(protocol), _) => Some(protocol),
            (None, "auto") => match target::protocol_from_host(p.host.expose()) {
                Ok(protocol) => Some(protocol),
                Err(e) => {
                    problems.push(e);
                    None
                }
            },
            (None, _) => None,
        };
        if p.workload_identity_resource.is_some() {
            if protocol == Some(Protocol::Amqp) {
                problems.push(
                    "workload identity is not supported for the AMQP protocol at the moment"
                        .to_owned(),
                );
            } else {
                problems.push(
                    "workloadIdentityResource: Azure AD Workload Identity is not supported by kedge"
                        .to_owned(),
                );
            }
        }
        let oauth = [
            p.oauth_token_uri.is_some(),
            p.oauth_client_id.is_some(),
            p.oauth_client_secret.is_some(),
        ];
        if oauth.contains(&true) {
            if oauth.contains(&false) {
                problems.push("OAuth2 requires tokenUrl clientId and clientSecret to be configured in TriggerAuthentication".to_owned());
            } else if protocol == Some(Protocol::Amqp) {
                problems.push(
                    "OAuth2 authentication is only supported with HTTP protocol, not AMQP"
                        .to_owned(),
                );
            } else if credentials.is_some() || p.workload_identity_resource.is_some() {
                problems.push("OAuth2 authentication cannot be combined with username/password authentication or Azure Workload Identity".to_owned());
            } else {
                problems.push("OAuth2 authentication is not supported by kedge".to_owned());
            }
        }
        let http = protocol == Some(Protocol::Http);
        if p.use_regex && !http {
            problems.push("configure useRegex=true only with HTTP protocol".to_owned());
        }
        if p.exclude_unacknowledged && !http {
            problems
                .push("configure excludeUnacknowledged=true only with HTTP protocol".to_owned());
        }
        let operation = match p.operation.parse::<Operation>() {
            Ok(op) => op,
            // KEDA checks the operation only when it combines queues.
            Err(()) if p.use_regex => {
                problems.push(format!(
                    "operation mode {} must be one of sum, avg, max",
                    p.operation
                ));
                Operation::Sum
            }
            Err(()) => Operation::Sum,
        };
        let trigger = validate_trigger(&p, protocol);
        let (mode, value) = match trigger {
            Ok(mv) => mv,
            Err(e) => {
                problems.push(e);
                (Mode::QueueLength, DEFAULT_QUEUE_LENGTH)
            }
        };
        let (Some(protocol), true) = (protocol, problems.is_empty()) else {
            return Err(problems);
        };
        Ok(Self {
            queue_name: p.queue_name,
            mode,
            value,
            activation: p.activation_value,
            protocol,
            host: p.host,
            vhost_name: p.vhost_name,
            use_regex: p.use_regex,
            exclude_unacknowledged: p.exclude_unacknowledged,
            page_size: p.page_size,
            operation,
            timeout: p.timeout,
            credentials,
            tls: TlsSettings {
                ca: p.ca.filter(|_| tls_enabled),
                cert: p.cert.filter(|_| tls_enabled),
                key: p.key.filter(|_| tls_enabled),
                unsafe_ssl: p.unsafe_ssl,
            },
        })
    }

    /// The metric name without the `s<i>-` prefix: `rabbitmq-<url-escaped queue name>`.
    pub fn metric_name(&self) -> String {
        normalize_metric_name(&format!("rabbitmq-{}", query_escape(&self.queue_name)))
    }
}

/// KEDA's `validateTrigger`: the mode and target from `mode`/`value` or the legacy
/// `queueLength`. KEDA reads an unset number as 0, so a written 0 counts as unset too.
fn validate_trigger(p: &RabbitMqParams, protocol: Option<Protocol>) -> Result<(Mode, f64), String> {
    let queue_length = p.queue_length.filter(|v| *v != 0.0);
    let value = p.value.filter(|v| *v != 0.0);
    match (queue_length, p.mode.as_deref(), value) {
        (None, None, None) => Ok((Mode::QueueLength, DEFAULT_QUEUE_LENGTH)),
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            Err("queueLength is deprecated; use mode and value".to_owned())
        }
        (Some(q), None, None) => Ok((Mode::QueueLength, q)),
        (None, None, Some(_)) => Err("mode must be specified".to_owned()),
        (None, Some(_), None) => Err("value must be specified".to_owned()),
        (None, Some(mode), Some(v)) => {
            let mode: Mode = mode.parse().map_err(|()| {
                format!(
                    "trigger mode {mode} must be one of QueueLength, MessageRate, DeliverGetRate, PublishedToDeliveredRatio or ExpectedQueueConsumptionTime"
                )
            })?;
            if mode.http_only() && protocol != Some(Protocol::Http) {
                let shown = protocol.map_or(p.protocol.as_str(), |p| p.as_str());
                return Err(format!(
                    "protocol {shown} not supported; must be HTTP to use trigger mode {mode}"
                ));
            }
            if let (Some(Protocol::Amqp), Some(t)) = (protocol, p.timeout) {
                return Err(format!(
                    "AMQP protocol doesn't support custom timeouts: {t:?}"
                ));
            }
            Ok((mode, v))
        }
    }
}

/// Identity of a shared AMQP connection: the full URI (credentials included, kept secret), the
/// TLS setup and the address guard.
type AmqpKey = (Secret, TlsSettings, AddressGuard);
/// Identity of a shared HTTP client: the origin, the TLS setup and the address guard
/// (credentials go per request).
type HttpKey = (String, TlsSettings, AddressGuard);

/// Builds rabbitmq scalers and owns the connections they share.
#[derive(Clone, Default)]
pub struct RabbitMqFactory {
    amqp: Arc<SharedClients<AmqpKey, AmqpClient>>,
    http: Arc<SharedClients<HttpKey, reqwest::Client>>,
}

impl RabbitMqFactory {
    /// A factory with empty connection caches.
    pub fn new() -> Self {
        Self::default()
    }

    /// AMQP connections currently shared by this factory's scalers.
    pub fn live_amqp_clients(&self) -> usize {
        self.amqp.live()
    }

    /// HTTP clients currently shared by this factory's scalers.
    pub fn live_http_clients(&self) -> usize {
        self.http.live()
    }
}

impl std::fmt::Debug for RabbitMqFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RabbitMqFactory")
            .field("amqp_clients", &self.amqp.live())
            .field("http_clients", &self.http.live())
            .finish()
    }
}

impl ScalerFactory for RabbitMqFactory {
    fn trigger_types(&self) -> &'static [&'static str] {
        &["rabbitmq"]
    }

    fn build(&self, cfg: &ScalerConfig) -> Result<Box<dyn Scaler>, ScalerError> {
        Ok(Box::new(RabbitMqScaler::new(self, cfg)?))
    }

    fn params(&self) -> &'static [ParamSpec] {
        RabbitMqParams::PARAMS
    }
}

enum Backend {
    Amqp {
        key: AmqpKey,
        uri: lapin::uri::AMQPUri,
        cache: Arc<SharedClients<AmqpKey, AmqpClient>>,
        client: Mutex<Option<Arc<AmqpClient>>>,
    },
    Http {
        // KEDA parses the management URL at each poll, so a malformed one is a poll error.
        management: Result<target::Management, String>,
        cache: Arc<SharedClients<HttpKey, reqwest::Client>>,
        client: Mutex<Option<Arc<reqwest::Client>>>,
    },
}

/// A rabbitmq trigger.
pub struct RabbitMqScaler {
    trigger: TriggerId,
    settings: RabbitMqSettings,
    metric_name: String,
    target: MetricTarget,
    timeout: Duration,
    tls: Arc<rustls::ClientConfig>,
    guard: AddressGuard,
    backend: Backend,
}

impl std::fmt::Debug for RabbitMqScaler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RabbitMqScaler")
            .field("trigger", &self.trigger)
            .field("settings", &self.settings)
            .field("metric_name", &self.metric_name)
            .finish_non_exhaustive()
    }
}

impl RabbitMqScaler {
    /// Validates the trigger and builds the scaler; connects nothing.
    pub fn new(factory: &RabbitMqFactory, cfg: &ScalerConfig) -> Result<Self, ScalerError> {
        let target_type = cfg.metric_target_type()?;
        let settings = RabbitMqSettings::from_config(cfg)?;
        let invalid = |e: String| ScalerError::invalid(&cfg.trigger, e);
        // KEDA builds the TLS configuration in its constructor, so bad PEM fails the build.
        settings
            .tls
            .validate(("ca", "cert", "key"))
            .map_err(invalid)?;
        let tls = Arc::new(settings.tls.client_config(&[]).map_err(invalid)?);
        let backend = match settings.protocol {
            Protocol::Amqp => {
                // KEDA parses the AMQP URI (and dials) when it builds the scaler.
                let uri = target::amqp_uri(
                    settings.host.expose(),
                    settings.vhost_name.as_deref(),
                    settings.credentials.as_ref(),
                )
                .map_err(|e| invalid(format!("error parsing RabbitMQ connection string: {e}")))?;
                cfg.check_address("host", &uri.authority.host)?;
                Backend::Amqp {
                    key: (
                        Secret::new(uri.to_string()),
                        settings.tls.clone(),
                        cfg.address_guard.clone(),
                    ),
                    uri,
                    cache: factory.amqp.clone(),
                    client: Mutex::new(None),
                }
            }
            Protocol::Http => {
                let management = target::management(
                    settings.host.expose(),
                    settings.vhost_name.as_deref(),
                    settings.credentials.as_ref(),
                )
                .map_err(|e| format!("error parsing the RabbitMQ management URL: {e}"));
                if let Ok(m) = &management
                    && let Ok(origin) = url::Url::parse(&m.origin)
                {
                    cfg.check_address("host", origin.host_str().unwrap_or_default())?;
                }
                Backend::Http {
                    management,
                    cache: factory.http.clone(),
                    client: Mutex::new(None),
                }
            }
        };
        Ok(Self {
            trigger: cfg.trigger.clone(),
            metric_name: cfg.metric_name(&settings.metric_name()),
            target: MetricTarget::new(target_type, settings.value),
            timeout: settings.timeout.unwrap_or(cfg.timeout),
            settings,
            tls,
            guard: cfg.address_guard.clone(),
            backend,
        })
    }

    /// The validated settings.
    pub fn settings(&self) -> &RabbitMqSettings {
        &self.settings
    }

    fn error(&self, e: impl std::fmt::Display) -> ScalerError {
        ScalerError::source(
            &self.trigger,
            anonymize(&format!("error inspecting RabbitMQ: {e}")),
        )
    }

    /// (queue length as configured, publish rate, deliver/get rate).
    async fn read(&self) -> Result<(i64, f64, f64), ScalerError> {
        match &self.backend {
            Backend::Amqp {
                key,
                uri,
                cache,
                client,
            } => {
                let amqp = {
                    let mut slot = client.lock().unwrap_or_else(PoisonError::into_inner);
                    match &*slot {
                        Some(c) => c.clone(),
                        None => {
                            let c = cache
                                .get_or_try_init(key.clone(), |_| {
                                    Ok::<_, std::convert::Infallible>(AmqpClient::new(
                                        uri.clone(),
                                        self.tls.clone(),
                                        "kedge".to_owned(),
                                        self.guard.clone(),
                                    ))
                                })
                                .unwrap_or_else(|never| match never {});
                            *slot = Some(c.clone());
                            c
                        }
                    }
                };
                let count = match amqp
                    .message_count(&self.settings.queue_name, self.timeout)
                    .await
                {
                    Ok(count) => count,
                    Err(AmqpError::Timeout(timeout)) => {
                        return Err(ScalerError::Timeout {
                            trigger: self.trigger.clone(),
                            timeout,
                        });
                    }
                    Err(e) => return Err(self.error(e)),
                };
                Ok((i64::from(count), 0.0, 0.0))
            }
            Backend::Http {
                management,
                cache,
                client,
            } => {
                let management = management.as_ref().map_err(|e| self.error(e))?;
                let http = {
                    let mut slot = client.lock().unwrap_or_else(PoisonError::into_inner);
                    match &*slot {
                        Some(c) => c.clone(),
                        None => {
                            let key = (
                                management.origin.clone(),
                                self.settings.tls.clone(),
                                self.guard.clone(),
                            );
                            let c = cache
                                .get_or_try_init(key, |_| {
                                    let builder = reqwest::Client::builder()
                                        .tls_backend_preconfigured((*self.tls).clone())
                                        .redirect(crate::http_client::same_host_redirects());
                                    crate::http_client::guarded(builder, &self.guard, "host")
                                        .build()
                                })
                                .map_err(|e| self.error(e))?;
                            *slot = Some(c.clone());
                            c
                        }
                    }
                };
                let counters = if self.settings.use_regex {
                    let queues = http::queues_matching(
                        &http,
                        management,
                        &self.settings.queue_name,
                        self.settings.page_size,
                        self.timeout,
                    )
                    .await
                    .map_err(|e| self.error(e))?;
                    compose(&queues, self.settings.operation)
                } else {
                    http::queue(&http, management, &self.settings.queue_name, self.timeout)
                        .await
                        .map_err(|e| self.error(e))?
                };
                let messages = if self.settings.exclude_unacknowledged {
                    counters.messages_ready
                } else {
                    counters.messages
                };
                Ok((messages, counters.publish_rate, counters.deliver_get_rate))
            }
        }
    }
}

#[async_trait]
impl Scaler for RabbitMqScaler {
    async fn metric_specs(&self) -> Result<Vec<MetricSpec>, ScalerError> {
        Ok(vec![MetricSpec {
            name: self.metric_name.clone(),
            target: self.target,
        }])
    }

    async fn metrics_and_activity(
        &self,
        metric_name: &str,
    ) -> Result<MetricsAndActivity, ScalerError> {
        // The clients enforce `timeout` themselves (the AMQP one must know, to drop a stalled
        // connection); this outer bound is a safety net that should never fire first.
        let (messages, publish, deliver) =
            tokio::time::timeout(self.timeout + SAFETY_MARGIN, self.read())
                .await
                .map_err(|_| ScalerError::Timeout {
                    trigger: self.trigger.clone(),
                    timeout: self.timeout,
                })??;
        let (value, active) = value_and_activity(
            self.settings.mode,
            messages,
            publish,
            deliver,
            self.settings.activation,
        );
        Ok(MetricsAndActivity {
            metrics: vec![MetricValue::new(metric_name, value)],
            active,
        })
    }

    async fn close(&self) {
        // The connection is shared: dropping our handle closes it when we were its last user.
        match &self.backend {
            Backend::Amqp { client, .. } => {
                client.lock().unwrap_or_else(PoisonError::into_inner).take();
            }
            Backend::Http { client, .. } => {
                client.lock().unwrap_or_else(PoisonError::into_inner).take();
            }
        }
    }
}

#[cfg(test)]
mod tests;
