//! The resource types the server knows: the built-in kinds kedge touches and the custom resources
//! defined by CustomResourceDefinitions at run time. Discovery, routing and storage all consult
//! this registry; nothing else in the crate hard-codes a kind.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde_json::Value;

/// Storage is keyed by group + plural, not version: every served version of a CRD shares the same
/// objects (conversion strategy `None`, which only rewrites `apiVersion`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupResource {
    /// API group, `""` for core.
    pub group: String,
    /// Plural resource name.
    pub resource: String,
}

impl GroupResource {
    /// Build from borrowed parts.
    pub fn new(group: &str, resource: &str) -> Self {
        GroupResource {
            group: group.to_string(),
            resource: resource.to_string(),
        }
    }
}

/// JSON paths (`.spec.replicas` form) of a scale subresource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScalePaths {
    /// Where the desired replica count lives.
    pub spec_replicas: String,
    /// Where the observed replica count lives.
    pub status_replicas: String,
    /// Where the label selector string lives, if any.
    pub label_selector: Option<String>,
}

/// Where a `kubectl get` column's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    /// A JSONPath, e.g. `.status.replicas` (CRD additionalPrinterColumns).
    Path(String),
    /// A count at a path, 0 when absent (kube-controller-manager omits zero counts).
    Count(String),
    /// `ready/desired` of a workload, like upstream's READY column.
    ReadyOfDesired,
    /// `Kind/name` of an HPA's `scaleTargetRef`.
    ScaleTarget,
    /// `current/target` of each HPA metric, like upstream's TARGETS column.
    HpaTargets,
    /// `kind/name` of an Event's `involvedObject`.
    EventObject,
}

/// A column of `kubectl get` output (an additionalPrinterColumn).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrinterColumn {
    /// Header.
    pub name: String,
    /// OpenAPI type: string, integer, number, boolean, date.
    pub type_: String,
    /// The value.
    pub cell: Cell,
    /// 0 = shown by default, >0 = only with `-o wide`.
    pub priority: i64,
}

/// Behaviour that differs per built-in kind and cannot be expressed as data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Special {
    /// Plain storage.
    None,
    /// Namespace: owns the objects inside it.
    Namespace,
    /// Secret: `stringData` is folded into `data`.
    Secret,
    /// CRD: registers resource types.
    CustomResourceDefinition,
    /// Deployment / StatefulSet / ReplicaSet: `spec.replicas` defaults to 1, native /scale.
    Workload,
    /// HorizontalPodAutoscaler: API-server defaulting of minReplicas and behavior.
    HorizontalPodAutoscaler,
    /// TokenReview / SubjectAccessReview: create-only, answered, never stored.
    Review,
    /// Pods: there are none (no scheduler, no kubelet), listing works.
    Pod,
    /// `events.k8s.io/v1` Event: stored as, and converted from/to, core `v1` Event.
    EventV1,
}

/// One resource of one group/version.
#[derive(Debug, Clone)]
pub struct ResourceType {
    /// API group, `""` for core.
    pub group: String,
    /// API version.
    pub version: String,
    /// Plural, lower-case: the URL segment.
    pub plural: String,
    /// Singular, lower-case.
    pub singular: String,
    /// Kind.
    pub kind: String,
    /// Kind of the list.
    pub list_kind: String,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
    /// Verbs announced in discovery and enforced by the router.
    pub verbs: Vec<&'static str>,
    /// kubectl short names.
    pub short_names: Vec<String>,
    /// kubectl categories (`all`, ...).
    pub categories: Vec<String>,
    /// A `status` subresource: main-resource writes ignore status, status writes ignore the rest.
    pub status_subresource: bool,
    /// A `scale` subresource.
    pub scale: Option<ScalePaths>,
    /// The CRD's `openAPIV3Schema`, used to validate, prune and default custom resources.
    pub schema: Option<Arc<Value>>,
    /// Extra `kubectl get` columns.
    pub printer_columns: Vec<PrinterColumn>,
    /// Kind-specific behaviour.
    pub special: Special,
    /// Whether this came from a CRD (JSON merge for strategic patches, schema validation).
    pub custom: bool,
}

impl ResourceType {
    /// `group/version`, or `version` for core.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The storage key.
    pub fn group_resource(&self) -> GroupResource {
        if self.special == Special::EventV1 {
            return GroupResource::new("", "events");
        }
        GroupResource::new(&self.group, &self.plural)
    }

