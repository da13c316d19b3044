//! The postgresql scaler against the real PostgreSQL servers started by `scripts/services.sh`:
//! the machine's server (trust auth, `KEDGE_POSTGRESQL_URL`) and a private one with password
//! auth (`KEDGE_POSTGRESQL_AUTH_URL`). Each test works in its own fresh database.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use kedge_test_support::{service_env, unique_ident};
use scaler_core::{Scaler, ScalerConfig, ScalerError};
use scalers::postgresql::{POOL_SIZE, PostgresqlScaler};
use sqlx::{Connection, Executor, PgConnection, Row};

/// A fresh database on the server at `admin_url`, dropped when the value is dropped... or at
/// the end of the test via [`TestDb::drop_db`] (async drop does not exist).
struct TestDb {
    admin_url: String,
    name: String,
}

impl TestDb {
    async fn create(admin_url: &str) -> Self {
        let name = unique_ident("kedge_pg");
        let mut admin = PgConnection::connect(admin_url)
            .await
            .expect("admin connection");
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .expect("create database");
        Self {
            admin_url: admin_url.to_owned(),
            name,
        }
    }

    /// The admin URL pointed at this database, with extra query parameters.
    fn url(&self, params: &str) -> String {
        let base = self.admin_url.rsplit_once('/').map(|(b, _)| b).unwrap();
        let sep = if params.is_empty() { "" } else { "?" };
        format!("{base}/{}{sep}{params}", self.name)
    }

    async fn connect(&self) -> PgConnection {
        PgConnection::connect(&self.url(""))
            .await
            .expect("test connection")
    }

    async fn drop_db(self) {
        let mut admin = PgConnection::connect(&self.admin_url).await.expect("admin");
        admin
            .execute(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name).as_str())
            .await
            .expect("drop database");
    }
}

fn scaler_for(connection: &str, query: &str) -> PostgresqlScaler {
    let cfg = ScalerConfig::new("postgresql", 0)
        .with_metadata("query", query)
        .with_metadata("targetQueryValue", "10")
        .with_metadata("activationTargetQueryValue", "2")
        .with_auth_param("connection", connection);
    PostgresqlScaler::new(&cfg).expect("valid trigger")
}

async fn poll(scaler: &PostgresqlScaler) -> Result<(String, bool), ScalerError> {
    let m = scaler.metrics_and_activity("s0-postgresql").await?;
    Ok((m.metrics[0].value.to_string(), m.active))
}

#[tokio::test]
async fn integer_numeric_float_and_text_results() {
    let Some(url) = service_env("KEDGE_POSTGRESQL_URL") else {
        return;
    };
    let db = TestDb::create(&url).await;
    let mut conn = db.connect().await;
    conn.execute(
        "CREATE TABLE jobs (id serial PRIMARY KEY, state text NOT NULL, cost numeric(10,2), \
         weight double precision); \
         INSERT INTO jobs (state, cost, weight) SELECT CASE WHEN g % 3 = 0 THEN 'done' ELSE \
         'pending' END, g * 1.25, g / 4.0 FROM generate_series(1, 25) g",
    )
    .await
    .expect("fixture");
    let connection = db.url("");
    let cases = [
        // (query, value as the HPA reads it, active above 2)
        (
            "SELECT count(*) FROM jobs WHERE state = 'pending'",
            "17",
            true,
        ),
        (
            "SELECT count(*)::int FROM jobs WHERE state = 'none'",
            "0",
            false,
        ),
        ("SELECT sum(cost) FROM jobs WHERE id <= 2", "3750m", true),
        (
            "SELECT avg(weight)::float8 FROM jobs WHERE id <= 4",
            "625m",
            false,
        ),
        ("SELECT '12.5'::text", "12500m", true),
        ("SELECT 2, 99", "2", false),
    ];
    for (query, value, active) in cases {
        let scaler = scaler_for(&connection, query);
        assert_eq!(
            poll(&scaler).await.expect(query),
            (value.to_owned(), active),
            "{query}"
        );
        scaler.close().await;
    }
    drop(conn);
    db.drop_db().await;
}

