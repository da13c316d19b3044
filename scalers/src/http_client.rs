//! What every HTTP scaler does the same way with a server a tenant names: replies are read up
//! to a size limit, redirects are followed only on the same host, and with
//! `--scaler-address-deny-cidrs` every name is resolved through the address guard.

use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::redirect::{Attempt, Policy};
use scaler_core::AddressGuard;

/// The largest reply body an HTTP scaler reads (8 MiB): far above any metric reply (a
/// Prometheus vector of thousands of series, a RabbitMQ page of 500 queues), far below what
/// would hurt the operator.
pub const MAX_BODY: usize = 8 << 20;

/// How many redirects are followed (on the same host).
const MAX_REDIRECTS: usize = 5;

/// A redirect policy that stays on the host (and port) first asked: a tenant's server cannot
/// send kedge, with the tenant's credentials, to another address (the metadata service, the
/// API server).
pub fn same_host_redirects() -> Policy {
    Policy::custom(|attempt: Attempt<'_>| {
        let first = attempt.previous().first();
        let same = first.is_some_and(|f| {
            f.host_str() == attempt.url().host_str()
                && f.port_or_known_default() == attempt.url().port_or_known_default()
        });
        if !same {
            attempt.stop()
        } else if attempt.previous().len() > MAX_REDIRECTS {
            attempt.error(format!("more than {MAX_REDIRECTS} redirects"))
        } else {
            attempt.follow()
        }
    })
}

/// A resolver that fails a name any of whose addresses is in a denied range: the addresses
/// checked are the ones the connection uses, so a name that resolved elsewhere when the
/// scaler was built (DNS rebinding) gets no further. (Address literals are not resolved; the
/// scalers check them when they are built, and redirects cannot change the host.)
struct GuardedResolver {
    guard: AddressGuard,
    param: &'static str,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let guard = self.guard.clone();
        let param = self.param;
        Box::pin(async move {
            let addrs = crate::address::resolve_checked(&guard, param, name.as_str(), 0).await?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// `builder` resolving names through `guard` when it is active (`param` is the parameter
/// named in a refusal).
pub fn guarded(
    builder: reqwest::ClientBuilder,
    guard: &AddressGuard,
    param: &'static str,
) -> reqwest::ClientBuilder {
    if !guard.is_active() {
        return builder;
    }
    builder.dns_resolver(Arc::new(GuardedResolver {
        guard: guard.clone(),
        param,
    }))
}

/// The body of `response`, or `None` when it is longer than `limit` bytes (reading stops there).
pub async fn read_capped(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Option<Vec<u8>>, reqwest::Error> {
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Ok(None);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > limit {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::time::Duration;

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    fn builder() -> reqwest::ClientBuilder {
        let tls = crate::client_tls::TlsSettings::default()
            .client_config(&[b"http/1.1"])
            .unwrap();
        reqwest::Client::builder().tls_backend_preconfigured(tls)
    }

    /// Answers one request per connection and counts the connections.
    async fn server() -> (u16, tokio::sync::mpsc::UnboundedReceiver<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let _ = tx.send(());
                let mut buf = [0u8; 1024];
                let _ = conn.read(&mut buf).await;
                let _ = conn
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
            }
        });
        (port, rx)
    }

    #[tokio::test]
    async fn a_name_resolving_into_a_denied_range_is_not_connected_to() {
        let (port, mut connections) = server().await;
        let url = format!("http://localhost:{port}/");
        let deny = AddressGuard::parse("127.0.0.0/8,::1/128").unwrap();
        let client = guarded(builder(), &deny, "serverAddress").build().unwrap();
        let err = client.get(&url).send().await.expect_err("denied");
        let chain = {
            let mut text = err.to_string();
            let mut source = std::error::Error::source(&err);
            while let Some(s) = source {
                text.push_str(&format!(": {s}"));
                source = s.source();
            }
            text
        };
        assert!(
            chain.contains("parameter \"serverAddress\": its host resolves into"),
            "{chain}"
        );
        assert!(
            tokio::time::timeout(Duration::from_millis(300), connections.recv())
                .await
                .is_err(),
            "the server was connected to"
        );

        // The same name through an inactive guard reaches the server.
        let open = guarded(builder(), &AddressGuard::default(), "serverAddress")
            .build()
            .unwrap();
        let reply = open.get(&url).send().await.expect("allowed");
        assert_eq!(reply.status(), 200);
        assert!(connections.recv().await.is_some());
    }
}