    /// Whether a verb is allowed.
    pub fn allows(&self, verb: &str) -> bool {
        self.verbs.contains(&verb)
    }
}

const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

struct Builtin {
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
    verbs: &'static [&'static str],
    status: bool,
    scale: bool,
    special: Special,
    columns: &'static [(&'static str, &'static str, Src)],
}

/// Column sources of built-in kinds (a `const`-friendly [`Cell`]).
#[derive(Clone, Copy)]
enum Src {
    Path(&'static str),
    Count(&'static str),
    Ready,
    Target,
    Targets,
    Involved,
}

const fn b(
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
) -> Builtin {
    Builtin {
        group,
        version,
        plural,
        kind,
        namespaced,
        short,
        verbs: ALL_VERBS,
        status: false,
        scale: false,
        special: Special::None,
        columns: &[],
    }
}

fn builtins() -> Vec<Builtin> {
    let review_verbs: &'static [&'static str] = &["create"];
    vec![
        Builtin {
            status: true,
            special: Special::Namespace,
            ..b("", "v1", "namespaces", "Namespace", false, &["ns"])
        },
        Builtin {
            special: Special::Secret,
            ..b("", "v1", "secrets", "Secret", true, &[])
        },
        b("", "v1", "configmaps", "ConfigMap", true, &["cm"]),
        Builtin {
            columns: &[
                ("Type", "string", Src::Path(".type")),
                ("Reason", "string", Src::Path(".reason")),
                ("Object", "string", Src::Involved),
                ("Message", "string", Src::Path(".message")),
            ],
            ..b("", "v1", "events", "Event", true, &["ev"])
        },
        b("", "v1", "serviceaccounts", "ServiceAccount", true, &["sa"]),
        // Stored only: no cluster IPs, no kube-proxy. The aggregator routes an APIService to
        // the Endpoints of its Service.
        b("", "v1", "services", "Service", true, &["svc"]),
        b("", "v1", "endpoints", "Endpoints", true, &["ep"]),
        // Stored only: nothing here enforces RBAC or disruption budgets, but manifests that
        // carry them (kedge's own deploy/) apply as on a real cluster.
        b(
            "rbac.authorization.k8s.io",
            "v1",
            "clusterroles",
            "ClusterRole",
            false,
            &[],
        ),
        b(
            "rbac.authorization.k8s.io",
            "v1",
            "clusterrolebindings",
            "ClusterRoleBinding",
            false,
            &[],
        ),
        b(
            "rbac.authorization.k8s.io",
            "v1",
            "roles",
            "Role",
            true,
            &[],
        ),
        b(
            "rbac.authorization.k8s.io",
            "v1",
            "rolebindings",
            "RoleBinding",
            true,
            &[],
        ),
        b(
            "policy",
            "v1",
            "poddisruptionbudgets",
            "PodDisruptionBudget",
            true,
            &["pdb"],
        ),
        Builtin {
            verbs: &["get", "list", "watch"],
            special: Special::Pod,
            ..b("", "v1", "pods", "Pod", true, &["po"])
        },
        Builtin {
            status: true,
            scale: true,
            special: Special::Workload,
            columns: &[
                ("Ready", "string", Src::Ready),
                (
                    "Up-to-date",
                    "integer",
                    Src::Count(".status.updatedReplicas"),
                ),
                (
                    "Available",
                    "integer",
                    Src::Count(".status.availableReplicas"),
                ),
            ],
            ..b("apps", "v1", "deployments", "Deployment", true, &["deploy"])
        },
        Builtin {
            status: true,
            scale: true,
            special: Special::Workload,
            columns: &[("Ready", "string", Src::Ready)],
            ..b("apps", "v1", "statefulsets", "StatefulSet", true, &["sts"])
        },
        Builtin {
            status: true,
            scale: true,
            special: Special::Workload,
            columns: &[
                ("Desired", "integer", Src::Count(".spec.replicas")),
                ("Current", "integer", Src::Count(".status.replicas")),
                ("Ready", "integer", Src::Count(".status.readyReplicas")),
            ],
            ..b("apps", "v1", "replicasets", "ReplicaSet", true, &["rs"])
        },
        Builtin {
            status: true,
            special: Special::HorizontalPodAutoscaler,
            columns: &[
                ("Reference", "string", Src::Target),
                ("Targets", "string", Src::Targets),
                ("MinPods", "integer", Src::Path(".spec.minReplicas")),
                ("MaxPods", "integer", Src::Path(".spec.maxReplicas")),
                ("Replicas", "integer", Src::Count(".status.currentReplicas")),
            ],
            ..b(
                "autoscaling",
                "v2",
                "horizontalpodautoscalers",
                "HorizontalPodAutoscaler",
                true,
                &["hpa"],
            )
        },
        b("coordination.k8s.io", "v1", "leases", "Lease", true, &[]),
        Builtin {
            special: Special::EventV1,
            ..b("events.k8s.io", "v1", "events", "Event", true, &["ev"])
        },
        Builtin {
            status: true,
            special: Special::CustomResourceDefinition,
            columns: &[(
                "Created At",
                "date",
                Src::Path(".metadata.creationTimestamp"),
            )],
            ..b(
                "apiextensions.k8s.io",
                "v1",
                "customresourcedefinitions",
                "CustomResourceDefinition",
                false,
                &["crd", "crds"],
            )
        },
        Builtin {
            status: true,
            columns: &[(
                "Available",
                "string",
                Src::Path(".status.conditions[?(@.type==\"Available\")].status"),
            )],
            ..b(
                "apiregistration.k8s.io",
                "v1",
                "apiservices",
                "APIService",
                false,
                &[],
            )
        },
        Builtin {
            verbs: review_verbs,
            special: Special::Review,
            ..b(
                "authentication.k8s.io",
                "v1",
                "tokenreviews",
                "TokenReview",
                false,
                &[],
            )
        },
        Builtin {
            verbs: review_verbs,
            special: Special::Review,
            ..b(
                "authorization.k8s.io",
                "v1",
                "subjectaccessreviews",
                "SubjectAccessReview",
                false,
                &[],
            )
        },
        Builtin {
            verbs: review_verbs,
            special: Special::Review,
            ..b(
                "authorization.k8s.io",
                "v1",
                "selfsubjectaccessreviews",
                "SelfSubjectAccessReview",
                false,
                &[],
            )
        },
    ]
}

fn from_builtin(b: &Builtin) -> ResourceType {
    ResourceType {
        group: b.group.into(),
        version: b.version.into(),
        plural: b.plural.into(),
        singular: b.kind.to_ascii_lowercase(),
        kind: b.kind.into(),
        list_kind: format!("{}List", b.kind),
        namespaced: b.namespaced,
        verbs: b.verbs.to_vec(),
        short_names: b.short.iter().map(|s| s.to_string()).collect(),
        categories: if b.special == Special::Workload
            || b.special == Special::Pod
            || b.kind == "HorizontalPodAutoscaler"
        {
            vec!["all".into()]
        } else {
            Vec::new()
        },
        status_subresource: b.status,
        scale: b.scale.then(|| ScalePaths {
            spec_replicas: ".spec.replicas".into(),
            status_replicas: ".status.replicas".into(),
            label_selector: None,
        }),
        schema: None,
        printer_columns: b
            .columns
            .iter()
            .map(|(name, ty, src)| PrinterColumn {
                name: (*name).into(),
                type_: (*ty).into(),
                cell: match *src {
                    Src::Path(p) => Cell::Path(p.into()),
                    Src::Count(p) => Cell::Count(p.into()),
                    Src::Ready => Cell::ReadyOfDesired,
                    Src::Target => Cell::ScaleTarget,
                    Src::Targets => Cell::HpaTargets,
                    Src::Involved => Cell::EventObject,
                },
                priority: 0,
            })
            .collect(),
        special: b.special,
        custom: false,
    }
}

/// Group order of kube-apiserver's discovery: built-in groups first, then the rest by name.
const GROUP_ORDER: &[&str] = &[
    "",
    "apiregistration.k8s.io",
    "apps",
    "events.k8s.io",
    "authentication.k8s.io",
    "authorization.k8s.io",
    "autoscaling",
    "coordination.k8s.io",
    "apiextensions.k8s.io",
];

/// A group as announced in `/apis`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInfo {
    /// Group name.
    pub name: String,
    /// Served versions, preferred first.
    pub versions: Vec<String>,
}

