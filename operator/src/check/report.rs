//! Rendering check results for scripts (`-o json`) and for people (`-o table`).

use std::fmt::Write as _;

use super::ObjectReport;

/// A JSON array, one element per ScaledObject in input order.
pub fn render_json(reports: &[ObjectReport]) -> String {
    // Serializing plain structs of strings, numbers and vectors cannot fail.
    serde_json::to_string_pretty(reports).unwrap_or_else(|_| "[]".to_owned())
}

/// A readable summary: one line per ScaledObject, then its metrics, errors and warnings.
pub fn render_table(reports: &[ObjectReport]) -> String {
    let mut out = String::new();
    if reports.is_empty() {
        out.push_str("no ScaledObjects found in the input\n");
        return out;
    }
    let rows: Vec<[String; 5]> = reports
        .iter()
        .map(|r| {
            let (hpa, min, max) = match &r.hpa {
                Some(h) => (
                    h.name.clone(),
                    h.min_replicas.to_string(),
                    h.max_replicas.to_string(),
                ),
                None => ("-".into(), "-".into(), "-".into()),
            };
            let status = if r.valid { "valid" } else { "INVALID" };
            [
                format!("{}/{}", r.namespace, r.name),
                status.to_owned(),
                hpa,
                min,
                max,
            ]
        })
        .collect();
    let header = ["SCALEDOBJECT", "STATUS", "HPA", "MIN", "MAX"];
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].len())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[&str]| {
        let mut s = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let _ = write!(s, "{cell:<w$}  ", w = widths[i]);
        }
        s.trim_end().to_owned() + "\n"
    };
    out.push_str(&line(&header));
    for (row, report) in rows.iter().zip(reports) {
        out.push_str(&line(&row.iter().map(String::as_str).collect::<Vec<_>>()));
        if let Some(hpa) = &report.hpa {
            for m in &hpa.metrics {
                let _ = writeln!(
                    out,
                    "  metric {} ({}, {} target {})",
                    m.name, m.kind, m.target_type, m.target
                );
            }
        }
        for s in report.live.iter().flatten() {
            match (&s.value, s.active, &s.error) {
                (_, _, Some(e)) => {
                    let _ = writeln!(out, "  live   {}: error: {e}", s.metric);
                }
                (Some(v), Some(a), None) => {
                    let state = if a { "active" } else { "inactive" };
                    let _ = writeln!(out, "  live   {} = {v} ({state})", s.metric);
                }
                _ => {}
            }
        }
        for e in &report.errors {
            let _ = writeln!(out, "  error: {e}");
        }
        for w in &report.warnings {
            let _ = writeln!(out, "  warning: {w}");
        }
    }
    out
}
