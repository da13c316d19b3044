//! API aggregation: requests under the group/version of an `apiregistration.k8s.io/v1`
//! APIService with a `spec.service` go to that service's registered backend, as kube-apiserver's
//! aggregator does (the caller's credentials are not forwarded; the user is passed in
//! `X-Remote-User`/`X-Remote-Group` headers like the front proxy does).

use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use serde_json::Value;

use crate::backends::{self, BackendTls, Trust};
use crate::error::{ApiError, ApiResult, Reason};
use crate::objects;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::state::State;

const APISERVICES: (&str, &str, &str) = ("apiregistration.k8s.io", "v1", "apiservices");

/// How long to wait for a backend's response headers.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(30);

/// The APIService that delegates `group/version` to a service, if any.
pub fn apiservice_for(state: &State, group: &str, version: &str) -> Option<Value> {
    let rt = state
        .registry
        .find(APISERVICES.0, APISERVICES.1, APISERVICES.2)?;
    let obj = objects::get(state, &rt, None, &format!("{version}.{group}")).ok()?;
    obj.pointer("/spec/service").filter(|s| s.is_object())?;
    Some(obj)
}

/// `(group, version)` of every delegated APIService, for discovery.
pub fn aggregated_group_versions(state: &State) -> Vec<(String, String)> {
    let Some(rt) = state
        .registry
        .find(APISERVICES.0, APISERVICES.1, APISERVICES.2)
    else {
        return Vec::new();
    };
    let (items, _) = objects::select(
        state,
        &rt,
        None,
        &LabelSelector::default(),
        &FieldSelector::default(),
    );
    items
        .iter()
        .filter(|a| a.pointer("/spec/service").is_some_and(Value::is_object))
        .filter_map(|a| {
            let g = a.pointer("/spec/group")?.as_str()?;
            let v = a.pointer("/spec/version")?.as_str()?;
            Some((g.to_string(), v.to_string()))
        })
        .collect()
}

fn unavailable(message: String) -> ApiError {
    ApiError::new(Reason::ServiceUnavailable, message)
}

/// Base URL and trust for an APIService's backend.
pub fn resolve(state: &State, apiservice: &Value) -> ApiResult<(String, Trust)> {
    let svc = apiservice
        .pointer("/spec/service")
        .cloned()
        .unwrap_or(Value::Null);
    let ns = svc
        .get("namespace")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let name = svc.get("name").and_then(Value::as_str).unwrap_or_default();
    let backend = state.backends.lookup(ns, name).ok_or_else(|| {
        unavailable(format!("service \"{ns}/{name}\" has no local backend: register one with LocalCluster::register_service_backend"))
    })?;
    let trust = match backend.tls {
        BackendTls::InsecureSkipVerify => Trust::Insecure,
        BackendTls::Ca(pem) => Trust::Roots {
            ca_pem: pem,
            server_name: None,
        },
        BackendTls::FromApiService => {
            if apiservice
                .pointer("/spec/insecureSkipTLSVerify")
                .and_then(Value::as_bool)
                == Some(true)
            {
                Trust::Insecure
            } else {
                let bundle = apiservice
                    .pointer("/spec/caBundle")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let pem = base64::engine::general_purpose::STANDARD
                    .decode(bundle)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .filter(|p| !p.is_empty())
                    .ok_or_else(|| unavailable(format!("APIService for {ns}/{name} has neither caBundle nor insecureSkipTLSVerify")))?;
                Trust::Roots {
                    ca_pem: pem,
                    server_name: Some(format!("{name}.{ns}.svc")),
                }
            }
        }
    };
    Ok((backend.url.trim_end_matches('/').to_string(), trust))
}

const HOP_HEADERS: &[&str] = &[
    "authorization",
    "host",
    "connection",
    "keep-alive",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
];

/// Send one request to an APIService's backend and return its response as is.
pub async fn forward(
    state: &State,
    apiservice: &Value,
    method: Method,
    path_and_query: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> ApiResult<Response<Incoming>> {
    let (base, trust) = resolve(state, apiservice)?;
    let client = backends::client(&trust)
        .map_err(|e| unavailable(format!("cannot reach the backend: {e}")))?;
    let mut req = Request::builder()
        .method(method)
        .uri(format!("{base}{path_and_query}"));
    for (k, v) in headers {
        if !HOP_HEADERS.contains(&k.as_str()) {
            req = req.header(k, v);
        }
    }
    req = req
        .header(
            "X-Remote-User",
            HeaderValue::from_static("kedge-local-admin"),
        )
        .header("X-Remote-Group", HeaderValue::from_static("system:masters"));
    let req = req
        .body(Full::new(body))
        .map_err(|e| ApiError::bad_request(format!("cannot proxy request: {e}")))?;
    match tokio::time::timeout(UPSTREAM_TIMEOUT, client.request(req)).await {
        Ok(Ok(resp)) => Ok(resp),
        Ok(Err(e)) => Err(unavailable(format!("error trying to reach service: {e}"))),
        Err(_) => Err(unavailable(
            "error trying to reach service: timed out".into(),
        )),
    }
}
