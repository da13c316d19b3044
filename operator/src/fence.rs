//! Fencing: a replica writes to the cluster only while it surely still holds the lease.
//!
//! Leadership is a lease another replica takes over once it has seen no renewal for the lease
//! duration (15 s). A leader that is paused (SIGSTOP, a long GC-like stall, a frozen VM) or cut off
//! from the API server can wake up with polls and reconciles in flight that decided to write
//! before it lost the lease. Watching a "leading" flag is not enough: the flag is only updated by
//! the election task, which runs no sooner than the tasks that are about to write.
//!
//! So the election gives the [`Fence`] a deadline at every renewal — when the renewal was
//! *sent* plus the renew deadline (10 s), always before any other replica can consider the lease
//! expired — and every mutating request of the operator's client passes through
//! [`FenceLayer`], which refuses it once that deadline is behind. The check runs under kube's
//! retry layer, so a retried write is checked again on each attempt. The clock is the monotonic
//! one, which keeps running while the process is stopped.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::time::Instant;
use tower::{BoxError, Layer, Service};

/// Whether this replica may write, shared by the election and the operator's client.
#[derive(Clone, Debug)]
pub struct Fence {
    inner: Arc<Mutex<State>>,
}

#[derive(Debug)]
enum State {
    /// No leader election: the only replica always writes.
    Unfenced,
    /// Writes are allowed until this instant (`None`: not leading).
    Until(Option<Instant>),
}

impl Fence {
    /// A fence that never closes, for a single replica without leader election.
    pub fn unfenced() -> Self {
        Self {
            inner: Arc::new(Mutex::new(State::Unfenced)),
        }
    }

    /// A fence that stays closed until the election opens it.
    pub fn closed() -> Self {
        Self {
            inner: Arc::new(Mutex::new(State::Until(None))),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The lease was renewed: writes may go on until `until`.
    pub fn open_until(&self, until: Instant) {
        if let State::Until(current) = &mut *self.state() {
            *current = Some(until);
        }
    }

    /// Leadership is lost or given up: no write starts from now on.
    pub fn close(&self) {
        if let State::Until(current) = &mut *self.state() {
            *current = None;
        }
    }

    /// Whether a write may start now.
    pub fn is_open(&self) -> bool {
        match &*self.state() {
            State::Unfenced => true,
            State::Until(until) => until.is_some_and(|u| Instant::now() < u),
        }
    }
}

/// A write refused because this replica may no longer hold the lease.
#[derive(Debug, thiserror::Error)]
#[error("write refused: this replica no longer surely holds the leader lease")]
pub struct NotLeading;

/// Refuses mutating requests (anything but GET, HEAD and OPTIONS) while the fence is closed.
#[derive(Clone, Debug)]
pub struct FenceLayer(pub Fence);

impl<S> Layer<S> for FenceLayer {
    type Service = Fenced<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Fenced {
            inner,
            fence: self.0.clone(),
        }
    }
}

/// The service [`FenceLayer`] makes.
#[derive(Clone, Debug)]
pub struct Fenced<S> {
    inner: S,
    fence: Fence,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

fn is_write(method: &http::Method) -> bool {
    !matches!(
        *method,
        http::Method::GET | http::Method::HEAD | http::Method::OPTIONS
    )
}

impl<S, B> Service<http::Request<B>> for Fenced<S>
where
    S: Service<http::Request<B>>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = BoxFuture<Result<S::Response, BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if is_write(req.method()) && !self.fence.is_open() {
            tracing::warn!(
                method = %req.method(),
                path = req.uri().path(),
                "write refused: not leading"
            );
            return Box::pin(std::future::ready(Err(NotLeading.into())));
        }
        let call = self.inner.call(req);
        Box::pin(async move { call.await.map_err(Into::into) })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use std::time::Duration;
    use tower::ServiceExt as _;

    #[tokio::test]
    async fn a_closed_or_lapsed_fence_refuses_writes_but_not_reads() {
        let fence = Fence::closed();
        let svc =
            FenceLayer(fence.clone()).layer(tower::service_fn(|_: http::Request<()>| async {
                Ok::<_, BoxError>("sent")
            }));
        let req = |m: http::Method| http::Request::builder().method(m).body(()).unwrap();
        assert!(svc.clone().oneshot(req(http::Method::PATCH)).await.is_err());
        assert!(svc.clone().oneshot(req(http::Method::GET)).await.is_ok());

        fence.open_until(Instant::now() + Duration::from_secs(60));
        assert!(svc.clone().oneshot(req(http::Method::PATCH)).await.is_ok());
        assert!(svc.clone().oneshot(req(http::Method::POST)).await.is_ok());

        // A renewal that is now in the past: the lease may have passed to another replica.
        fence.open_until(Instant::now());
        let refused = svc
            .clone()
            .oneshot(req(http::Method::DELETE))
            .await
            .unwrap_err();
        assert!(refused.is::<NotLeading>(), "{refused}");

        fence.open_until(Instant::now() + Duration::from_secs(60));
        fence.close();
        assert!(svc.clone().oneshot(req(http::Method::PUT)).await.is_err());
    }

    #[test]
    fn without_election_the_fence_is_always_open() {
        let fence = Fence::unfenced();
        fence.close();
        assert!(fence.is_open());
    }
}
