//! The HTTP routes: discovery, health, OpenAPI, and the external-metrics read.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;

use crate::discovery;
use crate::provider::{MetricsProvider, ProviderError};
use crate::selector;
use crate::status::ApiError;

/// What handlers share.
#[derive(Clone)]
pub(crate) struct AppState {
    pub provider: Arc<dyn MetricsProvider>,
    pub provider_timeout: Duration,
}

/// The router, with every error as a Kubernetes `Status`.
pub(crate) fn router(state: AppState) -> Router {
    let json = |body: &'static std::sync::LazyLock<Bytes>| {
        get(move || async move { json_response(StatusCode::OK, (*body).clone()) })
            .fallback(method_not_allowed)
    };
    let ok = || {
        get(|| async {
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                "ok",
            )
        })
        .fallback(method_not_allowed)
    };
    Router::new()
        .route("/healthz", ok())
        .route("/livez", ok())
        .route("/readyz", ok())
        .route("/apis", json(&discovery::API_GROUP_LIST))
        .route("/apis/external.metrics.k8s.io", json(&discovery::API_GROUP))
        .route(
            "/apis/external.metrics.k8s.io/v1beta1",
            json(&discovery::API_RESOURCE_LIST),
        )
        .route("/openapi/v2", json(&discovery::OPENAPI_V2))
        .route("/openapi/v3", json(&discovery::OPENAPI_V3))
        .route(
            "/apis/external.metrics.k8s.io/v1beta1/namespaces/{namespace}/{metric}",
            get(external_metric).fallback(method_not_allowed),
        )
        .fallback(|| async { ApiError::path_not_found() })
        .with_state(state)
}

fn json_response(code: StatusCode, body: impl Into<axum::body::Body>) -> Response {
    let mut response = (code, body.into()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

async fn method_not_allowed(method: http::Method) -> ApiError {
    ApiError::method_not_allowed(&method)
}

/// `ExternalMetricValueList` (`external.metrics.k8s.io/v1beta1`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExternalMetricValueList<'a> {
    kind: &'static str,
    api_version: &'static str,
    metadata: Empty,
    items: Vec<ExternalMetricValue<'a>>,
}

#[derive(Serialize)]
struct Empty {}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExternalMetricValue<'a> {
    metric_name: &'a str,
    /// `null`, as KEDA sends it: kedge's values carry no labels.
    metric_labels: Option<()>,
    timestamp: &'a str,
    value: String,
}

/// Aborts a spawned task when dropped (the HPA hung up, or the timeout fired).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn external_metric(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    RawQuery(query): RawQuery,
) -> Response {
    match external_metric_inner(state, path, query).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn external_metric_inner(
    state: AppState,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Option<String>,
) -> Result<Response, ApiError> {
    let Path((namespace, metric)) = path.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let selector = query
        .as_deref()
        .and_then(|q| {
            form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "labelSelector")
                .map(|(_, v)| v.into_owned())
        })
        .unwrap_or_default();
    let requirements =
        selector::parse(&selector).map_err(|e| ApiError::bad_request(e.to_string()))?;
    // KEDA's wording (pkg/provider/provider.go).
    let scaled_object = selector::scaled_object_name(&requirements)
        .ok_or_else(|| ApiError::bad_request("scaledObject name is not specified"))?
        .to_owned();

    // The provider runs in its own task: a panic in it becomes a 500 for this request instead
    // of killing the connection, and the timeout (or the caller hanging up) cancels it.
    let provider = Arc::clone(&state.provider);
    let (ns, so, m) = (namespace.clone(), scaled_object.clone(), metric.clone());
    let mut task = AbortOnDrop(tokio::spawn(
        async move { provider.metric(&ns, &so, &m).await },
    ));
    let result = match tokio::time::timeout(state.provider_timeout, &mut task.0).await {
        Err(_) => {
            return Err(ApiError::timeout(format!(
                "metric:{metric} timed out after {:?} getting values for ScaledObject {namespace}/{scaled_object}",
                state.provider_timeout
            )));
        }
        Ok(Err(join)) => {
            tracing::error!(%namespace, %scaled_object, %metric, error = %join, "metrics provider panicked");
            return Err(ApiError::internal(format!(
                "metric:{metric} encountered error: internal error"
            )));
        }
        Ok(Ok(result)) => result,
    };
    let values = result.map_err(|e| provider_error(e, &namespace, &scaled_object, &metric))?;

    let timestamp = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let list = ExternalMetricValueList {
        kind: "ExternalMetricValueList",
        api_version: discovery::GROUP_VERSION,
        metadata: Empty {},
        items: values
            .iter()
            .map(|v| ExternalMetricValue {
                metric_name: &v.metric_name,
                metric_labels: None,
                timestamp: &timestamp,
                value: v.value.to_string(),
            })
            .collect(),
    };
    let body = serde_json::to_vec(&list).map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(json_response(StatusCode::OK, body))
}

fn provider_error(
    e: ProviderError,
    namespace: &str,
    scaled_object: &str,
    metric: &str,
) -> ApiError {
    match e {
        ProviderError::ScaledObjectNotFound => ApiError::not_found(
            format!("scaledobjects.keda.sh {scaled_object:?} not found in namespace {namespace:?}"),
            scaled_object,
            "keda.sh",
            "scaledobjects",
        ),
        ProviderError::MetricNotFound => ApiError::not_found(
            format!(
                "{}.{} {metric:?} not found: ScaledObject {namespace}/{scaled_object} has no such metric",
                discovery::RESOURCE,
                discovery::GROUP
            ),
            metric,
            discovery::GROUP,
            discovery::RESOURCE,
        ),
        ProviderError::NotLeader => ApiError::unavailable(format!(
            "metric:{metric} is served by the leader replica, and this one cannot reach it"
        )),
        // KEDA's shape: "metric:<name> encountered error", with the cause after it.
        ProviderError::Failed(cause) => {
            ApiError::internal(format!("metric:{metric} encountered error: {cause}"))
        }
        ProviderError::Unavailable(cause) => {
            ApiError::unavailable(format!("metric:{metric} unavailable: {cause}"))
        }
    }
}
