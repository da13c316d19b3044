//! [`ScalerConfig`]: everything a factory gets to build one scaler for one trigger.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use crate::{AddressGuard, MetricTargetType, ScalerError, Secret};

/// Which trigger of which ScaledObject a scaler or an error belongs to.
///
/// Displays as `triggers[0] (cron)` or, for a named trigger, `triggers[1] "queue" (rabbitmq)`,
/// which is where a user finds it in their YAML.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct TriggerId {
    /// Position in `spec.triggers`; also the `s<index>-` prefix of its metric names.
    pub index: usize,
    /// `triggers[].type`.
    pub trigger_type: String,
    /// `triggers[].name`, if set.
    pub name: Option<String>,
}

impl fmt::Display for TriggerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(
                f,
                "triggers[{}] {name:?} ({})",
                self.index, self.trigger_type
            ),
            None => write!(f, "triggers[{}] ({})", self.index, self.trigger_type),
        }
    }
}

/// The resolved configuration of one trigger: what [`crate::ScalerFactory::build`] receives.
///
/// The operator fills it from the ScaledObject (`triggers[]`), the TriggerAuthentication it
/// references (`auth_params`) and the scale target's container environment (`resolved_env`).
/// Scalers read their parameters through [`crate::ScalerParams`], which applies KEDA's lookup
/// rules, rather than from these maps directly.
///
/// ```
/// use scaler_core::ScalerConfig;
///
/// let cfg = ScalerConfig::new("rabbitmq", 0)
///     .with_metadata("queueName", "jobs")
///     .with_metadata("hostFromEnv", "RABBIT_URL")
///     .with_resolved_env("RABBIT_URL", "amqp://guest:guest@127.0.0.1:5672/")
///     .with_auth_param("password", "s3cr3t");
/// assert_eq!(cfg.trigger.to_string(), "triggers[0] (rabbitmq)");
/// assert!(!format!("{cfg:?}").contains("s3cr3t"));
/// ```
#[derive(Clone, Debug)]
pub struct ScalerConfig {
    /// Which trigger this is.
    pub trigger: TriggerId,
    /// `triggers[].metadata`, as written.
    pub metadata: BTreeMap<String, String>,
    /// Parameters resolved from the trigger's TriggerAuthentication or ClusterTriggerAuthentication.
    pub auth_params: BTreeMap<String, Secret>,
    /// The scale target's container environment, resolved (`env`, `envFrom`, Secrets and ConfigMaps).
    pub resolved_env: BTreeMap<String, Secret>,
    /// `triggers[].metricType` as written; empty means `AverageValue`.
    pub metric_type: String,
    /// `triggers[].useCachedMetrics`.
    pub use_cached_metrics: bool,
    /// Namespace of the owning ScaledObject.
    pub namespace: String,
    /// Name of the owning ScaledObject.
    pub scaled_object: String,
    /// Timeout for calls to the data source (`KEDA_HTTP_DEFAULT_TIMEOUT`, default 3 s).
    pub timeout: Duration,
    /// True when the trigger only feeds a `scalingModifiers` formula; its own target may be absent.
    pub as_metric_source: bool,
    /// `podIdentity.provider` of the trigger's TriggerAuthentication (`aws`, `azure-workload`,
    /// `gcp`, ...), when it names one other than `none`. A scaler that would otherwise use the
    /// operator's own cloud identity requires it, so a trigger cannot borrow that identity just
    /// by leaving its credentials out.
    pub pod_identity: Option<String>,
    /// Address ranges this trigger's scaler must not connect to (`--scaler-address-deny-cidrs`;
    /// empty by default). Check each host a parameter names with [`Self::check_address`].
    pub address_guard: AddressGuard,
}

/// The default timeout for calls to a data source, KEDA's `KEDA_HTTP_DEFAULT_TIMEOUT` default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(3000);

