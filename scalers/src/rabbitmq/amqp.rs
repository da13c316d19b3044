//! Reading a queue's length over AMQP 0-9-1.
//!
//! One [`AmqpClient`] (one TCP connection) per broker identity — host, port, vhost, user,
//! password, TLS — shared by every trigger that names it (see [`super::RabbitMqFactory`]).
//! A poll takes an idle channel (or opens one), issues a passive `queue.declare` and puts the
//! channel back: one round trip in steady state. A queue-level error (404) closes only that
//! channel.
//!
//! When the broker restarts or the connection drops, the next poll reconnects. Failed attempts
//! back off exponentially (1 s doubling to 16 s) so that hundreds of triggers sharing a dead
//! broker make one attempt per period instead of one each; polls in between fail at once with
//! the last error.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use lapin::options::QueueDeclareOptions;
use lapin::tcp::{AsyncTcpStream, RustlsConnector};
use lapin::types::FieldTable;
use lapin::uri::{AMQPScheme, AMQPUri};
use lapin::{Channel, Connection, ConnectionProperties};
use scaler_core::AddressGuard;

/// Channels kept open for reuse per connection; more concurrent polls open extra ones that are
/// closed after use.
const IDLE_CHANNELS: usize = 8;
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(16);

/// Why reading the queue failed.
#[derive(Debug, Clone)]
pub enum AmqpError {
    /// No connection could be made (or the last attempt failed and the next is not due yet),
    /// or it broke during the call.
    Connect(String),
    /// The broker answered the declare with an error (typically 404 NOT_FOUND).
    Queue(String),
    /// The broker did not answer in time; the connection is considered dead and replaced at
    /// the next poll.
    Timeout(Duration),
}

impl std::fmt::Display for AmqpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AmqpError::Connect(e) => write!(f, "error establishing connection to RabbitMQ: {e}"),
            AmqpError::Queue(e) => f.write_str(e),
            AmqpError::Timeout(t) => write!(f, "no answer from RabbitMQ within {t:?}"),
        }
    }
}

impl std::error::Error for AmqpError {}

#[derive(Default)]
struct ConnState {
    connection: Option<Arc<Connection>>,
    /// Increases with each new connection, so a failure seen on an old one does not discard
    /// its replacement.
    generation: u64,
    failures: u32,
    retry_at: Option<Instant>,
    last_error: Option<String>,
}

/// A shared AMQP connection to one broker identity.
pub struct AmqpClient {
    uri: AMQPUri,
    tls: Arc<rustls::ClientConfig>,
    connection_name: String,
    /// Checked against the addresses the host has at each connection.
    guard: AddressGuard,
    state: tokio::sync::Mutex<ConnState>,
    /// Idle channels with the generation of the connection they belong to.
    idle: Mutex<Vec<(u64, Channel)>>,
}

impl std::fmt::Debug for AmqpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpClient")
            .field("host", &self.uri.authority.host)
            .field("port", &self.uri.authority.port)
            .field("vhost", &self.uri.vhost)
            .finish_non_exhaustive()
    }
}

/// Runs `f` until `deadline`.
async fn before<T>(
    deadline: Instant,
    timeout: Duration,
    f: impl Future<Output = T>,
) -> Result<T, AmqpError> {
    tokio::time::timeout_at(deadline.into(), f)
        .await
        .map_err(|_| AmqpError::Timeout(timeout))
}

impl AmqpClient {
    /// A client that connects on first use. `tls` is used for `amqps://`; `guard` is checked
    /// against the broker's addresses at each connection.
    pub fn new(
        uri: AMQPUri,
        tls: Arc<rustls::ClientConfig>,
        connection_name: String,
        guard: AddressGuard,
    ) -> Self {
        Self {
            uri,
            tls,
            connection_name,
            guard,
            state: tokio::sync::Mutex::new(ConnState::default()),
            idle: Mutex::new(Vec::new()),
        }
    }

