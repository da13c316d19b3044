//! Names no other test, run or process uses, for queues, topics, groups, databases, vhosts.

use std::sync::atomic::{AtomicU64, Ordering};

/// `prefix-<pid>-<nanoseconds, hex>-<counter>`: unique across the tests of a process (the
/// counter) and across processes and runs (pid and clock). Valid as a queue, topic, group or
/// vhost name when `prefix` is.
pub fn unique(prefix: &str) -> String {
    unique_with(prefix, '-')
}

/// As [`unique`], joined with `_` instead of `-`: an SQL identifier when `prefix` is one.
pub fn unique_ident(prefix: &str) -> String {
    unique_with(prefix, '_')
}

fn unique_with(prefix: &str, sep: char) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}{sep}{}{sep}{nanos:x}{sep}{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_differ_and_keep_their_shape() {
        let (a, b) = (unique("q"), unique("q"));
        assert_ne!(a, b);
        let parts: Vec<&str> = a.split('-').collect();
        assert_eq!(parts.len(), 4, "{a}");
        assert_eq!(parts[0], "q");
        assert_eq!(parts[1], std::process::id().to_string());

        let ident = unique_ident("kedge_pg");
        assert!(ident.starts_with("kedge_pg_"), "{ident}");
        assert!(
            ident.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{ident}"
        );
    }
}