/// All resource types currently served.
#[derive(Debug)]
pub struct Registry {
    builtin: Vec<Arc<ResourceType>>,
    /// CRD name → its served versions.
    custom: RwLock<BTreeMap<String, Vec<Arc<ResourceType>>>>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            builtin: builtins()
                .iter()
                .map(|b| Arc::new(from_builtin(b)))
                .collect(),
            custom: Default::default(),
        }
    }
}

impl Registry {
    fn all(&self) -> Vec<Arc<ResourceType>> {
        let mut all = self.builtin.clone();
        if let Ok(custom) = self.custom.read() {
            all.extend(custom.values().flatten().cloned());
        }
        all
    }

    /// The resource at `/apis/{group}/{version}/{plural}`.
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceType>> {
        self.all()
            .into_iter()
            .find(|r| r.group == group && r.version == version && r.plural == plural)
    }

    /// The resource of a kind in a group/version (for `scaleTargetRef`, ownerReferences).
    pub fn find_kind(&self, group: &str, version: &str, kind: &str) -> Option<Arc<ResourceType>> {
        self.all()
            .into_iter()
            .find(|r| r.group == group && r.version == version && r.kind == kind)
    }

    /// Every resource of one group/version, in registration order.
    pub fn resources_in(&self, group: &str, version: &str) -> Vec<Arc<ResourceType>> {
        self.all()
            .into_iter()
            .filter(|r| r.group == group && r.version == version)
            .collect()
    }

