//! What the triggers of one ScaledObject become: a [`ScalerConfig`] for each trigger that has a
//! scaler, a Resource metric for each `cpu`/`memory` trigger. The one place the reconciler and
//! `kedge check` turn triggers into configurations, so both see the same errors and warnings.

use std::collections::BTreeSet;
use std::hash::{DefaultHasher, Hash as _, Hasher as _};
use std::time::Duration;

use scaler_core::{AddressGuard, ScalerConfig, TriggerId};

use crate::crd::{MetricType, ScaleTriggers, ScaledObjectSpec};
use crate::hpa::{self, PlannedMetric};
use crate::resolve::{self, ObjectSource, ResolveSettings, ResolvedAuth, ResolvedEnv};

/// Where the triggers belong and how their sources are called.
#[derive(Clone, Copy, Debug)]
pub struct TriggerContext<'a> {
    /// Namespace of the ScaledObject.
    pub namespace: &'a str,
    /// Name of the ScaledObject.
    pub scaled_object: &'a str,
    /// Timeout of calls to the data source.
    pub timeout: Duration,
    /// Address ranges the scalers must not connect to (`--scaler-address-deny-cidrs`).
    pub address_guard: &'a AddressGuard,
}

/// The plan for every trigger of one ScaledObject, in spec order.
#[derive(Clone, Debug, Default)]
pub struct TriggerPlan {
    /// One configuration per trigger that has a scaler (all but `cpu`/`memory`).
    pub scalers: Vec<ScalerConfig>,
    /// The HPA Resource metric of each valid `cpu`/`memory` trigger.
    pub resource_metrics: Vec<PlannedMetric>,
    /// Why a `cpu`/`memory` trigger is invalid, as `<trigger>: <why>`.
    pub errors: Vec<String>,
    /// What resolution could not find, as `<trigger>: <why>` (the params stay empty).
    pub warnings: Vec<String>,
    /// `podIdentity` providers the TriggerAuthentications name (other than `none`).
    pub pod_identities: BTreeSet<String>,
}

impl TriggerPlan {
    /// Plans every trigger of `spec`, resolving auth from `source` and env from `env`.
    pub fn new(
        source: &dyn ObjectSource,
        settings: &ResolveSettings,
        ctx: TriggerContext<'_>,
        spec: &ScaledObjectSpec,
        env: &ResolvedEnv,
    ) -> Self {
        let as_metric_source = spec.scaling_formula().is_some();
        let mut plan = Self::default();
        for (index, trigger) in spec.triggers.iter().enumerate() {
            let id = trigger_id(index, trigger);
            if trigger.is_resource() {
                match hpa::resource_metric(trigger) {
                    Ok(m) => plan.resource_metrics.push(m),
                    Err(e) => plan.errors.push(format!("{id}: {e}")),
                }
                continue;
            }
            let auth = resolve::resolve_auth(source, settings, ctx.namespace, trigger, env);
            plan.warnings
                .extend(auth.warnings.iter().map(|w| format!("{id}: {w}")));
            if let Some(provider) = &auth.pod_identity {
                plan.pod_identities.insert(provider.clone());
            }
            plan.scalers.push(scaler_config(
                &ctx,
                as_metric_source,
                id,
                trigger,
                auth,
                env,
            ));
        }
        plan
    }

    /// A hash of everything the scalers are built from: equal fingerprints mean the scalers
    /// (and their connections) can be reused. Secret values go into the hash, never into a log.
    pub fn fingerprint(&self) -> u64 {
        let mut h = DefaultHasher::new();
        for cfg in &self.scalers {
            cfg.trigger.hash(&mut h);
            cfg.metadata.hash(&mut h);
            for (k, v) in &cfg.auth_params {
                k.hash(&mut h);
                v.expose().hash(&mut h);
            }
            for (k, v) in &cfg.resolved_env {
                k.hash(&mut h);
                v.expose().hash(&mut h);
            }
            cfg.metric_type.hash(&mut h);
            cfg.use_cached_metrics.hash(&mut h);
            cfg.as_metric_source.hash(&mut h);
            cfg.timeout.hash(&mut h);
            cfg.pod_identity.hash(&mut h);
        }
        h.finish()
    }
}

