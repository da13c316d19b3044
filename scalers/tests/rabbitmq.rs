//! The rabbitmq scaler against the real RabbitMQ that `scripts/services.sh` prepares (the
//! machine's broker with the management plugin enabled).
//!
//! Every test uses fresh queue names (and the restart test a fresh vhost). The broker-restart
//! test takes the broker away, so it holds [`BROKER`] exclusively while the others share it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use kedge_test_support::rabbitmq::{declare_queue, publish};
use kedge_test_support::{eventually, service_env, service_envs, unique};
use lapin::options::{
    BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use scaler_core::{MetricsAndActivity, Scaler, ScalerConfig, ScalerError, ScalerFactory};
use scalers::rabbitmq::RabbitMqFactory;
use tokio::sync::RwLock;

/// Readers: ordinary tests. Writer: the test that restarts the broker.
static BROKER: RwLock<()> = RwLock::const_new(());

struct Env {
    amqp: String,
    http: String,
    vhost: String,
}

/// The service addresses, or `None` (after saying why) when they are not configured and
/// `KEDGE_REQUIRE_SERVICES` is not set.
fn env() -> Option<Env> {
    let [amqp, http, vhost] = service_envs([
        "KEDGE_RABBITMQ_AMQP_URL",
        "KEDGE_RABBITMQ_HTTP_URL",
        "KEDGE_RABBITMQ_VHOST",
    ])?;
    Some(Env { amqp, http, vhost })
}

fn escape(vhost: &str) -> String {
    scalers::rabbitmq::query_escape(vhost)
}

fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// The management API base and credentials from `http://user:pass@host:port`.
fn api(env: &Env) -> (String, String, String) {
    let url = url::Url::parse(&env.http).unwrap();
    let base = format!(
        "http://{}:{}/api",
        url.host_str().unwrap(),
        url.port().unwrap_or(15672)
    );
    (
        base,
        url.username().to_owned(),
        url.password().unwrap_or_default().to_owned(),
    )
}

async fn api_get(env: &Env, path: &str) -> serde_json::Value {
    let (base, user, pass) = api(env);
    let r = http_client()
        .get(format!("{base}{path}"))
        .basic_auth(user, Some(pass))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "GET {path}: {}", r.status());
    serde_json::from_slice(&r.bytes().await.unwrap()).unwrap()
}

