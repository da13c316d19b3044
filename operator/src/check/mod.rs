//! `kedge check`: offline validation of ScaledObjects.
//!
//! For each ScaledObject in the input: KEDA's admission rules, auth and env resolution from the
//! objects in the same input, and every trigger's factory (which contacts nothing). The result
//! is the HPA kedge would create, or the reasons it would not. With `--live`, each trigger is
//! also queried once.

pub mod input;
mod report;

use std::time::Duration;

use scaler_core::Registry;
use serde::Serialize;

use crate::admission;
use crate::crd::ScaledObject;
use crate::hpa::{self, HpaPlan};
use crate::resolve::{self, ResolveSettings};
use crate::trigger_plan::{TriggerContext, TriggerPlan};

pub use input::Inventory;
pub use report::{render_json, render_table};

/// The outcome for one ScaledObject. Serialized as one element of `kedge check -o json`.
#[derive(Clone, Debug, Serialize)]
pub struct ObjectReport {
    /// `metadata.namespace` (default `default`).
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// True when there are no errors.
    pub valid: bool,
    /// Why kedge would not act on it.
    pub errors: Vec<String>,
    /// What works but deserves a look.
    pub warnings: Vec<String>,
    /// The HPA kedge would create, when valid.
    pub hpa: Option<HpaPlan>,
    /// One poll of each metric, with `--live`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live: Option<Vec<LiveSample>>,
}

/// One live query of one metric.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LiveSample {
    /// Metric name.
    pub metric: String,
    /// Value as the HPA would read it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Whether the trigger is active.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
    /// Why the query failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// How to check.
#[derive(Clone, Debug, Default)]
pub struct CheckOptions {
    /// Query each trigger once (contacts the data sources).
    pub live: bool,
    /// Resolution settings.
    pub resolve: ResolveSettings,
    /// Timeout of each live query.
    pub timeout: Option<Duration>,
    /// Address ranges the scalers must not connect to (`--scaler-address-deny-cidrs`).
    pub address_guard: scaler_core::AddressGuard,
}

/// Checks every ScaledObject of `inventory`, in input order.
pub async fn check(
    inventory: &Inventory,
    registry: &Registry,
    options: &CheckOptions,
) -> Vec<ObjectReport> {
    // Typed ScaledObjects, for the checks that compare them with each other.
    let typed: Vec<Result<ScaledObject, String>> = inventory
        .scaled_objects
        .iter()
        .map(|doc| {
            serde_path_to_error::deserialize::<_, ScaledObject>(doc.value.clone()).map_err(|e| {
                let path = e.path().to_string();
                if path == "." {
                    e.inner().to_string()
                } else {
                    format!("{path}: {}", e.inner())
                }
            })
        })
        .collect();
    let all: Vec<&ScaledObject> = typed.iter().filter_map(|r| r.as_ref().ok()).collect();

    let mut reports = Vec::with_capacity(typed.len());
    for (doc, so) in inventory.scaled_objects.iter().zip(&typed) {
        let mut report = ObjectReport {
            namespace: doc.namespace.clone(),
            name: doc.name.clone(),
            valid: false,
            errors: Vec::new(),
            warnings: Vec::new(),
            hpa: None,
            live: None,
        };
        match so {
            Err(e) => report
                .errors
                .push(format!("{}: invalid ScaledObject: {e}", doc.origin)),
            Ok(so) => check_one(inventory, registry, options, doc, so, &all, &mut report).await,
        }
        report.valid = report.errors.is_empty();
        reports.push(report);
    }
    reports
}

