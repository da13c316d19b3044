//! The HTTPS server: our own accept loop (TLS handshake under a timeout, with the serving
//! certificate re-resolved per connection and the client certificate captured for the
//! authenticator), then hyper serving HTTP/2 or HTTP/1.1 as ALPN chose, each request checked by
//! [`crate::auth`] before it reaches the routes.

mod routes;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::response::IntoResponse;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use rustls::server::ResolvesServerCert;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::auth::{Auth, ConnAuth};
use crate::config::{AdapterConfig, ServingTls};
use crate::error::Error;
use crate::provider::MetricsProvider;
use crate::tls::{self, ReloadingCertificate, selfsigned};

/// How long open connections get to finish their requests at shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// How long an idle connection gets to close once told to.
const IDLE_GRACE: Duration = Duration::from_secs(1);

/// Connections at once on listeners that do not set their own limit (the gRPC link).
const DEFAULT_MAX_CONNECTIONS: usize = 512;

/// What bounds one connection of the HTTPS API (from [`AdapterConfig`]).
#[derive(Debug, Clone, Copy)]
struct ConnLimits {
    header_read_timeout: Duration,
    idle_timeout: Duration,
    http2_max_concurrent_streams: u32,
    http2_keep_alive_interval: Option<Duration>,
    http2_keep_alive_timeout: Duration,
}

impl ConnLimits {
    fn from_config(config: &AdapterConfig) -> Self {
        Self {
            header_read_timeout: config.header_read_timeout,
            idle_timeout: config.idle_timeout,
            http2_max_concurrent_streams: config.http2_max_concurrent_streams,
            http2_keep_alive_interval: config.http2_keep_alive_interval,
            http2_keep_alive_timeout: config.http2_keep_alive_timeout,
        }
    }
}

/// A bound, not yet serving, external-metrics server.
pub struct AdapterServer {
    listener: TcpListener,
    acceptor: TlsAcceptor,
    app: axum::Router,
    auth: Auth,
    serving_cert_pem: Option<String>,
    handshake_timeout: Duration,
    max_connections: usize,
    limits: ConnLimits,
}

impl std::fmt::Debug for AdapterServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdapterServer")
            .field("local_addr", &self.listener.local_addr().ok())
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