async fn api_send(env: &Env, method: reqwest::Method, path: &str, body: Option<serde_json::Value>) {
    let (base, user, pass) = api(env);
    let mut req = http_client()
        .request(method.clone(), format!("{base}{path}"))
        .basic_auth(user, Some(pass));
    if let Some(body) = body {
        req = req
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let r = req.send().await.unwrap();
    assert!(r.status().is_success(), "{method} {path}: {}", r.status());
}

async fn connect(env: &Env, vhost: &str) -> Connection {
    let uri = format!("{}/{}", env.amqp, escape(vhost));
    Connection::connect(
        &uri,
        ConnectionProperties::default().with_connection_name("kedge-test-client".into()),
    )
    .await
    .unwrap()
}

/// Takes `n` messages without acknowledging them: they stay unacknowledged while `ch` is open.
async fn hold_unacked(ch: &Channel, queue: &str, n: usize) {
    for _ in 0..n {
        let got = ch
            .basic_get(queue.into(), BasicGetOptions { no_ack: false })
            .await
            .unwrap();
        assert!(got.is_some());
    }
}

fn config(vhost_host: &str, metadata: &[(&str, &str)]) -> ScalerConfig {
    let mut cfg = ScalerConfig::new("rabbitmq", 0).with_metadata("host", vhost_host);
    for (k, v) in metadata {
        cfg = cfg.with_metadata(*k, *v);
    }
    cfg.timeout = Duration::from_secs(5);
    cfg
}

fn build(factory: &RabbitMqFactory, cfg: &ScalerConfig) -> Box<dyn Scaler> {
    factory.build(cfg).unwrap()
}

async fn poll(scaler: &dyn Scaler) -> Result<MetricsAndActivity, ScalerError> {
    let specs = scaler.metric_specs().await.unwrap();
    scaler.metrics_and_activity(&specs[0].name).await
}

fn value(m: &MetricsAndActivity) -> f64 {
    m.metrics[0].value.as_f64()
}

async fn value_becomes(scaler: &dyn Scaler, want: f64, what: &str) -> MetricsAndActivity {
    eventually(Duration::from_secs(30), what, || async {
        let m = poll(scaler).await.ok()?;
        (value(&m) == want).then_some(m)
    })
    .await
}

#[tokio::test]
async fn amqp_queue_length_counts_ready_messages() {
    let Some(env) = env() else { return };
    let _shared = BROKER.read().await;
    let q = unique("amqp-len");
    let conn = connect(&env, &env.vhost).await;
    let ch = declare_queue(&conn, &q).await;
    publish(&ch, &q, 10).await;
    hold_unacked(&ch, &q, 3).await;

    let factory = RabbitMqFactory::new();
    let host = format!("{}/{}", env.amqp, escape(&env.vhost));
    let scaler = build(
        &factory,
        &config(
            &host,
            &[
                ("queueName", &q),
                ("mode", "QueueLength"),
                ("value", "5"),
                ("activationValue", "6"),
            ],
        ),
    );
    let m = poll(&*scaler).await.unwrap();
    // Over AMQP the broker reports ready messages only: the 3 held unacked are not counted.
    assert_eq!(value(&m), 7.0);
    assert!(m.active, "7 ready > activationValue 6");

    let at_seven = build(
        &factory,
        &config(
            &host,
            &[
                ("queueName", &q),
                ("mode", "QueueLength"),
                ("value", "5"),
                ("activationValue", "7"),
            ],
        ),
    );
    let m = poll(&*at_seven).await.unwrap();
    assert_eq!(value(&m), 7.0);
    assert!(!m.active, "7 ready is not above activationValue 7");

    // The vhost can also come from vhostName, and credentials from the auth params.
    let cfg = config(
        &env.amqp.replace("guest:guest@", "nobody:wrong@"),
        &[("queueName", &q), ("vhostName", &env.vhost)],
    )
    .with_auth_param("username", "guest")
    .with_auth_param("password", "guest");
    let m = poll(&*build(&factory, &cfg)).await.unwrap();
    assert_eq!(value(&m), 7.0);
    conn.close(200, "bye".into()).await.unwrap();
}

#[tokio::test]
async fn http_queue_length_counts_unacked_unless_excluded() {
    let Some(env) = env() else { return };
    let _shared = BROKER.read().await;
    let q = unique("http-len");
    let conn = connect(&env, &env.vhost).await;
    let ch = declare_queue(&conn, &q).await;
    publish(&ch, &q, 10).await;
    hold_unacked(&ch, &q, 3).await;

    let factory = RabbitMqFactory::new();
    let host = format!("{}/{}", env.http, escape(&env.vhost));
    let all = build(&factory, &config(&host, &[("queueName", &q)]));
    // messages = ready + unacknowledged.
    let m = value_becomes(&*all, 10.0, "messages").await;
    assert!(m.active);
    let ready = build(
        &factory,
        &config(
            &host,
            &[("queueName", &q), ("excludeUnacknowledged", "true")],
        ),
    );
    value_becomes(&*ready, 7.0, "messages_ready").await;
    // One HTTP client serves both triggers.
    assert_eq!(factory.live_http_clients(), 1);

    // Once the consumer goes away its messages are ready again; draining empties the queue.
    ch.close(200, "bye".into()).await.unwrap();
    value_becomes(&*ready, 10.0, "messages_ready after requeue").await;
    let ch = conn.create_channel().await.unwrap();
    ch.queue_purge(q.as_str().into(), Default::default())
        .await
        .unwrap();
    let m = value_becomes(&*all, 0.0, "messages after purge").await;
    assert!(!m.active);
    conn.close(200, "bye".into()).await.unwrap();
}

#[tokio::test]
async fn http_message_rate_follows_sustained_publishing() {
    let Some(env) = env() else { return };
    let _shared = BROKER.read().await;
    let q = unique("rate");
    let conn = connect(&env, &env.vhost).await;
    let ch = declare_queue(&conn, &q).await;
    // The rate needs sustained publishing: ~20 msg/s until told to stop.
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let publisher = {
        let (ch, q) = (ch.clone(), q.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(50));
            loop {
                tokio::select! {
                    _ = &mut stop_rx => break,
                    _ = tick.tick() => publish(&ch, &q, 1).await,
                }
            }
        })
    };

    let factory = RabbitMqFactory::new();
    let host = format!("{}/{}", env.http, escape(&env.vhost));
    let rate = build(
        &factory,
        &config(
            &host,
            &[
                ("queueName", &q),
                ("mode", "MessageRate"),
                ("value", "10"),
                ("activationValue", "2"),
            ],
        ),
    );
    let m = eventually(Duration::from_secs(30), "publish rate", || async {
        let m = poll(&*rate).await.ok()?;
        (value(&m) >= 10.0).then_some(m)
    })
    .await;
    assert!(m.active);
    let _ = stop_tx.send(());
    publisher.await.unwrap();

    // Publishing stopped: the rate falls to 0, but the backlog keeps the trigger active (KEDA).
    let m = value_becomes(&*rate, 0.0, "rate after publishing stopped").await;
    assert!(
        m.active,
        "a backlog above activationValue keeps MessageRate active"
    );
    conn.close(200, "bye".into()).await.unwrap();
}

