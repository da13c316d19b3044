//! Discovery documents (`/version`, `/api`, `/apis`, group and group/version resource lists) and
//! the minimal OpenAPI v3 documents kubectl needs to decide how to validate and patch.
//!
//! kubectl 1.32 asks for aggregated discovery (`apidiscovery.k8s.io/v2`) first and falls back to
//! these legacy documents when the response's Content-Type says plain JSON, which is all we send.

use serde_json::{Value, json};

use crate::resources::{GroupInfo, Registry, ResourceType};

/// The Kubernetes version we claim. kubectl's version-dispatching wrapper picks its client by
/// this, and kube-rs only reads it in `apiserver_version()`.
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "32",
        "gitVersion": "v1.32.0",
        "gitCommit": "kedge-local-cluster",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.23.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

/// `/api`.
pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn group_json(g: &GroupInfo) -> Value {
    let gv = |v: &str| json!({"groupVersion": format!("{}/{v}", g.name), "version": v});
    json!({
        "name": g.name,
        "versions": g.versions.iter().map(|v| gv(v)).collect::<Vec<_>>(),
        "preferredVersion": g.versions.first().map(|v| gv(v)).unwrap_or(Value::Null),
    })
}

/// `/apis`: every named group (the core group is under `/api`).
pub fn api_group_list(registry: &Registry, aggregated: &[(String, String)]) -> Value {
    let groups: Vec<Value> = registry
        .groups(aggregated)
        .iter()
        .filter(|g| !g.name.is_empty())
        .map(group_json)
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/{group}`.
pub fn api_group(
    registry: &Registry,
    aggregated: &[(String, String)],
    group: &str,
) -> Option<Value> {
    let g = registry
        .groups(aggregated)
        .into_iter()
        .find(|g| g.name == group && !group.is_empty())?;
    let mut v = group_json(&g);
    v["kind"] = json!("APIGroup");
    v["apiVersion"] = json!("v1");
    Some(v)
}

fn resource_entries(r: &ResourceType) -> Vec<Value> {
    let mut main = json!({
        "name": r.plural,
        "singularName": r.singular,
        "namespaced": r.namespaced,
        "kind": r.kind,
        "verbs": r.verbs,
    });
    if !r.short_names.is_empty() {
        main["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        main["categories"] = json!(r.categories);
    }
    let mut out = vec![main];
    if r.status_subresource {
        out.push(json!({
            "name": format!("{}/status", r.plural),
            "singularName": "",
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": ["get", "patch", "update"],
        }));
    }
    if r.scale.is_some() {
        out.push(json!({
            "name": format!("{}/scale", r.plural),
            "singularName": "",
            "namespaced": r.namespaced,
            "group": "autoscaling",
            "version": "v1",
            "kind": "Scale",
            "verbs": ["get", "patch", "update"],
        }));
    }
    out
}

/// `/api/v1` or `/apis/{group}/{version}`; `None` when nothing is served there.
pub fn resource_list(registry: &Registry, group: &str, version: &str) -> Option<Value> {
    let resources = registry.resources_in(group, version);
    if resources.is_empty() {
        return None;
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    let entries: Vec<Value> = resources.iter().flat_map(|r| resource_entries(r)).collect();
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": entries}),
    )
}

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// `/openapi/v3`: the index of per-group-version documents.
pub fn openapi_v3_root(registry: &Registry) -> Value {
    let mut paths = serde_json::Map::new();
    for g in registry.groups(&[]) {
        for v in &g.versions {
            let p = gv_path(&g.name, v);
            // The hash only has to change when the document does; the resource list is a fine proxy.
            let hash = resource_list(registry, &g.name, v)
                .map(|l| fnv(&l.to_string()))
                .unwrap_or_default();
            paths.insert(p.clone(), json!({"serverRelativeURL": format!("/{p}?hash={hash:016X}").replacen('/', "/openapi/v3/", 1)}));
        }
    }
    json!({"paths": paths})
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    })
}

/// `/openapi/v3/{api/v1 | apis/g/v}`: one PATCH operation per kind, tagged with its
/// group-version-kind and the `fieldValidation` parameter, and nothing else. That tells kubectl
/// the server validates fields itself (so it skips client-side schema validation, which would
/// need `/openapi/v2`), and, having no strategic-merge request body, makes kubectl apply compute
/// strategic patches from its compiled-in types for built-in kinds and JSON merge patches for
/// custom resources — exactly what it does against a real server for CRDs.
pub fn openapi_v3_group_version(registry: &Registry, group: &str, version: &str) -> Option<Value> {
    let resources = registry.resources_in(group, version);
    if resources.is_empty() {
        return None;
    }
    let mut paths = serde_json::Map::new();
    for r in resources {
        let prefix = format!("/{}", gv_path(group, version));
        let path = if r.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", r.plural)
        } else {
            format!("{prefix}/{}/{{name}}", r.plural)
        };
        let gvk = json!({"group": group, "version": version, "kind": r.kind});
        let mut item = serde_json::Map::new();
        if r.allows("patch") {
            item.insert(
                "patch".into(),
                json!({
                    "operationId": format!("patch{}", r.kind),
                    "x-kubernetes-action": "patch",
                    "x-kubernetes-group-version-kind": gvk,
                    "parameters": [
                        {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
                        {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": true}},
                        {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": true}}
                    ],
                    "responses": {"200": {"description": "OK"}}
                }),
            );
        }
        if r.allows("create") {
            let collection = path.trim_end_matches("/{name}").to_string();
            paths.insert(
                collection,
                json!({"post": {
                    "operationId": format!("create{}", r.kind),
                    "x-kubernetes-action": "post",
                    "x-kubernetes-group-version-kind": gvk,
                    "parameters": [{"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": true}}],
                    "responses": {"201": {"description": "Created"}}
                }}),
            );
        }
        paths.insert(path, Value::Object(item));
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0"},
        "paths": paths,
        "components": {"schemas": {}},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_lists_subresources() {
        let r = Registry::default();
        let apps = resource_list(&r, "apps", "v1").unwrap_or_default();
        let names: Vec<&str> = apps["resources"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["name"].as_str())
            .collect();
        assert!(names.contains(&"deployments/scale") && names.contains(&"deployments/status"));
        assert!(resource_list(&r, "nope", "v1").is_none());
        let groups = api_group_list(&r, &[("external.metrics.k8s.io".into(), "v1beta1".into())]);
        assert!(
            groups["groups"]
                .as_array()
                .is_some_and(|g| g.iter().any(|g| g["name"] == "external.metrics.k8s.io"))
        );
        let root = openapi_v3_root(&r);
        assert!(
            root["paths"]["apis/apps/v1"]["serverRelativeURL"]
                .as_str()
                .is_some_and(|u| u.starts_with("/openapi/v3/apis/apps/v1?hash="))
        );
    }
}