    /// Groups with their versions, in discovery order. `extra` adds aggregated groups
    /// (from APIService objects) that have no local resources.
    pub fn groups(&self, extra: &[(String, String)]) -> Vec<GroupInfo> {
        let mut groups: Vec<GroupInfo> = Vec::new();
        let mut add = |group: &str, version: &str| match groups.iter_mut().find(|g| g.name == group)
        {
            Some(g) => {
                if !g.versions.iter().any(|v| v == version) {
                    g.versions.push(version.to_string());
                }
            }
            None => groups.push(GroupInfo {
                name: group.into(),
                versions: vec![version.into()],
            }),
        };
        for r in self.all() {
            add(&r.group, &r.version);
        }
        for (g, v) in extra {
            add(g, v);
        }
        for g in &mut groups {
            g.versions
                .sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
        }
        groups.sort_by_key(|g| {
            let pos = GROUP_ORDER
                .iter()
                .position(|o| *o == g.name)
                .unwrap_or(GROUP_ORDER.len());
            (pos, g.name.clone())
        });
        groups
    }

    /// Replace the resource types of one CRD (empty `types` unregisters it).
    pub fn set_custom(&self, crd_name: &str, types: Vec<ResourceType>) {
        if let Ok(mut custom) = self.custom.write() {
            if types.is_empty() {
                custom.remove(crd_name);
            } else {
                custom.insert(
                    crd_name.to_string(),
                    types.into_iter().map(Arc::new).collect(),
                );
            }
        }
    }

    /// Whether another CRD than `crd_name` already serves this group/plural.
    pub fn custom_conflicts(&self, crd_name: &str, group: &str, plural: &str) -> bool {
        self.builtin
            .iter()
            .any(|r| r.group == group && r.plural == plural)
            || self
                .custom
                .read()
                .map(|c| {
                    c.iter().any(|(n, ts)| {
                        n != crd_name && ts.iter().any(|t| t.group == group && t.plural == plural)
                    })
                })
                .unwrap_or(false)
    }
}

/// Kubernetes version priority: GA > beta > alpha, then by number (v2 > v1, v1beta2 > v1beta1).
pub fn version_priority(v: &str) -> (u8, u32, u32) {
    let Some(rest) = v.strip_prefix('v') else {
        return (0, 0, 0);
    };
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    let Ok(major) = digits.parse::<u32>() else {
        return (0, 0, 0);
    };
    let tail = &rest[digits.len()..];
    if tail.is_empty() {
        return (3, major, 0);
    }
    let (level, minor) = if let Some(m) = tail.strip_prefix("beta") {
        (2, m)
    } else if let Some(m) = tail.strip_prefix("alpha") {
        (1, m)
    } else {
        return (0, 0, 0);
    };
    match minor.parse::<u32>() {
        Ok(minor) => (level, major, minor),
        Err(_) => (0, 0, 0),
    }
}

