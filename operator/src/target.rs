//! The scale target: any kind with a `/scale` subresource, resolved through API discovery.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::PodTemplateSpec;
use kube::Client;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use tokio::sync::RwLock;

use crate::crd::{GroupVersionKindResource, ScaleTarget};

/// Why the scale target cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// `apiVersion` is not `group/version` or `version`.
    #[error("scaleTargetRef.apiVersion {0:?} is not a valid apiVersion")]
    BadApiVersion(String),
    /// Discovery does not know the kind.
    #[error("the API server has no kind {kind} in {api_version}: {source}")]
    UnknownKind {
        /// Kind asked for.
        kind: String,
        /// apiVersion asked for.
        api_version: String,
        /// What discovery said.
        #[source]
        source: kube::Error,
    },
    /// The object does not exist.
    #[error("{kind} {namespace}/{name} not found")]
    NotFound {
        /// Kind.
        kind: String,
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// The object exists but has no `/scale` subresource.
    #[error("{kind} {namespace}/{name} has no /scale subresource, so it cannot be scaled")]
    NoScale {
        /// Kind.
        kind: String,
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// Any other API error.
    #[error("{0}")]
    Api(#[from] kube::Error),
}

/// Remembers the API resource of each kind, so discovery runs once per kind, not per poll.
#[derive(Clone, Default)]
pub struct Discovery {
    known: Arc<RwLock<HashMap<GroupVersionKind, ApiResource>>>,
}

impl Discovery {
    /// The API resource of `gvk`, discovered on first use.
    pub async fn resource(
        &self,
        client: &Client,
        gvk: &GroupVersionKind,
    ) -> Result<ApiResource, TargetError> {
        if let Some(ar) = self.known.read().await.get(gvk) {
            return Ok(ar.clone());
        }
        let (ar, _caps) = kube::discovery::pinned_kind(client, gvk)
            .await
            .map_err(|source| TargetError::UnknownKind {
                kind: gvk.kind.clone(),
                api_version: gvk.api_version(),
                source,
            })?;
        self.known.write().await.insert(gvk.clone(), ar.clone());
        Ok(ar)
    }
}

/// Access to one scale target's `/scale` subresource and pod template.
#[derive(Clone)]
pub struct Target {
    api: Api<DynamicObject>,
    resource: ApiResource,
    namespace: String,
    name: String,
}

/// What a poll read of `/scale`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScaleRead {
    /// `spec.replicas`.
    pub replicas: i32,
    /// The resourceVersion of the read, the precondition of [`Target::scale_from`].
    pub resource_version: Option<String>,
}

impl TargetError {
    /// The target changed after it was read (409 Conflict).
    pub fn is_conflict(&self) -> bool {
        matches!(self, TargetError::Api(kube::Error::Api(s)) if s.code == 409)
    }
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

impl Target {
    /// Resolves `target` in `namespace` and checks that it exists and has `/scale`.
    pub async fn resolve(
        client: &Client,
        discovery: &Discovery,
        namespace: &str,
        target: &ScaleTarget,
    ) -> Result<(Target, i32), TargetError> {
        let api_version = target.api_version();
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) if !g.is_empty() && !v.is_empty() => (g, v),
            None if !api_version.is_empty() => ("", api_version),
            _ => return Err(TargetError::BadApiVersion(api_version.to_owned())),
        };
        let gvk = GroupVersionKind::gvk(group, version, target.kind());
        let resource = discovery.resource(client, &gvk).await?;
        let api = Api::namespaced_with(client.clone(), namespace, &resource);
        let t = Target {
            api,
            resource,
            namespace: namespace.to_owned(),
            name: target.name.clone(),
        };
        let replicas = match t.replicas().await {
            Ok(r) => r,
            Err(TargetError::Api(e)) if is_not_found(&e) => {
                // Tell "missing" from "not scalable", as KEDA does.
                return Err(match t.api.get_opt(&t.name).await? {
                    None => t.not_found(),
                    Some(_) => TargetError::NoScale {
                        kind: t.resource.kind.clone(),
                        namespace: t.namespace.clone(),
                        name: t.name.clone(),
                    },
                });
            }
            Err(e) => return Err(e),
        };
        Ok((t, replicas))
    }

    /// A Deployment target that is not checked against the API (for tests of code that never
    /// reaches it).
    #[cfg(test)]
    pub fn for_tests(client: Client, namespace: &str, name: &str) -> Target {
        let resource = ApiResource::erase::<k8s_openapi::api::apps::v1::Deployment>(&());
        Target {
            api: Api::namespaced_with(client, namespace, &resource),
            resource,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }

    fn not_found(&self) -> TargetError {
        TargetError::NotFound {
            kind: self.resource.kind.clone(),
            namespace: self.namespace.clone(),
            name: self.name.clone(),
        }
    }

    /// `scaleTargetKind` as KEDA writes it: `apps/v1.Deployment`.
    pub fn kind_string(&self) -> String {
        format!("{}.{}", self.resource.api_version, self.resource.kind)
    }

    /// `scaleTargetGVKR`.
    pub fn gvkr(&self) -> GroupVersionKindResource {
        GroupVersionKindResource {
            group: self.resource.group.clone(),
            version: self.resource.version.clone(),
            kind: self.resource.kind.clone(),
            resource: self.resource.plural.clone(),
        }
    }

    /// `apiVersion` of the target (`group/version`).
    pub fn api_version(&self) -> &str {
        &self.resource.api_version
    }

    /// Kind of the target.
    pub fn kind(&self) -> &str {
        &self.resource.kind
    }

    /// Name of the target.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Namespace of the target.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// `spec.replicas` of `/scale`.
    pub async fn replicas(&self) -> Result<i32, TargetError> {
        Ok(self.read().await?.replicas)
    }

    /// `/scale` as read now: replicas, and the resourceVersion they were read at.
    pub async fn read(&self) -> Result<ScaleRead, TargetError> {
        let scale = self.api.get_scale(&self.name).await?;
        Ok(ScaleRead {
            replicas: scale.spec.and_then(|s| s.replicas).unwrap_or(0),
            resource_version: scale.metadata.resource_version,
        })
    }

    /// Sets `spec.replicas` through `/scale`, only if the target is still as `read` found it;
    /// otherwise the API server answers 409 ([`TargetError::is_conflict`]).
    ///
    /// A poll decides from what it read, so its write must not land once the target changed:
    /// when a user or the HPA scaled it meanwhile, or when the write was held up (a hung API
    /// server, a paused replica) past a later poll's own write, which would then be undone.
    pub async fn scale_from(&self, read: &ScaleRead, replicas: i32) -> Result<(), TargetError> {
        let patch = serde_json::json!({
            "metadata": { "resourceVersion": read.resource_version },
            "spec": { "replicas": replicas },
        });
        self.patch(&patch).await
    }

    /// Sets `spec.replicas` through `/scale`.
    pub async fn scale_to(&self, replicas: i32) -> Result<(), TargetError> {
        let patch = serde_json::json!({ "spec": { "replicas": replicas } });
        self.patch(&patch).await
    }

    async fn patch(&self, patch: &serde_json::Value) -> Result<(), TargetError> {
        self.api
            .patch_scale(&self.name, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .map_err(|e| {
                if is_not_found(&e) {
                    self.not_found()
                } else {
                    e.into()
                }
            })?;
        Ok(())
    }

    /// The pod template (`spec.template`) of kinds that have one, and the ready replica count
    /// (`status.readyReplicas`).
    pub async fn pod_template(&self) -> Result<Option<PodTemplateSpec>, TargetError> {
        let Some(obj) = self.api.get_opt(&self.name).await? else {
            return Err(self.not_found());
        };
        let template = obj
            .data
            .get("spec")
            .and_then(|s| s.get("template"))
            .cloned()
            .and_then(|t| serde_json::from_value(t).ok());
        Ok(template)
    }

    /// `status.readyReplicas` of the target, for fallback with `Value` metrics.
    pub async fn ready_replicas(&self) -> Result<i32, TargetError> {
        let Some(obj) = self.api.get_opt(&self.name).await? else {
            return Err(self.not_found());
        };
        Ok(obj
            .data
            .get("status")
            .and_then(|s| s.get("readyReplicas"))
            .and_then(serde_json::Value::as_i64)
            .and_then(|n| i32::try_from(n).ok())
            .unwrap_or(0))
    }
}
