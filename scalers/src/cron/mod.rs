//! `type: cron` — scale to `desiredReplicas` inside a time window.
//!
//! Compatible with KEDA's cron scaler: the same parameters, errors, metric name
//! (`s<i>-cron-<timezone>-<start>-<end>`) and values (`desiredReplicas` inside the window, 1
//! outside, against a target of 1), so the HPA asks for `desiredReplicas` replicas inside the
//! window and the trigger is inactive outside it.

mod window;

use std::str::FromStr;

use async_trait::async_trait;
use chrono::Utc;
use chrono_tz::Tz;
use scaler_core::{
    MetricSpec, MetricTarget, MetricTargetType, MetricValue, MetricsAndActivity, ParamSpec, Scaler,
    ScalerConfig, ScalerError, ScalerFactory, ScalerParams, normalize_metric_name,
};

pub use window::{Window, parse_schedule, parse_schedule_shared};

/// Parameters of a cron trigger.
#[derive(ScalerParams, Debug, Clone)]
#[params(validate = "Self::validate")]
pub struct CronParams {
    /// When the window opens: a five-field cron expression (minute hour day-of-month month day-of-week).
    pub start: String,
    /// When the window closes: a five-field cron expression.
    pub end: String,
    /// IANA time zone the expressions are read in, e.g. `Europe/Paris`.
    pub timezone: String,
    /// Replicas wanted inside the window.
    pub desired_replicas: i64,
}

impl CronParams {
    fn validate(&self) -> Result<(), String> {
        let mut problems = Vec::new();
        if let Err(e) = parse_schedule(&self.start) {
            problems.push(format!("error parsing start schedule: {e}"));
        }
        if let Err(e) = parse_schedule(&self.end) {
            problems.push(format!("error parsing end schedule: {e}"));
        }
        if self.start == self.end {
            problems.push("start and end can not have exactly same time input".to_owned());
        }
        if Tz::from_str(&self.timezone).is_err() {
            problems.push(format!(
                "unable to load timezone {:?}: not an IANA time zone name such as Europe/Paris",
                self.timezone
            ));
        }
        match self.desired_replicas {
            0 => problems.push("no desiredReplicas specified".to_owned()),
            n if n < 0 => problems.push(format!("desiredReplicas must be at least 1, got {n}")),
            _ => {}
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }
}

/// KEDA's `parseCronTimeFormat`: makes a cron expression usable in a metric name.
fn metric_friendly(expr: &str) -> String {
    expr.replace(' ', "")
        .replace('*', "x")
        .replace('/', "Sl")
        .replace('?', "Qm")
}

/// Builds cron scalers.
#[derive(Clone, Copy, Debug, Default)]
pub struct CronFactory;

impl ScalerFactory for CronFactory {
    fn trigger_types(&self) -> &'static [&'static str] {
        &["cron"]
    }

    fn build(&self, cfg: &ScalerConfig) -> Result<Box<dyn Scaler>, ScalerError> {
        Ok(Box::new(CronScaler::new(cfg)?))
    }

    fn params(&self) -> &'static [ParamSpec] {
        CronParams::PARAMS
    }
}

/// A cron trigger.
#[derive(Debug)]
pub struct CronScaler {
    params: CronParams,
    window: Window,
    metric_name: String,
    target_type: MetricTargetType,
    trigger: scaler_core::TriggerId,
}

impl CronScaler {
    /// Validates the trigger and builds the scaler.
    pub fn new(cfg: &ScalerConfig) -> Result<Self, ScalerError> {
        let target_type = cfg.metric_target_type()?;
        let params = CronParams::from_config(cfg)?;
        // validate() has accepted all three, so these only fail if it is changed carelessly.
        let invalid = |e: String| ScalerError::invalid(&cfg.trigger, e);
        let window = Window {
            start: parse_schedule_shared(&params.start).map_err(invalid)?,
            end: parse_schedule_shared(&params.end).map_err(invalid)?,
            timezone: Tz::from_str(&params.timezone).map_err(|e| invalid(e.to_string()))?,
        };
        let metric_name = cfg.metric_name(&normalize_metric_name(&format!(
            "cron-{}-{}-{}",
            params.timezone,
            metric_friendly(&params.start),
            metric_friendly(&params.end)
        )));
        Ok(Self {
            params,
            window,
            metric_name,
            target_type,
            trigger: cfg.trigger.clone(),
        })
    }

    /// The poll result at `now`: `desiredReplicas` and active inside the window, 1 and inactive
    /// outside.
    pub fn sample_at(
        &self,
        metric_name: &str,
        now: chrono::DateTime<Utc>,
    ) -> Result<MetricsAndActivity, ScalerError> {
        let open = self
            .window
            .is_open(now)
            .map_err(|e| ScalerError::source(&self.trigger, e))?;
        let value = if open {
            self.params.desired_replicas
        } else {
            1
        };
        Ok(MetricsAndActivity {
            metrics: vec![MetricValue::new(metric_name, value as f64)],
            active: open,
        })
    }
}

