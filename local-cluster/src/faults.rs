//! Fault injection: rules that make chosen API requests fail, hang or lose their connection,
//! so tests can watch how clients behave when the API server misbehaves. Requests no rule
//! matches are served exactly as without this module.

use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::watch;

/// A Kubernetes API verb, as RBAC and audit name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verb {
    /// `GET` of one object (or of its subresource).
    Get,
    /// `GET` of a collection.
    List,
    /// `GET` of a collection with `watch=1`.
    Watch,
    /// `POST`.
    Create,
    /// `PUT`.
    Update,
    /// `PATCH`.
    Patch,
    /// `DELETE` of one object.
    Delete,
    /// `DELETE` of a collection.
    #[serde(rename = "deletecollection")]
    DeleteCollection,
}

impl Verb {
    /// Whether requests with this verb change something (and so are audited).
    pub fn is_write(self) -> bool {
        matches!(
            self,
            Verb::Create | Verb::Update | Verb::Patch | Verb::Delete | Verb::DeleteCollection
        )
    }

    /// The verb from the method, whether a name is addressed, and `watch=1`; `None` for
    /// methods that are no verb (`OPTIONS`, ...).
    pub(crate) fn of(method: &http::Method, named: bool, watching: bool) -> Option<Verb> {
        Some(match (method.as_str(), named) {
            ("GET", true) => Verb::Get,
            ("GET", false) if watching => Verb::Watch,
            ("GET", false) => Verb::List,
            ("POST", _) => Verb::Create,
            ("PUT", _) => Verb::Update,
            ("PATCH", _) => Verb::Patch,
            ("DELETE", true) => Verb::Delete,
            ("DELETE", false) => Verb::DeleteCollection,
            _ => return None,
        })
    }
}

/// What a resource request addresses, as kube-apiserver's request info has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RequestInfo {
    pub verb: Verb,
    pub group: String,
    pub version: String,
    pub resource: String,
    pub subresource: Option<String>,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub user_agent: Option<String>,
    pub dry_run: bool,
}

/// A rule: which requests it matches, what happens to them, and how often.
///
/// Every matcher left unset matches everything; a rule matches a request when all of its
/// matchers do. As JSON (`POST /local-cluster/faults`), fields are camelCase and unknown
/// fields are refused, so a misspelt matcher cannot silently match every request:
///
/// ```json
/// {"verbs": ["patch"], "group": "apps", "resource": "deployments", "subresource": "scale",
///  "action": {"respond": {"code": 500}}, "times": 1}
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultRule {
    /// The verbs it applies to; empty: all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verbs: Vec<Verb>,
    /// The API group, `""` for the core group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The resource (plural), e.g. `deployments`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// The subresource, e.g. `scale` or `status`; `""` matches requests to the main resource
    /// only, unset matches both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subresource: Option<String>,
    /// The namespace of the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The object name of the request (collections have none, so never match a name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A substring the request's `User-Agent` header must contain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// What happens to a matching request.
    pub action: FaultAction,
    /// Whether the fault replaces the handling of the request or acts on its answer.
    #[serde(default)]
    pub when: FaultWhen,
    /// How many requests it acts on; unset: every matching request until it is removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u64>,
}

/// What a fault does to a request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum FaultAction {
    /// Answer with this status code and a Kubernetes `Status` body. JSON:
    /// `{"respond": {"code": 429, "retryAfterSeconds": 2}}`.
    Respond {
        /// 400 to 599.
        code: u16,
        /// `Status.reason`; by default kube-apiserver's for the code (`InternalError` for
        /// 500, `TooManyRequests` for 429, `ServiceUnavailable` for 503, `Timeout` for 504).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// `Status.message`; by default one in kube-apiserver's words for the code.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
        /// Sent as the `Retry-After` header and `details.retryAfterSeconds`. A 429 without it
        /// says 1, as kube-apiserver's max-in-flight filter does.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_seconds: Option<u64>,
    },
    /// Hold the request, then go on as without the fault. JSON: `{"hang": {"seconds": 30}}`,
    /// or `{"hang": {}}` to hold it until the rule is removed. Removing the rule ends every
    /// hang it started.
    Hang {
        /// How long; unset: until the rule is removed.
        #[serde(
            default,
            rename = "seconds",
            with = "opt_seconds",
            skip_serializing_if = "Option::is_none"
        )]
        duration: Option<Duration>,
    },
    /// Close the connection with a TCP reset, answering nothing. JSON: `"reset"`.
    Reset,
}

