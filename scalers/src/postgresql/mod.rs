//! `type: postgresql` — scale on the number a SQL query returns.
//!
//! Compatible with KEDA's postgresql scaler: the same parameters and lookup order, the same
//! metric name (`s<i>-postgresql`), value (the first column of the first row) and activation
//! (`value > activationTargetQueryValue`).
//!
//! Every trigger that connects the same way (same connection string, or same host, port, user,
//! database, sslmode and password) shares one small pool of at most [`POOL_SIZE`] connections.
//! Each session gets `statement_timeout` set to kedge's timeout and
//! `default_transaction_read_only = on`, so a scaler's query cannot change data (where the
//! server accepts these settings).

pub mod connection;
mod pool;
pub mod value;

use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use scaler_core::{
    AddressGuard, MetricSpec, MetricTarget, MetricTargetType, MetricValue, MetricsAndActivity,
    ParamSpec, Scaler, ScalerConfig, ScalerError, ScalerFactory, ScalerParams, Secret,
    SharedClients, TriggerId,
};

pub use connection::DEFAULT_APPLICATION_NAME;
pub use pool::POOL_SIZE;

use connection::{ConnectionSpec, Fields};
use pool::{Pool, QueryError};

/// Parameters of a postgresql trigger.
#[derive(ScalerParams, Debug, Clone)]
#[params(validate = "Self::validate")]
pub struct PostgresqlParams {
    /// Target value of the query result per replica (required unless the trigger only feeds a
    /// `scalingModifiers` formula).
    #[param(optional)]
    pub target_query_value: f64,
    /// The trigger is active while the query result is above this value.
    #[param(optional)]
    pub activation_target_query_value: f64,
    /// A full connection string: a `postgresql://` URL or libpq `key=value` pairs. When set,
    /// the separate connection parameters are not used.
    #[param(from(auth, env))]
    pub connection: Option<Secret>,
    /// The SQL query; the first column of the first row is the metric.
    pub query: String,
    /// Host name or address, or several separated by commas (tried in order).
    #[param(from(auth, metadata))]
    pub host: Option<String>,
    /// Port, one for all hosts or one per host.
    #[param(from(auth, metadata))]
    pub port: Option<String>,
    /// User name.
    #[param(from(auth, metadata))]
    pub user_name: Option<String>,
    /// Database name.
    #[param(from(auth, metadata))]
    pub db_name: Option<String>,
    /// `disable`, `allow`, `prefer`, `require`, `verify-ca` or `verify-full`.
    #[param(name = "sslmode", from(auth, metadata))]
    pub ssl_mode: Option<String>,
    /// Password of `userName`.
    #[param(from(auth, env))]
    pub password: Option<Secret>,
}

/// Refuses a query of more than one statement. The query runs in a read-only transaction
/// that kedge ends itself; a second statement could `COMMIT` out of it and write. (KEDA runs
/// the query as a prepared statement, which admits one statement too.)
fn single_statement(query: &str) -> Result<(), String> {
    let refuse =
        || Err("query must be a single statement: `;` is only allowed at its end".to_owned());
    let bytes = query.as_bytes();
    let mut i = 0;
    let mut ended = false;
    while i < bytes.len() {
        let rest = &query[i..];
        let c = bytes[i];
        if ended
            && !c.is_ascii_whitespace()
            && c != b';'
            && !rest.starts_with("--")
            && !rest.starts_with("/*")
        {
            return refuse();
        }
        if rest.starts_with("--") {
            i += rest.find('\n').unwrap_or(rest.len());
        } else if let Some(body) = rest.strip_prefix("/*") {
            i += body.find("*/").map_or(rest.len(), |e| e + 4);
        } else if c == b'\'' || c == b'"' {
            // A string or quoted identifier; a doubled quote is an escaped one.
            let mut j = i + 1;
            while j < bytes.len() {
                if bytes[j] == c {
                    if bytes.get(j + 1) == Some(&c) {
                        j += 1;
                    } else {
                        break;
                    }
                }
                j += 1;
            }
            i = j + 1;
        } else if c == b'$' {
            // A dollar-quoted string, `$tag$ ... $tag$` (or `$1`, a parameter: no closing tag).
            let tag_end = rest[1..]
                .find(|ch: char| !(ch.is_alphanumeric() || ch == '_'))
                .map(|e| e + 1);
            match tag_end.filter(|e| rest.as_bytes().get(*e) == Some(&b'$')) {
                Some(e) => {
                    let tag = &rest[..=e];
                    i += e
                        + 1
                        + rest[e + 1..]
                            .find(tag)
                            .map_or(rest.len() - e - 1, |end| end + tag.len());
                }
                None => i += 1,
            }
        } else {
            if c == b';' {
                ended = true;
            }
            // One character, not one byte: `rest` must start on a character boundary.
            i += rest.chars().next().map_or(1, char::len_utf8);
        }
    }
    Ok(())
}

