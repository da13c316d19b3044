//! Errors: [`Error`] for the library's callers, [`ApiError`] for HTTP clients (always rendered as a
//! Kubernetes `Status` object, because kube-rs and kubectl parse that body to explain failures).

use serde_json::{Value, json};

/// Failures of the library API (starting the server, writing files).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Binding the listening socket failed.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// The address that was asked for.
        addr: std::net::SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Generating the self-signed CA or server certificate failed.
    #[error("cannot generate TLS certificates: {0}")]
    Certificate(#[from] kedge_tls::Error),
    /// Configuring rustls failed.
    #[error("cannot configure TLS: {0}")]
    Tls(#[from] rustls::Error),
    /// Reading, writing or waiting on something local failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// Building a kube-rs client from the generated kubeconfig failed.
    #[error("cannot build a client for the local cluster: {0}")]
    Client(String),
    /// Creating the objects every cluster starts with (the default namespaces, the front-proxy
    /// ConfigMap) failed.
    #[error("cannot create the initial cluster objects: {0}")]
    Bootstrap(#[source] ApiError),
    /// A fault rule that cannot be used (e.g. `times: 0`, a status code outside 400–599).
    #[error("invalid fault rule: {0}")]
    InvalidFault(String),
}

/// The `reason` field of a Kubernetes `Status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// 400
    BadRequest,
    /// 401
    Unauthorized,
    /// 403
    Forbidden,
    /// 404
    NotFound,
    /// 405
    MethodNotAllowed,
    /// 409 on create
    AlreadyExists,
    /// 409 on a stale resourceVersion
    Conflict,
    /// 410
    Gone,
    /// 415
    UnsupportedMediaType,
    /// 422
    Invalid,
    /// 503
    ServiceUnavailable,
}

impl Reason {
    /// The HTTP status code this reason is sent with.
    pub fn code(self) -> u16 {
        match self {
            Reason::BadRequest => 400,
            Reason::Unauthorized => 401,
            Reason::Forbidden => 403,
            Reason::NotFound => 404,
            Reason::MethodNotAllowed => 405,
            Reason::AlreadyExists | Reason::Conflict => 409,
            Reason::Gone => 410,
            Reason::UnsupportedMediaType => 415,
            Reason::Invalid => 422,
            Reason::ServiceUnavailable => 503,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Reason::BadRequest => "BadRequest",
            Reason::Unauthorized => "Unauthorized",
            Reason::Forbidden => "Forbidden",
            Reason::NotFound => "NotFound",
            Reason::MethodNotAllowed => "MethodNotAllowed",
            Reason::AlreadyExists => "AlreadyExists",
            Reason::Conflict => "Conflict",
            Reason::Gone => "Expired",
            Reason::UnsupportedMediaType => "UnsupportedMediaType",
            Reason::Invalid => "Invalid",
            Reason::ServiceUnavailable => "ServiceUnavailable",
        }
    }
}

/// One entry of `Status.details.causes`, used for 422 Invalid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// `FieldValueInvalid`, `FieldValueRequired`, ...
    pub reason: &'static str,
    /// The JSON path of the offending field, e.g. `spec.replicas`.
    pub field: String,
    /// Human readable.
    pub message: String,
}

/// An error answered to an API client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// Machine-readable reason; decides the HTTP status code.
    pub reason: Reason,
    /// Human readable message, in the same words kube-apiserver uses where it matters.
    pub message: String,
    /// `details.group`/`kind`/`name`, when the error is about one object.
    pub details: Option<Box<(String, String, String)>>,
    /// Field errors for 422.
    pub causes: Vec<Cause>,
}

impl ApiError {
    /// A bare error with a reason and message.
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        ApiError {
            reason,
            message: message.into(),
            details: None,
            causes: Vec::new(),
        }
    }

    /// 404 for one object, worded like kube-apiserver (`deployments.apps "web" not found`).
    pub fn not_found(group: &str, plural: &str, name: &str) -> Self {
        let mut e = ApiError::new(
            Reason::NotFound,
            format!("{} \"{name}\" not found", qualified(group, plural)),
        );
        e.details = Some(Box::new((
            group.to_string(),
            plural.to_string(),
            name.to_string(),
        )));
        e
    }

    /// 409 on create of an existing name.
    pub fn already_exists(group: &str, plural: &str, name: &str) -> Self {
        let mut e = ApiError::new(
            Reason::AlreadyExists,
            format!("{} \"{name}\" already exists", qualified(group, plural)),
        );
        e.details = Some(Box::new((
            group.to_string(),
            plural.to_string(),
            name.to_string(),
        )));
        e
    }

    /// 409 on a stale resourceVersion; the message is the one clients grep for.
    pub fn conflict(group: &str, plural: &str, name: &str) -> Self {
        let mut e = ApiError::new(
            Reason::Conflict,
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                qualified(group, plural)
            ),
        );
        e.details = Some(Box::new((
            group.to_string(),
            plural.to_string(),
            name.to_string(),
        )));
        e
    }

    /// 422 with field causes.
    pub fn invalid(group: &str, kind: &str, name: &str, causes: Vec<Cause>) -> Self {
        let list: Vec<String> = causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        let message = format!(
            "{} \"{name}\" is invalid: {}",
            qualified(group, kind),
            list.join(", ")
        );
        ApiError {
            reason: Reason::Invalid,
            message,
            details: Some(Box::new((group.into(), kind.into(), name.into()))),
            causes,
        }
    }

    /// 400
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(Reason::BadRequest, message)
    }

    /// 405
    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        ApiError::new(Reason::MethodNotAllowed, message)
    }

    /// 410 for a watch or list from a compacted resourceVersion.
    pub fn gone(message: impl Into<String>) -> Self {
        ApiError::new(Reason::Gone, message)
    }

    /// The `Status` object sent as the response body (and inside watch ERROR events).
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason.as_str(),
            "code": self.reason.code(),
        });
        if self.details.is_some() || !self.causes.is_empty() {
            let mut details = serde_json::Map::new();
            if let Some(details_box) = &self.details {
                let (group, kind, name) = details_box.as_ref();
                details.insert("name".into(), json!(name));
                if !group.is_empty() {
                    details.insert("group".into(), json!(group));
                }
                details.insert("kind".into(), json!(kind));
            }
            if !self.causes.is_empty() {
                let causes: Vec<Value> = self
                    .causes
                    .iter()
                    .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
                    .collect();
                details.insert("causes".into(), Value::Array(causes));
            }
            status["details"] = Value::Object(details);
        }
        status
    }
}

fn qualified(group: &str, plural: &str) -> String {
    if group.is_empty() {
        plural.to_string()
    } else {
        format!("{plural}.{group}")
    }
}

/// Convenience alias for request handling.
pub type ApiResult<T> = Result<T, ApiError>;
