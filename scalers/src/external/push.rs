//! `external-push`: the long-lived `StreamIsActive` call, as a stream of activity changes.
//!
//! Reconnects as KEDA does: after a stream ends, wait and call again, the wait starting at 2 s
//! and doubling up to 1 min; a stream the server ended cleanly resets the wait to 2 s.

use std::sync::Arc;
use std::time::Duration;

use futures_util::stream;
use scaler_core::ActivityStream;
use tokio::sync::watch;
use tonic::Streaming;

use super::Inner;
use super::proto::IsActiveResponse;

const FIRST_RETRY: Duration = Duration::from_secs(2);
const MAX_RETRY: Duration = Duration::from_secs(60);

enum Phase {
    Connect,
    // Boxed: the stream is large and the other phases are empty.
    Reading(Box<Streaming<IsActiveResponse>>),
    Waiting,
}

struct State {
    inner: Arc<Inner>,
    closed: watch::Receiver<bool>,
    phase: Phase,
    retry: Duration,
}

/// The activity pushed by the server, until `closed` turns true (or its sender is dropped).
pub(super) fn activity_stream(inner: Arc<Inner>, closed: watch::Receiver<bool>) -> ActivityStream {
    let state = State {
        inner,
        closed,
        phase: Phase::Connect,
        retry: FIRST_RETRY,
    };
    Box::pin(stream::unfold(state, |mut st| async move {
        loop {
            if *st.closed.borrow() {
                return None;
            }
            match std::mem::replace(&mut st.phase, Phase::Waiting) {
                Phase::Connect => match st.inner.open_activity_stream().await {
                    Ok(stream) => st.phase = Phase::Reading(Box::new(stream)),
                    Err(e) => {
                        tracing::warn!(trigger = %st.inner.trigger, error = %e, "external-push: cannot open StreamIsActive");
                    }
                },
                Phase::Reading(mut stream) => {
                    let next = tokio::select! {
                        next = stream.message() => next,
                        _ = st.closed.changed() => return None,
                    };
                    match next {
                        Ok(Some(response)) => {
                            st.phase = Phase::Reading(stream);
                            return Some((response.result, st));
                        }
                        Ok(None) => {
                            tracing::debug!(trigger = %st.inner.trigger, "external-push: StreamIsActive ended; reconnecting");
                            st.retry = FIRST_RETRY;
                        }
                        Err(status) => {
                            tracing::warn!(trigger = %st.inner.trigger, error = %super::describe(&status), "external-push: StreamIsActive failed");
                        }
                    }
                }
                Phase::Waiting => {
                    let wait = st.retry;
                    st.retry = (st.retry * 2).min(MAX_RETRY);
                    tokio::select! {
                        () = tokio::time::sleep(wait) => st.phase = Phase::Connect,
                        _ = st.closed.changed() => return None,
                    }
                }
            }
        }
    }))
}