impl PostgresqlParams {
    /// KEDA's `Validate`: without a connection string, each separate parameter is required
    /// (the first missing one is reported, with KEDA's words).
    fn validate(&self) -> Result<(), String> {
        single_statement(&self.query)?;
        if self.connection.is_some() {
            return Ok(());
        }
        let required = [
            (&self.host, "no host given"),
            (&self.port, "no port given"),
            (&self.user_name, "no userName given"),
            (&self.db_name, "no dbName given"),
            (&self.ssl_mode, "no sslmode given"),
        ];
        match required.iter().find(|(value, _)| value.is_none()) {
            Some((_, message)) => Err((*message).to_owned()),
            None => Ok(()),
        }
    }

    /// Where to connect.
    pub fn connection_spec(&self) -> Result<ConnectionSpec, String> {
        if let Some(conn) = &self.connection {
            return connection::from_connection_string(conn.expose());
        }
        connection::from_fields(&Fields {
            host: self.host.as_deref().unwrap_or_default(),
            port: self.port.as_deref().unwrap_or_default(),
            user: self.user_name.as_deref().unwrap_or_default(),
            database: self.db_name.as_deref().unwrap_or_default(),
            ssl_mode: self.ssl_mode.as_deref().unwrap_or_default(),
            password: self.password.as_ref(),
        })
    }
}

/// Pools by connection identity, statement timeout and address guard, shared by every postgresql trigger in
/// the process.
static POOLS: LazyLock<SharedClients<(Secret, Duration, AddressGuard), Pool>> =
    LazyLock::new(SharedClients::new);

/// Builds postgresql scalers.
#[derive(Clone, Copy, Debug, Default)]
pub struct PostgresqlFactory;

impl ScalerFactory for PostgresqlFactory {
    fn trigger_types(&self) -> &'static [&'static str] {
        &["postgresql"]
    }

    fn build(&self, cfg: &ScalerConfig) -> Result<Box<dyn Scaler>, ScalerError> {
        Ok(Box::new(PostgresqlScaler::new(cfg)?))
    }

    fn params(&self) -> &'static [ParamSpec] {
        PostgresqlParams::PARAMS
    }
}

/// A postgresql trigger.
pub struct PostgresqlScaler {
    params: PostgresqlParams,
    spec: ConnectionSpec,
    metric_name: String,
    target_type: MetricTargetType,
    trigger: TriggerId,
    timeout: Duration,
    guard: AddressGuard,
    /// Taken from [`POOLS`] at the first poll (building must not connect).
    pool: Mutex<Option<Arc<Pool>>>,
}

/// The parameter the hosts come from: the connection string when there is one.
fn address_param(params: &PostgresqlParams) -> &'static str {
    if params.connection.is_some() {
        "connection"
    } else {
        "host"
    }
}

impl std::fmt::Debug for PostgresqlScaler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresqlScaler")
            .field("trigger", &self.trigger)
            .field("connection", &self.spec)
            .field("query", &self.params.query)
            .finish_non_exhaustive()
    }
}

impl PostgresqlScaler {
    /// Validates the trigger and builds the scaler. Contacts nothing.
    pub fn new(cfg: &ScalerConfig) -> Result<Self, ScalerError> {
        let target_type = cfg.metric_target_type()?;
        let params = PostgresqlParams::from_config(cfg)?;
        if !cfg.as_metric_source && params.target_query_value == 0.0 {
            return Err(ScalerError::invalid(
                &cfg.trigger,
                "no targetQueryValue given",
            ));
        }
        let spec = params
            .connection_spec()
            .map_err(|e| ScalerError::invalid(&cfg.trigger, e))?;
        for target in &spec.targets {
            cfg.check_address(address_param(&params), target.options.get_host())?;
        }
        Ok(Self {
            metric_name: cfg.metric_name("postgresql"),
            params,
            spec,
            target_type,
            trigger: cfg.trigger.clone(),
            timeout: cfg.timeout,
            guard: cfg.address_guard.clone(),
            pool: Mutex::new(None),
        })
    }

