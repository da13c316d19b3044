//! Where and how to connect: the trigger's connection string (URL or libpq `key=value` form) or
//! its `host`/`port`/`userName`/`dbName`/`sslmode`/`password` parameters, turned into sqlx
//! connect options for each host to try.
//!
//! KEDA joins the parameters into a libpq `key=value` string (escaping values, since an
//! unescaped tab or newline in a value injected other keys, GHSA-6w3m-4hhp-775q). kedge sets
//! each option directly instead, so no value can ever be read as another key.

use std::str::FromStr;

use scaler_core::Secret;
use sqlx::postgres::{PgConnectOptions, PgSslMode};

/// One host to try, in order, as libpq does with `host=a,b`.
#[derive(Clone)]
pub struct Target {
    /// `host:port`, for messages.
    pub label: String,
    /// Everything needed to connect to this host.
    pub options: PgConnectOptions,
}

/// The parsed connection: hosts to try in order, and an identity for sharing one pool between
/// every trigger that connects the same way.
#[derive(Clone)]
pub struct ConnectionSpec {
    /// Hosts to try, in order.
    pub targets: Vec<Target>,
    /// The connection's identity (it contains the password, hence a [`Secret`]).
    pub identity: Secret,
}

impl std::fmt::Debug for ConnectionSpec {
    // PgConnectOptions' Debug prints the password; print only the hosts.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hosts: Vec<&str> = self.targets.iter().map(|t| t.label.as_str()).collect();
        f.debug_struct("ConnectionSpec")
            .field("hosts", &hosts)
            .finish_non_exhaustive()
    }
}

/// The separate connection parameters (used when no connection string is given).
pub struct Fields<'a> {
    /// `host`, possibly a comma-separated list.
    pub host: &'a str,
    /// `port`, one for all hosts or one per host.
    pub port: &'a str,
    /// `userName`.
    pub user: &'a str,
    /// `dbName`.
    pub database: &'a str,
    /// `sslmode`.
    pub ssl_mode: &'a str,
    /// `password`.
    pub password: Option<&'a Secret>,
}

/// The application name kedge's sessions show in `pg_stat_activity`, unless the connection
/// string sets one.
pub const DEFAULT_APPLICATION_NAME: &str = "kedge";

/// Builds the connection from the separate parameters.
pub fn from_fields(fields: &Fields<'_>) -> Result<ConnectionSpec, String> {
    let ssl_mode = parse_ssl_mode(fields.ssl_mode)?;
    let mut base = base_options()
        .username(fields.user)
        .database(fields.database)
        .ssl_mode(ssl_mode)
        .application_name(DEFAULT_APPLICATION_NAME);
    if let Some(password) = fields.password {
        base = base.password(password.expose());
    }
    let targets = hosts_and_ports(fields.host, fields.port, &base)?;
    // Every input that changes the connection, in an unambiguous encoding.
    let identity = format!(
        "fields\0{}\0{}\0{}\0{}\0{}\0{}",
        fields.host,
        fields.port,
        fields.user,
        fields.database,
        fields.ssl_mode,
        fields.password.map(Secret::expose).unwrap_or_default()
    );
    Ok(ConnectionSpec {
        targets,
        identity: Secret::new(identity),
    })
}

/// Parses a connection string: a `postgres://` / `postgresql://` URL or a libpq `key=value`
/// string, as pgx (KEDA's driver) accepts both.
pub fn from_connection_string(conn: &str) -> Result<ConnectionSpec, String> {
    let conn = conn.trim();
    let targets = if conn.starts_with("postgres://") || conn.starts_with("postgresql://") {
        from_url(conn)?
    } else {
        from_key_values(conn)?
    };
    Ok(ConnectionSpec {
        targets,
        identity: Secret::new(format!("string\0{conn}")),
    })
}

/// Options that do not depend on the environment of the kedge process, except what libpq
/// itself would read (PG* variables), as pgx does.
fn base_options() -> PgConnectOptions {
    PgConnectOptions::new_without_pgpass()
}

