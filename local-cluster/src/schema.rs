//! Custom resources against their CRD's structural OpenAPI v3 schema, in kube-apiserver's order:
//! drop `null`s of non-nullable fields, prune unknown fields (reporting them for
//! `fieldValidation`), apply `default`s, then validate types, required fields, enums, bounds,
//! lengths and sizes, and the `allOf`/`anyOf`/`oneOf`/`not` value validations.
//! Not checked: `pattern`, `format`, CEL `x-kubernetes-validations`, list-type uniqueness.

use serde_json::{Map, Value};

use crate::error::Cause;

/// What processing one object found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Validation failures (answered as 422).
    pub causes: Vec<Cause>,
    /// Paths of fields that were pruned because the schema does not declare them.
    pub unknown_fields: Vec<String>,
}

/// Prune, default and validate a whole custom resource in place.
pub fn process(schema: &Value, object: &mut Value) -> Report {
    let mut report = Report::default();
    let Some(map) = object.as_object_mut() else {
        report.causes.push(invalid("", "must be an object"));
        return report;
    };
    // apiVersion, kind and metadata are validated by the server itself, whatever the schema says.
    let mut rest = Map::new();
    for key in ["apiVersion", "kind", "metadata"] {
        if let Some(v) = map.remove(key) {
            rest.insert(key.to_string(), v);
        }
    }
    let mut body = Value::Object(std::mem::take(map));
    walk(schema, &mut body, "", &mut report, true);
    if let (Some(out), Value::Object(body)) = (object.as_object_mut(), body) {
        out.extend(rest);
        out.extend(body);
    }
    report
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn invalid(path: &str, msg: &str) -> Cause {
    Cause {
        reason: "FieldValueInvalid",
        field: path.to_string(),
        message: format!("Invalid value: {msg}"),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn is_integer(v: &Value) -> bool {
    match v {
        Value::Number(n) => {
            n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        _ => false,
    }
}

fn type_matches(ty: &str, v: &Value) -> bool {
    match ty {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "integer" => is_integer(v),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        _ => true,
    }
}

fn flag(schema: &Value, name: &str) -> bool {
    schema.get(name).and_then(Value::as_bool) == Some(true)
}

/// `structural`: whether this schema level prunes and defaults (false inside allOf/anyOf/...,
/// which only validate).
fn walk(schema: &Value, value: &mut Value, path: &str, report: &mut Report, structural: bool) {
    let shown = || {
        if path.is_empty() {
            "<root>".to_string()
        } else {
            path.to_string()
        }
    };
    if value.is_null() && flag(schema, "nullable") {
        return;
    }
    // Type.
    let int_or_string = flag(schema, "x-kubernetes-int-or-string");
    if int_or_string {
        if !(is_integer(value) || value.is_string()) {
            report.causes.push(invalid(
                path,
                &format!(
                    "{}: {} in body must be of type integer-or-string: {:?}",
                    value,
                    shown(),
                    type_name(value)
                ),
            ));
            return;
        }
    } else if let Some(ty) = schema.get("type").and_then(Value::as_str)
        && !type_matches(ty, value)
    {
        report.causes.push(Cause {
            reason: "FieldValueTypeInvalid",
            field: path.to_string(),
            message: format!(
                "Invalid value: {}: {} in body must be of type {ty}: {:?}",
                value,
                shown(),
                type_name(value)
            ),
        });
        return;
    }

    match value {
        Value::Object(map) => walk_object(schema, map, path, report, structural),
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    walk(
                        item_schema,
                        item,
                        &format!("{path}[{i}]"),
                        report,
                        structural,
                    );
                }
            }
            let n = items.len() as f64;
            if let Some(min) = schema.get("minItems").and_then(Value::as_f64)
                && n < min
            {
                report.causes.push(invalid(
                    path,
                    &format!("{} in body should have at least {min} items", shown()),
                ));
            }
            if let Some(max) = schema.get("maxItems").and_then(Value::as_f64)
                && n > max
            {
                report.causes.push(Cause {
                    reason: "FieldValueTooMany",
                    field: path.to_string(),
                    message: format!("Too many: {n}: must have at most {max} items"),
                });
            }
        }
        Value::String(s) => {
            let n = s.chars().count() as f64;
            if let Some(min) = schema.get("minLength").and_then(Value::as_f64)
                && n < min
            {
                report.causes.push(invalid(
                    path,
                    &format!(
                        "{value}: {} in body should be at least {min} chars long",
                        shown()
                    ),
                ));
            }
            if let Some(max) = schema.get("maxLength").and_then(Value::as_f64)
                && n > max
            {
                report.causes.push(Cause {
                    reason: "FieldValueTooLong",
                    field: path.to_string(),
                    message: format!("Too long: may not be more than {max} bytes"),
                });
            }
        }
        Value::Number(num) => {
            let x = num.as_f64().unwrap_or_default();
            let excl_min = flag(schema, "exclusiveMinimum");
            let excl_max = flag(schema, "exclusiveMaximum");
            if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
                && (x < min || (excl_min && x == min))
            {
                let op = if excl_min {
                    "greater than"
                } else {
                    "greater than or equal to"
                };
                report.causes.push(invalid(
                    path,
                    &format!("{value}: {} in body should be {op} {min}", shown()),
                ));
            }
            if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
                && (x > max || (excl_max && x == max))
            {
                let op = if excl_max {
                    "less than"
                } else {
                    "less than or equal to"
                };
                report.causes.push(invalid(
                    path,
                    &format!("{value}: {} in body should be {op} {max}", shown()),
                ));
            }
        }
        _ => {}
    }

    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        let list: Vec<String> = allowed.iter().map(Value::to_string).collect();
        report.causes.push(Cause {
            reason: "FieldValueNotSupported",
            field: path.to_string(),
            message: format!(
                "Unsupported value: {value}: supported values: {}",
                list.join(", ")
            ),
        });
    }

    validate_combinators(schema, value, path, report);
}

