//! Authorization of the authenticated caller by the cluster, through a `SubjectAccessReview`
//! (`authorization.k8s.io/v1`), with the attributes kube-apiserver's request-info parser derives
//! from the request, so RBAC rules written for KEDA's adapter keep working.
//!
//! For `GET /apis/external.metrics.k8s.io/v1beta1/namespaces/{ns}/{metric}` that is verb
//! `list` (a GET without an object name), group `external.metrics.k8s.io`, version `v1beta1`,
//! resource `{metric}`, namespace `{ns}` — which is why the upstream HPA controller's role grants
//! `list` on `external.metrics.k8s.io` `*`. Other paths are non-resource requests
//! (`path`, verb `get`).

use async_trait::async_trait;
use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::PostParams;

use super::{AuthApiError, UserInfo};

/// What a request asks to do, in Kubernetes authorization terms.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RequestAttributes {
    /// `get`, `list`, `create`, …
    pub verb: String,
    /// Set for resource requests.
    pub resource: Option<ResourceRequest>,
    /// The URL path (used for non-resource requests).
    pub path: String,
}

/// The resource part of [`RequestAttributes`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResourceRequest {
    /// Namespace, empty for cluster-scoped requests.
    pub namespace: String,
    /// API group.
    pub group: String,
    /// API version.
    pub version: String,
    /// Resource (for external metrics: the metric name).
    pub resource: String,
    /// Subresource, usually empty.
    pub subresource: String,
    /// Object name, empty for lists.
    pub name: String,
}

impl RequestAttributes {
    /// Attributes of `method path` as kube-apiserver's `RequestInfoFactory` derives them (for
    /// `/apis/<group>/<version>/…` paths; everything else is a non-resource request).
    pub fn from_request(method: &http::Method, path: &str) -> Self {
        let non_resource = || RequestAttributes {
            verb: method.as_str().to_ascii_lowercase(),
            resource: None,
            path: path.to_owned(),
        };
        let segments: Vec<String> = path
            .trim_matches('/')
            .split('/')
            .map(percent_decode)
            .collect();
        let [apis, group, version, rest @ ..] = segments.as_slice() else {
            return non_resource();
        };
        if apis != "apis" || rest.is_empty() {
            return non_resource();
        }
        let (namespace, parts) = match rest {
            [ns_kw, ns, parts @ ..] if ns_kw == "namespaces" && !parts.is_empty() => {
                (ns.clone(), parts)
            }
            _ => (String::new(), rest),
        };
        let resource = parts.first().cloned().unwrap_or_default();
        let name = parts.get(1).cloned().unwrap_or_default();
        let subresource = parts.get(2).cloned().unwrap_or_default();
        let verb = match *method {
            http::Method::GET | http::Method::HEAD if name.is_empty() => "list",
            http::Method::GET | http::Method::HEAD => "get",
            http::Method::POST => "create",
            http::Method::PUT => "update",
            http::Method::PATCH => "patch",
            http::Method::DELETE if name.is_empty() => "deletecollection",
            http::Method::DELETE => "delete",
            _ => return non_resource(),
        };
        RequestAttributes {
            verb: verb.to_owned(),
            resource: Some(ResourceRequest {
                namespace,
                group: group.clone(),
                version: version.clone(),
                resource,
                subresource,
                name,
            }),
            path: path.to_owned(),
        }
    }

    /// The `User "…" cannot …` sentence of kube-apiserver's 403 messages.
    pub fn forbidden_message(&self, user: &str, reason: &str) -> String {
        let mut message = match &self.resource {
            Some(r) => {
                let mut m = format!(
                    "User {user:?} cannot {} resource {:?}",
                    self.verb, r.resource
                );
                if !r.subresource.is_empty() {
                    m.push_str(&format!("/{}", r.subresource));
                }
                m.push_str(&format!(" in API group {:?}", r.group));
                if !r.namespace.is_empty() {
                    m.push_str(&format!(" in the namespace {:?}", r.namespace));
                }
                let object = match r.name.as_str() {
                    "" => format!("{}.{}", r.resource, r.group),
                    name => format!("{}.{} {name:?}", r.resource, r.group),
                };
                format!("{object} is forbidden: {m}")
            }
            None => format!(
                "forbidden: User {user:?} cannot {} path {:?}",
                self.verb, self.path
            ),
        };
        if !reason.is_empty() {
            message.push_str(": ");
            message.push_str(reason);
        }
        message
    }
}

fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = segment.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The cluster's answer to one review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request is allowed.
    pub allowed: bool,
    /// Why (shown in the 403 message when denied).
    pub reason: String,
}

/// Asks the cluster whether a user may do something: the Kubernetes authorizer.
#[async_trait]
pub trait Authorizer: Send + Sync + 'static {
    /// Decides on `attributes` for `user`.
    async fn authorize(
        &self,
        user: &UserInfo,
        attributes: &RequestAttributes,
    ) -> Result<Decision, AuthApiError>;
}

/// [`Authorizer`] through kube-rs: creates a `SubjectAccessReview` and reads its status.
#[derive(Clone)]
pub struct KubeAuthorizer {
    client: kube::Client,
}

impl KubeAuthorizer {
    /// Authorizes with `client` (needs `create` on `subjectaccessreviews`, as
    /// `system:auth-delegator` grants).
    pub fn new(client: kube::Client) -> Self {
        Self { client }
    }
}

#[async_trait]
impl Authorizer for KubeAuthorizer {
    async fn authorize(
        &self,
        user: &UserInfo,
        attributes: &RequestAttributes,
    ) -> Result<Decision, AuthApiError> {
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(user.username.clone()),
                uid: (!user.uid.is_empty()).then(|| user.uid.clone()),
                groups: Some(user.groups.clone()),
                extra: (!user.extra.is_empty()).then(|| user.extra.clone()),
                resource_attributes: attributes.resource.as_ref().map(|r| ResourceAttributes {
                    namespace: Some(r.namespace.clone()),
                    verb: Some(attributes.verb.clone()),
                    group: Some(r.group.clone()),
                    version: Some(r.version.clone()),
                    resource: Some(r.resource.clone()),
                    subresource: Some(r.subresource.clone()),
                    name: Some(r.name.clone()),
                    ..ResourceAttributes::default()
                }),
                non_resource_attributes: attributes.resource.is_none().then(|| {
                    NonResourceAttributes {
                        path: Some(attributes.path.clone()),
                        verb: Some(attributes.verb.clone()),
                    }
                }),
            },
            ..SubjectAccessReview::default()
        };
        let api: kube::Api<SubjectAccessReview> = kube::Api::all(self.client.clone());
        let created = api
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| AuthApiError(format!("SubjectAccessReview: {e}")))?;
        let status = created.status.unwrap_or_default();
        Ok(Decision {
            allowed: status.allowed && status.denied != Some(true),
            reason: status
                .reason
                .or(status.evaluation_error)
                .unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_as_kube_apiserver_derives_them() {
        let a = RequestAttributes::from_request(
            &http::Method::GET,
            "/apis/external.metrics.k8s.io/v1beta1/namespaces/default/s0-rabbitmq-q%41",
        );
        assert_eq!(a.verb, "list");
        let r = a
            .resource
            .clone()
            .unwrap_or_else(|| panic!("resource request"));
        assert_eq!(
            (
                r.namespace.as_str(),
                r.group.as_str(),
                r.version.as_str(),
                r.resource.as_str(),
                r.name.as_str()
            ),
            (
                "default",
                "external.metrics.k8s.io",
                "v1beta1",
                "s0-rabbitmq-qA",
                ""
            )
        );
        assert_eq!(
            a.forbidden_message("bob", ""),
            "s0-rabbitmq-qA.external.metrics.k8s.io is forbidden: User \"bob\" cannot list resource \"s0-rabbitmq-qA\" in API group \"external.metrics.k8s.io\" in the namespace \"default\""
        );
        for path in [
            "/apis",
            "/apis/external.metrics.k8s.io",
            "/apis/external.metrics.k8s.io/v1beta1",
            "/openapi/v2",
        ] {
            let a = RequestAttributes::from_request(&http::Method::GET, path);
            assert!(a.resource.is_none(), "{path}");
            assert_eq!(a.verb, "get");
        }
        assert_eq!(
            RequestAttributes::from_request(&http::Method::GET, "/apis")
                .forbidden_message("bob", "no"),
            "forbidden: User \"bob\" cannot get path \"/apis\": no"
        );
    }
}