fn parse_ssl_mode(mode: &str) -> Result<PgSslMode, String> {
    PgSslMode::from_str(mode).map_err(|_| {
        // The value may come from a Secret (auth params, the connection string): not quoted.
        "sslmode is invalid, expected one of disable, allow, prefer, require, verify-ca, \
         verify-full"
            .to_owned()
    })
}

/// Expands `host=a,b port=1,2` (or one port for all hosts) into targets.
fn hosts_and_ports(
    hosts: &str,
    ports: &str,
    base: &PgConnectOptions,
) -> Result<Vec<Target>, String> {
    let hosts: Vec<&str> = hosts.split(',').map(str::trim).collect();
    let ports: Vec<&str> = ports.split(',').map(str::trim).collect();
    if ports.len() != 1 && ports.len() != hosts.len() {
        return Err(format!(
            "{} ports given for {} hosts: give one port for all hosts or one per host",
            ports.len(),
            hosts.len()
        ));
    }
    hosts
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let port = ports.get(i).or(ports.first()).copied().unwrap_or_default();
            let port = parse_port(port)?;
            if host.is_empty() {
                return Err("empty host name".to_owned());
            }
            Ok(Target {
                label: format!("{host}:{port}"),
                options: base.clone().host(host).port(port),
            })
        })
        .collect()
}

fn parse_port(port: &str) -> Result<u16, String> {
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err("port is not a port number (1 to 65535)".to_owned()),
    }
}

/// A URL, possibly with several hosts (`postgres://u@h1:5432,h2:5433/db`), which libpq and pgx
/// accept but a URL parser does not: the first host is parsed with the URL, the others replace
/// it.
fn from_url(url: &str) -> Result<Vec<Target>, String> {
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let (userinfo, hostlist) = match authority.rfind('@') {
        Some(at) => (&authority[..=at], &authority[at + 1..]),
        None => ("", authority),
    };
    let entries = split_host_list(hostlist);
    let first = entries.first().map(String::as_str).unwrap_or_default();
    let single = format!("{scheme}://{userinfo}{first}{tail}");
    let options = PgConnectOptions::from_str(&single)
        .map_err(|e| format!("invalid connection URL: {}", redact(&e.to_string(), url)))?;
    let mut options = with_default_application_name(options);
    if entries.len() <= 1 {
        return Ok(vec![Target {
            label: format!("{}:{}", options.get_host(), options.get_port()),
            options,
        }]);
    }
    let default_port = 5432;
    options = options.port(default_port);
    entries
        .iter()
        .map(|entry| {
            let (host, port) = split_host_port(entry)?;
            let port = port.map_or(Ok(default_port), parse_port)?;
            Ok(Target {
                label: format!("{host}:{port}"),
                options: options.clone().host(host).port(port),
            })
        })
        .collect()
}

fn with_default_application_name(options: PgConnectOptions) -> PgConnectOptions {
    if options.get_application_name().is_none() {
        options.application_name(DEFAULT_APPLICATION_NAME)
    } else {
        options
    }
}

/// Splits `h1:1,[::1]:2,h3` on the commas outside brackets.
fn split_host_list(list: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut in_brackets = false;
    for c in list.chars() {
        match c {
            '[' => in_brackets = true,
            ']' => in_brackets = false,
            ',' if !in_brackets => {
                out.push(String::new());
                continue;
            }
            _ => {}
        }
        if let Some(last) = out.last_mut() {
            last.push(c);
        }
    }
    out
}

fn split_host_port(entry: &str) -> Result<(&str, Option<&str>), String> {
    if let Some(rest) = entry.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| "invalid host: `[` without `]`".to_owned())?;
        return Ok((host, after.strip_prefix(':')));
    }
    Ok(match entry.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (entry, None),
    })
}

/// Keeps a password that appears in a URL out of an error message.
fn redact(message: &str, url: &str) -> String {
    let password = url
        .split_once("://")
        .and_then(|(_, rest)| rest.split(['/', '?']).next())
        .and_then(|authority| authority.rsplit_once('@'))
        .and_then(|(userinfo, _)| userinfo.split_once(':'))
        .map(|(_, password)| password)
        .filter(|p| !p.is_empty());
    match password {
        Some(p) => message.replace(p, "<redacted>"),
        None => message.to_owned(),
    }
}

