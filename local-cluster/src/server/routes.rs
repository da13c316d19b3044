//! URL paths of the Kubernetes API, parsed into what they address.

/// What a request path addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/version`
    Version,
    /// `/healthz`, `/livez`, `/readyz` (and their sub-checks)
    Health,
    /// `/api`
    Api,
    /// `/apis`
    Apis,
    /// `/apis/{group}`
    Group(String),
    /// `/api/v1`, `/apis/{group}/{version}`
    GroupVersion {
        /// Group, `""` for core.
        group: String,
        /// Version.
        version: String,
    },
    /// `/openapi/v3`
    OpenApiV3,
    /// `/openapi/v3/api/v1`, `/openapi/v3/apis/{group}/{version}`
    OpenApiV3GroupVersion {
        /// Group.
        group: String,
        /// Version.
        version: String,
    },
    /// Objects.
    Resource(ResourcePath),
    /// Anything else.
    Unknown,
}

/// `/{api/v1 | apis/g/v}/[namespaces/{ns}/]{plural}[/{name}[/{subresource}]]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourcePath {
    /// Group, `""` for core.
    pub group: String,
    /// Version.
    pub version: String,
    /// Namespace from the path.
    pub namespace: Option<String>,
    /// Plural resource.
    pub plural: String,
    /// Object name.
    pub name: Option<String>,
    /// `status`, `scale`, ...
    pub subresource: Option<String>,
}

/// Parse a path. `is_namespaced(group, version, plural)` tells `/api/v1/namespaces/x/configmaps`
/// (configmaps in x) from `/api/v1/namespaces/x/status` (the status of namespace x).
pub fn parse(path: &str, is_namespaced: impl Fn(&str, &str, &str) -> bool) -> Route {
    let segs: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    match segs.as_slice() {
        ["version"] => Route::Version,
        [h, ..] if matches!(*h, "healthz" | "livez" | "readyz") => Route::Health,
        ["api"] => Route::Api,
        ["apis"] => Route::Apis,
        ["apis", group] => Route::Group(group.to_string()),
        ["api", version] => Route::GroupVersion {
            group: String::new(),
            version: version.to_string(),
        },
        ["apis", group, version] => Route::GroupVersion {
            group: group.to_string(),
            version: version.to_string(),
        },
        ["openapi", "v3"] => Route::OpenApiV3,
        ["openapi", "v3", "api", version] => Route::OpenApiV3GroupVersion {
            group: String::new(),
            version: version.to_string(),
        },
        ["openapi", "v3", "apis", group, version] => Route::OpenApiV3GroupVersion {
            group: group.to_string(),
            version: version.to_string(),
        },
        ["api", version, rest @ ..] => resource("", version, rest, &is_namespaced),
        ["apis", group, version, rest @ ..] => resource(group, version, rest, &is_namespaced),
        _ => Route::Unknown,
    }
}

fn resource(
    group: &str,
    version: &str,
    rest: &[&str],
    is_namespaced: &impl Fn(&str, &str, &str) -> bool,
) -> Route {
    let (namespace, rest) = match rest {
        ["namespaces", ns, plural, tail @ ..] if is_namespaced(group, version, plural) => {
            (Some(ns.to_string()), [&[*plural][..], tail].concat())
        }
        _ => (None, rest.to_vec()),
    };
    let (plural, name, subresource) = match rest.as_slice() {
        [plural] => (plural, None, None),
        [plural, name] => (plural, Some(name), None),
        [plural, name, sub] => (plural, Some(name), Some(sub)),
        _ => return Route::Unknown,
    };
    if plural.is_empty() || name.is_some_and(|n| n.is_empty()) {
        return Route::Unknown;
    }
    Route::Resource(ResourcePath {
        group: group.to_string(),
        version: version.to_string(),
        namespace,
        plural: plural.to_string(),
        name: name.map(|n| n.to_string()),
        subresource: subresource.map(|s| s.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(_: &str, _: &str, plural: &str) -> bool {
        plural != "namespaces" && plural != "status"
    }

    #[test]
    fn parses_paths() {
        assert_eq!(
            parse("/apis/apps/v1", ns),
            Route::GroupVersion {
                group: "apps".into(),
                version: "v1".into()
            }
        );
        let Route::Resource(r) =
            parse("/apis/apps/v1/namespaces/default/deployments/web/scale", ns)
        else {
            panic!()
        };
        assert_eq!(
            (
                r.namespace.as_deref(),
                r.plural.as_str(),
                r.name.as_deref(),
                r.subresource.as_deref()
            ),
            (Some("default"), "deployments", Some("web"), Some("scale"))
        );
        let Route::Resource(r) = parse("/api/v1/namespaces/kube-system/status", ns) else {
            panic!()
        };
        assert_eq!(
            (
                r.namespace,
                r.plural.as_str(),
                r.name.as_deref(),
                r.subresource.as_deref()
            ),
            (None, "namespaces", Some("kube-system"), Some("status"))
        );
        let Route::Resource(r) = parse("/api/v1/namespaces/default", ns) else {
            panic!()
        };
        assert_eq!(
            (r.plural.as_str(), r.name.as_deref()),
            ("namespaces", Some("default"))
        );
        let Route::Resource(r) = parse("/apis/apps/v1/deployments", ns) else {
            panic!()
        };
        assert_eq!((r.namespace, r.name), (None, None));
        assert_eq!(parse("/nope", ns), Route::Unknown);
        assert_eq!(parse("/apis/a/v1/x/y/z/w", ns), Route::Unknown);
        assert_eq!(
            parse("/openapi/v3/apis/apps/v1", ns),
            Route::OpenApiV3GroupVersion {
                group: "apps".into(),
                version: "v1".into()
            }
        );
    }
}