#[tokio::test]
async fn regex_combines_queues_with_each_operation() {
    let Some(env) = env() else { return };
    let _shared = BROKER.read().await;
    let prefix = unique("rx");
    let conn = connect(&env, &env.vhost).await;
    for (suffix, n) in [("a", 2), ("b", 5), ("c", 8)] {
        let q = format!("{prefix}-{suffix}");
        publish(&declare_queue(&conn, &q).await, &q, n).await;
    }
    // Same prefix but not matched by the pattern.
    let other = format!("{prefix}x");
    publish(&declare_queue(&conn, &other).await, &other, 100).await;

    let factory = RabbitMqFactory::new();
    let host = format!("{}/{}", env.http, escape(&env.vhost));
    let pattern = format!("^{prefix}-.$");
    let by = |op: &str| {
        build(
            &factory,
            &config(
                &host,
                &[
                    ("queueName", &pattern),
                    ("useRegex", "true"),
                    ("operation", op),
                ],
            ),
        )
    };
    value_becomes(&*by("sum"), 15.0, "sum").await;
    value_becomes(&*by("avg"), 5.0, "avg").await;
    value_becomes(&*by("max"), 8.0, "max").await;
    // A pattern matching nothing reads 0, inactive.
    let none = build(
        &factory,
        &config(
            &host,
            &[("queueName", "^no-such-queue-.*$"), ("useRegex", "true")],
        ),
    );
    let m = poll(&*none).await.unwrap();
    assert_eq!((value(&m), m.active), (0.0, false));
    // More matches than pageSize is an error, as in KEDA.
    let small = build(
        &factory,
        &config(
            &host,
            &[
                ("queueName", &pattern),
                ("useRegex", "true"),
                ("pageSize", "2"),
            ],
        ),
    );
    let err = poll(&*small).await.unwrap_err().to_string();
    assert!(
        err.contains("regex matches more queues than can be recovered at once"),
        "{err}"
    );
    conn.close(200, "bye".into()).await.unwrap();
}

#[tokio::test]
async fn wrong_credentials_give_a_clear_error() {
    let Some(env) = env() else { return };
    let _shared = BROKER.read().await;
    let factory = RabbitMqFactory::new();
    let q = unique("creds");
    let amqp = format!(
        "{}/{}",
        env.amqp.replace("guest:guest@", "guest:not-the-password@"),
        escape(&env.vhost)
    );
    let err = poll(&*build(&factory, &config(&amqp, &[("queueName", &q)])))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("triggers[0] (rabbitmq): error inspecting RabbitMQ: error establishing connection to RabbitMQ: "), "{err}");
    assert!(err.contains("ACCESS_REFUSED"), "{err}");
    assert!(!err.contains("not-the-password"), "{err}");

    let http = format!("{}/{}", env.http, escape(&env.vhost));
    let cfg = config(&http, &[("queueName", &q)])
        .with_auth_param("username", "guest")
        .with_auth_param("password", "not-the-password");
    let err = poll(&*build(&factory, &cfg)).await.unwrap_err().to_string();
    assert!(
        err.contains("error requesting RabbitMQ API status: 401 Unauthorized"),
        "{err}"
    );
    assert!(!err.contains("not-the-password"), "{err}");
}

#[tokio::test]
async fn missing_queue_is_a_clear_error_and_the_connection_survives_it() {
    let Some(env) = env() else { return };
    let _shared = BROKER.read().await;
    let factory = RabbitMqFactory::new();
    let missing = unique("missing");
    let amqp = format!("{}/{}", env.amqp, escape(&env.vhost));
    let on_missing = build(&factory, &config(&amqp, &[("queueName", &missing)]));
    let err = poll(&*on_missing).await.unwrap_err().to_string();
    assert!(
        err.starts_with("triggers[0] (rabbitmq): error inspecting RabbitMQ: ")
            && err.contains("NOT_FOUND")
            && err.contains(&missing),
        "{err}"
    );

    let http = format!("{}/{}", env.http, escape(&env.vhost));
    let err = poll(&*build(
        &factory,
        &config(&http, &[("queueName", &missing)]),
    ))
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("404 Not Found"), "{err}");

    // The 404 closed one channel, not the shared connection.
    let q = unique("present");
    let conn = connect(&env, &env.vhost).await;
    publish(&declare_queue(&conn, &q).await, &q, 4).await;
    let on_present = build(&factory, &config(&amqp, &[("queueName", &q)]));
    assert_eq!(value(&poll(&*on_present).await.unwrap()), 4.0);
    assert_eq!(factory.live_amqp_clients(), 1);
    // And the failing trigger keeps failing the same way without disturbing the other.
    assert!(
        poll(&*on_missing)
            .await
            .unwrap_err()
            .to_string()
            .contains("NOT_FOUND")
    );
    assert_eq!(value(&poll(&*on_present).await.unwrap()), 4.0);
    conn.close(200, "bye".into()).await.unwrap();
}

