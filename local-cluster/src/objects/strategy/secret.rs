//! Secrets: `stringData` is folded into `data`, base64-encoded.

use serde_json::{Value, json};

use super::Strategy;

pub(super) struct Secret;

impl Strategy for Secret {
    fn apply_defaults(&self, obj: &mut Value) {
        fold_string_data(obj);
    }
}

fn fold_string_data(obj: &mut Value) {
    use base64::Engine as _;
    let Some(map) = obj.as_object_mut() else {
        return;
    };
    let Some(Value::Object(string_data)) = map.remove("stringData") else {
        return;
    };
    let data = map.entry("data").or_insert_with(|| json!({}));
    if !data.is_object() {
        *data = json!({});
    }
    for (k, v) in string_data {
        let text = v.as_str().unwrap_or_default();
        data[k.as_str()] = Value::String(base64::engine::general_purpose::STANDARD.encode(text));
    }
}
