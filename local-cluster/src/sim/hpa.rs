//! The HorizontalPodAutoscaler controller loop: every sync period, for each autoscaling/v2 HPA,
//! read the target's /scale, fetch each External metric from the external-metrics APIService
//! exactly as kube-controller-manager does, compute and normalise the desired replicas
//! ([`super::hpa_algorithm`]), write the target's /scale and the HPA's status, and record an Event
//! on rescale. Metric types other than External are reported as unsupported.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method};
use http_body_util::BodyExt;
use serde_json::{Value, json};

use super::hpa_algorithm::{Behavior, History, average_value_replicas, value_replicas};
use super::set_condition;
use crate::aggregation;
use crate::objects::{self, WriteOptions};
use crate::quantity::{format_milli, parse_milli};
use crate::resources::ResourceType;
use crate::selectors::{FieldSelector, LabelSelector, label_selector_string};
use crate::state::State;

/// kube-controller-manager's HPA flags.
#[derive(Debug, Clone)]
pub struct HpaConfig {
    /// `--horizontal-pod-autoscaler-sync-period`
    pub sync_period: Duration,
    /// `--horizontal-pod-autoscaler-downscale-stabilization`
    pub downscale_stabilization: Duration,
    /// `--horizontal-pod-autoscaler-tolerance`
    pub tolerance: f64,
}

/// Metric fetches give up after this long (the metrics client's timeout).
const METRIC_TIMEOUT: Duration = Duration::from_secs(5);