impl AdapterServer {
    /// Binds `config.bind`, loads or generates the serving certificate, and prepares to serve
    /// values from `provider` to callers `auth` accepts.
    pub async fn bind(
        config: AdapterConfig,
        provider: Arc<dyn MetricsProvider>,
        auth: Auth,
    ) -> Result<Self, Error> {
        let (certs, serving_cert_pem): (Arc<dyn ResolvesServerCert>, _) = match &config.tls {
            ServingTls::SelfSigned { names } => {
                let generated = selfsigned::self_signed(names)?;
                (
                    Arc::new(selfsigned::FixedCert(generated.certified_key())),
                    Some(generated.cert_pem),
                )
            }
            ServingTls::Pem { cert_pem, key_pem } => (
                Arc::new(selfsigned::FixedCert(Arc::new(tls::certified_key(
                    cert_pem.as_bytes(),
                    key_pem.as_bytes(),
                    "serving certificate",
                )?))),
                None,
            ),
            ServingTls::Files {
                cert_file,
                key_file,
            } => (
                Arc::new(ReloadingCertificate::new(cert_file, key_file)?),
                None,
            ),
            ServingTls::Swappable(cert) => (Arc::clone(cert) as Arc<dyn ResolvesServerCert>, None),
        };
        let acceptor = TlsAcceptor::from(Arc::new(tls::api_server_config(certs)?));
        let listener = TcpListener::bind(config.bind)
            .await
            .map_err(|source| Error::Bind {
                addr: config.bind,
                source,
            })?;
        let app = routes::router(routes::AppState {
            provider,
            provider_timeout: config.provider_timeout,
        });
        Ok(Self {
            listener,
            acceptor,
            app,
            auth,
            serving_cert_pem,
            handshake_timeout: config.handshake_timeout,
            max_connections: config.max_connections,
            limits: ConnLimits::from_config(&config),
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> Result<SocketAddr, Error> {
        Ok(self.listener.local_addr()?)
    }

    /// The generated self-signed certificate (PEM), to publish as the APIService's `caBundle`;
    /// `None` when the certificate comes from files.
    pub fn serving_cert_pem(&self) -> Option<&str> {
        self.serving_cert_pem.as_deref()
    }

    /// Serves until `shutdown` completes, then stops accepting and gives open connections a few
    /// seconds to finish.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), Error> {
        let Self {
            listener,
            acceptor,
            app,
            auth,
            handshake_timeout,
            max_connections,
            limits,
            ..
        } = self;
        accept_loop_limited(
            listener,
            acceptor,
            handshake_timeout,
            max_connections,
            shutdown,
            move |tls, peer, stop| {
                serve_connection(tls, peer, app.clone(), auth.clone(), limits, stop)
            },
        )
        .await;
        Ok(())
    }

    /// Serves in a background task; the handle stops it.
    pub fn spawn(self) -> Result<ServerHandle, Error> {
        let addr = self.local_addr()?;
        Ok(ServerHandle::spawn(addr, |shutdown| self.serve(shutdown)))
    }
}

/// The TLS stream a connection handler gets.
pub(crate) type TlsStream = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;

/// [`accept_loop_limited`] with the default connection limit.
pub(crate) async fn accept_loop<H, Fut>(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    handshake_timeout: Duration,
    shutdown: impl Future<Output = ()> + Send,
    handler: H,
) where
    H: Fn(TlsStream, SocketAddr, watch::Receiver<bool>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    accept_loop_limited(
        listener,
        acceptor,
        handshake_timeout,
        DEFAULT_MAX_CONNECTIONS,
        shutdown,
        handler,
    )
    .await;
}

/// Accepts TCP connections until `shutdown`, at most `max_connections` open at once, completes
/// each TLS handshake under `handshake_timeout` in the connection's own task, and hands it to
/// `handler` with a receiver that turns `true` at shutdown. At shutdown, open connections get
/// [`DRAIN_TIMEOUT`] to finish.
///
/// At the limit the loop stops accepting, as Go's `netutil.LimitListener` does, rather than
/// accepting and closing: the kernel's backlog holds newcomers, and a connection that makes no
/// request loses its slot within seconds (handshake and header-read timeouts; one kept idle
/// after requests, at the idle timeout). A client kept waiting a moment is then served; one
/// whose connection is closed at once (the aggregator, and the HPA behind it) reports the
/// APIService unavailable.
pub(crate) async fn accept_loop_limited<H, Fut>(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    handshake_timeout: Duration,
    max_connections: usize,
    shutdown: impl Future<Output = ()> + Send,
    handler: H,
) where
    H: Fn(TlsStream, SocketAddr, watch::Receiver<bool>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let handler = Arc::new(handler);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    let slots = Arc::new(Semaphore::new(max_connections.max(1)));
    let mut slot: Option<OwnedSemaphorePermit> = None;
    let mut saturated = false;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            permit = next_slot(&slots, &mut saturated, max_connections), if slot.is_none() => {
                slot = Some(permit);
            }
            accepted = listener.accept(), if slot.is_some() => {
                let (tcp, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: wait a little rather than spin.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                let acceptor = acceptor.clone();
                let handler = Arc::clone(&handler);
                let stop = stop_rx.clone();
                let slot = slot.take();
                connections.spawn(async move {
                    // Held for the connection's whole life.
                    let _slot = slot;
                    match tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => handler(tls, peer, stop).await,
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
            // Reap finished connection tasks so the set does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        connections.abort_all();
    }
}

/// A free connection slot, waiting for one if all are taken (said once per saturation, not
/// once per connection).
async fn next_slot(
    slots: &Arc<Semaphore>,
    saturated: &mut bool,
    max: usize,
) -> OwnedSemaphorePermit {
    if let Ok(permit) = Arc::clone(slots).try_acquire_owned() {
        *saturated = false;
        return permit;
    }
    if !*saturated {
        *saturated = true;
        tracing::warn!(
            max_connections = max,
            "connection limit reached; new connections wait"
        );
    }
    match Arc::clone(slots).acquire_owned().await {
        Ok(permit) => permit,
        // The semaphore is never closed.
        Err(_) => std::future::pending().await,
    }
}

/// A server running in the background.
#[derive(Debug)]
pub struct ServerHandle {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(), Error>>,
}

impl ServerHandle {
    pub(crate) fn spawn<F, Fut>(addr: SocketAddr, serve: F) -> Self
    where
        F: FnOnce(std::pin::Pin<Box<dyn Future<Output = ()> + Send>>) -> Fut,
        Fut: Future<Output = Result<(), Error>> + Send + 'static,
    {
        let (stop, mut rx) = watch::channel(false);
        let task = tokio::spawn(serve(Box::pin(async move {
            let _ = rx.wait_for(|stop| *stop).await;
        })));
        Self { addr, stop, task }
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, drains connections, and waits for the server to end.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// When a connection last did something, for the idle timeout.
#[derive(Debug)]
struct Activity {
    opened: tokio::time::Instant,
    /// Requests in flight, and when the last one started or ended (`None`: none yet).
    state: std::sync::Mutex<(usize, Option<tokio::time::Instant>)>,
}

impl Activity {
    fn new() -> Self {
        Self {
            opened: tokio::time::Instant::now(),
            state: std::sync::Mutex::new((0, None)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (usize, Option<tokio::time::Instant>)> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A request started; the guard marks its end when dropped (answered or cancelled).
    fn begin(self: &Arc<Self>) -> InFlight {
        let mut state = self.lock();
        state.0 += 1;
        state.1 = Some(tokio::time::Instant::now());
        InFlight(Arc::clone(self))
    }

    /// Resolves once the connection has had no request in flight for `idle`, or has not
    /// started its first request within `first`.
    async fn expired(&self, first: Duration, idle: Duration) {
        loop {
            let now = tokio::time::Instant::now();
            let deadline = match *self.lock() {
                (0, None) => self.opened + first,
                (0, Some(last)) => last + idle,
                // Busy: look again later.
                (_, _) => now + idle,
            };
            if deadline <= now {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.0 = state.0.saturating_sub(1);
        state.1 = Some(tokio::time::Instant::now());
    }
}

async fn serve_connection(
    tls: TlsStream,
    peer: SocketAddr,
    app: axum::Router,
    auth: Auth,
    limits: ConnLimits,
    mut stop: watch::Receiver<bool>,
) {
    let chain = tls
        .get_ref()
        .1
        .peer_certificates()
        .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
        .unwrap_or_default();
    let conn_auth = Arc::new(ConnAuth::new(chain, peer.ip()));
    let activity = Arc::new(Activity::new());
    let requests = Arc::clone(&activity);
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let app = app.clone();
        let auth = auth.clone();
        let conn_auth = Arc::clone(&conn_auth);
        let in_flight = requests.begin();
        async move {
            let _in_flight = in_flight;
            let (parts, body) = req.into_parts();
            if let Auth::Delegated(delegated) = &auth
                && let Err(e) = delegated.check(&parts, &conn_auth).await
            {
                tracing::debug!(%peer, path = parts.uri.path(), code = e.error.code, "request refused");
                return Ok::<_, Infallible>(e.into_response());
            }
            let req = http::Request::from_parts(parts, axum::body::Body::new(body));
            app.oneshot(req).await
        }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // A client that opens a connection and never finishes its request headers is dropped (on
    // HTTP/1.1 by hyper; the first request of either protocol by `Activity::expired`).
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.http2_max_concurrent_streams)
        .keep_alive_interval(limits.http2_keep_alive_interval)
        .keep_alive_timeout(limits.http2_keep_alive_timeout);
    let conn = builder.serve_connection(TokioIo::new(tls), service);
    tokio::pin!(conn);
    let why = tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            return;
        }
        _ = async { let _ = stop.wait_for(|s| *s).await; } => "shutdown",
        () = activity.expired(limits.header_read_timeout, limits.idle_timeout) => "idle",
    };
    tracing::debug!(%peer, why, "closing connection");
    conn.as_mut().graceful_shutdown();
    // Requests in flight get to finish at shutdown. An idle connection has none, only the
    // HTTP/2 GOAWAY exchange (one ping) to complete: a peer that does not answer it, or does
    // not read, must not keep its slot for long.
    let grace = if why == "idle" {
        IDLE_GRACE
    } else {
        DRAIN_TIMEOUT
    };
    let _ = tokio::time::timeout(grace, conn).await;
}