impl ScalerConfig {
    /// A configuration for trigger `index` of type `trigger_type` with nothing else set.
    pub fn new(trigger_type: impl Into<String>, index: usize) -> Self {
        Self {
            trigger: TriggerId {
                index,
                trigger_type: trigger_type.into(),
                name: None,
            },
            metadata: BTreeMap::new(),
            auth_params: BTreeMap::new(),
            resolved_env: BTreeMap::new(),
            metric_type: String::new(),
            use_cached_metrics: false,
            namespace: "default".to_owned(),
            scaled_object: String::new(),
            timeout: DEFAULT_TIMEOUT,
            as_metric_source: false,
            pod_identity: None,
            address_guard: AddressGuard::default(),
        }
    }

    /// Sets one metadata entry.
    pub fn with_metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// Sets one auth parameter.
    pub fn with_auth_param(mut self, key: impl Into<String>, value: impl Into<Secret>) -> Self {
        self.auth_params.insert(key.into(), value.into());
        self
    }

    /// Sets one resolved environment variable.
    pub fn with_resolved_env(mut self, key: impl Into<String>, value: impl Into<Secret>) -> Self {
        self.resolved_env.insert(key.into(), value.into());
        self
    }

    /// Sets the TriggerAuthentication's `podIdentity.provider`.
    pub fn with_pod_identity(mut self, provider: impl Into<String>) -> Self {
        self.pod_identity = Some(provider.into());
        self
    }

    /// Sets the address ranges the scaler must not connect to.
    pub fn with_address_guard(mut self, guard: AddressGuard) -> Self {
        self.address_guard = guard;
        self
    }

    /// Checks a host named by parameter `param` against [`Self::address_guard`], resolving a
    /// name (under [`Self::timeout`]) when the guard is active. A scaler calls it for every host
    /// it will connect to, when it is built; the error names the trigger, the parameter and the
    /// denied range, never the value (it may come from a Secret).
    ///
    /// ```
    /// use scaler_core::{AddressGuard, ScalerConfig};
    ///
    /// let guard = AddressGuard::parse("169.254.169.254/32").unwrap();
    /// let cfg = ScalerConfig::new("prometheus", 0).with_address_guard(guard);
    /// let err = cfg.check_address("serverAddress", "169.254.169.254").unwrap_err();
    /// assert_eq!(
    ///     err.to_string(),
    ///     "triggers[0] (prometheus): parameter \"serverAddress\": its host resolves into \
    ///      169.254.169.254/32, a range scalers may not connect to (--scaler-address-deny-cidrs)"
    /// );
    /// assert!(cfg.check_address("serverAddress", "192.0.2.1").is_ok());
    /// ```
    pub fn check_address(&self, param: &str, host: &str) -> Result<(), ScalerError> {
        self.address_guard
            .check_host(host, self.timeout)
            .map_err(|range| {
                ScalerError::invalid(&self.trigger, crate::address::denied_message(param, range))
            })
    }

    /// Sets `triggers[].metricType`.
    pub fn with_metric_type(mut self, metric_type: impl Into<String>) -> Self {
        self.metric_type = metric_type.into();
        self
    }

    /// The trigger's metric target type, rejecting `Utilization` with KEDA's message.
    ///
    /// ```
    /// use scaler_core::{MetricTargetType, ScalerConfig};
    /// let cfg = ScalerConfig::new("cron", 0).with_metric_type("Utilization");
    /// let err = cfg.metric_target_type().unwrap_err().to_string();
    /// assert_eq!(err, "triggers[0] (cron): 'Utilization' metric type is unsupported for external metrics, allowed values are 'Value' or 'AverageValue'");
    /// ```
    pub fn metric_target_type(&self) -> Result<MetricTargetType, ScalerError> {
        self.metric_type
            .parse()
            .map_err(|msg: String| ScalerError::invalid(&self.trigger, msg))
    }

    /// The metric name with this trigger's `s<index>-` prefix.
    pub fn metric_name(&self, name: &str) -> String {
        crate::metric_name_with_index(self.trigger.index, name)
    }
}