/// Run until the task is aborted.
pub async fn run(state: Arc<State>, config: HpaConfig) {
    let mut histories: HashMap<String, History> = HashMap::new();
    let mut tick = tokio::time::interval(config.sync_period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(rt) = state
            .registry
            .find("autoscaling", "v2", "horizontalpodautoscalers")
        else {
            return;
        };
        let (hpas, _) = objects::select(
            &state,
            &rt,
            None,
            &LabelSelector::default(),
            &FieldSelector::default(),
        );
        let uid = |h: &Value| {
            h.pointer("/metadata/uid")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let live: HashSet<String> = hpas.iter().map(&uid).collect();
        histories.retain(|k, _| live.contains(k));
        for hpa in hpas {
            // Most HPAs need no await (scaling disabled at zero replicas), so without this a sync
            // of thousands would hold a worker thread, and the API requests queued behind it,
            // for the whole pass.
            tokio::task::consume_budget().await;
            if hpa.pointer("/metadata/deletionTimestamp").is_some() {
                continue;
            }
            let history = histories.entry(uid(&hpa)).or_default();
            reconcile(&state, &config, &rt, &hpa, history).await;
        }
    }
}

struct MetricResult {
    replicas: i32,
    status: Value,
    name: String,
}

async fn reconcile(
    state: &State,
    config: &HpaConfig,
    hpa_rt: &ResourceType,
    hpa: &Value,
    history: &mut History,
) {
    let ns = hpa
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let name = hpa
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let spec = hpa.get("spec").cloned().unwrap_or(json!({}));
    let mut conditions = hpa
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut status = hpa
        .get("status")
        .cloned()
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}));
    status["observedGeneration"] = hpa
        .pointer("/metadata/generation")
        .cloned()
        .unwrap_or(json!(1));

    let target = match scale_target(state, &ns, &spec) {
        Ok(t) => t,
        Err(message) => {
            set_condition(
                &mut conditions,
                "AbleToScale",
                "False",
                "FailedGetScale",
                &message,
            );
            status["conditions"] = Value::Array(conditions);
            write_status(state, hpa_rt, &ns, &name, status);
            return;
        }
    };
    let (target_rt, target_name, scale) = target;
    // Replica counts are int32 in the API; clamp whatever is stored.
    let int32 = |v: Option<&Value>, default: i64| {
        let n = v.and_then(Value::as_i64).unwrap_or(default);
        i32::try_from(n.clamp(0, i64::from(i32::MAX))).unwrap_or(i32::MAX)
    };
    let current = int32(scale.pointer("/spec/replicas"), 0);
    let status_replicas = int32(scale.pointer("/status/replicas"), 0);
    let min = int32(spec.get("minReplicas"), 1);
    let max = int32(spec.get("maxReplicas"), 1);
    let now = Instant::now();
    history.record_initial(now, current);
    let behavior = spec
        .get("behavior")
        .filter(|b| b.is_object())
        .map(|b| Behavior::from_spec(b, config.downscale_stabilization));

    let mut rescale_reason = String::new();
    let (desired, rescale) = if current == 0 && min != 0 {
        set_condition(
            &mut conditions,
            "ScalingActive",
            "False",
            "ScalingDisabled",
            "scaling is disabled since the replica count of the target is zero",
        );
        (0, false)
    } else if current > max {
        rescale_reason = "Current number of replicas above Spec.MaxReplicas".into();
        (max, true)
    } else if current < min {
        rescale_reason = "Current number of replicas below Spec.MinReplicas".into();
        (min, true)
    } else {
        let mut results = Vec::new();
        let mut errors = Vec::new();
        let mut metric_statuses = Vec::new();
        for metric in spec
            .get("metrics")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
        {
            match external_metric(state, config, &ns, &metric, current, status_replicas).await {
                Ok(r) => {
                    metric_statuses.push(r.status.clone());
                    results.push(r);
                }
                Err(e) => errors.push(e),
            }
        }
        if results.is_empty() {
            let message = errors
                .first()
                .cloned()
                .unwrap_or_else(|| "no metrics configured".into());
            set_condition(
                &mut conditions,
                "AbleToScale",
                "True",
                "SucceededGetScale",
                "the HPA controller was able to get the target's current scale",
            );
            set_condition(
                &mut conditions,
                "ScalingActive",
                "False",
                "FailedGetExternalMetric",
                &message,
            );
            status["currentReplicas"] = json!(current);
            status["desiredReplicas"] = status
                .get("desiredReplicas")
                .cloned()
                .unwrap_or(json!(current));
            status["currentMetrics"] = Value::Array(metric_statuses);
            status["conditions"] = Value::Array(conditions);
            write_status(state, hpa_rt, &ns, &name, status);
            return;
        }
        let mut best = &results[0];
        for r in &results {
            if r.replicas > best.replicas {
                best = r;
            }
        }
        let proposed = best.replicas;
        set_condition(
            &mut conditions,
            "ScalingActive",
            "True",
            "ValidMetricFound",
            &format!(
                "the HPA was able to successfully calculate a replica count from {}",
                best.name
            ),
        );
        status["currentMetrics"] = Value::Array(metric_statuses);
        let normalized = match &behavior {
            Some(b) => history.normalize_with_behavior(now, b, current, proposed, min, max),
            None => history.normalize_legacy(
                now,
                config.downscale_stabilization,
                current,
                proposed,
                min,
                max,
            ),
        };
        let limited = if normalized.limited { "True" } else { "False" };
        set_condition(
            &mut conditions,
            "ScalingLimited",
            limited,
            normalized.reason,
            normalized.message,
        );
        match normalized.stabilized {
            Some("ScaleUpStabilized") => set_condition(
                &mut conditions,
                "AbleToScale",
                "True",
                "ScaleUpStabilized",
                "recent recommendations were lower than current one, applying the lowest recent recommendation",
            ),
            Some(_) => set_condition(
                &mut conditions,
                "AbleToScale",
                "True",
                "ScaleDownStabilized",
                "recent recommendations were higher than current one, applying the highest recent recommendation",
            ),
            None => set_condition(
                &mut conditions,
                "AbleToScale",
                "True",
                "ReadyForNewScale",
                "recommended size matches current size",
            ),
        }
        rescale_reason = if normalized.desired > current {
            format!("{} above target", best.name)
        } else {
            "All metrics below target".into()
        };
        (normalized.desired, normalized.desired != current)
    };

    if rescale {
        let body = json!({"spec": {"replicas": desired}});
        match objects::update_scale(
            state,
            &target_rt,
            Some(&ns),
            &target_name,
            &body,
            &WriteOptions::default(),
        ) {
            Ok(_) => {
                set_condition(
                    &mut conditions,
                    "AbleToScale",
                    "True",
                    "SucceededRescale",
                    &format!("the HPA controller was able to update the target scale to {desired}"),
                );
                history.record_scale(now, behavior.as_ref(), current, desired);
                status["lastScaleTime"] =
                    json!(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
                record_event(
                    state,
                    hpa,
                    &format!("New size: {desired}; reason: {rescale_reason}"),
                );
            }
            Err(e) => {
                set_condition(
                    &mut conditions,
                    "AbleToScale",
                    "False",
                    "FailedUpdateScale",
                    &format!(
                        "the HPA controller was unable to update the target scale: {}",
                        e.message
                    ),
                );
            }
        }
    }
    status["currentReplicas"] = json!(current);
    status["desiredReplicas"] = json!(desired);
    status["conditions"] = Value::Array(conditions);
    write_status(state, hpa_rt, &ns, &name, status);
}

