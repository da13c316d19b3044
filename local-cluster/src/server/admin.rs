//! `/local-cluster/...`: the fault rules and the write audit log over HTTP, for tests that run
//! the cluster in another process. Not a Kubernetes API; behind the same bearer token.

use bytes::Bytes;
use http::{Method, Response, Uri};
use serde_json::Value;

use super::{Body, error_response, json_response};
use crate::error::{ApiError, Reason};
use crate::faults::FaultRule;
use crate::state::State;

/// Path prefix of the admin endpoints.
pub const PREFIX: &str = "/local-cluster";

/// Whether `path` is an admin endpoint.
pub fn is_admin(path: &str) -> bool {
    path.strip_prefix(PREFIX)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

fn json<T: serde::Serialize>(code: u16, value: &T) -> Response<Body> {
    json_response(
        code,
        &serde_json::to_value(value).unwrap_or(Value::Null),
        &[],
    )
}

fn fault_not_found(id: &str) -> Response<Body> {
    error_response(&ApiError::new(
        Reason::NotFound,
        format!("fault {id:?} not found"),
    ))
}

/// Answer one admin request.
pub fn handle(state: &State, method: &Method, uri: &Uri, body: &Bytes) -> Response<Body> {
    let rest = uri
        .path()
        .strip_prefix(PREFIX)
        .unwrap_or_default()
        .trim_matches('/');
    let segs: Vec<&str> = rest.split('/').collect();
    match (method, segs.as_slice()) {
        (&Method::GET, ["faults"]) => json(200, &state.faults.list()),
        (&Method::POST, ["faults"]) => {
            let rule: FaultRule = match serde_json::from_slice(body) {
                Ok(rule) => rule,
                Err(e) => {
                    return error_response(&ApiError::bad_request(format!(
                        "not a fault rule: {e}"
                    )));
                }
            };
            match state.faults.add(rule) {
                Ok(fault) => json(201, &fault),
                Err(e) => error_response(&ApiError::bad_request(e)),
            }
        }
        (&Method::DELETE, ["faults"]) => json(200, &state.faults.clear()),
        (&Method::GET, ["faults", id]) => match id.parse().ok().and_then(|id| state.faults.get(id))
        {
            Some(fault) => json(200, &fault),
            None => fault_not_found(id),
        },
        (&Method::DELETE, ["faults", id]) => {
            match id.parse().ok().and_then(|id| state.faults.remove(id)) {
                Some(fault) => json(200, &fault),
                None => fault_not_found(id),
            }
        }
        (&Method::GET, ["audit"]) => {
            let since = form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes())
                .find(|(k, _)| k == "since")
                .map(|(_, v)| v.parse::<u64>().map_err(|_| v.into_owned()))
                .transpose();
            match since {
                Ok(since) => json(200, &state.audit.since(since.unwrap_or(0))),
                Err(v) => error_response(&ApiError::bad_request(format!(
                    "since must be a sequence number, not {v:?}"
                ))),
            }
        }
        (_, ["faults"] | ["faults", _] | ["audit"]) => error_response(
            &ApiError::method_not_allowed(format!("{method} is not allowed on {}", uri.path())),
        ),
        _ => error_response(&ApiError::new(
            Reason::NotFound,
            "the server could not find the requested resource (local-cluster serves /local-cluster/faults, /local-cluster/faults/{id} and /local-cluster/audit)",
        )),
    }
}