    fn address_param(&self) -> &'static str {
        address_param(&self.params)
    }

    fn pool(&self) -> Arc<Pool> {
        let mut slot = self.pool.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(pool) = &*slot {
            return Arc::clone(pool);
        }
        let key = (self.spec.identity.clone(), self.timeout, self.guard.clone());
        let pool = match POOLS.get_or_try_init(key, |(_, _, guard)| {
            Ok::<_, std::convert::Infallible>(Pool::new(
                &self.spec,
                self.timeout,
                guard.clone(),
                self.address_param(),
            ))
        }) {
            Ok(pool) => pool,
            Err(never) => match never {},
        };
        *slot = Some(Arc::clone(&pool));
        pool
    }

    /// Runs the query once and returns its value.
    pub async fn query_value(&self) -> Result<f64, ScalerError> {
        let pool = self.pool();
        let result = tokio::time::timeout(self.timeout, pool.query_value(&self.params.query))
            .await
            .map_err(|_| ScalerError::Timeout {
                trigger: self.trigger.clone(),
                timeout: self.timeout,
            })?;
        result.map_err(|e| match e {
            QueryError::Connect(why) => ScalerError::source(
                &self.trigger,
                format!("error inspecting postgreSQL: could not connect to postgreSQL at {why}"),
            ),
            QueryError::Query(e) => ScalerError::source_with(
                &self.trigger,
                "error inspecting postgreSQL: could not query postgreSQL",
                e,
            ),
            QueryError::Value(v) => ScalerError::source(
                &self.trigger,
                format!("error inspecting postgreSQL: could not query postgreSQL: {v}"),
            ),
        })
    }
}

#[async_trait]
impl Scaler for PostgresqlScaler {
    async fn metric_specs(&self) -> Result<Vec<MetricSpec>, ScalerError> {
        Ok(vec![MetricSpec {
            name: self.metric_name.clone(),
            target: MetricTarget::new(self.target_type, self.params.target_query_value),
        }])
    }

    async fn metrics_and_activity(
        &self,
        metric_name: &str,
    ) -> Result<MetricsAndActivity, ScalerError> {
        let value = self.query_value().await?;
        Ok(MetricsAndActivity {
            metrics: vec![MetricValue::new(metric_name, value)],
            active: value > self.params.activation_target_query_value,
        })
    }

