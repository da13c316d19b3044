//! `type: kafka` — scale on the lag of a Kafka consumer group.
//!
//! Compatible with KEDA's `kafka` scaler: the same parameters, defaults, errors, metric name
//! (`s<i>-kafka-<topic>`, or `s<i>-kafka-<consumerGroup>-topics` without a topic), value (the
//! summed lag, capped as in [`lag`]) and activation (lag above `activationLagThreshold`).
//!
//! What differs is the cost. One librdkafka client per connection identity is shared by every
//! ScaledObject ([`client`]); a poll sends Metadata only for the trigger's topic and at most
//! once a minute, one ListOffsets per partition leader for all partitions at once (and
//! concurrent polls of different ScaledObjects share ListOffsets requests), and one OffsetFetch
//! to the group's coordinator. Nothing ever joins the measured group, so measuring never
//! rebalances the user's consumers. A broker that cannot be reached is an error, never a lag
//! of 0.

pub mod client;
pub mod lag;
mod params;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use scaler_core::{
    AddressGuard, MetricSpec, MetricTarget, MetricTargetType, MetricValue, MetricsAndActivity,
    ParamSpec, Scaler, ScalerConfig, ScalerError, ScalerFactory, ScalerParams, Secret, TriggerId,
    normalize_metric_name,
};

use client::{CallError, ClientKey, ClusterClient, GroupClient};
use lag::{LagRules, PartitionOffsets, PreviousOffsets, TotalLag};
pub use params::{KafkaParams, Sasl, parse_partition_limitation};

/// Without `topic`, how long the set of topics the group has committed offsets for is reused
/// before it is looked up again (a full Metadata request and an OffsetFetch for every partition
/// of the cluster).
pub const TOPIC_DISCOVERY_TTL: Duration = Duration::from_secs(60);

/// Builds kafka scalers.
#[derive(Clone, Copy, Debug, Default)]
pub struct KafkaFactory;

impl ScalerFactory for KafkaFactory {
    fn trigger_types(&self) -> &'static [&'static str] {
        &["kafka"]
    }

    fn build(&self, cfg: &ScalerConfig) -> Result<Box<dyn Scaler>, ScalerError> {
        Ok(Box::new(KafkaScaler::new(cfg)?))
    }

    fn params(&self) -> &'static [ParamSpec] {
        KafkaParams::PARAMS
    }
}