/// When a fault acts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum FaultWhen {
    /// Before the request is handled: an answer or reset means the request did nothing; a hang
    /// delays its handling (which then happens whether or not the client still waits, as on a
    /// slow kube-apiserver).
    #[default]
    Before,
    /// After the request is handled (a write has taken effect): the answer is replaced,
    /// delayed or lost — the "did my write land?" case.
    After,
}

/// A rule held by the cluster, with how often it acted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Fault {
    /// Names the rule for removal; also the `fault` of the audit entries of requests it acted
    /// on. Ids start at 1 and are never reused.
    pub id: u64,
    /// The rule as given.
    pub rule: FaultRule,
    /// Requests it acted on so far.
    pub hits: u64,
}

impl FaultRule {
    /// A rule that does `action` to every request; narrow it with the other methods.
    pub fn new(action: FaultAction) -> Self {
        FaultRule {
            verbs: Vec::new(),
            group: None,
            resource: None,
            subresource: None,
            namespace: None,
            name: None,
            user_agent: None,
            action,
            when: FaultWhen::Before,
            times: None,
        }
    }

    /// Only these verbs.
    pub fn verbs(mut self, verbs: impl IntoIterator<Item = Verb>) -> Self {
        self.verbs = verbs.into_iter().collect();
        self
    }

    /// Only this group (`""` for core) and resource (plural).
    pub fn resource(mut self, group: &str, resource: &str) -> Self {
        self.group = Some(group.to_string());
        self.resource = Some(resource.to_string());
        self
    }

    /// Only this subresource; `""` for the main resource only.
    pub fn subresource(mut self, subresource: &str) -> Self {
        self.subresource = Some(subresource.to_string());
        self
    }

    /// Only this namespace.
    pub fn namespace(mut self, namespace: &str) -> Self {
        self.namespace = Some(namespace.to_string());
        self
    }

    /// Only this object name.
    pub fn name(mut self, name: &str) -> Self {
        self.name = Some(name.to_string());
        self
    }

    /// Only requests whose `User-Agent` contains `part`.
    pub fn user_agent(mut self, part: &str) -> Self {
        self.user_agent = Some(part.to_string());
        self
    }

    /// Act after the request is handled (see [`FaultWhen::After`]).
    pub fn after_handling(mut self) -> Self {
        self.when = FaultWhen::After;
        self
    }

    /// Act on the first `n` matching requests only.
    pub fn times(mut self, n: u64) -> Self {
        self.times = Some(n);
        self
    }

    /// Why the rule cannot be used, if it cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.times == Some(0) {
            return Err("times must be at least 1 (leave it unset for no limit)".into());
        }
        if let FaultAction::Respond { code, .. } = &self.action
            && !(400..=599).contains(code)
        {
            return Err(format!("respond.code must be from 400 to 599, not {code}"));
        }
        Ok(())
    }

    fn matches(&self, req: &RequestInfo) -> bool {
        let eq = |want: &Option<String>, have: Option<&str>| {
            want.as_deref().is_none_or(|w| have == Some(w))
        };
        (self.verbs.is_empty() || self.verbs.contains(&req.verb))
            && eq(&self.group, Some(&req.group))
            && eq(&self.resource, Some(&req.resource))
            && match self.subresource.as_deref() {
                None => true,
                Some("") => req.subresource.is_none(),
                Some(s) => req.subresource.as_deref() == Some(s),
            }
            && eq(&self.namespace, req.namespace.as_deref())
            && eq(&self.name, req.name.as_deref())
            && self.user_agent.as_deref().is_none_or(|part| {
                req.user_agent
                    .as_deref()
                    .is_some_and(|ua| ua.contains(part))
            })
    }
}

