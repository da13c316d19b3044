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

use scaler_core::AddressGuard;
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
    /// Checked against each host's addresses before connecting to it.
    guard: AddressGuard,
    /// The parameter the hosts come from, for a refusal.
    param: &'static str,
    /// How long that check may wait for the resolver.
    resolve_timeout: Duration,
    idle: Mutex<Vec<Idle>>,
    permits: Semaphore,
    /// Run once on each new connection: a statement timeout, and read-only transactions so a
    /// scaler's query cannot change data.
    setup: String,
    /// Opens the read-only transaction each query runs in.
    begin: String,
    /// Ends it and cleans the session (see [`end`]).
    end: String,
}

impl Pool {
    /// A pool that has not connected yet, checking each host against `guard` (hosts from
    /// parameter `param`) before it connects there.
    pub fn new(
        spec: &ConnectionSpec,
        statement_timeout: Duration,
        guard: AddressGuard,
        param: &'static str,
    ) -> Self {
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
            guard,
            param,
            resolve_timeout: statement_timeout,
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(POOL_SIZE),
            setup: format!(
                "SET statement_timeout = {}; SET default_transaction_read_only = on",
                statement_timeout.as_millis().max(1)
            ),
            begin: format!(
                "BEGIN READ ONLY; SET LOCAL statement_timeout = {}; ",
                statement_timeout.as_millis().max(1)
            ),
            // DISCARD ALL would do, but it cannot run in the implicit transaction of a
            // multi-statement message; these are its parts that a read-only query can leave.
            end: format!(
                "ROLLBACK; RESET ALL; DEALLOCATE ALL; CLOSE ALL; UNLISTEN *; \
                 DO $$BEGIN PERFORM pg_advisory_unlock_all(); END$$; \
                 SET statement_timeout = {}; SET default_transaction_read_only = on",
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
            match run(&mut conn, &self.begin, &self.end, sql).await {
                Ok(value) => {
                    self.put_back(conn);
                    return value.map_err(QueryError::Value);
                }
                // The server closed this idle connection (restart, idle timeout, failover):
                // connect afresh below instead of failing the poll.
                Err(e) if is_connection_error(&e) => drop(conn),
                Err(e) => {
                    self.put_back_after_error(conn).await;
                    return Err(QueryError::Query(e));
                }
            }
        }
        let mut conn = self.connect().await?;
        match run(&mut conn, &self.begin, &self.end, sql).await {
            Ok(value) => {
                self.put_back(conn);
                value.map_err(QueryError::Value)
            }
            Err(e) => {
                if !is_connection_error(&e) {
                    self.put_back_after_error(conn).await;
                }
                Err(QueryError::Query(e))
            }
        }
    }

    /// A query that failed left its transaction open (and aborted): it is ended, and the
    /// session cleaned, before anyone else's query runs on the connection; a connection that
    /// cannot be cleaned is closed.
    async fn put_back_after_error(&self, mut conn: PgConnection) {
        if end(&mut conn, &self.end).await.is_ok() {
            self.put_back(conn);
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
            let host = target.options.get_host();
            // sqlx resolves the name again; this narrows, but cannot close, the window of a
            // DNS answer that changes in between.
            if let Err(e) =
                crate::address::precheck(&self.guard, self.param, host, self.resolve_timeout).await
            {
                failures.push(e);
                continue;
            }
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
/// transaction mode, which named prepared statements do not), inside `begin` — a read-only
/// transaction — followed by `end_sql`, which ends the transaction and discards what the query
/// left in the session, so a query cannot write and objects sharing the pool never see each
/// other's settings, locks or prepared statements. All three go in one message, one round
/// trip; `end_sql` returns no rows, so the first row is the query's. The query is one statement
/// (checked when the scaler is built), so it cannot commit its way out; it is followed by a
/// line break so a trailing `--` comment cannot swallow the end. If the query fails the rest of
/// the message does not run, and the caller ends the transaction separately.
/// `Ok(Err(_))` is a result that is not a number.
fn run<'a>(
    conn: &'a mut PgConnection,
    begin: &'a str,
    end_sql: &'a str,
    sql: &'a str,
) -> BoxFuture<'a, Result<Result<f64, ValueError>, sqlx::Error>> {
    // Boxed here, where the lifetimes are concrete: left to the caller, the compiler cannot
    // prove sqlx's executor future `Send` for every lifetime.
    Box::pin(async move {
        let wrapped = format!("{begin}{sql}\n;{end_sql}");
        // Through `Executor` directly: sqlx 0.8's `RawSql::fetch_optional` calls `fetch_one`.
        let row = conn.fetch_optional(sqlx::raw_sql(&wrapped)).await?;
        let value = match row {
            None => Err(ValueError::NoRows),
            Some(row) if row.is_empty() => Err(ValueError::NoColumns),
            // Unchecked: simple-protocol values are text whatever the column type.
            Some(row) => {
                let text: Option<String> = row.try_get_unchecked(0)?;
                parse_value(text.as_deref())
            }
        };
        Ok(value)
    })
}

/// Ends the query's transaction and resets the session (settings, prepared statements,
/// cursors, listens, advisory locks), then restores kedge's session defaults.
fn end<'a>(conn: &'a mut PgConnection, sql: &'a str) -> BoxFuture<'a, Result<(), sqlx::Error>> {
    Box::pin(async move { conn.execute(sqlx::raw_sql(sql)).await.map(|_| ()) })
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
