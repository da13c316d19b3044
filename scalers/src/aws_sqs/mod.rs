//! `type: aws-sqs-queue` — scale on the number of messages in an AWS SQS queue.
//!
//! Compatible with KEDA's scaler: the same parameters and defaults (`queueLength` 5,
//! `activationQueueLength` 0, `scaleOnInFlight` true, `scaleOnDelayed` false), metric name
//! (`s<i>-aws-sqs-<queue name>`), value (visible messages, plus in-flight and delayed ones per
//! the flags, summed from one `GetQueueAttributes` call) and activation (value >
//! `activationQueueLength`). `awsEndpoint` points the client at LocalStack, ElasticMQ or moto.
//!
//! Clients are shared: one per (region, endpoint, credentials), whatever the number of
//! ScaledObjects.

mod client;
mod value;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::QueueAttributeName;
use scaler_core::{
    AddressGuard, MetricSpec, MetricTarget, MetricValue, MetricsAndActivity, ParamSpec, Scaler,
    ScalerConfig, ScalerError, ScalerFactory, ScalerParams, Secret, SharedClients, TriggerId,
    normalize_metric_name,
};

pub use client::{Auth, ClientKey, SqsClient};
pub use value::{attribute_names, queue_length, queue_name, region_of_url};

/// The host of `awsEndpoint` (the SDK refuses an endpoint that is not a URL).
fn endpoint_host(endpoint: &str) -> String {
    url::Url::parse(endpoint)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default()
}

/// An error and its causes, `: `-separated (the SDK's own Display says only "dispatch
/// failure" or "service error").
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        // Some layers repeat their cause's text; say it once.
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

/// Parameters of an aws-sqs-queue trigger, as KEDA declares them.
#[derive(ScalerParams, Debug, Clone)]
#[params(validate = "Self::validate")]
pub struct AwsSqsParams {
    /// Target number of messages per replica.
    #[param(default = 5)]
    pub queue_length: i64,
    /// The trigger is active above this number of messages.
    #[param(default = 0)]
    pub activation_queue_length: i64,
    /// The queue URL (`https://sqs.<region>.amazonaws.com/<account>/<name>`).
    #[param(name = "queueURL", from(metadata, env))]
    pub queue_url: String,
    /// Region of the queue.
    #[param(from(metadata, auth))]
    pub aws_region: String,
    /// Custom endpoint (LocalStack, ElasticMQ, a VPC endpoint), e.g. `http://localhost:4566`.
    pub aws_endpoint: Option<String>,
    /// Count in-flight messages (received, not yet deleted).
    #[param(default = true)]
    pub scale_on_in_flight: bool,
    /// Count delayed messages.
    #[param(default = false)]
    pub scale_on_delayed: bool,
    /// `pod` (credentials from the TriggerAuthentication) or `operator` (kedge's own identity).
    #[param(default = "pod")]
    pub identity_owner: String,
    /// Access key id.
    #[param(
        name = "awsAccessKeyID",
        alias = "awsAccessKeyId",
        from(auth, metadata, env)
    )]
    pub aws_access_key_id: Option<Secret>,
    /// Secret access key.
    #[param(from(auth, env))]
    pub aws_secret_access_key: Option<Secret>,
    /// Session token of temporary credentials.
    #[param(from(auth))]
    pub aws_session_token: Option<Secret>,
    /// Role to assume (set by `podIdentity.roleArn` or given as an auth parameter).
    #[param(from(auth))]
    pub aws_role_arn: Option<String>,
}