impl FaultAction {
    /// Answer `code` with kube-apiserver's reason and message for it.
    pub fn status(code: u16) -> Self {
        FaultAction::Respond {
            code,
            reason: None,
            message: None,
            retry_after_seconds: None,
        }
    }

    /// Answer 429 TooManyRequests with `Retry-After: retry_after_seconds`.
    pub fn too_many_requests(retry_after_seconds: u64) -> Self {
        FaultAction::Respond {
            code: 429,
            reason: None,
            message: None,
            retry_after_seconds: Some(retry_after_seconds),
        }
    }

    /// Hold the request for `duration`.
    pub fn hang(duration: Duration) -> Self {
        FaultAction::Hang {
            duration: Some(duration),
        }
    }

    /// Hold the request until the rule is removed.
    pub fn hang_until_removed() -> Self {
        FaultAction::Hang { duration: None }
    }
}

/// `Option<Duration>` as fractional seconds.
mod opt_seconds {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_f64(d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Option::<f64>::deserialize(d)?
            .map(|secs| {
                Duration::try_from_secs_f64(secs).map_err(|_| {
                    serde::de::Error::custom(format!(
                        "seconds must be a finite number ≥ 0, not {secs}"
                    ))
                })
            })
            .transpose()
    }
}

/// What the server does for a request a rule matched.
#[derive(Debug)]
pub(crate) struct Injected {
    pub id: u64,
    pub action: FaultAction,
    pub when: FaultWhen,
    /// Changes (closes) when the rule is removed, ending its hangs.
    pub removed: watch::Receiver<()>,
}

impl Injected {
    /// Wait out a hang: its duration, the rule's removal or the cluster's shutdown, whichever
    /// comes first.
    pub async fn hang(&mut self, duration: Option<Duration>, shutdown: &mut watch::Receiver<bool>) {
        let sleep = async {
            match duration {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = sleep => {}
            // Only ever Err: nothing is sent, the sender is dropped with the rule.
            _ = self.removed.changed() => {}
            _ = shutdown.wait_for(|stop| *stop) => {}
        }
    }
}

struct Held {
    fault: Fault,
    /// Dropped with the rule, which wakes the requests it holds.
    _removed: watch::Sender<()>,
    removed_rx: watch::Receiver<()>,
}

/// The rules of one cluster, in the order they were added; the first that matches acts.
#[derive(Default)]
pub(crate) struct Faults {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    last_id: u64,
    rules: Vec<Held>,
}

impl std::fmt::Debug for Faults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.list()).finish()
    }
}

impl Faults {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the rule list half-changed.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Add a valid rule; its id.
    pub fn add(&self, rule: FaultRule) -> Result<Fault, String> {
        rule.validate()?;
        let mut inner = self.lock();
        inner.last_id += 1;
        let (tx, rx) = watch::channel(());
        let fault = Fault {
            id: inner.last_id,
            rule,
            hits: 0,
        };
        inner.rules.push(Held {
            fault: fault.clone(),
            _removed: tx,
            removed_rx: rx,
        });
        Ok(fault)
    }

    /// Remove one rule, releasing the requests it holds.
    pub fn remove(&self, id: u64) -> Option<Fault> {
        let mut inner = self.lock();
        let at = inner.rules.iter().position(|h| h.fault.id == id)?;
        Some(inner.rules.remove(at).fault)
    }

    /// Remove every rule.
    pub fn clear(&self) -> Vec<Fault> {
        std::mem::take(&mut self.lock().rules)
            .into_iter()
            .map(|h| h.fault)
            .collect()
    }

