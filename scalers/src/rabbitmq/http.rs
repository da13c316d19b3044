//! Reading queues through the management plugin's HTTP API.
//!
//! One request per poll: `GET /api/queues/<vhost>/<queue>` or, with `useRegex`, the paginated
//! listing of the vhost filtered by name. `columns=` trims the reply to the counters we read
//! (about 100 bytes instead of 1.5 kB per queue), which also spares the broker serialising the
//! rest.

use std::time::Duration;

use serde::Deserialize;

use super::target::{Credentials, Management, path_escape, query_escape};
use super::value::QueueCounters;

/// The columns we ask for.
const COLUMNS: &str = "name,messages,messages_ready,messages_unacknowledged,\
                       message_stats.publish_details.rate,message_stats.deliver_get_details.rate";

/// One queue as the management API returns it. Counters are absent (or `null`) for a moment
/// after a queue is declared and `message_stats` until something is published: both read as
/// zero, as they do in KEDA.
#[derive(Debug, Default, Deserialize)]
pub struct QueueInfo {
    #[serde(default)]
    messages: Option<i64>,
    #[serde(default)]
    messages_ready: Option<i64>,
    #[serde(default)]
    message_stats: Option<MessageStats>,
}

#[derive(Debug, Default, Deserialize)]
struct MessageStats {
    #[serde(default)]
    publish_details: Option<Rate>,
    #[serde(default)]
    deliver_get_details: Option<Rate>,
}

#[derive(Debug, Default, Deserialize)]
struct Rate {
    #[serde(default)]
    rate: Option<f64>,
}

impl QueueInfo {
    /// The counters the scaler uses.
    pub fn counters(&self) -> QueueCounters {
        let rate = |r: Option<&Rate>| r.and_then(|r| r.rate).unwrap_or(0.0);
        let stats = self.message_stats.as_ref();
        QueueCounters {
            messages: self.messages.unwrap_or(0),
            messages_ready: self.messages_ready.unwrap_or(0),
            publish_rate: rate(stats.and_then(|s| s.publish_details.as_ref())),
            deliver_get_rate: rate(stats.and_then(|s| s.deliver_get_details.as_ref())),
        }
    }
}

/// A page of the filtered queue listing.
#[derive(Debug, Deserialize)]
pub struct QueuePage {
    items: Vec<QueueInfo>,
    #[serde(default)]
    page_count: u64,
}

/// Why a management API call failed.
#[derive(Debug)]
pub enum HttpError {
    /// No answer (connection refused, TLS, timeout).
    Transport(reqwest::Error),
    /// The API answered with an error status.
    Status {
        /// The status line, e.g. `404 Not Found`.
        status: String,
        /// The reply body (trimmed).
        body: String,
        /// The URL asked, without credentials.
        url: String,
    },
    /// The reply was not the JSON we expected.
    Decode(serde_json::Error),
    /// `useRegex` matched more queues than one page holds.
    TooManyQueues,
    /// The reply was longer than [`crate::http_client::MAX_BODY`].
    TooLarge,
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::Transport(e) => {
                // reqwest's Display omits the cause ("error sending request"); show the chain.
                write!(f, "{e}")?;
                let mut source = std::error::Error::source(e);
                while let Some(s) = source {
                    write!(f, ": {s}")?;
                    source = s.source();
                }
                Ok(())
            }
            HttpError::Status { status, body, url } => write!(
                f,
                "error requesting RabbitMQ API status: {status}, response: {body}, from: {url}"
            ),
            HttpError::Decode(e) => write!(f, "unexpected reply from the RabbitMQ API: {e}"),
            HttpError::TooLarge => write!(
                f,
                "the RabbitMQ API replied with more than {} bytes",
                crate::http_client::MAX_BODY
            ),
            HttpError::TooManyQueues => {
                f.write_str("regex matches more queues than can be recovered at once")
            }
        }
    }
}

impl std::error::Error for HttpError {}

/// The URL of one queue.
pub fn queue_url(m: &Management, queue: &str) -> String {
    format!("{}/{}?columns={COLUMNS}", m.queues_url, path_escape(queue))
}

/// The URL of the filtered listing (KEDA's query, plus `columns`).
pub fn regex_url(m: &Management, pattern: &str, page_size: i64) -> String {
    format!(
        "{}?page=1&use_regex=true&pagination=false&name={}&page_size={page_size}&columns={COLUMNS}",
        m.queues_url,
        query_escape(pattern)
    )
}

