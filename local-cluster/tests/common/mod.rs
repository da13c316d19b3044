//! Shared helpers for the conformance tests: a cluster per test, deadlines on every wait
//! ([`WAIT`], for [`within`] and for `kedge_test_support::eventually`).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::time::Duration;

use local_cluster::{Config, LocalCluster};

/// The longest any single wait in these tests may take; generous for a loaded 2-core machine.
pub const WAIT: Duration = Duration::from_secs(30);

/// A cluster with test-friendly timings.
pub async fn start() -> LocalCluster {
    start_with(|_| {}).await
}

/// A cluster with adjusted configuration.
pub async fn start_with(f: impl FnOnce(&mut Config)) -> LocalCluster {
    let mut config = Config {
        hpa_sync_period: Duration::from_secs(1),
        ..Config::default()
    };
    f(&mut config);
    LocalCluster::start(config)
        .await
        .expect("local cluster starts")
}

/// Run `fut` with the standard deadline.
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(WAIT, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {WAIT:?} waiting for {what}"),
    }
}