    /// The rules with their hits.
    pub fn list(&self) -> Vec<Fault> {
        self.lock().rules.iter().map(|h| h.fault.clone()).collect()
    }

    /// One rule.
    pub fn get(&self, id: u64) -> Option<Fault> {
        self.lock()
            .rules
            .iter()
            .find(|h| h.fault.id == id)
            .map(|h| h.fault.clone())
    }

    /// The first rule that matches and has not used up its `times`, counted as a hit.
    pub fn check(&self, req: &RequestInfo) -> Option<Injected> {
        let mut inner = self.lock();
        if inner.rules.is_empty() {
            return None;
        }
        let held = inner.rules.iter_mut().find(|h| {
            h.fault.rule.times.is_none_or(|t| h.fault.hits < t) && h.fault.rule.matches(req)
        })?;
        held.fault.hits += 1;
        Some(Injected {
            id: held.fault.id,
            action: held.fault.rule.action.clone(),
            when: held.fault.rule.when,
            removed: held.removed_rx.clone(),
        })
    }
}

/// kube-apiserver's `Status.reason` for a code.
fn default_reason(code: u16) -> &'static str {
    match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        406 => "NotAcceptable",
        409 => "Conflict",
        410 => "Expired",
        413 => "RequestEntityTooLarge",
        415 => "UnsupportedMediaType",
        422 => "Invalid",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        // StatusReasonUnknown
        _ => "",
    }
}

fn default_message(code: u16, id: u64) -> String {
    match code {
        429 => "Too many requests, please try again later.".into(),
        500 => format!("Internal error occurred: injected by local-cluster fault {id}"),
        503 => "the server is currently unable to handle the request".into(),
        504 => {
            "Timeout: request did not complete within requested timeout - context deadline exceeded"
                .into()
        }
        _ => format!("injected by local-cluster fault {id}"),
    }
}