#[tokio::test]
async fn null_no_rows_and_bad_sql_are_clear_errors() {
    let Some(url) = service_env("KEDGE_POSTGRESQL_URL") else {
        return;
    };
    let db = TestDb::create(&url).await;
    let connection = db.url("");
    let cases = [
        ("SELECT NULL::int", "the query returned NULL"),
        ("SELECT 1 WHERE false", "no rows in result set"),
        (
            "SELECT 'lots'",
            "the query returned \"lots\", which is not a number",
        ),
        (
            "SELEC count(*) FROM jobs",
            "syntax error at or near \"SELEC\"",
        ),
        (
            "SELECT count(*) FROM missing_table",
            "relation \"missing_table\" does not exist",
        ),
    ];
    for (query, expected) in cases {
        let scaler = scaler_for(&connection, query);
        let err = poll(&scaler).await.expect_err(query).to_string();
        assert!(
            err.starts_with("triggers[0] (postgresql): error inspecting postgreSQL: could not query postgreSQL: "),
            "{err}"
        );
        assert!(err.contains(expected), "{query}: {err}");
        // The pool survives a failed query.
        let ok = scaler_for(&connection, "SELECT 5");
        assert_eq!(poll(&ok).await.expect("after error").0, "5");
    }
    db.drop_db().await;
}