fn walk_object(
    schema: &Value,
    map: &mut Map<String, Value>,
    path: &str,
    report: &mut Report,
    structural: bool,
) {
    let props = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties");
    let preserve = flag(schema, "x-kubernetes-preserve-unknown-fields");
    let embedded = flag(schema, "x-kubernetes-embedded-resource");

    if structural {
        // Nulls of non-nullable fields are dropped, not rejected (kube-apiserver does the same).
        let keys: Vec<String> = map.keys().cloned().collect();
        for key in keys {
            let child = props
                .and_then(|p| p.get(&key))
                .or_else(|| additional.filter(|a| a.is_object()));
            if map.get(&key).is_some_and(Value::is_null)
                && !child.is_some_and(|c| flag(c, "nullable"))
            {
                map.remove(&key);
            }
        }
        // Prune.
        if !preserve && !additional.is_some_and(|a| a.is_object() || a.as_bool() == Some(true)) {
            let unknown: Vec<String> = map
                .keys()
                .filter(|k| !props.is_some_and(|p| p.contains_key(*k)))
                .filter(|k| !(embedded && matches!(k.as_str(), "apiVersion" | "kind" | "metadata")))
                .cloned()
                .collect();
            for key in unknown {
                map.remove(&key);
                report.unknown_fields.push(join(path, &key));
            }
        }
        // Default.
        if let Some(props) = props {
            for (key, child) in props {
                if !map.contains_key(key)
                    && let Some(default) = child.get("default")
                {
                    map.insert(key.clone(), default.clone());
                }
            }
        }
    }

    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for key in required.iter().filter_map(Value::as_str) {
            if !map.contains_key(key) {
                report.causes.push(Cause {
                    reason: "FieldValueRequired",
                    field: join(path, key),
                    message: "Required value".into(),
                });
            }
        }
    }

    for (key, child) in map.iter_mut() {
        let child_schema = props
            .and_then(|p| p.get(key))
            .or_else(|| additional.filter(|a| a.is_object()));
        if let Some(s) = child_schema {
            walk(s, child, &join(path, key), report, structural);
        }
    }

    let n = map.len() as f64;
    if let Some(min) = schema.get("minProperties").and_then(Value::as_f64)
        && n < min
    {
        report.causes.push(invalid(
            path,
            &format!("{path} in body should have at least {min} properties"),
        ));
    }
    if let Some(max) = schema.get("maxProperties").and_then(Value::as_f64)
        && n > max
    {
        report.causes.push(invalid(
            path,
            &format!("{path} in body should have at most {max} properties"),
        ));
    }
}