    async fn close(&self) {
        let pool = self
            .pool
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        // The last scaler using a pool closes its connections politely; otherwise they stay
        // for the others.
        if let Some(pool) = pool.and_then(Arc::into_inner) {
            pool.close().await;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn a_query_is_one_statement() {
        for ok in [
            "SELECT count(*) FROM jobs",
            "SELECT count(*) FROM jobs;",
            "SELECT count(*) FROM jobs; -- done",
            "SELECT ';' || 'x'';y' FROM \"a;b\" /* ; */ WHERE x = $$;$$ AND y = $t$;$t$;",
            "SELECT $1",
            // Non-ASCII outside quotes (found by fuzz/'s scaler_postgresql: it panicked).
            "SELECT count(*) FROM tâches WHERE état = 'prêt' AND $é",
        ] {
            assert_eq!(single_statement(ok), Ok(()), "{ok}");
        }
        for bad in [
            "SELECT 1; COMMIT; DELETE FROM jobs",
            "SELECT 1;; SET default_transaction_read_only = off",
            "SELECT ';'; DROP TABLE jobs",
            "SELECT 1 /* x */; /* y */ SELECT 2",
            "SELECT 1; SELECT 'é' FROM ß",
        ] {
            assert!(single_statement(bad).is_err(), "{bad}");
        }
    }

    fn cfg(index: usize, pairs: &[(&str, &str)]) -> ScalerConfig {
        pairs
            .iter()
            .fold(ScalerConfig::new("postgresql", index), |c, (k, v)| {
                c.with_metadata(*k, *v)
            })
    }

    fn build(cfg: &ScalerConfig) -> Result<PostgresqlScaler, String> {
        PostgresqlScaler::new(cfg).map_err(|e| e.to_string())
    }

    // KEDA's testPostgresMetadata: no metadata, connection from env, separate parameters with
    // the password from env, everything from the TriggerAuthentication.
    #[test]
    fn keda_metadata_cases() {
        let err = build(&ScalerConfig::new("postgresql", 0)).unwrap_err();
        assert_eq!(
            err,
            "triggers[0] (postgresql): missing required parameter \"query\" in [triggerMetadata]"
        );

        let from_env = cfg(
            0,
            &[
                ("query", "query"),
                ("targetQueryValue", "12"),
                ("connectionFromEnv", "POSTGRE_CONN_STR"),
            ],
        )
        .with_resolved_env("POSTGRE_CONN_STR", "postgresql://localhost:5432/test");
        assert!(build(&from_env).is_ok());

        let params = cfg(
            0,
            &[
                ("query", "query"),
                ("targetQueryValue", "12"),
                ("host", "test_host"),
                ("port", "5432"),
                ("userName", "test_username"),
                ("passwordFromEnv", "POSTGRE_PASSWORD"),
                ("dbName", "test_dbname"),
                ("sslmode", "require"),
            ],
        )
        .with_resolved_env("POSTGRE_PASSWORD", "pass");
        assert!(build(&params).is_ok());

        let auth = [
            ("host", "test_host"),
            ("port", "5432"),
            ("userName", "test_username"),
            ("password", "POSTGRE_PASSWORD"),
            ("dbName", "test_dbname"),
            ("sslmode", "disable"),
        ]
        .iter()
        .fold(
            cfg(0, &[("query", "query"), ("targetQueryValue", "12")]),
            |c, (k, v)| c.with_auth_param(*k, *v),
        );
        assert!(build(&auth).is_ok());
    }

    #[test]
    fn connection_sources_follow_keda_order() {
        // connection: authParams before resolvedEnv; never trigger metadata.
        let both = cfg(
            0,
            &[
                ("query", "q"),
                ("targetQueryValue", "5"),
                ("connectionFromEnv", "CONN"),
            ],
        )
        .with_resolved_env("CONN", "host=from-env user=u dbname=d")
        .with_auth_param("connection", "host=from-auth user=u dbname=d");
        let scaler = build(&both).expect("valid");
        assert_eq!(scaler.spec.targets[0].label, "from-auth:5432");

        let metadata_only = cfg(
            0,
            &[
                ("query", "q"),
                ("targetQueryValue", "5"),
                ("connection", "postgresql://localhost:5432"),
            ],
        );
        assert_eq!(
            build(&metadata_only).unwrap_err(),
            "triggers[0] (postgresql): no host given"
        );

        // Separate parameters: authParams win over metadata.
        let host = cfg(
            0,
            &[
                ("query", "q"),
                ("targetQueryValue", "5"),
                ("host", "from-metadata"),
                ("port", "1234"),
                ("userName", "user"),
                ("dbName", "testDb"),
                ("sslmode", "require"),
            ],
        )
        .with_auth_param("host", "from-auth");
        let scaler = build(&host).expect("valid");
        assert_eq!(scaler.spec.targets[0].label, "from-auth:1234");
    }

    #[test]
    fn missing_connection_parameters_are_reported_in_keda_order() {
        let base = [("query", "q"), ("targetQueryValue", "5")];
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[], "no host given"),
            (&[("host", "h")], "no port given"),
            (&[("host", "h"), ("port", "1")], "no userName given"),
            (
                &[("host", "h"), ("port", "1"), ("userName", "u")],
                "no dbName given",
            ),
            (
                &[
                    ("host", "h"),
                    ("port", "1"),
                    ("userName", "u"),
                    ("dbName", "d"),
                ],
                "no sslmode given",
            ),
        ];
        for (extra, message) in cases {
            let pairs: Vec<(&str, &str)> = base.iter().chain(extra.iter()).copied().collect();
            assert_eq!(
                build(&cfg(0, &pairs)).unwrap_err(),
                format!("triggers[0] (postgresql): {message}")
            );
        }
    }

    #[test]
    fn target_query_value_is_required_unless_a_metric_source() {
        let pairs = [("query", "q"), ("connectionFromEnv", "C")];
        let c = cfg(2, &pairs).with_resolved_env("C", "host=h user=u dbname=d");
        assert_eq!(
            build(&c).unwrap_err(),
            "triggers[2] (postgresql): no targetQueryValue given"
        );
        let mut source = c.clone();
        source.as_metric_source = true;
        assert!(build(&source).is_ok());
        let bad = cfg(0, &[("query", "q"), ("targetQueryValue", "lots")])
            .with_auth_param("connection", "host=h");
        assert_eq!(
            build(&bad).unwrap_err(),
            "triggers[0] (postgresql): unable to set param \"targetQueryValue\" value \"lots\": \
             expected a number"
        );
    }