/// Build the resource types served by a CRD object (its served versions).
pub fn types_from_crd(crd: &Value) -> Result<Vec<ResourceType>, String> {
    let spec = crd.get("spec").ok_or("spec: Required value")?;
    let group = spec
        .get("group")
        .and_then(Value::as_str)
        .ok_or("spec.group: Required value")?;
    let names = spec.get("names").ok_or("spec.names: Required value")?;
    let plural = names
        .get("plural")
        .and_then(Value::as_str)
        .ok_or("spec.names.plural: Required value")?;
    let kind = names
        .get("kind")
        .and_then(Value::as_str)
        .ok_or("spec.names.kind: Required value")?;
    let singular = names
        .get("singular")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| kind.to_ascii_lowercase());
    let list_kind = names
        .get("listKind")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or(format!("{kind}List"));
    let strings = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let short_names = strings(names.get("shortNames"));
    let categories = strings(names.get("categories"));
    let namespaced = match spec.get("scope").and_then(Value::as_str) {
        Some("Namespaced") => true,
        Some("Cluster") => false,
        _ => return Err("spec.scope: Unsupported value: must be Namespaced or Cluster".into()),
    };
    let versions = spec
        .get("versions")
        .and_then(Value::as_array)
        .ok_or("spec.versions: Required value")?;
    if versions.is_empty() {
        return Err(
            "spec.versions: Invalid value: must have exactly one version marked as storage version"
                .into(),
        );
    }
    let storage_count = versions
        .iter()
        .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .count();
    if storage_count != 1 {
        return Err(
            "spec.versions: Invalid value: must have exactly one version marked as storage version"
                .into(),
        );
    }
    let mut types = Vec::new();
    for v in versions {
        if v.get("served").and_then(Value::as_bool) != Some(true) {
            continue;
        }
        let version = v
            .get("name")
            .and_then(Value::as_str)
            .ok_or("spec.versions[].name: Required value")?;
        let subresources = v.get("subresources");
        let status_subresource = subresources.and_then(|s| s.get("status")).is_some();
        let scale = subresources
            .and_then(|s| s.get("scale"))
            .map(|s| ScalePaths {
                spec_replicas: s
                    .get("specReplicasPath")
                    .and_then(Value::as_str)
                    .unwrap_or(".spec.replicas")
                    .to_string(),
                status_replicas: s
                    .get("statusReplicasPath")
                    .and_then(Value::as_str)
                    .unwrap_or(".status.replicas")
                    .to_string(),
                label_selector: s
                    .get("labelSelectorPath")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            });
        let schema = v.pointer("/schema/openAPIV3Schema").cloned().map(Arc::new);
        let printer_columns = v
            .get("additionalPrinterColumns")
            .and_then(Value::as_array)
            .map(|cols| {
                cols.iter()
                    .filter_map(|c| {
                        Some(PrinterColumn {
                            name: c.get("name")?.as_str()?.to_string(),
                            type_: c
                                .get("type")
                                .and_then(Value::as_str)
                                .unwrap_or("string")
                                .to_string(),
                            cell: Cell::Path(c.get("jsonPath")?.as_str()?.to_string()),
                            priority: c.get("priority").and_then(Value::as_i64).unwrap_or(0),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut verbs = ALL_VERBS.to_vec();
        verbs.sort_unstable();
        types.push(ResourceType {
            group: group.into(),
            version: version.into(),
            plural: plural.into(),
            singular: singular.clone(),
            kind: kind.into(),
            list_kind: list_kind.clone(),
            namespaced,
            verbs,
            short_names: short_names.clone(),
            categories: categories.clone(),
            status_subresource,
            scale,
            schema,
            printer_columns,
            special: Special::None,
            custom: true,
        });
    }
    Ok(types)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_order_matches_kubernetes() {
        let mut v = vec!["v1alpha1", "v1beta1", "v1", "v2", "v1beta2", "foo"];
        v.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
        assert_eq!(v, ["v2", "v1", "v1beta2", "v1beta1", "v1alpha1", "foo"]);
    }

    #[test]
    fn builtins_are_found() {
        let r = Registry::default();
        assert!(
            r.find("apps", "v1", "deployments")
                .is_some_and(|d| d.scale.is_some())
        );
        assert!(r.find_kind("", "v1", "Secret").is_some());
        assert_eq!(
            r.groups(&[])
                .iter()
                .find(|g| g.name == "autoscaling")
                .map(|g| g.versions.clone()),
            Some(vec!["v2".to_string()])
        );
        assert_eq!(r.groups(&[])[0].name, "");
    }
}