/// Whether `value` satisfies a sub-schema, without pruning or defaulting.
fn satisfies(schema: &Value, value: &Value, path: &str) -> bool {
    let mut scratch = value.clone();
    let mut report = Report::default();
    walk(schema, &mut scratch, path, &mut report, false);
    report.causes.is_empty()
}

fn validate_combinators(schema: &Value, value: &Value, path: &str, report: &mut Report) {
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for s in all {
            let mut scratch = value.clone();
            walk(s, &mut scratch, path, report, false);
        }
    }
    if let Some(any) = schema.get("anyOf").and_then(Value::as_array)
        && !any.iter().any(|s| satisfies(s, value, path))
    {
        report.causes.push(invalid(
            path,
            &format!("{value}: must validate at least one schema (anyOf)"),
        ));
    }
    if let Some(one) = schema.get("oneOf").and_then(Value::as_array) {
        let n = one.iter().filter(|s| satisfies(s, value, path)).count();
        if n != 1 {
            report.causes.push(invalid(
                path,
                &format!("{value}: must validate one and only one schema (oneOf)"),
            ));
        }
    }
    if let Some(not) = schema.get("not")
        && satisfies(not, value, path)
    {
        report.causes.push(invalid(
            path,
            &format!("{value}: must not validate the schema (not)"),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "required": ["target"],
                    "properties": {
                        "target": {"type": "string", "minLength": 1},
                        "replicas": {"type": "integer", "minimum": 0, "maximum": 10, "default": 1},
                        "mode": {"type": "string", "enum": ["a", "b"]},
                        "port": {"x-kubernetes-int-or-string": true},
                        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                        "opt": {"type": "string", "nullable": true},
                        "list": {"type": "array", "maxItems": 1, "items": {"type": "integer"}}
                    }
                },
                "status": {"type": "object", "properties": {"ok": {"type": "boolean"}}}
            }
        })
    }

    #[test]
    fn valid_object_is_defaulted_and_pruned() {
        let mut obj = json!({
            "apiVersion": "x/v1", "kind": "X", "metadata": {"name": "n"},
            "spec": {"target": "t", "port": "http", "free": {"any": [1]}, "labels": {"a": "b"}, "opt": null, "mode": null, "extra": 1}
        });
        let report = process(&schema(), &mut obj);
        assert!(report.causes.is_empty(), "{report:?}");
        assert_eq!(report.unknown_fields, vec!["spec.extra".to_string()]);
        assert_eq!(obj["spec"]["replicas"], 1);
        assert_eq!(obj["spec"]["opt"], Value::Null);
        assert!(obj["spec"].get("mode").is_none());
        assert_eq!(obj["metadata"]["name"], "n");
    }

    #[test]
    fn invalid_objects_report_causes() {
        let mut obj = json!({"spec": {"replicas": 11, "mode": "c", "port": 1.5, "labels": {"a": 1}, "list": [1, 2]}});
        let report = process(&schema(), &mut obj);
        let mut fields: Vec<&str> = report.causes.iter().map(|c| c.field.as_str()).collect();
        fields.sort_unstable();
        assert_eq!(
            fields,
            vec![
                "spec.labels.a",
                "spec.list",
                "spec.mode",
                "spec.port",
                "spec.replicas",
                "spec.target"
            ]
        );
        let mut wrong_type = json!({"spec": {"target": "t", "replicas": "three"}});
        let report = process(&schema(), &mut wrong_type);
        assert_eq!(report.causes.len(), 1);
        assert!(
            report.causes[0].message.contains("must be of type integer"),
            "{:?}",
            report.causes
        );
    }

    #[test]
    fn one_of_is_validation_only() {
        let s = json!({"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
            "oneOf": [{"required": ["a"]}, {"required": ["b"]}]});
        assert!(process(&s, &mut json!({"a": "x"})).causes.is_empty());
        assert_eq!(
            process(&s, &mut json!({"a": "x", "b": "y"})).causes.len(),
            1
        );
    }
}