    /// The ready-message count of `queue` (passive declare), within `timeout`.
    ///
    /// A connection that fails or stalls mid-call is dropped, so the next call reconnects:
    /// after a broker restart lapin may still report a dead connection as connected.
    pub async fn message_count(&self, queue: &str, timeout: Duration) -> Result<u32, AmqpError> {
        let deadline = Instant::now() + timeout;
        let (generation, channel) = match self.idle_channel() {
            Some(idle) => idle,
            None => {
                let (generation, connection) = self.connection(deadline, timeout).await?;
                match before(deadline, timeout, connection.create_channel()).await {
                    Ok(Ok(channel)) => (generation, channel),
                    Ok(Err(e)) => {
                        self.invalidate(generation).await;
                        return Err(AmqpError::Connect(e.to_string()));
                    }
                    Err(e) => {
                        self.invalidate(generation).await;
                        return Err(e);
                    }
                }
            }
        };
        let declared = before(
            deadline,
            timeout,
            channel.queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            ),
        )
        .await;
        match declared {
            Ok(Ok(q)) => {
                self.put_back(generation, channel);
                Ok(q.message_count())
            }
            // A channel-level error (404, 403): the broker closed this channel only.
            Ok(Err(e)) if e.is_amqp_soft_error() => Err(AmqpError::Queue(e.to_string())),
            Ok(Err(e)) => {
                self.invalidate(generation).await;
                Err(AmqpError::Connect(e.to_string()))
            }
            Err(e) => {
                self.invalidate(generation).await;
                Err(e)
            }
        }
    }

    fn idle_channel(&self) -> Option<(u64, Channel)> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        while let Some((generation, channel)) = idle.pop() {
            if channel.status().connected() {
                return Some((generation, channel));
            }
        }
        None
    }

    fn put_back(&self, generation: u64, channel: Channel) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if channel.status().connected() && idle.len() < IDLE_CHANNELS {
            idle.push((generation, channel));
        }
        // Otherwise dropping the channel closes it.
    }

    /// Forgets connection `generation` (and its channels) if it is still the current one;
    /// dropping the last handle closes it.
    async fn invalidate(&self, generation: u64) {
        let mut state = self.state.lock().await;
        if state.generation == generation && state.connection.is_some() {
            tracing::info!(
                host = %self.uri.authority.host,
                vhost = %self.uri.vhost,
                "RabbitMQ connection broken; reconnecting at the next poll"
            );
            state.connection = None;
            self.idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .retain(|(g, _)| *g != generation);
        }
    }

    /// The live connection, connecting (or reconnecting, subject to backoff) if needed.
    async fn connection(
        &self,
        deadline: Instant,
        timeout: Duration,
    ) -> Result<(u64, Arc<Connection>), AmqpError> {
        let mut state = before(deadline, timeout, self.state.lock()).await?;
        if let Some(conn) = &state.connection {
            if conn.status().connected() {
                return Ok((state.generation, conn.clone()));
            }
            tracing::info!(
                host = %self.uri.authority.host,
                vhost = %self.uri.vhost,
                "RabbitMQ connection lost; reconnecting"
            );
            state.connection = None;
            self.idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clear();
        }
        if let (Some(at), Some(err)) = (state.retry_at, &state.last_error) {
            let now = Instant::now();
            if now < at {
                return Err(AmqpError::Connect(format!(
                    "{err} (next attempt in {:.1}s)",
                    (at - now).as_secs_f64()
                )));
            }
        }
        let attempt = match before(deadline, timeout, self.connect()).await {
            Ok(result) => result,
            Err(e) => Err(e.to_string()),
        };
        match attempt {
            Ok(conn) => {
                let conn = Arc::new(conn);
                state.connection = Some(conn.clone());
                state.generation += 1;
                state.failures = 0;
                state.retry_at = None;
                state.last_error = None;
                Ok((state.generation, conn))
            }
            Err(e) => {
                let backoff = FIRST_BACKOFF
                    .saturating_mul(1 << state.failures.min(8))
                    .min(MAX_BACKOFF);
                state.failures = state.failures.saturating_add(1);
                state.retry_at = Some(Instant::now() + backoff);
                state.last_error = Some(e.clone());
                Err(AmqpError::Connect(e))
            }
        }
    }

    async fn connect(&self) -> Result<Connection, String> {
        let runtime = lapin::runtime::default_runtime().map_err(|e| e.to_string())?;
        let tls = (self.uri.scheme == AMQPScheme::AMQPS)
            .then(|| Arc::new(RustlsConnector::from(self.tls.clone())));
        let properties = ConnectionProperties::default()
            .with_connection_name(self.connection_name.as_str().into());
        // Our own TCP/TLS setup, so the TLS configuration (CA, client certificate, unsafeSsl)
        // is the same rustls one the HTTP client uses.
        let guard = self.guard.clone();
        let connect = async move |uri: AMQPUri, runtime| {
            let host = uri.authority.host.clone();
            // Connecting to exactly the checked addresses: the name cannot change in between.
            let addrs =
                crate::address::resolve_checked(&guard, "host", &host, uri.authority.port).await?;
            let stream = AsyncTcpStream::connect(&runtime, addrs).await?;
            match &tls {
                Some(connector) => Ok(stream.into_rustls(connector, &host).await?),
                None => Ok(stream),
            }
        };
        Connection::connector(self.uri.clone(), runtime, connect, properties)
            .await
            .map_err(|e| e.to_string())
    }
}