/// The `Status` body and `Retry-After` value of a `Respond` action.
pub(crate) fn status_body(id: u64, action: &FaultAction) -> Option<(u16, Value, Option<u64>)> {
    let FaultAction::Respond {
        code,
        reason,
        message,
        retry_after_seconds,
    } = action
    else {
        return None;
    };
    let code = *code;
    let retry_after = retry_after_seconds.or((code == 429).then_some(1));
    let mut status = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message.clone().unwrap_or_else(|| default_message(code, id)),
        "reason": reason.as_deref().unwrap_or(default_reason(code)),
        "code": code,
    });
    if let Some(secs) = retry_after {
        status["details"] = json!({ "retryAfterSeconds": secs });
    }
    Some((code, status, retry_after))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn req(verb: Verb, group: &str, resource: &str, sub: Option<&str>) -> RequestInfo {
        RequestInfo {
            verb,
            group: group.into(),
            version: "v1".into(),
            resource: resource.into(),
            subresource: sub.map(str::to_string),
            namespace: Some("default".into()),
            name: Some("web".into()),
            user_agent: Some("kedge/0.1 (replica-a)".into()),
            dry_run: false,
        }
    }

    #[test]
    fn matchers() {
        let scale = req(Verb::Patch, "apps", "deployments", Some("scale"));
        let main = req(Verb::Patch, "apps", "deployments", None);
        let rule = FaultRule::new(FaultAction::Reset)
            .verbs([Verb::Patch])
            .resource("apps", "deployments");
        assert!(rule.matches(&scale) && rule.matches(&main));
        assert!(rule.clone().subresource("scale").matches(&scale));
        assert!(!rule.clone().subresource("scale").matches(&main));
        assert!(rule.clone().subresource("").matches(&main));
        assert!(!rule.clone().subresource("").matches(&scale));
        assert!(!rule.clone().verbs([Verb::Update]).matches(&scale));
        assert!(!rule.clone().resource("", "deployments").matches(&scale));
        assert!(
            rule.clone()
                .namespace("default")
                .name("web")
                .matches(&scale)
        );
        assert!(!rule.clone().name("api").matches(&scale));
        assert!(rule.clone().user_agent("replica-a").matches(&scale));
        assert!(!rule.clone().user_agent("replica-b").matches(&scale));
        let mut anonymous = scale.clone();
        anonymous.user_agent = None;
        assert!(!rule.user_agent("kedge").matches(&anonymous));
    }

    #[test]
    fn times_and_removal() {
        let faults = Faults::default();
        let r = req(Verb::Create, "", "events", None);
        let a = faults
            .add(FaultRule::new(FaultAction::status(500)).times(1))
            .unwrap();
        let b = faults
            .add(FaultRule::new(FaultAction::status(503)))
            .unwrap();
        assert_eq!(faults.check(&r).unwrap().id, a.id);
        assert_eq!(faults.check(&r).unwrap().id, b.id);
        assert_eq!(faults.get(a.id).unwrap().hits, 1);
        let held = faults.check(&r).unwrap();
        assert_eq!(faults.remove(b.id).unwrap().hits, 2);
        assert!(held.removed.has_changed().is_err(), "removal releases");
        assert!(faults.check(&r).is_none());
        assert_eq!(faults.clear().len(), 1);
        assert!(
            faults
                .add(FaultRule::new(FaultAction::status(200)))
                .is_err()
        );
        assert!(
            faults
                .add(FaultRule::new(FaultAction::Reset).times(0))
                .is_err()
        );
    }

    #[test]
    fn json_shape() {
        let rule: FaultRule = serde_json::from_value(json!({
            "verbs": ["patch", "deletecollection"], "group": "apps", "resource": "deployments",
            "subresource": "scale", "userAgent": "replica-a",
            "action": {"respond": {"code": 429, "retryAfterSeconds": 2}}, "times": 1
        }))
        .unwrap();
        assert_eq!(
            rule,
            FaultRule::new(FaultAction::too_many_requests(2))
                .verbs([Verb::Patch, Verb::DeleteCollection])
                .resource("apps", "deployments")
                .subresource("scale")
                .user_agent("replica-a")
                .times(1)
        );
        let hang: FaultRule =
            serde_json::from_value(json!({"action": {"hang": {"seconds": 0.5}}, "when": "after"}))
                .unwrap();
        assert_eq!(
            hang,
            FaultRule::new(FaultAction::hang(Duration::from_millis(500))).after_handling()
        );
        let forever: FaultRule = serde_json::from_value(json!({"action": {"hang": {}}})).unwrap();
        assert_eq!(forever.action, FaultAction::hang_until_removed());
        let reset: FaultRule = serde_json::from_value(json!({"action": "reset"})).unwrap();
        assert_eq!(reset.action, FaultAction::Reset);
        assert!(
            serde_json::from_value::<FaultRule>(json!({"verb": "patch", "action": "reset"}))
                .is_err(),
            "a misspelt matcher is refused"
        );
        assert!(
            serde_json::from_value::<FaultRule>(json!({"action": {"hang": {"seconds": -1}}}))
                .is_err()
        );
        let round: FaultRule =
            serde_json::from_value(serde_json::to_value(&hang).unwrap()).unwrap();
        assert_eq!(round, hang);
    }

    #[test]
    fn status_bodies() {
        let (code, body, retry) = status_body(3, &FaultAction::status(429)).unwrap();
        assert_eq!((code, retry), (429, Some(1)));
        assert_eq!(body["reason"], "TooManyRequests");
        assert_eq!(body["details"]["retryAfterSeconds"], 1);
        let (_, body, retry) = status_body(3, &FaultAction::status(500)).unwrap();
        assert_eq!(retry, None);
        assert_eq!(body["reason"], "InternalError");
        assert!(body.get("details").is_none());
        assert!(status_body(3, &FaultAction::Reset).is_none());
    }
}