impl AwsSqsParams {
    fn validate(&self) -> Result<(), String> {
        let mut problems = Vec::new();
        if let Err(e) = queue_name(&self.queue_url) {
            problems.push(e);
        }
        // Whether a pod identity stands in for missing credentials is known only at build.
        if let Err(e) = self.auth(Some(POD_IDENTITY_AWS)) {
            problems.push(e);
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }

    /// KEDA's `GetAwsAuthorization`. `pod_identity` is the TriggerAuthentication's
    /// `podIdentity.provider`: with `aws` (or `aws-eks`) and no credentials the identity the
    /// process runs as is used, as KEDA uses its operator's; without one, leaving the
    /// credentials out is an error, so a tenant cannot borrow kedge's own AWS identity that way
    /// (`identityOwner: operator` asks for it explicitly).
    pub fn auth(&self, pod_identity: Option<&str>) -> Result<Auth, String> {
        match self.identity_owner.as_str() {
            "operator" => return Ok(Auth::DefaultChain),
            "pod" => {}
            other => {
                return Err(format!(
                    "identityOwner must be either 'pod' or 'operator', got: {other}"
                ));
            }
        }
        if let Some(arn) = &self.aws_role_arn {
            return Ok(Auth::AssumeRole(arn.clone()));
        }
        match (&self.aws_access_key_id, &self.aws_secret_access_key) {
            (Some(id), Some(secret)) => Ok(Auth::Keys {
                access_key_id: id.clone(),
                secret_access_key: secret.clone(),
                session_token: self.aws_session_token.clone(),
            }),
            (Some(_), None) => Err("awsSecretAccessKey not found".to_owned()),
            (None, Some(_)) => Err("awsAccessKeyID not found".to_owned()),
            (None, None) if matches!(pod_identity, Some("aws" | "aws-eks")) => {
                Ok(Auth::DefaultChain)
            }
            (None, None) => Err(
                "awsAccessKeyID not found: set awsAccessKeyID and awsSecretAccessKey or awsRoleArn in a TriggerAuthentication, podIdentity.provider aws, or identityOwner: operator".to_owned(),
            ),
        }
    }
}

/// The `podIdentity.provider` under which the default credential chain is this process's.
const POD_IDENTITY_AWS: &str = "aws";

/// Builds aws-sqs-queue scalers and owns the clients they share.
#[derive(Clone, Default)]
pub struct AwsSqsFactory {
    clients: Arc<SharedClients<ClientKey, SqsClient>>,
}

impl AwsSqsFactory {
    /// A factory with an empty client cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Clients currently shared by this factory's scalers.
    pub fn live_clients(&self) -> usize {
        self.clients.live()
    }
}

impl std::fmt::Debug for AwsSqsFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsSqsFactory")
            .field("clients", &self.clients.live())
            .finish()
    }
}

impl ScalerFactory for AwsSqsFactory {
    fn trigger_types(&self) -> &'static [&'static str] {
        &["aws-sqs-queue"]
    }

    fn build(&self, cfg: &ScalerConfig) -> Result<Box<dyn Scaler>, ScalerError> {
        Ok(Box::new(AwsSqsScaler::new(self, cfg)?))
    }

    fn params(&self) -> &'static [ParamSpec] {
        AwsSqsParams::PARAMS
    }
}

/// An aws-sqs-queue trigger.
pub struct AwsSqsScaler {
    trigger: TriggerId,
    params: AwsSqsParams,
    key: ClientKey,
    attributes: Vec<QueueAttributeName>,
    metric_name: String,
    target: MetricTarget,
    timeout: Duration,
    guard: AddressGuard,
    cache: Arc<SharedClients<ClientKey, SqsClient>>,
    client: Mutex<Option<Arc<SqsClient>>>,
}

impl std::fmt::Debug for AwsSqsScaler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsSqsScaler")
            .field("trigger", &self.trigger)
            .field("params", &self.params)
            .field("metric_name", &self.metric_name)
            .finish_non_exhaustive()
    }
}

