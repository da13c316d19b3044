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
use tokio::time::Instant;
use tracing::{info, warn};

use crate::fence::Fence;

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

/// The last version of the lease this replica saw, and when it first saw it.
///
/// Whether another replica's lease has expired is judged by how long *this* replica has seen it
/// unchanged, as client-go does (`observedTime`), never by comparing the holder's `renewTime`
/// with the local clock: clocks of two nodes can be seconds or minutes apart, and a skewed clock
/// must not let two replicas lead at once.
#[derive(Debug, Clone)]
struct Observed {
    record: LeaseSpec,
    at: Instant,
}

/// Records `spec` as seen at `now` (keeping the earlier time if it has not changed) and says
/// whether the lease it describes has expired: unchanged for longer than its duration.
fn observe(observed: &mut Option<Observed>, spec: &LeaseSpec, now: Instant) -> bool {
    match observed {
        Some(o) if o.record == *spec => {}
        _ => {
            *observed = Some(Observed {
                record: spec.clone(),
                at: now,
            })
        }
    }
    let duration = u64::try_from(spec.lease_duration_seconds.unwrap_or(15).max(1)).unwrap_or(15);
    let unchanged_since = observed.as_ref().map_or(now, |o| o.at);
    spec.holder_identity.as_deref().is_none_or(str::is_empty)
        || now.saturating_duration_since(unchanged_since) > Duration::from_secs(duration)
}

/// One attempt: returns the holder of the lease afterwards (`None`: nobody holds an unexpired
/// lease we know of).
async fn try_acquire_or_renew(
    api: &Api<Lease>,
    s: &LeaseSettings,
    observed: &mut Option<Observed>,
) -> Result<Option<String>, kube::Error> {
    let mine = Some(s.identity.clone());
    let now = micro_now();
    let duration = i32::try_from(s.lease_duration.as_secs()).unwrap_or(15);
    match api.get_opt(&s.name).await? {
        None => {
            let spec = LeaseSpec {
                holder_identity: Some(s.identity.clone()),
                lease_duration_seconds: Some(duration),
                acquire_time: now.clone(),
                renew_time: now,
                lease_transitions: Some(0),
                ..Default::default()
            };
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(s.name.clone()),
                    namespace: Some(s.namespace.clone()),
                    ..Default::default()
                },
                spec: Some(spec.clone()),
            };
            match api.create(&PostParams::default(), &lease).await {
                Ok(_) => {
                    observe(observed, &spec, Instant::now());
                    Ok(mine)
                }
                // Someone else created it first; the next attempt reads who.
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(None),
                Err(e) => Err(e),
            }
        }
        Some(mut lease) => {
            let current = lease.spec.clone().unwrap_or_default();
            let holder = current.holder_identity.clone();
            let held = holder.as_deref() == Some(s.identity.as_str());
            let expired = observe(observed, &current, Instant::now());
            if !held && !expired {
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
            let written = spec.clone();
            // The resourceVersion makes this a compare-and-swap: two candidates cannot both win.
            match api.replace(&s.name, &PostParams::default(), &lease).await {
                Ok(_) => {
                    observe(observed, &written, Instant::now());
                    Ok(mine)
                }
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(None),
                Err(e) => Err(e),
            }
        }
    }
}

/// Campaigns for the lease forever, publishing whether this replica leads and who holds the
/// lease (its identity, which carries the leader's gRPC address: see [`holder_address`]).
///
/// `fence` is opened at each renewal until the renewal's send time plus the renew deadline, and
/// closed before leadership is given up, so no write of this replica starts once another
/// replica could have taken the lease (see [`crate::fence`]).
pub async fn run(
    client: Client,
    settings: LeaseSettings,
    fence: Fence,
    leading: watch::Sender<bool>,
    holder: watch::Sender<Option<String>>,
) {
    let api: Api<Lease> = Api::namespaced(client, &settings.namespace);
    let mut last_renewal = Instant::now();
    let mut observed = None;
    loop {
        let is_leader = *leading.borrow();
        let sent = Instant::now();
        let attempt = tokio::time::timeout(
            settings.retry_period.max(Duration::from_millis(500)),
            try_acquire_or_renew(&api, &settings, &mut observed),
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
                last_renewal = sent;
                // Counted from when the renewal was sent: the API server may have recorded it
                // any time after that, and others count the lease duration from then.
                fence.open_until(sent + settings.renew_deadline);
                if !is_leader {
                    info!(lease = %settings.name, identity = %settings.identity, "became leader");
                    let _ = leading.send(true);
                }
            }
            Ok(Ok(false)) => {
                if is_leader {
                    fence.close();
                    warn!(lease = %settings.name, "lease taken by another replica; stepping down");
                    let _ = leading.send(false);
                }
            }
            Ok(Err(e)) => warn!(lease = %settings.name, "lease: {e}"),
            Err(_) => warn!(lease = %settings.name, "lease: no answer from the API server"),
        }
        if *leading.borrow() && last_renewal.elapsed() > settings.renew_deadline {
            fence.close();
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

    fn spec(holder: &str, renewed_secs: i64) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(
                k8s_openapi::jiff::Timestamp::from_second(renewed_secs).unwrap_or_default(),
            )),
            ..Default::default()
        }
    }

    #[test]
    fn expiry_is_judged_by_how_long_this_replica_saw_no_change() {
        let t0 = Instant::now();
        let mut observed = None;
        // The holder's clock is an hour behind ours: its renewTime looks ancient, yet the lease
        // is live as long as it keeps changing.
        let skewed = spec("a", 1_000);
        assert!(!observe(&mut observed, &skewed, t0));
        assert!(!observe(
            &mut observed,
            &skewed,
            t0 + Duration::from_secs(14)
        ));
        let renewed = spec("a", 1_002);
        assert!(!observe(
            &mut observed,
            &renewed,
            t0 + Duration::from_secs(16)
        ));
        assert!(!observe(
            &mut observed,
            &renewed,
            t0 + Duration::from_secs(30)
        ));
        // Unchanged for longer than the lease duration: expired, whatever its renewTime says.
        assert!(observe(
            &mut observed,
            &renewed,
            t0 + Duration::from_secs(32)
        ));
        // A holder whose clock runs ahead does not keep a dead lease alive either.
        let mut observed = None;
        let future = spec("b", 4_000_000_000);
        assert!(!observe(&mut observed, &future, t0));
        assert!(observe(
            &mut observed,
            &future,
            t0 + Duration::from_secs(16)
        ));
        // A released lease (no holder) is free at once.
        let mut released = spec("", 0);
        released.holder_identity = None;
        assert!(observe(&mut None, &released, t0));
    }
}
