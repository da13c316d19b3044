//! What every HTTP scaler does the same way with a server a tenant names: replies are read up
//! to a size limit, and redirects are followed only on the same host.

use reqwest::redirect::{Attempt, Policy};

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
