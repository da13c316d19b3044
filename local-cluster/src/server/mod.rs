//! The HTTP(S) server: accepts connections on loopback, authenticates the bearer token, and
//! dispatches each request to discovery, aggregation or the resource handlers.

mod handlers;
pub mod routes;

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::error::{ApiError, Reason};
use crate::state::State;

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
        let Ok((stream, _)) = accepted else { continue };
        let _ = stream.set_nodelay(true);
        let ctx = ctx.clone();
        let tls = tls.clone();
        conns.spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let ctx = ctx.clone();
                async move { Ok::<_, Infallible>(handle(ctx, req).await) }
            });
            let builder = hyper::server::conn::http1::Builder::new();
            let result = match tls {
                Some(acceptor) => match acceptor.accept(stream).await {
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
                        .serve_connection(TokioIo::new(stream), service)
                        .await
                }
            };
            if let Err(e) = result {
                tracing::debug!("connection ended with error: {e}");
            }
        });
    }
}

async fn handle(ctx: Arc<handlers::Ctx>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let public = path == "/version"
        || path.starts_with("/healthz")
        || path.starts_with("/livez")
        || path.starts_with("/readyz");
    if !public && !authorized(&ctx.state.token, req.headers()) {
        return error_response(&ApiError::new(Reason::Unauthorized, "Unauthorized"));
    }
    let (parts, body) = req.into_parts();
    let body = match http_body_util::Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return error_response(&ApiError::new(
                Reason::BadRequest,
                format!("cannot read the request body: {e}"),
            ));
        }
    };
    let method = parts.method.clone();
    let resp = handlers::dispatch(&ctx, parts, body).await;
    tracing::debug!(%method, %path, status = resp.status().as_u16(), "request");
    resp
}

fn authorized(token: &str, headers: &http::HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| t.trim() == token)
}