#[tokio::test]
async fn queries_run_read_only_and_under_the_timeout() {
    let Some(url) = service_env("KEDGE_POSTGRESQL_URL") else {
        return;
    };
    let db = TestDb::create(&url).await;
    let mut conn = db.connect().await;
    conn.execute("CREATE TABLE t (v int)")
        .await
        .expect("fixture");

    let writer = scaler_for(&db.url(""), "INSERT INTO t VALUES (1) RETURNING v");
    let err = poll(&writer).await.expect_err("write").to_string();
    assert!(err.contains("read-only transaction"), "{err}");
    let rows: i64 = conn
        .fetch_one("SELECT count(*) FROM t")
        .await
        .expect("count")
        .get(0);
    assert_eq!(rows, 0);

    let cfg = ScalerConfig::new("postgresql", 0)
        .with_metadata("query", "SELECT 1 FROM pg_sleep(30)")
        .with_metadata("targetQueryValue", "1")
        .with_auth_param("connection", db.url("application_name=kedge-timeout"));
    let cfg = ScalerConfig {
        timeout: Duration::from_millis(500),
        ..cfg
    };
    let slow = PostgresqlScaler::new(&cfg).expect("valid");
    let started = Instant::now();
    let err = slow
        .metrics_and_activity("s0-postgresql")
        .await
        .expect_err("slow");
    assert!(matches!(err, ScalerError::Timeout { .. }), "{err}");
    println!("timed out after {:?}", started.elapsed());
    // The server cancels the statement too (statement_timeout), so no query keeps running.
    let mut running = i64::MAX;
    for _ in 0..50 {
        running = conn
            .fetch_one(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'kedge-timeout' \
                 AND state = 'active'",
            )
            .await
            .expect("activity")
            .get(0);
        if running == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(running, 0, "the slow query is still running on the server");
    drop(conn);
    db.drop_db().await;
}

#[tokio::test]
async fn wrong_password_and_unreachable_server_are_clear_errors() {
    let Some(auth_url) = service_env("KEDGE_POSTGRESQL_AUTH_URL") else {
        return;
    };
    // Right password, separate parameters, password from the TriggerAuthentication.
    let (userinfo, hostport) = auth_url
        .trim_start_matches("postgres://")
        .split_once('@')
        .unwrap();
    let (user, password) = userinfo.split_once(':').unwrap();
    let (host, port) = hostport.split_once('/').unwrap().0.split_once(':').unwrap();
    let with_password = |password: &str| {
        ScalerConfig::new("postgresql", 1)
            .with_metadata("query", "SELECT 7")
            .with_metadata("targetQueryValue", "5")
            .with_metadata("host", host)
            .with_metadata("port", port)
            .with_metadata("userName", user)
            .with_metadata("dbName", "postgres")
            .with_metadata("sslmode", "disable")
            .with_auth_param("password", password)
    };
    let good = PostgresqlScaler::new(&with_password(password)).expect("valid");
    let m = good
        .metrics_and_activity("s1-postgresql")
        .await
        .expect("right password");
    assert_eq!(m.metrics[0].value.to_string(), "7");
    assert!(m.active);

    let bad = PostgresqlScaler::new(&with_password("not-the-password")).expect("valid");
    let err = bad
        .metrics_and_activity("s1-postgresql")
        .await
        .expect_err("wrong password");
    assert_eq!(
        err.to_string(),
        format!(
            "triggers[1] (postgresql): error inspecting postgreSQL: could not connect to \
             postgreSQL at {host}:{port}: error returned from database: password authentication \
             failed for user \"{user}\""
        )
    );
    assert!(!err.to_string().contains("not-the-password"));

    // Nothing listens on port 1.
    let down = scaler_for(
        "host=127.0.0.1 port=1 user=postgres dbname=postgres",
        "SELECT 1",
    );
    let err = poll(&down).await.expect_err("refused").to_string();
    assert!(
        err.starts_with(
            "triggers[0] (postgresql): error inspecting postgreSQL: could not connect to \
             postgreSQL at 127.0.0.1:1: "
        ) && err.contains("refused"),
        "{err}"
    );
}

/// Counts the sessions a pool holds open, by the application name it connects with.
async fn sessions(conn: &mut PgConnection, app: &str) -> i64 {
    conn.fetch_one(
        format!("SELECT count(*) FROM pg_stat_activity WHERE application_name = '{app}'").as_str(),
    )
    .await
    .expect("pg_stat_activity")
    .get(0)
}

#[tokio::test]
async fn two_hundred_scaled_objects_share_one_small_pool() {
    let Some(url) = service_env("KEDGE_POSTGRESQL_URL") else {
        return;
    };
    let db = TestDb::create(&url).await;
    let mut conn = db.connect().await;
    conn.execute("CREATE TABLE queue (id int); INSERT INTO queue SELECT generate_series(1, 42)")
        .await
        .expect("fixture");
    let app = unique_ident("kedge_pool");
    let connection = db.url(&format!("application_name={app}"));

    // 200 ScaledObjects, each with its own scaler, all polling at once.
    let scalers: Vec<Arc<Box<dyn Scaler>>> = (0..200)
        .map(|i| {
            let mut cfg = ScalerConfig::new("postgresql", 0)
                .with_metadata("query", "SELECT count(*) FROM queue")
                .with_metadata("targetQueryValue", "10")
                .with_auth_param("connection", connection.as_str());
            cfg.scaled_object = format!("worker-{i}");
            Arc::new(scalers::registry().build(&cfg).expect("valid"))
        })
        .collect();
    for _round in 0..3 {
        let mut polls = tokio::task::JoinSet::new();
        for scaler in &scalers {
            let scaler = Arc::clone(scaler);
            polls.spawn(async move { scaler.metrics_and_activity("s0-postgresql").await });
        }
        while let Some(result) = polls.join_next().await {
            let m = result.expect("task").expect("poll");
            assert_eq!(m.metrics[0].value.to_string(), "42");
        }
    }
    let open = sessions(&mut conn, &app).await;
    println!("200 ScaledObjects x 3 polls: {open} connection(s) open (pool size {POOL_SIZE})");
    assert!((1..=POOL_SIZE as i64).contains(&open), "{open} connections");

    // Closing every scaler closes the pool's connections.
    for scaler in &scalers {
        scaler.close().await;
    }
    drop(scalers);
    let mut left = open;
    for _ in 0..50 {
        left = sessions(&mut conn, &app).await;
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(left, 0, "connections left open after close");
    drop(conn);
    db.drop_db().await;
}

/// One poll's cost next to the bare sqlx query it wraps (run in release, see docs/benchmarks.md):
/// `cargo test --release -p kedge-scalers --features postgresql --test postgresql -- --ignored --nocapture`
#[tokio::test]
#[ignore = "benchmark: prints numbers"]
async fn poll_cost() {
    let Some(url) = service_env("KEDGE_POSTGRESQL_URL") else {
        return;
    };
    let db = TestDb::create(&url).await;
    let mut conn = db.connect().await;
    conn.execute("CREATE TABLE queue (id int); INSERT INTO queue SELECT generate_series(1, 42)")
        .await
        .expect("fixture");
    let query = "SELECT count(*) FROM queue";
    let scaler = scaler_for(&db.url(""), query);
    poll(&scaler).await.expect("warm up");
    let mut bare = PgConnection::connect(&db.url("")).await.expect("bare");
    bare.fetch_one(sqlx::raw_sql(query)).await.expect("warm up");

    const N: usize = 200;
    let mut scaler_times = Vec::with_capacity(N);
    let mut bare_times = Vec::with_capacity(N);
    for _ in 0..N {
        let t = Instant::now();
        poll(&scaler).await.expect("poll");
        scaler_times.push(t.elapsed());
        let t = Instant::now();
        bare.fetch_one(sqlx::raw_sql(query)).await.expect("bare");
        bare_times.push(t.elapsed());
    }
    let pct = |v: &mut Vec<Duration>, p: f64| {
        v.sort();
        v[((v.len() as f64 - 1.0) * p).round() as usize]
    };
    println!(
        "postgresql poll ({N} polls, 1 round trip each, transaction and clean-up included): p50 {:?} p99 {:?}; bare sqlx raw_sql \
         query on one connection: p50 {:?} p99 {:?}",
        pct(&mut scaler_times, 0.5),
        pct(&mut scaler_times, 0.99),
        pct(&mut bare_times, 0.5),
        pct(&mut bare_times, 0.99),
    );
    drop((conn, bare));
    scaler.close().await;
    db.drop_db().await;
}

#[tokio::test]
async fn queries_cannot_write_or_leave_state_for_the_next_one() {
    let Some(url) = service_env("KEDGE_POSTGRESQL_URL") else {
        return;
    };
    let db = TestDb::create(&url).await;
    let mut conn = db.connect().await;
    conn.execute("CREATE TABLE jobs (id int)").await.unwrap();
    let connection = db.url("");

    // A write hidden in a query fails: it runs in a read-only transaction.
    let writer = scaler_for(
        &connection,
        "WITH w AS (INSERT INTO jobs VALUES (1) RETURNING 1) SELECT count(*) FROM w",
    );
    let e = poll(&writer).await.expect_err("a write must fail");
    assert!(e.to_string().contains("read-only"), "{e}");
    // A second statement that would commit its way out is refused when the trigger is built.
    let cfg = ScalerConfig::new("postgresql", 0)
        .with_metadata("query", "SELECT 1; COMMIT; INSERT INTO jobs VALUES (2)")
        .with_metadata("targetQueryValue", "10")
        .with_auth_param("connection", connection.as_str());
    let e = PostgresqlScaler::new(&cfg).err().map(|e| e.to_string());
    assert!(
        e.as_deref().is_some_and(|e| e.contains("single statement")),
        "{e:?}"
    );

    // Session state set by one object's query is gone before another's runs on the same
    // pooled connection: settings, and session-level advisory locks.
    let setter = scaler_for(
        &connection,
        "SELECT length(set_config('application_name', 'leaked', false)) \
         + CASE WHEN pg_try_advisory_lock(42) THEN 0 ELSE 100 END -- a trailing comment",
    );
    let reader = scaler_for(
        &connection,
        "SELECT CASE WHEN current_setting('application_name') = 'leaked' THEN 1 ELSE 0 END \
         + CASE WHEN pg_try_advisory_lock(42) THEN 0 ELSE 10 END",
    );
    for _ in 0..3 {
        assert_eq!(poll(&setter).await.unwrap().0, "6");
        assert_eq!(poll(&reader).await.unwrap().0, "0");
    }
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(rows, 0);
    drop(conn);
    writer.close().await;
    setter.close().await;
    reader.close().await;
    db.drop_db().await;
}
