//! The documents an aggregated API server serves so kube-apiserver's aggregator marks the
//! APIService `Available` and merges it into discovery: `/apis`, the group, the group/version's
//! `APIResourceList` (as `sigs.k8s.io/custom-metrics-apiserver` builds it for KEDA), and minimal
//! OpenAPI documents. None of them touches a scaler, so discovery stays fast from a cold start.
//!
//! The bodies are constant and serialised once.

use std::sync::LazyLock;

use bytes::Bytes;
use serde_json::json;

/// The API group served.
pub const GROUP: &str = "external.metrics.k8s.io";
/// The version served.
pub const VERSION: &str = "v1beta1";
/// `group/version`.
pub const GROUP_VERSION: &str = "external.metrics.k8s.io/v1beta1";
/// The placeholder resource listed in discovery.
pub const RESOURCE: &str = "externalmetrics";

fn group_version_entry() -> serde_json::Value {
    json!({"groupVersion": GROUP_VERSION, "version": VERSION})
}

fn group() -> serde_json::Value {
    json!({
        "name": GROUP,
        "versions": [group_version_entry()],
        "preferredVersion": group_version_entry(),
    })
}

fn bytes(v: serde_json::Value) -> Bytes {
    Bytes::from(serde_json::to_vec(&v).unwrap_or_default())
}

/// `GET /apis`: an `APIGroupList` with our one group.
pub static API_GROUP_LIST: LazyLock<Bytes> = LazyLock::new(|| {
    bytes(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": [group()]}))
});

/// `GET /apis/external.metrics.k8s.io`: the `APIGroup`.
pub static API_GROUP: LazyLock<Bytes> = LazyLock::new(|| {
    let mut g = group();
    g["kind"] = json!("APIGroup");
    g["apiVersion"] = json!("v1");
    bytes(g)
});

/// `GET /apis/external.metrics.k8s.io/v1beta1`: the `APIResourceList`.
pub static API_RESOURCE_LIST: LazyLock<Bytes> = LazyLock::new(|| {
    bytes(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": GROUP_VERSION,
        "resources": [{
            "name": RESOURCE,
            "singularName": "",
            "namespaced": true,
            "kind": "ExternalMetricValueList",
            "verbs": ["get"],
        }],
    }))
});

/// `GET /openapi/v2`: a valid, empty Swagger 2.0 document. The aggregator downloads it to merge
/// into the cluster's OpenAPI; an empty one contributes nothing and breaks nothing.
pub static OPENAPI_V2: LazyLock<Bytes> = LazyLock::new(|| {
    bytes(json!({
        "swagger": "2.0",
        "info": {"title": "kedge external metrics", "version": env!("CARGO_PKG_VERSION")},
        "paths": {},
        "definitions": {},
    }))
});

/// `GET /openapi/v3`: the OpenAPI v3 discovery document, with no group documents.
pub static OPENAPI_V3: LazyLock<Bytes> = LazyLock::new(|| bytes(json!({"paths": {}})));

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn resource_list_as_keda_serves_it() {
        let v: serde_json::Value = serde_json::from_slice(&API_RESOURCE_LIST).unwrap();
        assert_eq!(v["groupVersion"], "external.metrics.k8s.io/v1beta1");
        assert_eq!(v["resources"][0]["name"], "externalmetrics");
        assert_eq!(v["resources"][0]["namespaced"], true);
        assert_eq!(v["resources"][0]["verbs"], json!(["get"]));
        let g: serde_json::Value = serde_json::from_slice(&API_GROUP_LIST).unwrap();
        assert_eq!(g["groups"][0]["preferredVersion"]["version"], "v1beta1");
    }
}
