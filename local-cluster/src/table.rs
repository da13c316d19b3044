//! Server-side printing: `meta.k8s.io/v1` Table responses, which `kubectl get` asks for and
//! prints as-is (Name, the kind's printer columns, Age).

use serde_json::{Value, json};

use crate::resources::{Cell, ResourceType};

/// Whether an `Accept` header asks for a Table.
pub fn wants_table(accept: &str) -> bool {
    accept
        .split(',')
        .next()
        .is_some_and(|first| first.contains("as=Table"))
}

/// How much of each object a Table row carries (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Include {
    /// No object.
    None,
    /// `PartialObjectMetadata` (the default).
    Metadata,
    /// The whole object.
    Object,
}

impl Include {
    /// Parse the query parameter.
    pub fn parse(v: Option<&str>) -> Self {
        match v {
            Some("None") => Include::None,
            Some("Object") => Include::Object,
            _ => Include::Metadata,
        }
    }
}

fn column_definitions(rt: &ResourceType) -> Vec<Value> {
    let mut cols = vec![
        json!({"name": "Name", "type": "string", "format": "name", "description": "Name must be unique within a namespace.", "priority": 0}),
    ];
    for c in &rt.printer_columns {
        let (ty, format) = if c.type_ == "date" {
            ("string", "date")
        } else {
            (c.type_.as_str(), "")
        };
        cols.push(json!({"name": c.name, "type": ty, "format": format, "description": "", "priority": c.priority}));
    }
    if !rt.printer_columns.iter().any(|c| c.name == "Age") {
        cols.push(json!({"name": "Age", "type": "string", "format": "", "description": "CreationTimestamp is a timestamp representing the server time when this object was created.", "priority": 0}));
    }
    cols
}

fn row(rt: &ResourceType, obj: &Value, include: Include) -> Value {
    let mut cells = vec![obj.pointer("/metadata/name").cloned().unwrap_or(json!(""))];
    for c in &rt.printer_columns {
        cells.push(match (c.type_.as_str(), cell(obj, &c.cell)) {
            ("date", Some(Value::String(ts))) => json!(age(&ts)),
            (_, Some(v)) => v,
            (_, None) => Value::Null,
        });
    }
    if !rt.printer_columns.iter().any(|c| c.name == "Age") {
        let created = obj
            .pointer("/metadata/creationTimestamp")
            .and_then(Value::as_str)
            .unwrap_or_default();
        cells.push(json!(age(created)));
    }
    let mut r = json!({"cells": cells});
    match include {
        Include::None => {}
        Include::Object => r["object"] = obj.clone(),
        Include::Metadata => {
            r["object"] = json!({
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj.get("metadata").cloned().unwrap_or(json!({})),
            })
        }
    }
    r
}

fn cell(obj: &Value, cell: &Cell) -> Option<Value> {
    let s = |p: &str| {
        obj.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let n = |p: &str| obj.pointer(p).and_then(Value::as_i64).unwrap_or(0);
    Some(match cell {
        Cell::Path(path) => return json_path(obj, path),
        Cell::Count(path) => json_path(obj, path).unwrap_or(json!(0)),
        Cell::ReadyOfDesired => json!(format!(
            "{}/{}",
            n("/status/readyReplicas"),
            n("/spec/replicas")
        )),
        Cell::ScaleTarget => json!(format!(
            "{}/{}",
            s("/spec/scaleTargetRef/kind"),
            s("/spec/scaleTargetRef/name")
        )),
        Cell::EventObject => {
            json!(format!(
                "{}/{}",
                s("/involvedObject/kind").to_ascii_lowercase(),
                s("/involvedObject/name")
            ))
        }
        Cell::HpaTargets => {
            let specs = obj
                .pointer("/spec/metrics")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let statuses = obj
                .pointer("/status/currentMetrics")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let targets: Vec<String> = specs
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    let kind = m.get("type").and_then(Value::as_str).unwrap_or_default();
                    let source = kind
                        .get(..1)
                        .map(|f| f.to_ascii_lowercase() + &kind[1..])
                        .unwrap_or_default();
                    let target = m
                        .get(&source)
                        .and_then(|x| x.get("target"))
                        .cloned()
                        .unwrap_or(Value::Null);
                    let current = statuses
                        .get(i)
                        .and_then(|st| st.get(&source))
                        .and_then(|x| x.get("current"));
                    let (key, suffix) = if target.get("averageValue").is_some() {
                        ("averageValue", " (avg)")
                    } else {
                        ("value", "")
                    };
                    let want = target.get(key).and_then(Value::as_str).unwrap_or("<unset>");
                    let have = current
                        .and_then(|c| c.get(key))
                        .and_then(Value::as_str)
                        .unwrap_or("<unknown>");
                    format!("{have}/{want}{suffix}")
                })
                .collect();
            json!(if targets.is_empty() {
                "<none>".to_string()
            } else {
                targets.join(", ")
            })
        }
    })
}