impl AwsSqsScaler {
    /// Validates the trigger and builds the scaler; contacts nothing.
    pub fn new(factory: &AwsSqsFactory, cfg: &ScalerConfig) -> Result<Self, ScalerError> {
        let target_type = cfg.metric_target_type()?;
        let params = AwsSqsParams::from_config(cfg)?;
        let invalid = |e: String| ScalerError::invalid(&cfg.trigger, e);
        let name = queue_name(&params.queue_url).map_err(invalid)?;
        // The requests go to awsEndpoint when set (else to AWS's endpoint for the region; the
        // queue URL only names the queue).
        if let Some(endpoint) = &params.aws_endpoint {
            cfg.check_address("awsEndpoint", &endpoint_host(endpoint))?;
        }
        let key = ClientKey {
            region: params.aws_region.clone(),
            endpoint: params.aws_endpoint.clone(),
            auth: params.auth(cfg.pod_identity.as_deref()).map_err(invalid)?,
        };
        Ok(Self {
            trigger: cfg.trigger.clone(),
            attributes: attribute_names(params.scale_on_in_flight, params.scale_on_delayed),
            metric_name: cfg.metric_name(&normalize_metric_name(&format!("aws-sqs-{name}"))),
            target: MetricTarget::new(target_type, params.queue_length as f64),
            timeout: cfg.timeout,
            params,
            key,
            guard: cfg.address_guard.clone(),
            cache: factory.clients.clone(),
            client: Mutex::new(None),
        })
    }

    fn client(&self) -> Arc<SqsClient> {
        let mut slot = self.client.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(c) = &*slot {
            return c.clone();
        }
        let c = self
            .cache
            .get_or_try_init(self.key.clone(), |k| {
                Ok::<_, std::convert::Infallible>(SqsClient::new(k.clone()))
            })
            .unwrap_or_else(|never| match never {});
        *slot = Some(c.clone());
        c
    }

    /// Where the request went, for error messages.
    fn place(&self) -> String {
        match &self.params.aws_endpoint {
            Some(endpoint) => format!("region {} at {endpoint}", self.params.aws_region),
            None => format!("region {}", self.params.aws_region),
        }
    }

    fn sdk_error<E, R>(&self, err: &SdkError<E, R>) -> ScalerError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug + 'static,
    {
        let url = &self.params.queue_url;
        let code = err.code().unwrap_or_default();
        let message =
            if code == "QueueDoesNotExist" || code == "AWS.SimpleQueueService.NonExistentQueue" {
                let hint = match region_of_url(url) {
                    Some(r) if r != self.params.aws_region => format!(
                        " (the queue URL is in region {r} but awsRegion is {})",
                        self.params.aws_region
                    ),
                    _ => String::new(),
                };
                format!(
                    "SQS queue {url} does not exist in {}{hint}: check queueURL and awsRegion",
                    self.place()
                )
            } else {
                format!(
                    "error getting attributes of SQS queue {url} ({}): {}",
                    self.place(),
                    error_chain(err)
                )
            };
        ScalerError::source(&self.trigger, message)
    }

    async fn length(&self) -> Result<i64, ScalerError> {
        if let Some(endpoint) = &self.params.aws_endpoint {
            // The SDK resolves the name itself: this narrows the window of a DNS answer that
            // changes after the build without closing it.
            crate::address::precheck(
                &self.guard,
                "awsEndpoint",
                &endpoint_host(endpoint),
                self.timeout,
            )
            .await
            .map_err(|e| ScalerError::source(&self.trigger, e))?;
        }
        let client = self.client();
        let sqs = client.get().await;
        let out = sqs
            .get_queue_attributes()
            .queue_url(&self.params.queue_url)
            .set_attribute_names(Some(self.attributes.clone()))
            .send()
            .await
            .map_err(|e| self.sdk_error(&e))?;
        queue_length(out.attributes(), &self.attributes)
            .map_err(|e| ScalerError::source(&self.trigger, e))
    }
}

#[async_trait]
impl Scaler for AwsSqsScaler {
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
        let length = tokio::time::timeout(self.timeout, self.length())
            .await
            .map_err(|_| ScalerError::Timeout {
                trigger: self.trigger.clone(),
                timeout: self.timeout,
            })??;
        Ok(MetricsAndActivity {
            metrics: vec![MetricValue::new(metric_name, length as f64)],
            active: length > self.params.activation_queue_length,
        })
    }

    async fn close(&self) {
        // Shared client: drop our handle; the last user's drop frees it.
        self.client
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }
}

#[cfg(test)]
mod tests;
