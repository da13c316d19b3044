//! Version conversion between kinds that share storage. The only pair kedge needs is Event:
//! `events.k8s.io/v1` Events (what kube-rs' `Recorder` writes) are stored as core `v1` Events
//! (what `kubectl get events` and `kubectl describe` read), field by field as kube-apiserver
//! converts them.

use serde_json::{Map, Value};

/// `events.k8s.io/v1` field ↔ core `v1` field.
const EVENT_FIELDS: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

fn rename(obj: &Value, to_core: bool) -> Value {
    let Some(map) = obj.as_object() else {
        return obj.clone();
    };
    let mut out = Map::new();
    for (k, v) in map {
        let renamed = EVENT_FIELDS.iter().find_map(|(new, core)| match to_core {
            true if k == new => Some(*core),
            false if k == core => Some(*new),
            _ => None,
        });
        out.insert(renamed.unwrap_or(k).to_string(), v.clone());
    }
    Value::Object(out)
}

/// An `events.k8s.io/v1` Event in its stored (core `v1`) form.
pub fn event_to_core(obj: &Value) -> Value {
    rename(obj, true)
}

/// A stored core `v1` Event as `events.k8s.io/v1`.
pub fn event_from_core(obj: &Value) -> Value {
    rename(obj, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_round_trip() {
        let new = json!({"metadata": {"name": "e"}, "regarding": {"kind": "Pod"}, "note": "hi", "reason": "R", "deprecatedCount": 2});
        let core = event_to_core(&new);
        assert_eq!(
            core,
            json!({"metadata": {"name": "e"}, "involvedObject": {"kind": "Pod"}, "message": "hi", "reason": "R", "count": 2})
        );
        assert_eq!(event_from_core(&core), new);
    }
}