/// A Table of objects.
pub fn table(
    rt: &ResourceType,
    objects: &[Value],
    resource_version: u64,
    include: Include,
) -> Value {
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version.to_string()},
        "columnDefinitions": column_definitions(rt),
        "rows": objects.iter().map(|o| row(rt, o, include)).collect::<Vec<_>>(),
    })
}

/// Human-readable age, as kubectl prints it (`5s`, `3m12s`, `2d4h`).
pub fn age(timestamp: &str) -> String {
    let Ok(t) = chrono::DateTime::parse_from_rfc3339(timestamp) else {
        return "<unknown>".into();
    };
    let secs = (chrono::Utc::now() - t.with_timezone(&chrono::Utc))
        .num_seconds()
        .max(0);
    let (m, h, d) = (secs / 60, secs / 3600, secs / 86400);
    if secs < 120 {
        format!("{secs}s")
    } else if m < 10 {
        format!("{m}m{}s", secs % 60)
    } else if h < 3 {
        format!("{m}m")
    } else if h < 8 {
        format!("{h}h{}m", m % 60)
    } else if d < 2 {
        format!("{h}h")
    } else if d < 8 {
        format!("{d}d{}h", h % 24)
    } else {
        format!("{d}d")
    }
}

/// The JSONPath subset printer columns use: `.a.b`, `.a[0]`, `.a[?(@.k=="v")].b`.
pub fn json_path(obj: &Value, path: &str) -> Option<Value> {
    let mut cur = vec![obj.clone()];
    let mut rest = path
        .trim()
        .trim_start_matches('{')
        .trim_end_matches('}')
        .trim_start_matches('.');
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('[') {
            let end = after.find(']')?;
            let inner = &after[..end];
            rest = after[end + 1..].trim_start_matches('.');
            let mut next = Vec::new();
            for v in &cur {
                let items = v.as_array().cloned().unwrap_or_default();
                if let Ok(i) = inner.parse::<usize>() {
                    next.extend(items.get(i).cloned());
                } else if inner == "*" {
                    next.extend(items);
                } else if let Some(filter) =
                    inner.strip_prefix("?(@.").and_then(|f| f.strip_suffix(')'))
                {
                    let (key, want) = filter.split_once("==")?;
                    let want = want.trim().trim_matches('"').trim_matches('\'');
                    next.extend(items.into_iter().filter(|i| {
                        i.get(key.trim())
                            .map(|v| v.as_str().map(str::to_string).unwrap_or(v.to_string()))
                            .as_deref()
                            == Some(want)
                    }));
                } else {
                    return None;
                }
            }
            cur = next;
        } else {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            let key = &rest[..end];
            rest = rest[end..].trim_start_matches('.');
            cur = cur.iter().filter_map(|v| v.get(key).cloned()).collect();
        }
    }
    match cur.len() {
        0 => None,
        1 => cur.pop(),
        _ => Some(Value::String(
            cur.iter()
                .map(|v| v.as_str().map(str::to_string).unwrap_or(v.to_string()))
                .collect::<Vec<_>>()
                .join(","),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_paths() {
        let o = json!({"status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "Active", "status": "False"}]}, "spec": {"n": 3}});
        assert_eq!(json_path(&o, ".spec.n"), Some(json!(3)));
        assert_eq!(
            json_path(&o, ".status.conditions[?(@.type==\"Active\")].status"),
            Some(json!("False"))
        );
        assert_eq!(
            json_path(&o, ".status.conditions[0].type"),
            Some(json!("Ready"))
        );
        assert_eq!(json_path(&o, ".spec.missing"), None);
    }

    #[test]
    fn computed_columns() {
        let hpa = json!({
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"},
                     "metrics": [{"type": "External", "external": {"target": {"type": "AverageValue", "averageValue": "5"}}},
                                 {"type": "External", "external": {"target": {"type": "Value", "value": "10"}}}]},
            "status": {"currentMetrics": [{"type": "External", "external": {"current": {"averageValue": "3"}}}]}
        });
        assert_eq!(
            cell(&hpa, &Cell::ScaleTarget),
            Some(json!("Deployment/web"))
        );
        assert_eq!(
            cell(&hpa, &Cell::HpaTargets),
            Some(json!("3/5 (avg), <unknown>/10"))
        );
        let deploy = json!({"spec": {"replicas": 2}, "status": {"readyReplicas": 1}});
        assert_eq!(cell(&deploy, &Cell::ReadyOfDesired), Some(json!("1/2")));
        assert_eq!(
            cell(&deploy, &Cell::Count(".status.availableReplicas".into())),
            Some(json!(0))
        );
    }

    #[test]
    fn tables_are_requested_by_accept() {
        assert!(wants_table(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
        ));
        assert!(!wants_table("application/json"));
    }
}
