//! TokenReview and SubjectAccessReview: create-only, answered, never stored.

use serde_json::{Value, json};

use super::Strategy;

pub(super) struct Review;

impl Strategy for Review {
    fn answer(&self, obj: &mut Value, token: &str) -> bool {
        answer_review(obj, token);
        true
    }
}

fn answer_review(obj: &mut Value, token: &str) {
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
    obj["status"] = if kind == "TokenReview" {
        let ok = obj.pointer("/spec/token").and_then(Value::as_str) == Some(token);
        if ok {
            json!({"authenticated": true, "user": {"username": "kedge-local-admin", "groups": ["system:masters", "system:authenticated"]}})
        } else {
            json!({"authenticated": false, "error": "invalid bearer token"})
        }
    } else {
        json!({"allowed": true, "reason": "local-cluster authorizes every authenticated request"})
    };
}
