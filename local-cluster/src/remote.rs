//! The fault rules and the audit log of a cluster in another process (`kedge dev
//! --cluster-only`), through a kube-rs client of it: the `/local-cluster/...` admin endpoints,
//! with the client's own credentials.
//!
//! ```no_run
//! # async fn demo(client: kube::Client) -> Result<(), kube::Error> {
//! use local_cluster::{FaultAction, FaultRule, Verb, remote};
//! let id = remote::inject_fault(
//!     &client,
//!     &FaultRule::new(FaultAction::status(500))
//!         .verbs([Verb::Patch])
//!         .resource("apps", "deployments")
//!         .subresource("scale")
//!         .times(1),
//! )
//! .await?;
//! // ... exercise the client under test ...
//! let writes = remote::audit(&client, 0).await?;
//! remote::remove_fault(&client, id).await?;
//! # drop(writes);
//! # Ok(()) }
//! ```

use http::{Method, Request};

use crate::audit::AuditEntry;
use crate::faults::{Fault, FaultRule};

fn request(method: Method, path: &str, body: Vec<u8>) -> Result<Request<Vec<u8>>, kube::Error> {
    Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(body)
        .map_err(kube::Error::HttpError)
}

/// Add a rule (`POST /local-cluster/faults`); its id.
pub async fn inject_fault(client: &kube::Client, rule: &FaultRule) -> Result<u64, kube::Error> {
    let body = serde_json::to_vec(rule).map_err(kube::Error::SerdeError)?;
    let fault: Fault = client
        .request(request(Method::POST, "/local-cluster/faults", body)?)
        .await?;
    Ok(fault.id)
}

/// The rules with their hits (`GET /local-cluster/faults`).
pub async fn faults(client: &kube::Client) -> Result<Vec<Fault>, kube::Error> {
    client
        .request(request(Method::GET, "/local-cluster/faults", Vec::new())?)
        .await
}

/// Remove one rule, releasing the requests it holds (`DELETE /local-cluster/faults/{id}`); the
/// rule with its final hits.
pub async fn remove_fault(client: &kube::Client, id: u64) -> Result<Fault, kube::Error> {
    client
        .request(request(
            Method::DELETE,
            &format!("/local-cluster/faults/{id}"),
            Vec::new(),
        )?)
        .await
}

/// Remove every rule (`DELETE /local-cluster/faults`); the rules removed.
pub async fn clear_faults(client: &kube::Client) -> Result<Vec<Fault>, kube::Error> {
    client
        .request(request(
            Method::DELETE,
            "/local-cluster/faults",
            Vec::new(),
        )?)
        .await
}

/// The audited writes after sequence number `since` (`GET /local-cluster/audit?since=N`;
/// 0 for all that are kept).
pub async fn audit(client: &kube::Client, since: u64) -> Result<Vec<AuditEntry>, kube::Error> {
    client
        .request(request(
            Method::GET,
            &format!("/local-cluster/audit?since={since}"),
            Vec::new(),
        )?)
        .await
}
