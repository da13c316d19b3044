//! The HTTP(S) server: accepts connections on loopback, authenticates the bearer token, applies
//! injected faults, records writes in the audit log, and dispatches each request to the admin
//! endpoints, discovery, aggregation or the resource handlers.

mod admin;
mod handlers;
pub mod routes;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::audit;
use crate::error::{ApiError, Reason};
use crate::faults::{self, FaultAction, FaultWhen, RequestInfo, Verb};
use crate::state::State;
use routes::Route;

/// Error type of response bodies (proxied bodies can fail mid-stream).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// Response body.
pub type Body = BoxBody<Bytes, BoxError>;

/// Largest request body accepted, as kube-apiserver's default limit.
const MAX_BODY: usize = 3 * 1024 * 1024;

/// A JSON response.
pub fn json_response(status: u16, value: &Value, warnings: &[String]) -> Response<Body> {
    let body = serde_json::to_vec(value).unwrap_or_default();
    let mut resp = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|e: Infallible| match e {})
            .boxed(),
    );
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    for w in warnings {
        let text = format!("299 - \"{}\"", w.replace('"', "'"));
        if let Ok(v) = http::HeaderValue::from_str(&text) {
            resp.headers_mut().append(header::WARNING, v);
        }
    }
    resp
}

/// A `Status` error response.
pub fn error_response(err: &ApiError) -> Response<Body> {
    json_response(err.reason.code(), &err.to_status(), &[])
}

/// A streaming response fed by a channel (watches).
pub fn stream_response(rx: mpsc::Receiver<Bytes>) -> Response<Body> {
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok::<_, BoxError>(Frame::data(chunk)), rx))
    });
    let mut resp = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-cache, private"),
    );
    resp
}

/// Serve until `shutdown` flips; dropping the connection set aborts open connections.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    state: Arc<State>,
    server_address: String,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut conns = JoinSet::new();
    let ctx = Arc::new(handlers::Ctx {
        state,
        server_address,
    });
    loop {
        while conns.try_join_next().is_some() {}
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => return,
        };
        let Ok((stream, peer)) = accepted else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let ctx = ctx.clone();
        let tls = tls.clone();
        let conn = Arc::new(Conn {
            peer,
            reset: Arc::new(AtomicBool::new(false)),
        });
        let socket = Socket {
            stream,
            reset: conn.reset.clone(),
        };
        conns.spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let ctx = ctx.clone();
                let conn = conn.clone();
                // Each request in its own task: as in kube-apiserver, a write whose client
                // gave up (timed out, hung up) is still carried out, not dropped with the
                // connection. Fault tests rely on it to see late writes land (or be refused).
                let handling = tokio::spawn(handle(ctx, conn, req));
                async move {
                    handling.await.unwrap_or_else(|e| {
                        Ok(error_response(&ApiError::new(
                            Reason::ServiceUnavailable,
                            format!("the request handler failed: {e}"),
                        )))
                    })
                }
            });
            let builder = hyper::server::conn::http1::Builder::new();
            let result = match tls {
                Some(acceptor) => match acceptor.accept(socket).await {
                    Ok(tls_stream) => {
                        builder
                            .serve_connection(TokioIo::new(tls_stream), service)
                            .await
                    }
                    Err(e) => {
                        tracing::debug!("TLS handshake failed: {e}");
                        return;
                    }
                },
                None => {
                    builder
                        .serve_connection(TokioIo::new(socket), service)
                        .await
                }
            };
            if let Err(e) = result {
                tracing::debug!("connection ended with error: {e}");
            }
        });
    }
}

/// What a request knows of its connection.
struct Conn {
    /// The client's address, for the audit log.
    peer: SocketAddr,
    /// Set by a `reset` fault: the socket is then closed with a TCP reset.
    reset: Arc<AtomicBool>,
}

/// A connection's TCP stream, passed through untouched, except that a `reset` fault makes it
/// close with a RST (zero linger) instead of a FIN.
struct Socket {
    stream: TcpStream,
    reset: Arc<AtomicBool>,
}

impl Socket {
    fn resetting(&self) -> bool {
        self.reset.load(Ordering::SeqCst)
    }
}

impl AsyncRead for Socket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.resetting() {
            // A FIN now would turn the reset into an orderly close.
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.stream).poll_shutdown(cx)
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        if self.resetting() {
            let _ = self.stream.set_zero_linger();
        }
    }
}

/// The service's error: hyper then drops the connection without answering, and [`Socket`]
/// resets it.
#[derive(Debug)]
struct ConnectionReset(u64);

impl std::fmt::Display for ConnectionReset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "connection reset by local-cluster fault {}", self.0)
    }
}

impl std::error::Error for ConnectionReset {}