/// The librdkafka settings for the connection the parameters describe.
pub fn client_key(params: &KafkaParams) -> Result<ClientKey, String> {
    let mut settings: Vec<(&'static str, Secret)> = Vec::new();
    let servers: Vec<&str> = params
        .bootstrap_servers
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .collect();
    settings.push(("bootstrap.servers", Secret::new(servers.join(","))));
    let tls = params.tls == "enable";
    let sasl = params.sasl()?;
    let protocol = match (tls, sasl != Sasl::None) {
        (false, false) => "plaintext",
        (true, false) => "ssl",
        (false, true) => "sasl_plaintext",
        (true, true) => "sasl_ssl",
    };
    settings.push(("security.protocol", Secret::new(protocol)));
    if tls {
        if let Some(ca) = &params.ca {
            settings.push(("ssl.ca.pem", ca.clone()));
        }
        if let (Some(cert), Some(key)) = (&params.cert, &params.key) {
            settings.push(("ssl.certificate.pem", cert.clone()));
            settings.push(("ssl.key.pem", key.clone()));
            if let Some(pw) = &params.key_password {
                settings.push(("ssl.key.password", pw.clone()));
            }
        }
        if params.unsafe_ssl {
            settings.push(("enable.ssl.certificate.verification", Secret::new("false")));
            settings.push(("ssl.endpoint.identification.algorithm", Secret::new("none")));
        }
    }
    match sasl {
        Sasl::None => {}
        Sasl::Password {
            mechanism,
            username,
            password,
        } => {
            settings.push(("sasl.mechanism", Secret::new(mechanism)));
            settings.push(("sasl.username", username));
            settings.push(("sasl.password", password));
        }
        Sasl::OAuthBearer {
            client_id,
            client_secret,
            token_endpoint,
            scope,
            extensions,
        } => {
            // librdkafka's built-in OIDC client: client credentials grant, refreshed on its
            // own background thread.
            settings.push(("sasl.mechanism", Secret::new("OAUTHBEARER")));
            settings.push(("sasl.oauthbearer.method", Secret::new("oidc")));
            settings.push(("sasl.oauthbearer.client.id", client_id));
            settings.push(("sasl.oauthbearer.client.secret", client_secret));
            settings.push((
                "sasl.oauthbearer.token.endpoint.url",
                Secret::new(token_endpoint),
            ));
            if !scope.is_empty() {
                settings.push(("sasl.oauthbearer.scope", Secret::new(scope)));
            }
            if !extensions.is_empty() {
                settings.push(("sasl.oauthbearer.extensions", Secret::new(extensions)));
            }
        }
    }
    if let Some(version) = &params.version {
        settings.push(("broker.version.fallback", Secret::new(version.clone())));
    }
    Ok(ClientKey(settings))
}

/// The clients a scaler uses, created at its first poll.
struct Clients {
    cluster: Arc<ClusterClient>,
    group: Arc<GroupClient>,
}

#[derive(Default)]
struct State {
    clients: Option<Clients>,
    previous: PreviousOffsets,
    /// Without `topic`: the group's topics and when they were looked up.
    discovered: Option<(Vec<String>, Instant)>,
}

/// A kafka trigger.
pub struct KafkaScaler {
    params: KafkaParams,
    rules: LagRules,
    limitation: Option<Vec<i32>>,
    key: ClientKey,
    metric_name: String,
    target_type: MetricTargetType,
    trigger: TriggerId,
    timeout: Duration,
    guard: AddressGuard,
    state: Mutex<State>,
}

impl std::fmt::Debug for KafkaScaler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaScaler")
            .field("trigger", &self.trigger)
            .field("metric_name", &self.metric_name)
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

/// Lag and partition counts of one poll.
pub type Measurement = TotalLag;

impl KafkaScaler {
    /// Validates the trigger and builds the scaler; contacts nothing.
    pub fn new(cfg: &ScalerConfig) -> Result<Self, ScalerError> {
        let target_type = cfg.metric_target_type()?;
        let params = KafkaParams::from_config(cfg)?;
        let key = client_key(&params).map_err(|e| ScalerError::invalid(&cfg.trigger, e))?;
        for server in &params.bootstrap_servers {
            cfg.check_address("bootstrapServers", crate::address::authority_host(server))?;
        }
        if let Some(endpoint) = &params.oauth_token_endpoint_uri {
            cfg.check_address("oauthTokenEndpointUri", crate::address::url_host(endpoint))?;
        }
        let name = match &params.topic {
            Some(topic) => format!("kafka-{topic}"),
            None => format!("kafka-{}-topics", params.group),
        };
        Ok(Self {
            rules: params.lag_rules(),
            limitation: params.partition_limitation(),
            key,
            metric_name: cfg.metric_name(&normalize_metric_name(&name)),
            target_type,
            trigger: cfg.trigger.clone(),
            timeout: cfg.timeout,
            guard: cfg.address_guard.clone(),
            params,
            state: Mutex::new(State::default()),
        })
    }

    /// The parsed parameters.
    pub fn params(&self) -> &KafkaParams {
        &self.params
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn err(&self, e: CallError) -> ScalerError {
        match e.source {
            Some(source) => ScalerError::Source {
                trigger: self.trigger.clone(),
                message: format!("{}: {source}", e.message),
                source: Some(Box::new(source)),
            },
            None => ScalerError::source(&self.trigger, e.message),
        }
    }

    /// The shared clients, created (off the async workers: creating a librdkafka client starts
    /// threads and, with TLS, reads certificates) at the first poll.
    async fn clients(&self) -> Result<(Arc<ClusterClient>, Arc<GroupClient>), ScalerError> {
        let held = |state: &State| {
            state
                .clients
                .as_ref()
                .map(|c| (Arc::clone(&c.cluster), Arc::clone(&c.group)))
        };
        if let Some(clients) = held(&self.lock()) {
            return Ok(clients);
        }
        // librdkafka resolves the names itself (and connects to the brokers the cluster
        // advertises), so this narrows the window of a DNS answer that changes after the build
        // without closing it.
        for server in &self.params.bootstrap_servers {
            let host = crate::address::authority_host(server);
            crate::address::precheck(&self.guard, "bootstrapServers", host, self.timeout)
                .await
                .map_err(|e| ScalerError::source(&self.trigger, e))?;
        }
        let (key, group) = (self.key.clone(), self.params.group.clone());
        let (cluster, group) = self
            .blocking(move || {
                let cluster = client::clusters().get_or_try_init(key, ClusterClient::new)?;
                let group = cluster.group(&group)?;
                Ok((cluster, group))
            })
            .await?;
        let mut state = self.lock();
        if let Some(clients) = held(&state) {
            // Another poll of this trigger got there first; the same shared clients anyway.
            return Ok(clients);
        }
        state.clients = Some(Clients {
            cluster: Arc::clone(&cluster),
            group: Arc::clone(&group),
        });
        Ok((cluster, group))
    }

    /// Runs a blocking broker call on tokio's blocking pool.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> Result<T, CallError> + Send + 'static,
    ) -> Result<T, ScalerError> {
        match tokio::task::spawn_blocking(f).await {
            Ok(r) => r.map_err(|e| self.err(e)),
            Err(e) => Err(ScalerError::source_with(
                &self.trigger,
                "kafka call did not complete",
                e,
            )),
        }
    }

    /// Measures the lag once, under the trigger's timeout.
    pub async fn measure(&self) -> Result<Measurement, ScalerError> {
        // librdkafka's own waits end at the deadline; the outer timeout is a backstop.
        let deadline = Instant::now() + self.timeout;
        match tokio::time::timeout(
            self.timeout + Duration::from_millis(250),
            self.measure_until(deadline),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => Err(ScalerError::Timeout {
                trigger: self.trigger.clone(),
                timeout: self.timeout,
            }),
        }
    }

    async fn measure_until(&self, deadline: Instant) -> Result<Measurement, ScalerError> {
        let (cluster, group) = self.clients().await?;
        let topics = match &self.params.topic {
            Some(topic) => vec![topic.clone()],
            None => self.group_topics(&cluster, &group, deadline).await?,
        };

        let mut partitions: Vec<(String, i32)> = Vec::new();
        for topic in &topics {
            let (c, t) = (Arc::clone(&cluster), topic.clone());
            let ids = self
                .blocking(move || c.partitions(&t, deadline))
                .await
                .inspect_err(|_| {
                    // A discovered topic may have been deleted: discover afresh next time.
                    self.lock().discovered = None;
                })?;
            let before = partitions.len();
            partitions.extend(
                ids.iter()
                    .filter(|id| self.limitation.as_ref().is_none_or(|l| l.contains(id)))
                    .map(|id| (topic.clone(), *id)),
            );
            if partitions.len() == before {
                return Err(ScalerError::source(
                    &self.trigger,
                    format!("expected at least one active partition within the topic '{topic}'"),
                ));
            }
        }

        let partitions = Arc::new(partitions);
        let (c, p) = (Arc::clone(&cluster), Arc::clone(&partitions));
        let latest = self.blocking(move || c.latest_offsets(&p, deadline));
        let (g, p) = (Arc::clone(&group), Arc::clone(&partitions));
        let committed = self.blocking(move || g.committed(&p, deadline));
        let (latest, committed) = tokio::join!(latest, committed);
        let latest = latest.inspect_err(|_| {
            // The topic may have been recreated or repartitioned: look it up afresh next time.
            topics.iter().for_each(|t| cluster.forget(t));
        })?;
        let committed = committed?;

        let offsets: Vec<PartitionOffsets> = partitions
            .iter()
            .map(|(topic, partition)| {
                let key = (topic.clone(), *partition);
                PartitionOffsets {
                    committed: committed.get(&key).copied().flatten(),
                    latest: latest.get(&key).copied(),
                    topic: topic.clone(),
                    partition: *partition,
                }
            })
            .collect();
        let mut state = self.lock();
        let total = lag::total_lag(&self.rules, &offsets, &mut state.previous);
        tracing::debug!(
            target: "kedge::kafka",
            trigger = %self.trigger,
            group = %self.params.group,
            lag = total.lag,
            lag_with_persistent = total.lag_with_persistent,
            partitions = total.partitions,
            "measured consumer lag"
        );
        Ok(total)
    }

    /// Without `topic`: the topics the group has committed offsets for (KEDA asks OffsetFetch
    /// for "all topics"; librdkafka only fetches named partitions, so every partition of the
    /// cluster is asked once per [`TOPIC_DISCOVERY_TTL`]).
    async fn group_topics(
        &self,
        cluster: &Arc<ClusterClient>,
        group: &Arc<GroupClient>,
        deadline: Instant,
    ) -> Result<Vec<String>, ScalerError> {
        if let Some((topics, at)) = &self.lock().discovered
            && at.elapsed() < TOPIC_DISCOVERY_TTL
        {
            return Ok(topics.clone());
        }
        let c = Arc::clone(cluster);
        let all = self.blocking(move || c.all_topics(deadline)).await?;
        let partitions: Arc<Vec<(String, i32)>> = Arc::new(
            all.iter()
                .flat_map(|(t, ps)| ps.iter().map(move |p| (t.clone(), *p)))
                .collect(),
        );
        let mut topics: Vec<String> = if partitions.is_empty() {
            Vec::new()
        } else {
            let (g, p) = (Arc::clone(group), Arc::clone(&partitions));
            let committed = self
                .blocking(move || {
                    g.committed(&p, deadline).map_err(|e| CallError {
                        message: e.message.replace(
                            "error listing consumer group offsets",
                            "error listing cg offset",
                        ),
                        source: e.source,
                    })
                })
                .await?;
            committed
                .into_iter()
                .filter(|(_, offset)| offset.is_some())
                .map(|((topic, _), _)| topic)
                .collect()
        };
        topics.sort();
        topics.dedup();
        if topics.is_empty() {
            return Err(ScalerError::source(
                &self.trigger,
                format!(
                    "consumer group {:?} has no committed offsets on any topic, so its topics are \
                     unknown; set `topic` to measure (and scale from zero) a group that has not \
                     committed yet",
                    self.params.group
                ),
            ));
        }
        self.lock().discovered = Some((topics.clone(), Instant::now()));
        Ok(topics)
    }
}

#[async_trait]
impl Scaler for KafkaScaler {
    async fn metric_specs(&self) -> Result<Vec<MetricSpec>, ScalerError> {
        Ok(vec![MetricSpec {
            name: self.metric_name.clone(),
            target: MetricTarget::new(self.target_type, self.params.lag_threshold as f64),
        }])
    }

    async fn metrics_and_activity(
        &self,
        metric_name: &str,
    ) -> Result<MetricsAndActivity, ScalerError> {
        let total = self.measure().await?;
        Ok(MetricsAndActivity {
            metrics: vec![MetricValue::new(metric_name, total.lag as f64)],
            active: total.lag_with_persistent > self.params.activation_lag_threshold,
        })
    }

    async fn close(&self) {
        // Dropping the last reference closes the connections (on a thread of their own).
        let clients = self.lock().clients.take();
        drop(clients);
    }
}

#[cfg(test)]
mod tests;
