//! Shared helpers for the conformance tests: a cluster per test, deadlines on every wait.
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

/// Poll `check` every 100 ms until it returns `Some`, within the standard deadline.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    within(what, async {
        loop {
            if let Some(v) = check().await {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
}