/// What a resource request addresses; `None` for other paths.
fn request_info(state: &State, req: &Request<Incoming>) -> Option<RequestInfo> {
    // Paths the registry does not know (aggregated APIs) are split as kube-apiserver's
    // request-info does: `namespaces/{ns}/...` is a namespace unless `status` or `finalize`
    // follows.
    let route = routes::parse(req.uri().path(), |g, v, p| {
        state
            .registry
            .find(g, v, p)
            .map_or(!matches!(p, "status" | "finalize"), |r| r.namespaced)
    });
    let Route::Resource(rp) = route else {
        return None;
    };
    let q = handlers::parse_query(req.uri().query());
    let verb = Verb::of(req.method(), rp.name.is_some(), handlers::flag(&q, "watch"))?;
    Some(RequestInfo {
        verb,
        group: rp.group,
        version: rp.version,
        resource: rp.plural,
        subresource: rp.subresource,
        namespace: rp.namespace,
        name: rp.name,
        user_agent: req
            .headers()
            .get(header::USER_AGENT)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
        dry_run: q.get("dryRun").is_some_and(|v| v == "All"),
    })
}

async fn handle(
    ctx: Arc<handlers::Ctx>,
    conn: Arc<Conn>,
    req: Request<Incoming>,
) -> Result<Response<Body>, ConnectionReset> {
    let path = req.uri().path().to_string();
    let info = request_info(&ctx.state, &req);
    let mut audit = audit::Pending::start(&ctx.state, info.as_ref(), conn.peer);
    let public = path == "/version"
        || path.starts_with("/healthz")
        || path.starts_with("/livez")
        || path.starts_with("/readyz");
    if !public && !authorized(&ctx.state.token, req.headers()) {
        let resp = error_response(&ApiError::new(Reason::Unauthorized, "Unauthorized"));
        audit.finish(Some(resp.status().as_u16()));
        return Ok(resp);
    }
    let (parts, body) = req.into_parts();
    let body = match http_body_util::Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            let resp = error_response(&ApiError::new(
                Reason::BadRequest,
                format!("cannot read the request body: {e}"),
            ));
            audit.finish(Some(resp.status().as_u16()));
            return Ok(resp);
        }
    };
    if admin::is_admin(&path) {
        return Ok(admin::handle(&ctx.state, &parts.method, &parts.uri, &body));
    }
    let method = parts.method.clone();
    let injected = info.as_ref().and_then(|i| ctx.state.faults.check(i));
    let resp = match injected {
        None => {
            let resp = handlers::dispatch(&ctx, parts, body).await;
            audit.handled(resp.status().as_u16());
            resp
        }
        Some(mut fault) => {
            audit.fault(fault.id);
            tracing::debug!(%method, %path, fault = fault.id, "fault injected");
            let mut shutdown = ctx.state.shutdown.clone();
            let stage = match fault.when {
                FaultWhen::Before => Stage::Unhandled(parts, body),
                FaultWhen::After => {
                    let resp = handlers::dispatch(&ctx, parts, body).await;
                    audit.handled(resp.status().as_u16());
                    Stage::Handled(resp)
                }
            };
            match fault.action.clone() {
                FaultAction::Reset => {
                    conn.reset.store(true, Ordering::SeqCst);
                    audit.finish(None);
                    return Err(ConnectionReset(fault.id));
                }
                action @ FaultAction::Respond { .. } => fault_response(fault.id, &action),
                FaultAction::Hang { duration } => {
                    fault.hang(duration, &mut shutdown).await;
                    match stage {
                        Stage::Handled(resp) => resp,
                        Stage::Unhandled(parts, body) => {
                            let resp = handlers::dispatch(&ctx, parts, body).await;
                            audit.handled(resp.status().as_u16());
                            resp
                        }
                    }
                }
            }
        }
    };
    tracing::debug!(%method, %path, status = resp.status().as_u16(), "request");
    audit.finish(Some(resp.status().as_u16()));
    Ok(resp)
}

/// Where a request under a fault is.
enum Stage {
    /// Not handled yet (a fault acting before handling).
    Unhandled(http::request::Parts, Bytes),
    /// Handled, with this answer (a fault acting after).
    Handled(Response<Body>),
}

/// The answer of a `respond` fault: a `Status`, and `Retry-After` when it has one.
fn fault_response(id: u64, action: &FaultAction) -> Response<Body> {
    let Some((code, status, retry_after)) = faults::status_body(id, action) else {
        return error_response(&ApiError::new(Reason::BadRequest, "not a respond fault"));
    };
    let mut resp = json_response(code, &status, &[]);
    if let Some(secs) = retry_after {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, http::HeaderValue::from(secs));
    }
    resp
}
fn authorized(token: &str, headers: &http::HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| t.trim() == token)
}
