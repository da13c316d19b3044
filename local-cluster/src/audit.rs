//! The write audit log: every create, update, patch and delete a client sent (subresources
//! included), with who sent it and how it was answered, so tests can count the writes of each
//! client and order them against each other.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};

use crate::faults::{RequestInfo, Verb};

/// One write request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    /// Position in the log: 1, 2, 3, ... in the order the requests were answered (or given up
    /// on), without gaps, so a gap in what a reader sees means entries were evicted.
    pub seq: u64,
    /// When the request arrived.
    #[serde(with = "rfc3339")]
    pub received: DateTime<Utc>,
    /// When it was answered (or the connection reset, or the client gone).
    #[serde(with = "rfc3339")]
    pub finished: DateTime<Utc>,
    /// `create`, `update`, `patch`, `delete` or `deletecollection`.
    pub verb: Verb,
    /// API group, `""` for core.
    pub group: String,
    /// API version of the request path.
    pub version: String,
    /// Resource (plural).
    pub resource: String,
    /// `status`, `scale`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subresource: Option<String>,
    /// Namespace of the request path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Object name of the request path (a create has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The `User-Agent` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// The client's address and port.
    pub source: SocketAddr,
    /// `dryRun=All`: nothing was written, whatever the code.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    /// The status code the handling of the request produced; `None` when it was not handled
    /// (a fault acted before, or the client went away first). A 2xx here means the write took
    /// effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handled: Option<u16>,
    /// The status code the client was answered with; `None` when it got no answer (the
    /// connection was reset, or it went away). Differs from `handled` only under a fault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<u16>,
    /// The id of the fault rule that acted on the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<u64>,
}

impl AuditEntry {
    /// Whether the write took effect: handled with a 2xx, and not a dry run.
    pub fn landed(&self) -> bool {
        !self.dry_run && self.handled.is_some_and(|c| (200..300).contains(&c))
    }
}

/// The bounded log: the newest `capacity` entries.
pub(crate) struct AuditLog {
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    last_seq: u64,
    entries: VecDeque<AuditEntry>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the entries: `LocalCluster`'s Debug would print up to `capacity` of them.
        let inner = self.lock();
        f.debug_struct("AuditLog")
            .field("capacity", &self.capacity)
            .field("kept", &inner.entries.len())
            .field("last_seq", &inner.last_seq)
            .finish()
    }
}

impl AuditLog {
    pub fn new(capacity: usize) -> Self {
        AuditLog {
            capacity,
            inner: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Appending cannot leave the log half-changed, so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, mut entry: AuditEntry) {
        let mut inner = self.lock();
        inner.last_seq += 1;
        entry.seq = inner.last_seq;
        if self.capacity == 0 {
            return;
        }
        while inner.entries.len() >= self.capacity {
            inner.entries.pop_front();
        }
        inner.entries.push_back(entry);
    }

    /// The kept entries with `seq > since`, oldest first.
    pub fn since(&self, since: u64) -> Vec<AuditEntry> {
        let inner = self.lock();
        let from = inner.entries.partition_point(|e| e.seq <= since);
        inner.entries.range(from..).cloned().collect()
    }
}

/// A write in flight: recorded once when it is answered, or when it is dropped unanswered
/// (the connection went away), so no write that reached the server is missing.
pub(crate) struct Pending {
    state: Arc<crate::state::State>,
    entry: Option<AuditEntry>,
}

impl Pending {
    /// Start recording the request if it is a write (`info` is `None` for paths that address
    /// no resource).
    pub fn start(
        state: &Arc<crate::state::State>,
        info: Option<&RequestInfo>,
        source: SocketAddr,
    ) -> Pending {
        let now = now();
        Pending {
            state: state.clone(),
            entry: info.filter(|i| i.verb.is_write()).map(|info| AuditEntry {
                seq: 0,
                received: now,
                finished: now,
                verb: info.verb,
                group: info.group.clone(),
                version: info.version.clone(),
                resource: info.resource.clone(),
                subresource: info.subresource.clone(),
                namespace: info.namespace.clone(),
                name: info.name.clone(),
                user_agent: info.user_agent.clone(),
                source,
                dry_run: info.dry_run,
                handled: None,
                code: None,
                fault: None,
            }),
        }
    }

    /// The request was handled with `code`.
    pub fn handled(&mut self, code: u16) {
        if let Some(e) = &mut self.entry {
            e.handled = Some(code);
        }
    }

    /// Fault `id` acted on the request.
    pub fn fault(&mut self, id: u64) {
        if let Some(e) = &mut self.entry {
            e.fault = Some(id);
        }
    }

    /// Record it, answered with `code` (`None`: no answer).
    pub fn finish(mut self, code: Option<u16>) {
        self.record(code);
    }

    fn record(&mut self, code: Option<u16>) {
        if let Some(mut e) = self.entry.take() {
            e.code = code;
            e.finished = now();
            self.state.audit.push(e);
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.record(None);
    }
}

/// Microseconds, as serialized, so an entry read over HTTP equals the one kept.
fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// `DateTime<Utc>` as RFC 3339 with microseconds (chrono's serde feature is not enabled).
mod rfc3339 {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Micros, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn entry(name: &str) -> AuditEntry {
        AuditEntry {
            seq: 0,
            received: Utc::now(),
            finished: Utc::now(),
            verb: Verb::Patch,
            group: "apps".into(),
            version: "v1".into(),
            resource: "deployments".into(),
            subresource: Some("scale".into()),
            namespace: Some("default".into()),
            name: Some(name.into()),
            user_agent: Some("kedge".into()),
            source: "127.0.0.1:4000".parse().unwrap(),
            dry_run: false,
            handled: Some(200),
            code: Some(200),
            fault: None,
        }
    }

    #[test]
    fn bounded_and_read_since() {
        let log = AuditLog::new(3);
        for n in ["a", "b", "c", "d"] {
            log.push(entry(n));
        }
        let all = log.since(0);
        assert_eq!(
            all.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [2, 3, 4],
            "the oldest is evicted; seqs keep counting"
        );
        assert_eq!(log.since(3).len(), 1);
        assert!(log.since(4).is_empty());
        let json = serde_json::to_value(&all[0]).unwrap();
        assert_eq!(json["userAgent"], "kedge");
        assert_eq!(json["source"], "127.0.0.1:4000");
        assert!(json.get("fault").is_none());
        let back: AuditEntry = serde_json::from_value(json).unwrap();
        assert_eq!(back.seq, all[0].seq);
        assert!(back.landed());
    }
}