async fn check_one(
    inventory: &Inventory,
    registry: &Registry,
    options: &CheckOptions,
    doc: &input::ScaledObjectDoc,
    so: &ScaledObject,
    all: &[&ScaledObject],
    report: &mut ObjectReport,
) {
    let mut so = so.clone();
    so.metadata.namespace = Some(doc.namespace.clone());
    let namespace = doc.namespace.as_str();
    let findings = admission::validate(&so);
    report.errors.extend(findings.errors);
    report.warnings.extend(findings.warnings);
    let others: Vec<ScaledObject> = all
        .iter()
        .map(|o| {
            let mut o = (*o).clone();
            if o.metadata.namespace.is_none() {
                o.metadata.namespace = Some("default".to_owned());
            }
            o
        })
        .collect();
    let other_refs: Vec<&ScaledObject> = others.iter().collect();
    report
        .errors
        .extend(admission::validate_against(&so, &other_refs));

    let target = &so.spec.scale_target_ref;
    let env = match resolve::resolve_env(&inventory.objects, namespace, target) {
        Ok(env) => env,
        Err(e) => {
            report
                .errors
                .push(format!("error resolving env of the scale target: {e}"));
            return;
        }
    };
    report.warnings.extend(env.warnings.iter().cloned());
    let needs_env = so.spec.triggers.iter().any(|t| {
        t.metadata.keys().any(|k| k.ends_with("FromEnv"))
            || t.authentication_ref.as_ref().is_some_and(|r| {
                use crate::resolve::ObjectSource as _;
                let spec = match r.kind() {
                    crate::crd::AuthenticationRefKind::TriggerAuthentication => inventory
                        .objects
                        .trigger_authentication(namespace, &r.name)
                        .map(|ta| ta.spec.clone()),
                    crate::crd::AuthenticationRefKind::ClusterTriggerAuthentication => inventory
                        .objects
                        .cluster_trigger_authentication(&r.name)
                        .map(|cta| cta.spec.0.clone()),
                };
                spec.is_some_and(|s| s.env.is_some_and(|e| !e.is_empty()))
            })
    });
    if needs_env && !inventory.has_workload(namespace, target) {
        report.warnings.push(format!(
            "scale target {} {namespace}/{} is not in the input, so its container env is unknown: <param>FromEnv values resolve to nothing",
            target.kind(),
            target.name
        ));
    }

    let plan = TriggerPlan::new(
        &inventory.objects,
        &options.resolve,
        TriggerContext {
            namespace,
            scaled_object: &doc.name,
            timeout: options.timeout.unwrap_or(scaler_core::DEFAULT_TIMEOUT),
            address_guard: &options.address_guard,
        },
        &so.spec,
        &env,
    );
    report.errors.extend(plan.errors.iter().cloned());
    report.warnings.extend(plan.warnings.iter().cloned());
    let mut external = Vec::new();
    let mut scalers = Vec::new();
    for cfg in &plan.scalers {
        let id = &cfg.trigger;
        if let Some(factory) = registry.factory(&id.trigger_type) {
            let declared = factory.params();
            if !declared.is_empty() {
                for key in scaler_core::params::unknown_metadata_keys(declared, cfg) {
                    report.warnings.push(format!(
                        "{id}: metadata {key:?} is not a parameter of the {} scaler (typo?)",
                        id.trigger_type
                    ));
                }
            }
        }
        match crate::access::build_scaler(registry, cfg).await {
            Err(e) => report.errors.push(e.to_string()),
            // Most scalers know their specs without I/O; external scalers ask their server,
            // which an offline check may not reach: that is a warning, not a broken manifest.
            Ok(scaler) => match tokio::time::timeout(cfg.timeout, scaler.metric_specs()).await {
                Ok(Ok(specs)) if specs.is_empty() => {
                    report.errors.push(format!("{id}: got empty metric spec"));
                }
                Ok(Ok(specs)) => {
                    external.extend(specs.iter().cloned());
                    scalers.push((scaler, specs));
                }
                Ok(Err(e @ scaler_core::ScalerError::InvalidConfig { .. })) => {
                    report.errors.push(e.to_string());
                }
                Ok(Err(e)) if !options.live => report.warnings.push(format!(
                    "{e} (the metric spec comes from the source; the HPA below lacks it)"
                )),
                Ok(Err(e)) => report.errors.push(e.to_string()),
                Err(_) if !options.live => report.warnings.push(format!(
                    "{id}: the source did not give its metric spec within {:?}; the HPA below lacks it",
                    cfg.timeout
                )),
                Err(_) => report
                    .errors
                    .push(format!("{id}: no metric spec within {:?}", cfg.timeout)),
            },
        }
    }
    if !report.errors.is_empty() {
        return;
    }
    match hpa::plan(&so, &external, plan.resource_metrics) {
        Ok(plan) => report.hpa = Some(plan),
        Err(e) => report.errors.push(e),
    }
    if options.live && report.errors.is_empty() {
        let timeout = options.timeout.unwrap_or(scaler_core::DEFAULT_TIMEOUT);
        let mut samples = Vec::new();
        for (scaler, specs) in &scalers {
            for spec in specs {
                let sample =
                    match tokio::time::timeout(timeout, scaler.metrics_and_activity(&spec.name))
                        .await
                    {
                        Ok(Ok(m)) => LiveSample {
                            metric: spec.name.clone(),
                            value: Some(
                                m.metrics
                                    .iter()
                                    .map(|v| v.value.to_string())
                                    .collect::<Vec<_>>()
                                    .join(","),
                            ),
                            active: Some(m.active),
                            error: None,
                        },
                        Ok(Err(e)) => LiveSample {
                            metric: spec.name.clone(),
                            value: None,
                            active: None,
                            error: Some(e.to_string()),
                        },
                        Err(_) => LiveSample {
                            metric: spec.name.clone(),
                            value: None,
                            active: None,
                            error: Some(format!("no answer within {timeout:?}")),
                        },
                    };
                samples.push(sample);
            }
            scaler.close().await;
        }
        report.live = Some(samples);
    }
}
