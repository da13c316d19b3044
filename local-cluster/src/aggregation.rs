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
use serde_json::{Value, json};

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
    let port = svc.get("port").and_then(Value::as_i64).unwrap_or(443);
    let backend = match state.backends.lookup(ns, name) {
        Some(b) => b,
        None => endpoint_backend(state, ns, name, port)?,
    };
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

/// The backend of a Service from its objects, as kube-apiserver's aggregator routes to
/// endpoints (`--enable-aggregator-routing`): the Service port the APIService names, its
/// `targetPort` (a number or a port name), and the first ready address of the Endpoints of the
/// same name. There is no kube-proxy here, so a Service without a selector and hand-written
/// Endpoints (a pattern real clusters support) is how a process outside the cluster becomes a
/// backend.
fn endpoint_backend(
    state: &State,
    ns: &str,
    name: &str,
    port: i64,
) -> ApiResult<backends::Backend> {
    let no_backend = |why: &str| {
        unavailable(format!(
            "service \"{ns}/{name}\" has no backend: {why} (create the Service and its Endpoints, or register a backend with LocalCluster::register_service_backend)"
        ))
    };
    let find = |plural: &str| {
        let rt = state.registry.find("", "v1", plural)?;
        objects::get(state, &rt, Some(ns), name).ok()
    };
    let service = find("services").ok_or_else(|| no_backend("no such Service"))?;
    let service_port = service
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .and_then(|ps| {
            ps.iter()
                .find(|p| p.get("port").and_then(Value::as_i64) == Some(port))
        })
        .ok_or_else(|| no_backend(&format!("the Service has no port {port}")))?;
    let target = service_port
        .get("targetPort")
        .cloned()
        .unwrap_or(json!(port));
    let port_name = service_port.get("name").and_then(Value::as_str);
    let endpoints = find("endpoints").ok_or_else(|| no_backend("no Endpoints"))?;
    for subset in endpoints
        .get("subsets")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let ports = subset.get("ports").and_then(Value::as_array);
        let chosen = ports.into_iter().flatten().find(|p| match &target {
            Value::Number(n) => p.get("port").and_then(Value::as_i64) == n.as_i64(),
            Value::String(s) => p.get("name").and_then(Value::as_str) == Some(s.as_str()),
            _ => false,
        });
        let chosen = chosen.or_else(|| {
            ports
                .into_iter()
                .flatten()
                .find(|p| p.get("name").and_then(Value::as_str) == port_name)
        });
        let Some(endpoint_port) = chosen.and_then(|p| p.get("port")).and_then(Value::as_i64) else {
            continue;
        };
        let address = subset
            .get("addresses")
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .and_then(|a| a.get("ip"))
            .and_then(Value::as_str);
        if let Some(ip) = address {
            let host = if ip.contains(':') {
                format!("[{ip}]")
            } else {
                ip.to_string()
            };
            return Ok(backends::Backend {
                url: format!("https://{host}:{endpoint_port}"),
                tls: BackendTls::FromApiService,
            });
        }
    }
    Err(no_backend(
        "its Endpoints have no ready address for the port",
    ))
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

/// Who a proxied request is made for, passed on in `X-Remote-User` / `X-Remote-Group`.
#[derive(Debug, Clone, Copy)]
pub struct RemoteUser<'a> {
    /// User name.
    pub name: &'a str,
    /// Groups.
    pub groups: &'a [&'a str],
}

/// The user every bearer-token client of local-cluster is (kubectl, kube-rs).
pub const LOCAL_ADMIN: RemoteUser<'static> = RemoteUser {
    name: "kedge-local-admin",
    groups: &["system:masters", "system:authenticated"],
};

/// Send one request for `user` to an APIService's backend and return its response as is.
pub async fn forward(
    state: &State,
    apiservice: &Value,
    method: Method,
    path_and_query: &str,
    headers: &HeaderMap,
    body: Bytes,
    user: RemoteUser<'_>,
) -> ApiResult<Response<Incoming>> {
    let (base, trust) = resolve(state, apiservice)?;
    let client = backends::client(&trust, state.front_proxy.as_ref())
        .map_err(|e| unavailable(format!("cannot reach the backend: {e}")))?;
    let mut req = Request::builder()
        .method(method)
        .uri(format!("{base}{path_and_query}"));
    for (k, v) in headers {
        if !HOP_HEADERS.contains(&k.as_str()) {
            req = req.header(k, v);
        }
    }
    req = req.header(
        "X-Remote-User",
        HeaderValue::from_str(user.name)
            .map_err(|e| ApiError::bad_request(format!("invalid user name: {e}")))?,
    );
    for group in user.groups {
        req = req.header(
            "X-Remote-Group",
            HeaderValue::from_str(group)
                .map_err(|e| ApiError::bad_request(format!("invalid group: {e}")))?,
        );
    }
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