/// Connections the broker sees in `vhost`, named `kedge` (ours, not the test's own client).
async fn kedge_connections(env: &Env, vhost: &str) -> usize {
    let list = api_get(
        env,
        &format!(
            "/vhosts/{}/connections?columns=name,client_properties",
            escape(vhost)
        ),
    )
    .await;
    list.as_array()
        .map(|a| {
            a.iter()
                .filter(|c| c["client_properties"]["connection_name"] == "kedge")
                .count()
        })
        .unwrap_or(0)
}

async fn connections_become(env: &Env, vhost: &str, want: usize, what: &str) {
    eventually(Duration::from_secs(30), what, || async {
        (kedge_connections(env, vhost).await == want).then_some(())
    })
    .await
}

/// A vhost of its own, deleted again on drop.
struct TempVhost<'a> {
    env: &'a Env,
    name: String,
    deleted: bool,
}

impl<'a> TempVhost<'a> {
    async fn new(env: &'a Env) -> Self {
        let name = unique("kedge-vh");
        api_send(
            env,
            reqwest::Method::PUT,
            &format!("/vhosts/{}", escape(&name)),
            None,
        )
        .await;
        api_send(
            env,
            reqwest::Method::PUT,
            &format!("/permissions/{}/guest", escape(&name)),
            Some(serde_json::json!({"configure": ".*", "write": ".*", "read": ".*"})),
        )
        .await;
        Self {
            env,
            name,
            deleted: false,
        }
    }

    async fn delete(mut self) {
        api_send(
            self.env,
            reqwest::Method::DELETE,
            &format!("/vhosts/{}", escape(&self.name)),
            None,
        )
        .await;
        self.deleted = true;
    }
}

impl Drop for TempVhost<'_> {
    /// A failed test still removes its vhost (on a thread of its own: we may be unwinding
    /// inside the test's runtime).
    fn drop(&mut self) {
        if self.deleted {
            return;
        }
        let (base, user, pass) = api(self.env);
        let url = format!("{base}/vhosts/{}", escape(&self.name));
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                http_client()
                    .delete(url)
                    .basic_auth(user, Some(pass))
                    .send()
                    .await
                    .ok()
            })
        })
        .join();
    }
}

#[tokio::test]
async fn triggers_share_one_connection_per_broker_identity() {
    let Some(env) = env() else { return };
    let _shared = BROKER.read().await;
    let vhost = TempVhost::new(&env).await;
    let conn = connect(&env, &vhost.name).await;
    let factory = RabbitMqFactory::new();
    let host = format!("{}/{}", env.amqp, escape(&vhost.name));
    let mut scalers = Vec::new();
    for n in 1..=5 {
        let q = unique("shared");
        publish(&declare_queue(&conn, &q).await, &q, n).await;
        scalers.push((n, build(&factory, &config(&host, &[("queueName", &q)]))));
    }
    for (n, s) in &scalers {
        assert_eq!(value(&poll(&**s).await.unwrap()), *n as f64);
    }
    assert_eq!(factory.live_amqp_clients(), 1);
    connections_become(&env, &vhost.name, 1, "one shared connection").await;

    // The identity is the effective one: the same credentials given as auth params share it.
    let same = config(&host, &[("queueName", "x")])
        .with_auth_param("username", "guest")
        .with_auth_param("password", "guest");
    let same = build(&factory, &same);
    let _ = poll(&*same).await;
    assert_eq!(factory.live_amqp_clients(), 1);
    // Another address of the same broker is another identity, hence another connection.
    let other = build(
        &factory,
        &config(
            &host.replace("127.0.0.1", "localhost"),
            &[("queueName", "x")],
        ),
    );
    let _ = poll(&*other).await;
    assert_eq!(factory.live_amqp_clients(), 2);
    connections_become(&env, &vhost.name, 2, "a second identity").await;
    for s in [same, other] {
        s.close().await;
    }
    connections_become(&env, &vhost.name, 1, "back to the shared connection").await;

    // Closing every trigger closes the connection.
    for (_, s) in &scalers {
        s.close().await;
    }
    drop(scalers);
    assert_eq!(factory.live_amqp_clients(), 0);
    connections_become(&env, &vhost.name, 0, "no connection after close").await;
    conn.close(200, "bye".into()).await.unwrap();
    vhost.delete().await;
}