/// Parses libpq's `key=value` form: pairs separated by whitespace, values optionally in single
/// quotes, `\'` and `\\` escaped.
pub fn parse_key_values(conn: &str) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    let mut chars = conn.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(pairs);
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            // Not quoted: after a stray space, the "key" is the rest of a password.
            return Err(format!(
                "invalid connection string: missing \"=\" after the key of pair {}",
                pairs.len() + 1
            ));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    Some('\\') => match chars.next() {
                        Some(c) => value.push(c),
                        None => return Err("invalid connection string: unterminated quote".into()),
                    },
                    Some('\'') => break,
                    Some(c) => value.push(c),
                    None => return Err("invalid connection string: unterminated quote".into()),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    if let Some(escaped) = chars.next() {
                        value.push(escaped);
                    }
                } else {
                    value.push(c);
                }
            }
        }
        pairs.push((key, value));
    }
}

/// libpq keywords that have no effect here (kedge has its own timeouts and retries).
const IGNORED_KEYS: &[&str] = &[
    "connect_timeout",
    "target_session_attrs",
    "load_balance_hosts",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "tcp_user_timeout",
    "sslsni",
    "sslcompression",
    "gssencmode",
    "channel_binding",
    "krbsrvname",
    "passfile",
    "requiressl",
    "require_auth",
    "client_encoding",
    "replication",
];

fn from_key_values(conn: &str) -> Result<Vec<Target>, String> {
    let mut options = base_options();
    let mut host = String::from("localhost");
    let mut port = String::from("5432");
    let mut application_name = None;
    let mut fallback_application_name = None;
    for (key, value) in parse_key_values(conn)? {
        options = match key.as_str() {
            "host" | "hostaddr" => {
                host = value;
                options
            }
            "port" => {
                port = value;
                options
            }
            "user" => options.username(&value),
            "password" => options.password(&value),
            "dbname" => options.database(&value),
            "sslmode" => options.ssl_mode(parse_ssl_mode(&value)?),
            "sslrootcert" => options.ssl_root_cert(&value),
            "sslcert" => options.ssl_client_cert(&value),
            "sslkey" => options.ssl_client_key(&value),
            "application_name" => {
                application_name = Some(value);
                options
            }
            "fallback_application_name" => {
                fallback_application_name = Some(value);
                options
            }
            "options" => options.options(parse_options(&value)?),
            "service" => {
                return Err(
                    "invalid connection string: \"service\" (pg_service.conf) is not \
                            supported; give the host, port, user and dbname"
                        .to_owned(),
                );
            }
            k if IGNORED_KEYS.contains(&k) => options,
            // Like pgx: any other key is a run-time parameter sent at connection start.
            _ => options.options([(key.as_str(), value.as_str())]),
        };
    }
    let name = application_name
        .or(fallback_application_name)
        .unwrap_or_else(|| DEFAULT_APPLICATION_NAME.to_owned());
    options = options.application_name(&name);
    hosts_and_ports(&host, &port, &options)
}