fn write_status(state: &State, rt: &ResourceType, ns: &str, name: &str, status: Value) {
    let _ = objects::modify(state, rt, ns, name, |o| o["status"] = status);
}

/// Resolve `scaleTargetRef` and read its /scale.
fn scale_target(
    state: &State,
    ns: &str,
    spec: &Value,
) -> Result<(Arc<ResourceType>, String, Value), String> {
    let target = spec.get("scaleTargetRef").cloned().unwrap_or(Value::Null);
    let api_version = target
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let kind = target
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let name = target
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let rt = state
        .registry
        .find_kind(group, version, kind)
        .ok_or_else(|| format!("the HPA controller was unable to get the target's current scale: no matches for kind \"{kind}\" in group \"{group}\""))?;
    let scale = objects::get_scale(state, &rt, Some(ns), name).map_err(|e| {
        format!(
            "the HPA controller was unable to get the target's current scale: {}",
            e.message
        )
    })?;
    Ok((rt, name.to_string(), scale))
}

/// One External metric: fetch, sum, and turn into a replica proposal and a status entry.
async fn external_metric(
    state: &State,
    config: &HpaConfig,
    ns: &str,
    metric: &Value,
    current: i32,
    status_replicas: i32,
) -> Result<MetricResult, String> {
    let kind = metric
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if kind != "External" {
        return Err(format!(
            "metrics of type {kind:?} are not supported by local-cluster (no pods, no metrics-server)"
        ));
    }
    let ext = metric.get("external").cloned().unwrap_or(Value::Null);
    let metric_name = ext
        .pointer("/metric/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let selector = ext
        .pointer("/metric/selector")
        .cloned()
        .unwrap_or(Value::Null);
    let target = ext.get("target").cloned().unwrap_or(Value::Null);
    let usage = fetch_external(state, ns, &metric_name, &selector)
        .await
        .map_err(|e| format!("unable to get external metric {ns}/{metric_name}/{selector}: {e}"))?;
    let quantity = |key: &str| {
        target
            .get(key)
            .and_then(Value::as_str)
            .and_then(parse_milli)
            .filter(|q| *q > 0)
    };
    let mut metric_id = json!({"name": metric_name});
    if !selector.is_null() {
        metric_id["selector"] = selector.clone();
    }
    match target.get("type").and_then(Value::as_str) {
        Some("Value") => {
            let t = quantity("value").ok_or("invalid external metric target value")?;
            let replicas = value_replicas(current, usage, t, config.tolerance);
            Ok(MetricResult {
                replicas,
                status: json!({"type": "External", "external": {"metric": metric_id, "current": {"value": format_milli(usage)}}}),
                name: format!("external metric {metric_name}({selector})"),
            })
        }
        Some("AverageValue") => {
            let t =
                quantity("averageValue").ok_or("invalid external metric target averageValue")?;
            let replicas = average_value_replicas(status_replicas, usage, t, config.tolerance);
            let per_pod = if status_replicas > 0 {
                (usage as f64 / f64::from(status_replicas)).ceil() as i128
            } else {
                usage
            };
            Ok(MetricResult {
                replicas,
                status: json!({"type": "External", "external": {"metric": metric_id, "current": {"averageValue": format_milli(per_pod)}}}),
                name: format!("external metric {metric_name}({selector})"),
            })
        }
        other => Err(format!("invalid external metric target type {other:?}")),
    }
}

/// `GET /apis/external.metrics.k8s.io/v1beta1/namespaces/{ns}/{metric}?labelSelector=...`
/// through the aggregation layer; the sum of the items' values in milli-units.
async fn fetch_external(
    state: &State,
    ns: &str,
    metric: &str,
    selector: &Value,
) -> Result<i128, String> {
    let apiservice = aggregation::apiservice_for(state, "external.metrics.k8s.io", "v1beta1")
        .ok_or("the server could not find the requested resource (no APIService v1beta1.external.metrics.k8s.io)")?;
    let mut path = format!("/apis/external.metrics.k8s.io/v1beta1/namespaces/{ns}/{metric}");
    let sel = if selector.is_null() {
        String::new()
    } else {
        label_selector_string(selector)
    };
    if !sel.is_empty() {
        path.push_str("?labelSelector=");
        path.extend(form_urlencoded::byte_serialize(sel.as_bytes()));
    }
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::ACCEPT,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(
        http::header::USER_AGENT,
        HeaderValue::from_static(
            "kube-controller-manager/v1.32.0 (local-cluster) horizontal-pod-autoscaler",
        ),
    );
    let fetch = async {
        let resp = aggregation::forward(
            state,
            &apiservice,
            Method::GET,
            &path,
            &headers,
            Bytes::new(),
            // kube-controller-manager's HPA controller runs as this service account; a metrics
            // server authorizes it with a SubjectAccessReview.
            aggregation::RemoteUser {
                name: "system:serviceaccount:kube-system:horizontal-pod-autoscaler",
                groups: &[
                    "system:serviceaccounts",
                    "system:serviceaccounts:kube-system",
                    "system:authenticated",
                ],
            },
        )
        .await
        .map_err(|e| e.message)?;
        let code = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok::<_, String>((code, body))
    };
    let (code, body) = tokio::time::timeout(METRIC_TIMEOUT, fetch)
        .await
        .map_err(|_| "timed out".to_string())??;
    let parsed: Value =
        serde_json::from_slice(&body).map_err(|e| format!("invalid response ({code}): {e}"))?;
    if !code.is_success() {
        let msg = parsed
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("request failed");
        return Err(format!(
            "unable to fetch metrics from external metrics API: {msg} ({code})"
        ));
    }
    let items = parsed
        .get("items")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if items.is_empty() {
        return Err("no metrics returned from external metrics API".into());
    }
    let mut sum: i128 = 0;
    for item in items {
        let v = item
            .get("value")
            .and_then(Value::as_str)
            .ok_or("metric item without value")?;
        sum += parse_milli(v).ok_or_else(|| format!("invalid quantity {v:?}"))?;
    }
    Ok(sum)
}

fn record_event(state: &State, hpa: &Value, message: &str) {
    let Some(rt) = state.registry.find("", "v1", "events") else {
        return;
    };
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let meta = hpa.get("metadata").cloned().unwrap_or(json!({}));
    let ns = meta
        .get("namespace")
        .and_then(Value::as_str)
        .unwrap_or("default");
    let name = meta.get("name").and_then(Value::as_str).unwrap_or_default();
    let event = json!({
        "metadata": {"generateName": format!("{name}.")},
        "involvedObject": {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "namespace": ns, "name": name, "uid": meta.get("uid")},
        "reason": "SuccessfulRescale",
        "message": message,
        "type": "Normal",
        "source": {"component": "horizontal-pod-autoscaler"},
        "reportingComponent": "horizontal-pod-autoscaler",
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    });
    let _ = objects::create(state, &rt, Some(ns), event, &WriteOptions::default());
}