fn trigger_id(index: usize, trigger: &ScaleTriggers) -> TriggerId {
    TriggerId {
        index,
        trigger_type: trigger.type_.clone(),
        name: trigger.name.clone().filter(|n| !n.is_empty()),
    }
}

fn scaler_config(
    ctx: &TriggerContext<'_>,
    as_metric_source: bool,
    trigger_id: TriggerId,
    trigger: &ScaleTriggers,
    auth: ResolvedAuth,
    env: &ResolvedEnv,
) -> ScalerConfig {
    ScalerConfig {
        trigger: trigger_id,
        metadata: trigger.metadata.clone(),
        auth_params: auth.params,
        resolved_env: env.vars.clone(),
        metric_type: match trigger.metric_type {
            None => "",
            Some(MetricType::AverageValue) => "AverageValue",
            Some(MetricType::Value) => "Value",
            Some(MetricType::Utilization) => "Utilization",
        }
        .to_owned(),
        use_cached_metrics: trigger.use_cached_metrics(),
        pod_identity: auth.pod_identity,
        namespace: ctx.namespace.to_owned(),
        scaled_object: ctx.scaled_object.to_owned(),
        timeout: ctx.timeout,
        as_metric_source,
        address_guard: ctx.address_guard.clone(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::resolve::Snapshot;

    fn spec(triggers: serde_json::Value, advanced: serde_json::Value) -> ScaledObjectSpec {
        serde_json::from_value(serde_json::json!({
            "scaleTargetRef": {"name": "web"},
            "triggers": triggers,
            "advanced": advanced,
        }))
        .unwrap()
    }

    fn plan(spec: &ScaledObjectSpec) -> TriggerPlan {
        TriggerPlan::new(
            &Snapshot::default(),
            &ResolveSettings::default(),
            TriggerContext {
                namespace: "default",
                scaled_object: "web",
                timeout: Duration::from_secs(3),
                address_guard: &AddressGuard::default(),
            },
            spec,
            &ResolvedEnv::default(),
        )
    }

    #[test]
    fn resource_triggers_become_metrics_and_the_rest_scalers_in_spec_order() {
        let s = spec(
            serde_json::json!([
                {"type": "cpu", "metricType": "Utilization", "metadata": {"value": "50"}},
                {"type": "cron", "name": "a", "metadata": {}},
                {"type": "memory", "metricType": "Value", "metadata": {"value": "1Gi"}},
                {"type": "kafka", "metadata": {}},
            ]),
            serde_json::json!(null),
        );
        let p = plan(&s);
        assert_eq!(p.resource_metrics.len(), 1);
        assert_eq!(p.errors.len(), 1);
        assert!(
            p.errors[0].starts_with("triggers[2] (memory): "),
            "{:?}",
            p.errors
        );
        let ids: Vec<_> = p.scalers.iter().map(|c| c.trigger.index).collect();
        assert_eq!(ids, [1, 3]);
        assert_eq!(p.scalers[0].trigger.name.as_deref(), Some("a"));
        assert!(p.scalers.iter().all(|c| !c.as_metric_source));
    }

    #[test]
    fn a_formula_makes_every_scaler_a_metric_source_and_changes_the_fingerprint() {
        let triggers = serde_json::json!([{"type": "cron", "name": "a", "metadata": {}}]);
        let without = plan(&spec(triggers.clone(), serde_json::json!(null)));
        let blank = plan(&spec(
            triggers.clone(),
            serde_json::json!({"scalingModifiers": {"formula": "  ", "target": "1"}}),
        ));
        let with = plan(&spec(
            triggers,
            serde_json::json!({"scalingModifiers": {"formula": "a", "target": "1"}}),
        ));
        assert!(with.scalers[0].as_metric_source);
        assert!(!blank.scalers[0].as_metric_source);
        assert_eq!(without.fingerprint(), blank.fingerprint());
        assert_ne!(without.fingerprint(), with.fingerprint());
    }
}