    #[test]
    fn unusable_connection_values_are_rejected_before_connecting() {
        let c = cfg(
            0,
            &[
                ("query", "q"),
                ("targetQueryValue", "5"),
                ("host", "h"),
                ("port", "test_port"),
                ("userName", "u"),
                ("dbName", "d"),
                ("sslmode", "disable"),
            ],
        );
        assert_eq!(
            build(&c).unwrap_err(),
            "triggers[0] (postgresql): port is not a port number (1 to 65535)"
        );
    }

    // KEDA's postgreSQLMetricIdentifiers.
    #[tokio::test]
    async fn metric_names() {
        for (index, name) in [(0, "s0-postgresql"), (1, "s1-postgresql")] {
            let c = cfg(
                index,
                &[
                    ("query", "test_query"),
                    ("targetQueryValue", "5"),
                    ("connectionFromEnv", "test_connection_string"),
                ],
            )
            .with_resolved_env("test_connection_string", "postgresql://localhost:5432")
            .with_metric_type("Value");
            let specs = build(&c)
                .expect("valid")
                .metric_specs()
                .await
                .expect("specs");
            assert_eq!(specs[0].name, name);
            assert_eq!(specs[0].target.value.to_string(), "5");
            assert_eq!(specs[0].target.target_type, MetricTargetType::Value);
        }
    }

    #[test]
    fn password_never_printed() {
        let c = cfg(0, &[("query", "q"), ("targetQueryValue", "5")])
            .with_auth_param("connection", "postgresql://u:hunter2@h/d");
        let scaler = build(&c).expect("valid");
        assert!(!format!("{scaler:?}").contains("hunter2"));
    }

    #[test]
    fn registered() {
        assert!(crate::registry().factory("postgresql").is_some());
    }

    fn deny_loopback() -> AddressGuard {
        AddressGuard::parse("127.0.0.0/8,::1/128").unwrap()
    }

    #[test]
    fn a_host_in_a_denied_range_fails_the_build_naming_the_parameter_not_the_value() {
        let query = [("query", "SELECT 1"), ("targetQueryValue", "5")];
        let from_secret = cfg(0, &query)
            .with_auth_param(
                "connection",
                "postgresql://u:hunter2@db.invalid:5432,127.0.0.1:5433/d",
            )
            .with_address_guard(deny_loopback());
        let err = build(&from_secret).expect_err("denied");
        assert_eq!(
            err,
            "triggers[0] (postgresql): parameter \"connection\": its host resolves into \
             127.0.0.0/8, a range scalers may not connect to (--scaler-address-deny-cidrs)"
        );
        let fields = cfg(
            1,
            &[
                ("query", "SELECT 1"),
                ("targetQueryValue", "5"),
                ("host", "localhost"),
                ("port", "5432"),
                ("userName", "u"),
                ("dbName", "d"),
                ("sslmode", "disable"),
            ],
        )
        .with_address_guard(deny_loopback());
        let err = build(&fields).expect_err("denied");
        assert!(
            err.starts_with(
                "triggers[1] (postgresql): parameter \"host\": its host resolves into "
            ),
            "{err}"
        );
        assert!(
            build(&cfg(0, &query).with_auth_param("connection", "postgresql://u@127.0.0.1/d"))
                .is_ok()
        );
    }

    #[tokio::test]
    async fn hosts_are_checked_again_before_connecting() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let conn = format!("postgresql://u:hunter2@localhost:{port}/d?sslmode=disable");
        let c = cfg(0, &[("query", "SELECT 1"), ("targetQueryValue", "5")])
            .with_auth_param("connection", conn.as_str());
        let mut scaler = build(&c).expect("no guard yet");
        // The name resolved elsewhere when the trigger was built and into the range now.
        scaler.guard = deny_loopback();
        let err = scaler.query_value().await.expect_err("denied").to_string();
        assert!(
            err.contains("parameter \"connection\": its host resolves into"),
            "{err}"
        );
        assert!(!err.contains("hunter2"), "{err}");
        let accepted =
            tokio::time::timeout(std::time::Duration::from_millis(300), listener.accept()).await;
        assert!(accepted.is_err(), "the server was connected to");
    }
}
