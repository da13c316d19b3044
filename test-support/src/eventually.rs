//! Waiting for a condition that becomes true in its own time: a controller reconciled, a broker
//! caught up, a server picked new settings up.

use std::future::Future;
use std::time::Duration;

/// How long [`eventually()`] waits between two checks.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Runs `check` every [`POLL_INTERVAL`] until it returns `Some`, and returns its value.
///
/// A check that is still running when `timeout` is up is abandoned, so the wait is bounded
/// even if the thing checked hangs.
///
/// # Panics
///
/// After `timeout`, with "timed out after `timeout` waiting for `what`": this is the test
/// failing.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let poll = async {
        loop {
            if let Some(v) = check().await {
                return v;
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    };
    match tokio::time::timeout(timeout, poll).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {timeout:?} waiting for {what}"),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test]
    async fn returns_the_first_value() {
        let calls = AtomicU32::new(0);
        let v = eventually(Duration::from_secs(10), "the third call", || async {
            let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
            (n == 3).then_some(n * 10)
        })
        .await;
        assert_eq!(v, 30);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    #[should_panic(expected = "timed out after 300ms waiting for nothing")]
    async fn fails_after_the_timeout() {
        eventually(Duration::from_millis(300), "nothing", || async {
            None::<()>
        })
        .await;
    }

    #[tokio::test]
    #[should_panic(expected = "timed out after 200ms waiting for a hung check")]
    async fn abandons_a_hung_check() {
        eventually(Duration::from_millis(200), "a hung check", || {
            std::future::pending::<Option<()>>()
        })
        .await;
    }
}