/// Threads running lapin's I/O loop in this process (one per open AMQP connection).
fn lapin_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|tasks| {
            tasks
                .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
                .filter(|name| name.trim() == "lapin-io-loop")
                .count()
        })
        .unwrap_or(0)
}

/// Restarts the broker's application on drop if a test stopped it, even when the test fails.
struct BrokerStopped {
    ctl: String,
    stopped: bool,
}

impl BrokerStopped {
    fn stop(ctl: &str) -> Self {
        let status = std::process::Command::new(ctl)
            .args(["-q", "stop_app"])
            .status()
            .unwrap();
        assert!(status.success(), "{ctl} stop_app failed");
        Self {
            ctl: ctl.to_owned(),
            stopped: true,
        }
    }

    fn start(&mut self) {
        let status = std::process::Command::new(&self.ctl)
            .args(["-q", "start_app"])
            .status()
            .unwrap();
        assert!(status.success(), "{} start_app failed", self.ctl);
        self.stopped = false;
    }
}

impl Drop for BrokerStopped {
    fn drop(&mut self) {
        if self.stopped {
            let _ = std::process::Command::new(&self.ctl)
                .args(["-q", "start_app"])
                .status();
        }
    }
}

#[tokio::test]
async fn broker_restart_recovers_without_leaking_connections() {
    let Some(env) = env() else { return };
    let Some(ctl) = service_env("KEDGE_RABBITMQ_CTL") else {
        return;
    };
    let _exclusive = BROKER.write().await;
    let vhost = TempVhost::new(&env).await;
    let host = format!("{}/{}", env.amqp, escape(&vhost.name));
    let q = unique("restart");
    // A durable queue with persistent messages survives the restart.
    let declare = |conn: Connection| {
        let q = q.clone();
        async move {
            let ch = conn.create_channel().await.unwrap();
            ch.confirm_select(ConfirmSelectOptions::default())
                .await
                .unwrap();
            ch.queue_declare(
                q.as_str().into(),
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
            for _ in 0..6 {
                ch.basic_publish(
                    "".into(),
                    q.as_str().into(),
                    BasicPublishOptions::default(),
                    b"m",
                    BasicProperties::default().with_delivery_mode(2),
                )
                .await
                .unwrap()
                .await
                .unwrap();
            }
            conn.close(200, "bye".into()).await.unwrap();
        }
    };
    declare(connect(&env, &vhost.name).await).await;

    let factory = RabbitMqFactory::new();
    let scalers: Vec<_> = (0..3)
        .map(|_| build(&factory, &config(&host, &[("queueName", &q)])))
        .collect();
    for s in &scalers {
        assert_eq!(value(&poll(&**s).await.unwrap()), 6.0);
    }
    connections_become(&env, &vhost.name, 1, "one connection before the restart").await;
    let threads_before = lapin_threads();

    let mut broker = BrokerStopped::stop(&ctl);
    // While the broker is down every poll fails fast with a connection error; these failed
    // attempts must not leave anything behind.
    for _ in 0..4 {
        for s in &scalers {
            let err = poll(&**s).await.unwrap_err().to_string();
            assert!(
                err.contains("error establishing connection to RabbitMQ"),
                "{err}"
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    broker.start();

    // Recovery: each trigger reads the queue again (after the backoff of the failed attempts).
    for s in &scalers {
        let m = eventually(Duration::from_secs(60), "poll after restart", || async {
            poll(&**s).await.ok()
        })
        .await;
        assert_eq!(value(&m), 6.0);
    }
    assert_eq!(factory.live_amqp_clients(), 1);
    connections_become(&env, &vhost.name, 1, "one connection after the restart").await;
    // Still one after some more polls, and no extra I/O threads.
    for s in &scalers {
        poll(&**s).await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(kedge_connections(&env, &vhost.name).await, 1);
    assert!(
        lapin_threads() <= threads_before,
        "lapin threads {} > {threads_before}",
        lapin_threads()
    );

    for s in &scalers {
        s.close().await;
    }
    drop(scalers);
    connections_become(&env, &vhost.name, 0, "no connection after close").await;
    vhost.delete().await;
}