/// Parses libpq's `options` value (`-c key=value -c other=value`) into pairs.
fn parse_options(value: &str) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    let mut words = value.split_whitespace();
    while let Some(word) = words.next() {
        let setting = match word.strip_prefix("-c") {
            Some("") => words.next().unwrap_or_default(),
            Some(rest) => rest,
            None => word.strip_prefix("--").unwrap_or(word),
        };
        match setting.split_once('=') {
            Some((k, v)) if !k.is_empty() => pairs.push((k.to_owned(), v.to_owned())),
            _ => {
                return Err("invalid connection string: options: expected -c name=value".to_owned());
            }
        }
    }
    Ok(pairs)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn only(spec: &ConnectionSpec) -> &PgConnectOptions {
        assert_eq!(spec.targets.len(), 1, "{spec:?}");
        &spec.targets[0].options
    }

    #[test]
    fn fields_are_set_verbatim_so_nothing_can_be_injected() {
        // KEDA's GHSA-6w3m-4hhp-775q case: a tab in a value must not add `sslmode=disable`.
        let password = Secret::new("secret\nhost=attacker");
        let spec = from_fields(&Fields {
            host: "db.example",
            port: "5432",
            user: "user\tsslmode=disable",
            database: "testdb",
            ssl_mode: "require",
            password: Some(&password),
        })
        .expect("valid");
        let o = only(&spec);
        assert_eq!(o.get_host(), "db.example");
        assert_eq!(o.get_username(), "user\tsslmode=disable");
        assert_eq!(o.get_database(), Some("testdb"));
        assert!(matches!(o.get_ssl_mode(), PgSslMode::Require));
        assert_eq!(o.get_application_name(), Some("kedge"));
        assert!(!format!("{spec:?}").contains("secret"));
    }

    #[test]
    fn several_hosts_are_tried_in_order() {
        let spec = from_fields(&Fields {
            host: "host1,host2",
            port: "1234",
            user: "user",
            database: "testDb",
            ssl_mode: "disable",
            password: None,
        })
        .expect("valid");
        let labels: Vec<&str> = spec.targets.iter().map(|t| t.label.as_str()).collect();
        assert_eq!(labels, ["host1:1234", "host2:1234"]);

        let url =
            from_connection_string("postgresql://u:p@h1:5433,[::1]:5434,h3/db?sslmode=disable")
                .expect("valid");
        let labels: Vec<&str> = url.targets.iter().map(|t| t.label.as_str()).collect();
        assert_eq!(labels, ["h1:5433", "::1:5434", "h3:5432"]);
        assert_eq!(url.targets[1].options.get_database(), Some("db"));
    }

    #[test]
    fn bad_ports_and_ssl_modes_are_rejected() {
        let fields = |port, ssl_mode| Fields {
            host: "h",
            port,
            user: "u",
            database: "d",
            ssl_mode,
            password: None,
        };
        assert_eq!(
            from_fields(&fields("test_port", "disable")).unwrap_err(),
            "port is not a port number (1 to 65535)"
        );
        assert!(
            from_fields(&fields("5432", "required"))
                .unwrap_err()
                .starts_with("sslmode is invalid")
        );
    }

    #[test]
    fn url_form() {
        let spec = from_connection_string(
            "postgresql://reader:p%40ss@db.internal:6543/orders?sslmode=require&application_name=billing",
        )
        .expect("valid");
        let o = only(&spec);
        assert_eq!((o.get_host(), o.get_port()), ("db.internal", 6543));
        assert_eq!(o.get_username(), "reader");
        assert_eq!(o.get_database(), Some("orders"));
        assert_eq!(o.get_application_name(), Some("billing"));
        let err = from_connection_string("postgres://u:hunter2@h:notaport/db").unwrap_err();
        assert!(err.starts_with("invalid connection URL"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn key_value_form() {
        let spec = from_connection_string(
            "host=db port=5433 user=app password='it''s' dbname = 'my db' sslmode=disable \
             options='-c search_path=jobs' statement_timeout=2000 connect_timeout=5",
        );
        // `''` is not an escape in libpq (only `\'` is): the quoted value ends at the second quote.
        assert!(spec.is_err());

        let spec = from_connection_string(
            "host=db port=5433 user=app password='it\\'s' dbname = 'my db' sslmode=disable \
             options='-c search_path=jobs' statement_timeout=2000 connect_timeout=5",
        )
        .expect("valid");
        let o = only(&spec);
        assert_eq!((o.get_host(), o.get_port()), ("db", 5433));
        assert_eq!(o.get_database(), Some("my db"));
        assert_eq!(
            o.get_options(),
            Some("-c search_path=jobs -c statement_timeout=2000")
        );
        assert_eq!(o.get_application_name(), Some("kedge"));

        assert_eq!(
            parse_key_values("a=1 b='x y' c=\\ d").expect("valid"),
            vec![
                ("a".to_owned(), "1".to_owned()),
                ("b".to_owned(), "x y".to_owned()),
                ("c".to_owned(), " d".to_owned()),
            ]
        );
        assert!(
            from_connection_string("host=db nonsense")
                .unwrap_err()
                .contains("missing \"=\" after the key of pair 2")
        );
    }
}