#[async_trait]
impl Scaler for CronScaler {
    async fn metric_specs(&self) -> Result<Vec<MetricSpec>, ScalerError> {
        Ok(vec![MetricSpec {
            name: self.metric_name.clone(),
            target: MetricTarget::new(self.target_type, 1.0),
        }])
    }

    async fn metrics_and_activity(
        &self,
        metric_name: &str,
    ) -> Result<MetricsAndActivity, ScalerError> {
        self.sample_at(metric_name, Utc::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn cfg(pairs: &[(&str, &str)]) -> ScalerConfig {
        pairs
            .iter()
            .fold(ScalerConfig::new("cron", 0), |c, (k, v)| {
                c.with_metadata(*k, *v)
            })
    }

    const VALID: &[(&str, &str)] = &[
        ("timezone", "Etc/UTC"),
        ("start", "0 6 * * *"),
        ("end", "0 20 * * *"),
        ("desiredReplicas", "10"),
    ];

    fn err(pairs: &[(&str, &str)]) -> String {
        match CronScaler::new(&cfg(pairs)) {
            Ok(_) => panic!("expected {pairs:?} to be rejected"),
            Err(e) => e.to_string(),
        }
    }

    #[tokio::test]
    async fn metric_spec_is_named_as_keda_names_it() {
        let scaler = CronScaler::new(&cfg(VALID)).expect("valid");
        let specs = scaler.metric_specs().await.expect("specs");
        assert_eq!(specs.len(), 1);
        assert_eq!(specs[0].name, "s0-cron-Etc-UTC-06xxx-020xxx");
        assert_eq!(specs[0].target.target_type, MetricTargetType::AverageValue);
        assert_eq!(specs[0].target.value.to_string(), "1");

        let tz = cfg(&[
            ("timezone", "America/New_York"),
            ("start", "*/5 * * * ?"),
            ("end", "1/5 * * * ?"),
            ("desiredReplicas", "2"),
        ])
        .with_metric_type("Value");
        let scaler = CronScaler::new(&tz).expect("valid");
        let specs = scaler.metric_specs().await.expect("specs");
        assert_eq!(
            specs[0].name,
            "s0-cron-America-New_York-xSl5xxxQm-1Sl5xxxQm"
        );
        assert_eq!(specs[0].target.target_type, MetricTargetType::Value);
    }

    #[test]
    fn values_inside_and_outside_the_window() {
        let scaler = CronScaler::new(&cfg(VALID)).expect("valid");
        let noon = Utc
            .with_ymd_and_hms(2026, 5, 4, 12, 0, 0)
            .single()
            .expect("t");
        let night = Utc
            .with_ymd_and_hms(2026, 5, 4, 23, 0, 0)
            .single()
            .expect("t");
        let inside = scaler.sample_at("m", noon).expect("poll");
        assert!(inside.active);
        assert_eq!(inside.metrics, vec![MetricValue::new("m", 10.0)]);
        let outside = scaler.sample_at("m", night).expect("poll");
        assert!(!outside.active);
        assert_eq!(outside.metrics[0].value.to_string(), "1");
    }

    #[test]
    fn keda_validation_errors() {
        assert_eq!(
            err(&[
                ("timezone", "Etc/UTC"),
                ("start", "0 6 * * *"),
                ("desiredReplicas", "1")
            ]),
            "triggers[0] (cron): missing required parameter \"end\" in [triggerMetadata]"
        );
        assert_eq!(
            err(&[
                ("timezone", "Etc/UTC"),
                ("start", "0 6 * * *"),
                ("end", "0 6 * * *"),
                ("desiredReplicas", "1")
            ]),
            "triggers[0] (cron): start and end can not have exactly same time input"
        );
        assert!(
            err(&[
                ("timezone", "Mars/Olympus"),
                ("start", "0 6 * * *"),
                ("end", "0 7 * * *"),
                ("desiredReplicas", "1")
            ])
            .contains("unable to load timezone \"Mars/Olympus\"")
        );
        assert!(
            err(&[
                ("timezone", "Etc/UTC"),
                ("start", "0 6 * *"),
                ("end", "0 7 * * *"),
                ("desiredReplicas", "1")
            ])
            .starts_with("triggers[0] (cron): error parsing start schedule: ")
        );
        assert_eq!(
            err(&[
                ("timezone", "Etc/UTC"),
                ("start", "0 6 * * *"),
                ("end", "0 7 * * *"),
                ("desiredReplicas", "0")
            ]),
            "triggers[0] (cron): no desiredReplicas specified"
        );
        assert_eq!(
            err(&[
                ("timezone", "Etc/UTC"),
                ("start", "0 6 * * *"),
                ("end", "0 7 * * *"),
                ("desiredReplicas", "ten")
            ]),
            "triggers[0] (cron): unable to set param \"desiredReplicas\" value \"ten\": \
             expected an integer between -9223372036854775808 and 9223372036854775807"
        );
        let utilization = cfg(VALID).with_metric_type("Utilization");
        assert!(
            CronScaler::new(&utilization)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
                .contains("'Utilization' metric type is unsupported")
        );
    }

    #[test]
    fn registry_builds_cron() {
        let registry = crate::registry();
        assert!(registry.build(&cfg(VALID)).is_ok());
    }
}
