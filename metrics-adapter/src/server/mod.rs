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
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::auth::{Auth, ConnAuth};
use crate::config::{AdapterConfig, ServingTls};
use crate::error::Error;
use crate::provider::MetricsProvider;
use crate::tls::{self, ReloadingCertificate, selfsigned};

/// How long open connections get to finish their requests at shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// How long an HTTP/1.1 client may take to send a request's headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// A bound, not yet serving, external-metrics server.
pub struct AdapterServer {
    listener: TcpListener,
    acceptor: TlsAcceptor,
    app: axum::Router,
    auth: Auth,
    serving_cert_pem: Option<String>,
    handshake_timeout: Duration,
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
            ..
        } = self;
        accept_loop(
            listener,
            acceptor,
            handshake_timeout,
            shutdown,
            move |tls, peer, stop| serve_connection(tls, peer, app.clone(), auth.clone(), stop),
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

/// Accepts TCP connections until `shutdown`, completes each TLS handshake under
/// `handshake_timeout` in the connection's own task, and hands it to `handler` with a receiver
/// that turns `true` at shutdown. At shutdown, open connections get [`DRAIN_TIMEOUT`] to finish.
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
    let handler = Arc::new(handler);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => {
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
                connections.spawn(async move {
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

async fn serve_connection(
    tls: TlsStream,
    peer: SocketAddr,
    app: axum::Router,
    auth: Auth,
    mut stop: watch::Receiver<bool>,
) {
    let chain = tls
        .get_ref()
        .1
        .peer_certificates()
        .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
        .unwrap_or_default();
    let conn_auth = Arc::new(ConnAuth::new(chain));
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let app = app.clone();
        let auth = auth.clone();
        let conn_auth = Arc::clone(&conn_auth);
        async move {
            let (parts, body) = req.into_parts();
            if let Auth::Delegated(delegated) = &auth
                && let Err(e) = delegated.check(&parts, &conn_auth).await
            {
                tracing::debug!(%peer, path = parts.uri.path(), code = e.code, "request refused");
                return Ok::<_, Infallible>(e.into_response());
            }
            let req = http::Request::from_parts(parts, axum::body::Body::new(body));
            app.oneshot(req).await
        }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // A client that opens a connection and never finishes its request headers is dropped.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    builder.http2().timer(TokioTimer::new());
    let conn = builder.serve_connection(TokioIo::new(tls), service);
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        }
        _ = async { let _ = stop.wait_for(|s| *s).await; } => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}
