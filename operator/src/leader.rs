//! Leader election on a `coordination.k8s.io/v1` Lease, with KEDA's timings (lease 15 s, renew
//! deadline 10 s, retry 2 s).
//!
//! Only the leader reconciles, polls and writes; every replica serves the metrics adapter. The
//! elector publishes leadership on a `watch` channel; a leader that cannot renew within the
//! renew deadline steps down at once, before another replica can take the lease over.

use std::time::Duration;

use chrono::Utc;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Client;
use kube::api::{Api, PostParams};
use tokio::sync::watch;
use tracing::{info, warn};

/// Timings and identity of the election.
#[derive(Clone, Debug)]
pub struct LeaseSettings {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This replica's identity (pod name).
    pub identity: String,
    /// How long a lease is valid without renewal.
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before it steps down.
    pub renew_deadline: Duration,
    /// How often to try to acquire or renew.
    pub retry_period: Duration,
}

impl LeaseSettings {
    /// KEDA's defaults for the given lease.
    pub fn new(namespace: &str, name: &str, identity: &str) -> Self {
        Self {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            identity: identity.to_owned(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

fn micro_now() -> Option<MicroTime> {
    let nanos = Utc::now().timestamp_nanos_opt()?;
    k8s_openapi::jiff::Timestamp::from_nanosecond(i128::from(nanos))
        .ok()
        .map(MicroTime)
}

fn expired(lease: &Lease, now: chrono::DateTime<Utc>) -> bool {
    let Some(spec) = &lease.spec else { return true };
    let Some(renewed) = spec
        .renew_time
        .as_ref()
        .and_then(|t| i64::try_from(t.0.as_nanosecond()).ok())
        .map(chrono::DateTime::from_timestamp_nanos)
    else {
        return true;
    };
    let duration = i64::from(spec.lease_duration_seconds.unwrap_or(15));
    renewed + chrono::TimeDelta::seconds(duration) < now
}

/// One attempt: returns the holder of the lease afterwards (`None`: nobody holds an unexpired
/// lease we know of).
async fn try_acquire_or_renew(
    api: &Api<Lease>,
    s: &LeaseSettings,
) -> Result<Option<String>, kube::Error> {
    let mine = Some(s.identity.clone());
    let now = micro_now();
    let duration = i32::try_from(s.lease_duration.as_secs()).unwrap_or(15);
    match api.get_opt(&s.name).await? {
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(s.name.clone()),
                    namespace: Some(s.namespace.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(s.identity.clone()),
                    lease_duration_seconds: Some(duration),
                    acquire_time: now.clone(),
                    renew_time: now,
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            match api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(mine),
                // Someone else created it first; the next attempt reads who.
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(None),
                Err(e) => Err(e),
            }
        }
        Some(mut lease) => {
            let holder = lease.spec.as_ref().and_then(|s| s.holder_identity.clone());
            let held = holder.as_deref() == Some(s.identity.as_str());
            if !held && !expired(&lease, Utc::now()) {
                return Ok(holder);
            }
            let spec = lease.spec.get_or_insert_with(Default::default);
            if !held {
                spec.holder_identity = Some(s.identity.clone());
                spec.acquire_time = now.clone();
                spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            }
            spec.renew_time = now;
            spec.lease_duration_seconds = Some(duration);
            // The resourceVersion makes this a compare-and-swap: two candidates cannot both win.
            match api.replace(&s.name, &PostParams::default(), &lease).await {
                Ok(_) => Ok(mine),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(None),
                Err(e) => Err(e),
            }
        }
    }
}

/// Campaigns for the lease forever, publishing whether this replica leads and who holds the
/// lease (its identity, which carries the leader's gRPC address: see [`holder_address`]).
pub async fn run(
    client: Client,
    settings: LeaseSettings,
    leading: watch::Sender<bool>,
    holder: watch::Sender<Option<String>>,
) {
    let api: Api<Lease> = Api::namespaced(client, &settings.namespace);
    let mut last_renewal = tokio::time::Instant::now();
    loop {
        let is_leader = *leading.borrow();
        let attempt = tokio::time::timeout(
            settings.retry_period.max(Duration::from_millis(500)),
            try_acquire_or_renew(&api, &settings),
        )
        .await;
        if let Ok(Ok(h)) = &attempt {
            holder.send_if_modified(|current| {
                let changed = current != h;
                if changed {
                    current.clone_from(h);
                }
                changed
            });
        }
        match attempt.map(|r| r.map(|h| h.as_deref() == Some(settings.identity.as_str()))) {
            Ok(Ok(true)) => {
                last_renewal = tokio::time::Instant::now();
                if !is_leader {
                    info!(lease = %settings.name, identity = %settings.identity, "became leader");
                    let _ = leading.send(true);
                }
            }
            Ok(Ok(false)) => {
                if is_leader {
                    warn!(lease = %settings.name, "lease taken by another replica; stepping down");
                    let _ = leading.send(false);
                }
            }
            Ok(Err(e)) => warn!(lease = %settings.name, "lease: {e}"),
            Err(_) => warn!(lease = %settings.name, "lease: no answer from the API server"),
        }
        if *leading.borrow() && last_renewal.elapsed() > settings.renew_deadline {
            warn!(lease = %settings.name, "could not renew the lease in time; stepping down");
            let _ = leading.send(false);
        }
        tokio::time::sleep(settings.retry_period).await;
    }
}

/// The identity a replica campaigns with: its name, and when it serves the follower link, the
/// address followers reach it at (`name@ip:port`, `name@[v6]:port`). Pod IPs change with every
/// restart, so the Lease is the one place that always knows where the current leader is.
pub fn identity_with_address(name: &str, address: Option<std::net::SocketAddr>) -> String {
    match address {
        Some(a) => format!("{name}@{a}"),
        None => name.to_owned(),
    }
}

/// The gRPC address carried by a holder identity (`kedge-7f9@10.0.0.5:9666` →
/// `10.0.0.5:9666`), if any.
pub fn holder_address(identity: &str) -> Option<String> {
    let (_, address) = identity.rsplit_once('@')?;
    address
        .parse::<std::net::SocketAddr>()
        .ok()
        .map(|a| a.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_carry_the_link_address() {
        let v4 = identity_with_address("kedge-0", "10.1.2.3:9666".parse().ok());
        assert_eq!(v4, "kedge-0@10.1.2.3:9666");
        assert_eq!(holder_address(&v4).as_deref(), Some("10.1.2.3:9666"));
        let v6 = identity_with_address("kedge-1", "[fd00::1]:9666".parse().ok());
        assert_eq!(holder_address(&v6).as_deref(), Some("[fd00::1]:9666"));
        assert_eq!(holder_address("kedge-2"), None);
        assert_eq!(holder_address("user@example"), None);
    }
}
