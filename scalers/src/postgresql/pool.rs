//! A small connection pool shared by every trigger that connects the same way.
//!
//! Why not `sqlx::PgPool`: its background tasks need a runtime when the pool is created, and
//! when a server is down it retries until the acquire timeout and then reports only "pool timed
//! out", hiding "connection refused" or "password authentication failed". This pool connects
//! on demand, reports the real error per host, and holds at most [`POOL_SIZE`] connections.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use sqlx::postgres::PgConnection;
use sqlx::{ConnectOptions, Connection, Executor, Row};
use tokio::sync::Semaphore;

use super::connection::{ConnectionSpec, Target};
use super::value::{ValueError, parse_value};

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Most connections one pool opens, however many triggers share it. KEDA's pgx pool defaults
/// to max(4, CPUs); a poll is one short query, so four serve thousands of ScaledObjects.
pub const POOL_SIZE: usize = 4;

/// Idle connections older than this are closed at the next use.
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// What went wrong running the query.
#[derive(Debug)]
pub enum QueryError {
    /// No host accepted a connection; one message per host tried.
    Connect(String),
    /// The server rejected or failed the query.
    Query(sqlx::Error),
    /// The result is not a usable number.
    Value(ValueError),
}

struct Idle {
    conn: PgConnection,
    since: Instant,
}

/// Connections to one database, shared by every trigger that connects the same way.
pub struct Pool {
    targets: Vec<Target>,
    idle: Mutex<Vec<Idle>>,
    permits: Semaphore,
    /// Run once on each new connection: a statement timeout, and read-only transactions so a
    /// scaler's query cannot change data.
    setup: String,
}

impl Pool {
    /// A pool that has not connected yet.
    pub fn new(spec: &ConnectionSpec, statement_timeout: Duration) -> Self {
        let targets = spec
            .targets
            .iter()
            .map(|t| Target {
                label: t.label.clone(),
                // Queries are the user's; logging each one (sqlx's default) only adds noise.
                options: t.options.clone().disable_statement_logging(),
            })
            .collect();
        Self {
            targets,
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(POOL_SIZE),
            setup: format!(
                "SET statement_timeout = {}; SET default_transaction_read_only = on",
                statement_timeout.as_millis().max(1)
            ),
        }
    }

    /// Runs `sql` and parses the first column of its first row.
    pub async fn query_value(&self, sql: &str) -> Result<f64, QueryError> {
        // Never closed, so acquiring cannot fail; the error arm only satisfies the type.
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| QueryError::Connect(e.to_string()))?;
        if let Some(mut conn) = self.take_idle().await {
            match run(&mut conn, sql).await {
                Ok(value) => {
                    self.put_back(conn);
                    return value.map_err(QueryError::Value);
                }
                // The server closed this idle connection (restart, idle timeout, failover):
                // connect afresh below instead of failing the poll.
                Err(e) if is_connection_error(&e) => drop(conn),
                Err(e) => {
                    self.put_back(conn);
                    return Err(QueryError::Query(e));
                }
            }
        }
        let mut conn = self.connect().await?;
        match run(&mut conn, sql).await {
            Ok(value) => {
                self.put_back(conn);
                value.map_err(QueryError::Value)
            }
            Err(e) => {
                if !is_connection_error(&e) {
                    self.put_back(conn);
                }
                Err(QueryError::Query(e))
            }
        }
    }

    /// Closes the idle connections politely (the server sees a Terminate, not a reset).
    pub async fn close(&self) {
        let idle = std::mem::take(&mut *self.idle.lock().unwrap_or_else(PoisonError::into_inner));
        for i in idle {
            let _ = i.conn.close().await;
        }
    }

    async fn take_idle(&self) -> Option<PgConnection> {
        let (conn, expired) = {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            let (expired, fresh): (Vec<Idle>, Vec<Idle>) = idle
                .drain(..)
                .partition(|i| i.since.elapsed() > IDLE_TIMEOUT);
            *idle = fresh;
            (idle.pop().map(|i| i.conn), expired)
        };
        for i in expired {
            let _ = i.conn.close().await;
        }
        conn
    }

    fn put_back(&self, conn: PgConnection) {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Idle {
                conn,
                since: Instant::now(),
            });
    }

    /// Connects to the first host that accepts, as libpq does with several hosts.
    async fn connect(&self) -> Result<PgConnection, QueryError> {
        let mut failures = Vec::new();
        for target in &self.targets {
            match target.options.connect().await {
                Ok(mut conn) => {
                    // Best effort: a server or proxy that rejects these still runs the query
                    // (under kedge's own timeout).
                    if let Err(e) = setup(&mut conn, &self.setup).await {
                        tracing::debug!(host = %target.label, error = %e, "postgresql: session setup rejected");
                    }
                    return Ok(conn);
                }
                Err(e) => failures.push(format!("{}: {e}", target.label)),
            }
        }
        Err(QueryError::Connect(failures.join("; ")))
    }
}

/// Runs the query over the simple protocol (text results; works through PgBouncer in
/// transaction mode, which named prepared statements do not). `Ok(Err(_))` is a result that is
/// not a number.
fn run<'a>(
    conn: &'a mut PgConnection,
    sql: &'a str,
) -> BoxFuture<'a, Result<Result<f64, ValueError>, sqlx::Error>> {
    // Boxed here, where the lifetimes are concrete: left to the caller, the compiler cannot
    // prove sqlx's executor future `Send` for every lifetime.
    Box::pin(async move {
        // Through `Executor` directly: sqlx 0.8's `RawSql::fetch_optional` calls `fetch_one`.
        let Some(row) = conn.fetch_optional(sqlx::raw_sql(sql)).await? else {
            return Ok(Err(ValueError::NoRows));
        };
        if row.is_empty() {
            return Ok(Err(ValueError::NoColumns));
        }
        // Unchecked: simple-protocol values are text whatever the column type.
        let text: Option<String> = row.try_get_unchecked(0)?;
        Ok(parse_value(text.as_deref()))
    })
}

/// Runs the session setup; see [`run`] for why it is boxed.
fn setup<'a>(conn: &'a mut PgConnection, sql: &'a str) -> BoxFuture<'a, Result<(), sqlx::Error>> {
    Box::pin(async move { conn.execute(sqlx::raw_sql(sql)).await.map(|_| ()) })
}

fn is_connection_error(e: &sqlx::Error) -> bool {
    matches!(
        e,
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::Protocol(_)
    )
}
