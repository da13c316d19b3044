//! What a scaler reports: metric specs for the HPA, and values with activity at each poll.

use std::fmt;
use std::str::FromStr;

use crate::Quantity;

/// How the HPA compares an External metric with its target (`triggers[].metricType`).
///
/// KEDA accepts `AverageValue` (the default) and `Value` for external metrics and rejects
/// `Utilization`, which only applies to cpu and memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum MetricTargetType {
    /// The HPA divides the metric by the current replica count: desired = ceil(value / target).
    #[default]
    AverageValue,
    /// The HPA uses the metric as is: desired = ceil(current × value / target).
    Value,
}

impl MetricTargetType {
    /// The name used in HPA specs and ScaledObjects.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AverageValue => "AverageValue",
            Self::Value => "Value",
        }
    }
}

impl fmt::Display for MetricTargetType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The message KEDA gives for `metricType: Utilization` on an external trigger.
pub const UTILIZATION_UNSUPPORTED: &str = "'Utilization' metric type is unsupported for external metrics, allowed values are 'Value' or 'AverageValue'";

impl FromStr for MetricTargetType {
    type Err = String;

    /// Parses `triggers[].metricType`; an empty string means the default, `AverageValue`.
    ///
    /// ```
    /// use scaler_core::MetricTargetType;
    /// assert_eq!("".parse::<MetricTargetType>(), Ok(MetricTargetType::AverageValue));
    /// assert_eq!("Value".parse::<MetricTargetType>(), Ok(MetricTargetType::Value));
    /// assert!("Utilization".parse::<MetricTargetType>().unwrap_err().contains("unsupported"));
    /// ```
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "" | "AverageValue" => Ok(Self::AverageValue),
            "Value" => Ok(Self::Value),
            "Utilization" => Err(UTILIZATION_UNSUPPORTED.to_owned()),
            other => Err(format!(
                "unknown metric type {other:?}, allowed values are 'Value' or 'AverageValue'"
            )),
        }
    }
}

/// The target of one External metric in the HPA.
///
/// ```
/// use scaler_core::{MetricTarget, MetricTargetType};
/// let t = MetricTarget::new(MetricTargetType::AverageValue, 10.0);
/// assert_eq!(t.value.to_string(), "10");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MetricTarget {
    /// `Value` or `AverageValue`.
    pub target_type: MetricTargetType,
    /// The target, with milli precision (KEDA's `GetMetricTargetMili`).
    pub value: Quantity,
}

impl MetricTarget {
    /// A target of `value`, truncated to milli precision as KEDA does.
    pub fn new(target_type: MetricTargetType, value: f64) -> Self {
        Self {
            target_type,
            value: Quantity::from_f64(value),
        }
    }
}

/// One External metric a scaler asks the HPA to scale on.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MetricSpec {
    /// The full metric name, already prefixed with `s<triggerIndex>-`
    /// (see [`crate::metric_name_with_index`]).
    pub name: String,
    /// The HPA target.
    pub target: MetricTarget,
}

/// One metric value, as returned to the HPA through the external metrics API.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MetricValue {
    /// The metric name the value belongs to.
    pub metric_name: String,
    /// The value.
    pub value: Quantity,
}

impl MetricValue {
    /// A value for `metric_name`, truncated to milli precision (KEDA's `GenerateMetricInMili`).
    pub fn new(metric_name: impl Into<String>, value: f64) -> Self {
        Self {
            metric_name: metric_name.into(),
            value: Quantity::from_f64(value),
        }
    }
}

/// The result of one poll of one metric: its values and whether the trigger is active.
///
/// "Active" decides scaling between zero and one replica (done by kedge itself); the values
/// drive the HPA between one and `maxReplicaCount`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct MetricsAndActivity {
    /// The metric values (usually exactly one).
    pub metrics: Vec<MetricValue>,
    /// Whether this trigger wants the workload running (typically `value > activation<X>`).
    pub active: bool,
}
