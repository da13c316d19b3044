//! Namespaces: the lifecycle (spec finalizers, status phase) is the server's, and names are
//! RFC 1123 labels.

use serde_json::{Value, json};

use super::{Strategy, keep_unaddressed_part, rfc1123_problem};
use crate::objects::admission::is_dns_label;
use crate::objects::{Subresource, meta_mut, meta_str};
use crate::resources::ResourceType;

pub(super) struct Namespace;

impl Strategy for Namespace {
    fn name_problem(&self, name: &str) -> Option<String> {
        rfc1123_problem(is_dns_label(name), "label")
    }

    // The status is not dropped but replaced: every namespace starts Active.
    fn prepare_for_create(&self, _rt: &ResourceType, obj: &mut Value) {
        obj["spec"] = json!({"finalizers": ["kubernetes"]});
        obj["status"] = json!({"phase": "Active"});
        let name = meta_str(obj, "name").unwrap_or_default().to_string();
        let labels = meta_mut(obj).entry("labels").or_insert_with(|| json!({}));
        if labels.is_object() {
            labels["kubernetes.io/metadata.name"] = json!(name);
        }
    }

    fn prepare_for_update(
        &self,
        rt: &ResourceType,
        old: &Value,
        new: &mut Value,
        sub: Subresource,
    ) {
        keep_unaddressed_part(rt, old, new, sub);
        new["spec"] = old.get("spec").cloned().unwrap_or(json!({}));
        if sub == Subresource::Main {
            new["status"] = old
                .get("status")
                .cloned()
                .unwrap_or(json!({"phase": "Active"}));
        }
    }
}