async fn get(
    client: &reqwest::Client,
    url: &str,
    credentials: Option<&Credentials>,
    timeout: Duration,
) -> Result<Vec<u8>, HttpError> {
    let mut request = client.get(url).timeout(timeout);
    if let Some(c) = credentials {
        request = request.basic_auth(c.username.expose(), Some(c.password.expose()));
    }
    let response = request.send().await.map_err(HttpError::Transport)?;
    let status = response.status();
    let body = crate::http_client::read_capped(response, crate::http_client::MAX_BODY)
        .await
        .map_err(HttpError::Transport)?
        .ok_or(HttpError::TooLarge)?;
    if status.is_success() {
        return Ok(body.to_vec());
    }
    let text = String::from_utf8_lossy(&body);
    Err(HttpError::Status {
        status: status.to_string(),
        body: text.trim().chars().take(512).collect(),
        url: url.split('?').next().unwrap_or(url).to_owned(),
    })
}

/// Reads one queue.
pub async fn queue(
    client: &reqwest::Client,
    m: &Management,
    queue: &str,
    timeout: Duration,
) -> Result<QueueCounters, HttpError> {
    let body = get(
        client,
        &queue_url(m, queue),
        m.credentials.as_ref(),
        timeout,
    )
    .await?;
    parse_queue(&body)
}

/// The counters in a reply to `GET /api/queues/<vhost>/<queue>`.
pub fn parse_queue(body: &[u8]) -> Result<QueueCounters, HttpError> {
    let info: QueueInfo = serde_json::from_slice(body).map_err(HttpError::Decode)?;
    Ok(info.counters())
}

/// Reads every queue of the vhost whose name matches `pattern`.
pub async fn queues_matching(
    client: &reqwest::Client,
    m: &Management,
    pattern: &str,
    page_size: i64,
    timeout: Duration,
) -> Result<Vec<QueueCounters>, HttpError> {
    let url = regex_url(m, pattern, page_size);
    let body = get(client, &url, m.credentials.as_ref(), timeout).await?;
    parse_page(&body)
}

/// The counters of every queue in a reply to the filtered listing.
pub fn parse_page(body: &[u8]) -> Result<Vec<QueueCounters>, HttpError> {
    let page: QueuePage = serde_json::from_slice(body).map_err(HttpError::Decode)?;
    if page.page_count > 1 {
        return Err(HttpError::TooManyQueues);
    }
    Ok(page.items.iter().map(QueueInfo::counters).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn management() -> Management {
        Management {
            queues_url: "http://h:15672/api/queues/%2F".to_owned(),
            origin: "http://h:15672".to_owned(),
            credentials: None,
        }
    }

    #[test]
    fn urls() {
        assert_eq!(
            queue_url(&management(), "ns/jobs a"),
            format!("http://h:15672/api/queues/%2F/ns%2Fjobs%20a?columns={COLUMNS}")
        );
        assert_eq!(
            regex_url(&management(), "^jobs-.*$", 100),
            format!(
                "http://h:15672/api/queues/%2F?page=1&use_regex=true&pagination=false&name=%5Ejobs-.%2A%24&page_size=100&columns={COLUMNS}"
            )
        );
    }

    #[test]
    fn replies_decode_with_missing_counters_as_zero() {
        let full: QueueInfo = serde_json::from_str(
            r#"{"messages": 10, "messages_ready": 7, "messages_unacknowledged": 3,
                "message_stats": {"publish_details": {"rate": 20.0}, "deliver_get_details": {"rate": 1.5}},
                "name": "jobs"}"#,
        )
        .unwrap_or_default();
        assert_eq!(
            full.counters(),
            QueueCounters {
                messages: 10,
                messages_ready: 7,
                publish_rate: 20.0,
                deliver_get_rate: 1.5
            }
        );
        // Right after declare: no counters, no stats.
        let fresh: QueueInfo =
            serde_json::from_str(r#"{"name": "jobs", "messages": null}"#).unwrap_or_default();
        assert_eq!(fresh.counters(), QueueCounters::default());

        let page: QueuePage = serde_json::from_str(
            r#"{"filtered_count":2,"item_count":2,"items":[{"message_stats":{"publish_details":{"rate":0.0}},"messages":1,"messages_ready":1,"name":"rxa1"},{"messages":0,"messages_ready":0,"name":"rxa2"}],"page":1,"page_count":1,"page_size":100,"total_count":3}"#,
        )
        .unwrap_or(QueuePage { items: vec![], page_count: 9 });
        assert_eq!(page.page_count, 1);
        assert_eq!(page.items.len(), 2);
        assert_eq!(page.items[0].counters().messages, 1);
    }
}
