//! Metric names as KEDA builds them, so HPAs and dashboards keep working after a switch.

/// Replaces the characters KEDA replaces in metric names (`/ . : % ( )`) with `-`.
///
/// This is KEDA's `NormalizeString`: metric names must be valid path segments of the external
/// metrics API.
///
/// ```
/// assert_eq!(scaler_core::normalize_metric_name("cron-Europe/Paris-0.5"), "cron-Europe-Paris-0-5");
/// ```
pub fn normalize_metric_name(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            '/' | '.' | ':' | '%' | '(' | ')' => '-',
            c => c,
        })
        .collect()
}

/// Prefixes a metric name with its trigger index, `s<index>-<name>`, as KEDA's
/// `GenerateMetricNameWithIndex` does.
///
/// ```
/// assert_eq!(scaler_core::metric_name_with_index(2, "rabbitmq-jobs"), "s2-rabbitmq-jobs");
/// ```
pub fn metric_name_with_index(trigger_index: usize, name: &str) -> String {
    format!("s{trigger_index}-{name}")
}

/// Removes the `s<index>-` prefix from a metric name, if present, as KEDA's
/// `RemoveIndexFromMetricName` does (external scalers are sent the bare name).
///
/// ```
/// assert_eq!(scaler_core::naming::strip_index(3, "s3-queue"), "queue");
/// assert_eq!(scaler_core::naming::strip_index(3, "s1-queue"), "s1-queue");
/// ```
pub fn strip_index(trigger_index: usize, name: &str) -> &str {
    let prefix = format!("s{trigger_index}-");
    name.strip_prefix(&prefix).unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_every_character_keda_normalizes() {
        assert_eq!(normalize_metric_name("a/b.c:d%e(f)g"), "a-b-c-d-e-f-g");
        assert_eq!(normalize_metric_name("keep_these-*?"), "keep_these-*?");
    }
}
