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

/// One attempt: returns whether this replica holds the lease afterwards.
async fn try_acquire_or_renew(api: &Api<Lease>, s: &LeaseSettings) -> Result<bool, kube::Error> {
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
                Ok(_) => Ok(true),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                Err(e) => Err(e),
            }
        }
        Some(mut lease) => {
            let holder = lease.spec.as_ref().and_then(|s| s.holder_identity.clone());
            let mine = holder.as_deref() == Some(s.identity.as_str());
            if !mine && !expired(&lease, Utc::now()) {
                return Ok(false);
            }
            let spec = lease.spec.get_or_insert_with(Default::default);
            if !mine {
                spec.holder_identity = Some(s.identity.clone());
                spec.acquire_time = now.clone();
                spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            }
            spec.renew_time = now;
            spec.lease_duration_seconds = Some(duration);
            // The resourceVersion makes this a compare-and-swap: two candidates cannot both win.
            match api.replace(&s.name, &PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                Err(e) => Err(e),
            }
        }
    }
}

/// Campaigns for the lease forever, publishing whether this replica leads.
pub async fn run(client: Client, settings: LeaseSettings, leading: watch::Sender<bool>) {
    let api: Api<Lease> = Api::namespaced(client, &settings.namespace);
    let mut last_renewal = tokio::time::Instant::now();
    loop {
        let is_leader = *leading.borrow();
        let attempt = tokio::time::timeout(
            settings.retry_period.max(Duration::from_millis(500)),
            try_acquire_or_renew(&api, &settings),
        )
        .await;
        match attempt {
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
