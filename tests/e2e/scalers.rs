//! Each event source end to end: messages arrive in a real service, kedge wakes the Deployment
//! from zero, the (simulated) HPA scales it out through kedge's external metrics API, and once the
//! work is drained kedge takes it back to zero after the cooldown.
//!
//! The services are the ones `scripts/services.sh start` runs (addresses in
//! `.kedge/services.env`): RabbitMQ, moto's SQS, tansu (Kafka) and PostgreSQL. Without them a
//! test says so and passes, unless `KEDGE_REQUIRE_SERVICES=1`. Every test uses its own cluster,
//! and fresh queue, topic, group and table names.
//!
//! Credentials reach the scalers as KEDA users give them: a Secret, read through a
//! TriggerAuthentication's `secretTargetRef`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use futures::FutureExt as _;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Secret;
use kedge::crd::{ScaledObject, TriggerAuthentication};
use kedge_e2e::{Cluster, Process, Recorder, create_deployment, eventually, replicas};
use kedge_test_support::{kafka, service_envs, unique, unique_ident};
use kube::Client;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

const NS: &str = "default";
/// The Deployment and ScaledObject of every test (each test has its own cluster).
const NAME: &str = "worker";
/// How long any one step may take: generous, the machine is shared.
const PATIENCE: Duration = Duration::from_secs(120);

// ---------------------------------------------------------------------------------------------
// The cluster side, the same for every scaler

/// kedge on its own cluster, with the HPA simulator reading kedge's external metrics API, and a
/// record of every replica count the Deployment goes through.
struct Harness {
    cluster: Cluster,
    kedge: Process,
    replicas: Recorder,
}

impl Harness {
    async fn start(name: &str) -> Harness {
        let cluster = Cluster::start(name).await;
        let kedge = cluster.run_kedge_serving_metrics("kedge", &[]).await;
        create_deployment(&cluster.client, NS, NAME, 0).await;
        let h = Harness {
            replicas: Recorder::start(cluster.client.clone(), NS, NAME),
            cluster,
            kedge,
        };
        h.wait_for_replicas(0).await;
        h
    }

    fn client(&self) -> Client {
        self.cluster.client.clone()
    }

    /// A Secret and a TriggerAuthentication, both called `name`: for each `(parameter, key,
    /// value)`, the Secret holds `value` under `key` and the TriggerAuthentication gives it to
    /// the trigger as `parameter` (`secretTargetRef`).
    async fn secret_auth(&self, name: &str, params: &[(&str, &str, &str)]) {
        let data: serde_json::Map<String, Value> = params
            .iter()
            .map(|(_, key, value)| ((*key).to_owned(), json!(value)))
            .collect();
        let secret: Secret = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": NS},
            "type": "Opaque",
            "stringData": data,
        }))
        .unwrap();
        Api::<Secret>::namespaced(self.client(), NS)
            .create(&PostParams::default(), &secret)
            .await
            .unwrap();
        let refs: Vec<Value> = params
            .iter()
            .map(|(parameter, key, _)| json!({"parameter": parameter, "name": name, "key": key}))
            .collect();
        let ta: TriggerAuthentication = serde_json::from_value(json!({
            "apiVersion": "keda.sh/v1alpha1", "kind": "TriggerAuthentication",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"secretTargetRef": refs},
        }))
        .unwrap();
        Api::<TriggerAuthentication>::namespaced(self.client(), NS)
            .create(&PostParams::default(), &ta)
            .await
            .unwrap();
    }

    /// The ScaledObject: 0..5 replicas, polled every second, back to zero 2 s after the last
    /// activity, and an HPA that scales down without a stabilization window.
    async fn scaled_object(&self, trigger: Value) {
        let so: ScaledObject = serde_json::from_value(json!({
            "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
            "metadata": {"name": NAME, "namespace": NS},
            "spec": {
                "scaleTargetRef": {"name": NAME},
                "pollingInterval": 1,
                "cooldownPeriod": 2,
                "minReplicaCount": 0,
                "maxReplicaCount": 5,
                "advanced": {"horizontalPodAutoscalerConfig": {"behavior": {
                    "scaleDown": {"stabilizationWindowSeconds": 0}}}},
                "triggers": [trigger],
            }
        }))
        .unwrap();
        Api::<ScaledObject>::namespaced(self.client(), NS)
            .create(&PostParams::default(), &so)
            .await
            .unwrap();
        // kedge measured the (empty) source: Ready, not active, still at zero...
        let metric = self
            .wait("the ScaledObject to be Ready and inactive", || async {
                let so = Api::<ScaledObject>::namespaced(self.client(), NS)
                    .get_opt(NAME)
                    .await
                    .ok()
                    .flatten()?;
                let status = so.status?;
                let conditions = status.conditions?;
                let is =
                    |t: &str, s: &str| conditions.iter().any(|c| c.type_ == t && c.status == s);
                (is("Ready", "True") && is("Active", "False"))
                    .then_some(status.external_metric_names?.into_iter().next()?)
            })
            .await;
        // ...and serves 0 for it to the HPA, through the cluster's aggregation layer (a trigger
        // that fails to read its source has no value to serve).
        self.wait("kedge to serve the metric's value 0", || async {
            (self.served_value(&metric).as_deref() == Some("0")).then_some(())
        })
        .await;
        assert_eq!(
            self.replicas.seen(),
            [0],
            "nothing to do yet, so still at zero\n{}",
            self.diagnostics().await
        );
    }

    /// The value of `metric` as the HPA controller reads it: through the cluster's aggregation
    /// layer, which proxies it to kedge.
    fn served_value(&self, metric: &str) -> Option<String> {
        self.cluster.external_metric_value(NS, metric, NAME).ok()
    }

    /// Until the Deployment has `want` replicas, and the recorder has seen it too (its watch
    /// may be a moment behind a read).
    async fn wait_for_replicas(&self, want: i32) {
        self.wait(&format!("{NAME} to have {want} replicas"), || async {
            (self.replicas.seen().last() == Some(&want)
                && replicas(&self.client(), NS, NAME).await == Some(want))
            .then_some(())
        })
        .await;
    }

    /// [`eventually`], with what kedge and the cluster say added when it times out.
    async fn wait<T, F, Fut>(&self, what: &str, check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        match AssertUnwindSafe(eventually(PATIENCE, what, check))
            .catch_unwind()
            .await
        {
            Ok(v) => v,
            Err(_) => panic!(
                "timed out after {PATIENCE:?} waiting for {what}\n{}",
                self.diagnostics().await
            ),
        }
    }

    /// The replica counts seen, the ScaledObject's and the HPA's status, and kedge's log.
    async fn diagnostics(&self) -> String {
        let so = Api::<ScaledObject>::namespaced(self.client(), NS)
            .get_opt(NAME)
            .await
            .ok()
            .flatten()
            .map(|so| serde_json::to_string_pretty(&so.status).unwrap_or_default());
        let hpa = Api::<HorizontalPodAutoscaler>::namespaced(self.client(), NS)
            .get_opt(&format!("keda-hpa-{NAME}"))
            .await
            .ok()
            .flatten()
            .map(|h| serde_json::to_string_pretty(&h.status).unwrap_or_default());
        format!(
            "replica counts seen: {:?}\nScaledObject status: {}\nHPA status: {}\nkedge log ({}):\n{}",
            self.replicas.seen(),
            so.unwrap_or_else(|| "(none)".into()),
            hpa.unwrap_or_else(|| "(none)".into()),
            self.kedge.log.display(),
            self.kedge.output()
        )
    }

    /// Checks the whole journey: 0, woken to 1 by kedge, scaled out by the HPA up to `peak`
    /// (never beyond, never down on the way), then back below it and finally to 0.
    async fn assert_journey(&self, peak: i32) {
        let seen = self.replicas.seen();
        let top = seen.iter().position(|&r| r == peak);
        let ok = seen.len() >= 3
            && seen[0] == 0
            && seen[1] == 1
            && top.is_some_and(|top| {
                seen[..=top].windows(2).all(|w| w[0] < w[1])
                    && seen[top + 1..].iter().all(|&r| r < peak)
            })
            && seen.iter().all(|&r| r <= peak)
            && seen.last() == Some(&0);
        assert!(
            ok,
            "expected 0 → 1 → … → {peak} → … → 0, saw {seen:?}\n{}",
            self.diagnostics().await
        );
    }

    /// The common part of every test: after `fill` put work in the source, the Deployment goes
    /// 0 → 1 → `peak`; after `drain` took it out, back to 0.
    async fn scale_out_and_back(
        &self,
        peak: i32,
        fill: impl std::future::Future<Output = ()>,
        drain: impl std::future::Future<Output = ()>,
    ) {
        let started = Instant::now();
        fill.await;
        self.wait_for_replicas(peak).await;
        eprintln!(
            "scaled 0 → {peak} in {:?}: {:?}",
            started.elapsed(),
            self.replicas.seen()
        );
        let started = Instant::now();
        drain.await;
        self.wait_for_replicas(0).await;
        eprintln!(
            "back to 0 in {:?}: {:?}",
            started.elapsed(),
            self.replicas.seen()
        );
        self.assert_journey(peak).await;
    }
}

// ---------------------------------------------------------------------------------------------
// RabbitMQ

mod rabbitmq {
    use kedge_test_support::rabbitmq::declare_queue;
    pub use kedge_test_support::rabbitmq::publish;
    use lapin::options::{QueueDeleteOptions, QueuePurgeOptions};
    use lapin::{Channel, Connection, ConnectionProperties};

    /// A vhost as one URL path segment (`/` → `%2F`).
    pub fn escape(vhost: &str) -> String {
        vhost
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    char::from(b).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    }

    /// A connection to `vhost` and a channel with publisher confirms and the declared queue,
    /// which expires 10 minutes after its last use, so a failed run leaves nothing behind.
    pub async fn queue(amqp: &str, vhost: &str, name: &str) -> (Connection, Channel) {
        let conn = Connection::connect(
            &format!("{amqp}/{}", escape(vhost)),
            ConnectionProperties::default().with_connection_name("kedge-e2e".into()),
        )
        .await
        .unwrap();
        let ch = declare_queue(&conn, name).await;
        (conn, ch)
    }

    pub async fn purge(ch: &Channel, queue: &str) {
        ch.queue_purge(queue.into(), QueuePurgeOptions::default())
            .await
            .unwrap();
    }

    pub async fn delete(conn: Connection, ch: &Channel, queue: &str) {
        let _ = ch
            .queue_delete(queue.into(), QueueDeleteOptions::default())
            .await;
        let _ = conn.close(200, "bye".into()).await;
    }
}

/// RabbitMQ over `protocol` (`amqp`: the queue's ready messages from a passive declare; `http`:
/// the management API's ready + unacknowledged), the broker URL from a Secret as `host`.
async fn rabbitmq_scales_out_and_back(protocol: &str) {
    let Some([amqp, http, vhost]) = service_envs([
        "KEDGE_RABBITMQ_AMQP_URL",
        "KEDGE_RABBITMQ_HTTP_URL",
        "KEDGE_RABBITMQ_VHOST",
    ]) else {
        return;
    };
    let host = match protocol {
        "amqp" => format!("{amqp}/{}", rabbitmq::escape(&vhost)),
        _ => format!("{http}/{}", rabbitmq::escape(&vhost)),
    };
    let q = unique(&format!("e2e-{protocol}"));
    let (conn, ch) = rabbitmq::queue(&amqp, &vhost, &q).await;

    let h = Harness::start(&format!("e2e-rabbitmq-{protocol}")).await;
    h.secret_auth("rabbitmq", &[("host", "url", &host)]).await;
    h.scaled_object(json!({
        "type": "rabbitmq",
        "metadata": {"protocol": protocol, "queueName": q, "mode": "QueueLength", "value": "10"},
        "authenticationRef": {"name": "rabbitmq"},
    }))
    .await;
    // 30 messages at 10 per replica: 3 replicas.
    h.scale_out_and_back(3, rabbitmq::publish(&ch, &q, 30), rabbitmq::purge(&ch, &q))
        .await;
    rabbitmq::delete(conn, &ch, &q).await;
}

#[tokio::test]
async fn rabbitmq_amqp_queue_length_scales_from_zero_to_three_and_back() {
    rabbitmq_scales_out_and_back("amqp").await;
}

#[tokio::test]
async fn rabbitmq_http_queue_length_scales_from_zero_to_three_and_back() {
    rabbitmq_scales_out_and_back("http").await;
}

// ---------------------------------------------------------------------------------------------
// AWS SQS (moto)

mod sqs {
    use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};

    /// Queue and scaler must sign for the same region: moto keeps one backend per region.
    pub const REGION: &str = "us-east-1";

    pub fn client(endpoint: &str) -> aws_sdk_sqs::Client {
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(Provider::Rustls(CryptoMode::Ring))
            .build_https();
        let config = aws_sdk_sqs::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .credentials_provider(Credentials::new("test", "test", None, None, "test"))
            .endpoint_url(endpoint)
            .http_client(http)
            .build();
        aws_sdk_sqs::Client::from_conf(config)
    }

    pub async fn send(sqs: &aws_sdk_sqs::Client, url: &str, n: usize) {
        for i in 0..n {
            sqs.send_message()
                .queue_url(url)
                .message_body(format!("job {i}"))
                .send()
                .await
                .unwrap();
        }
    }

    /// Receives and deletes messages until `n` are gone, as workers do (a received message not
    /// yet deleted is in flight, and counts by default).
    pub async fn consume(sqs: &aws_sdk_sqs::Client, url: &str, n: usize) {
        let mut deleted = 0;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while deleted < n {
            assert!(
                std::time::Instant::now() < deadline,
                "consumed only {deleted} of {n}"
            );
            let got = sqs
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .send()
                .await
                .unwrap();
            for m in got.messages() {
                sqs.delete_message()
                    .queue_url(url)
                    .receipt_handle(m.receipt_handle().unwrap())
                    .send()
                    .await
                    .unwrap();
                deleted += 1;
            }
        }
    }
}

#[tokio::test]
async fn aws_sqs_queue_scales_from_zero_to_three_and_back() {
    let Some([endpoint]) = service_envs(["KEDGE_SQS_ENDPOINT"]) else {
        return;
    };
    let client = sqs::client(&endpoint);
    let url = client
        .create_queue()
        .queue_name(unique("e2e-jobs"))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();

    let h = Harness::start("e2e-sqs").await;
    h.secret_auth(
        "aws",
        &[
            ("awsAccessKeyID", "AWS_ACCESS_KEY_ID", "test"),
            ("awsSecretAccessKey", "AWS_SECRET_ACCESS_KEY", "test"),
        ],
    )
    .await;
    h.scaled_object(json!({
        "type": "aws-sqs-queue",
        "metadata": {"queueURL": url, "awsRegion": sqs::REGION, "awsEndpoint": endpoint,
                     "queueLength": "5"},
        "authenticationRef": {"name": "aws"},
    }))
    .await;
    // 15 messages at 5 per replica: 3 replicas.
    h.scale_out_and_back(
        3,
        sqs::send(&client, &url, 15),
        sqs::consume(&client, &url, 15),
    )
    .await;
    let _ = client.delete_queue().queue_url(&url).send().await;
}

// ---------------------------------------------------------------------------------------------
// Kafka (tansu)

#[tokio::test]
async fn kafka_lag_scales_from_zero_to_three_and_back() {
    let Some([bs]) = service_envs(["KEDGE_KAFKA_BOOTSTRAP"]) else {
        return;
    };
    let (topic, group) = (unique("e2e-orders"), unique("e2e-workers"));
    kafka::create_topic(&bs, &topic, 3).await;
    // A group that has consumed everything so far: one record per partition, committed.
    kafka::produce(&bs, &topic, &[1, 1, 1]).await;
    kafka::commit(&bs, &group, &topic, &[(0, 1), (1, 1), (2, 1)]).await;

    let h = Harness::start("e2e-kafka").await;
    h.scaled_object(json!({
        "type": "kafka",
        "metadata": {"bootstrapServers": bs, "consumerGroup": group, "topic": topic,
                     "lagThreshold": "5"},
    }))
    .await;
    // 15 records of lag at 5 per replica: 3 replicas (also the partition count, kedge's cap).
    h.scale_out_and_back(
        3,
        kafka::produce(&bs, &topic, &[5, 5, 5]),
        // The workers caught up: offsets committed at the high watermarks.
        kafka::commit(&bs, &group, &topic, &[(0, 6), (1, 6), (2, 6)]),
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL

#[tokio::test]
async fn postgresql_row_count_scales_from_zero_to_three_and_back() {
    use sqlx::{Connection as _, Executor as _, PgConnection};

    let Some([url]) = service_envs(["KEDGE_POSTGRESQL_URL"]) else {
        return;
    };
    // postgres://user[:password]@host:port/db
    let rest = url
        .split_once("://")
        .map_or(url.as_str(), |(_, r)| r)
        .split('?')
        .next()
        .unwrap();
    let (creds, hostpart) = rest.split_once('@').unwrap();
    let (user, password) = creds.split_once(':').unwrap_or((creds, ""));
    let (hostport, db) = hostpart.split_once('/').unwrap();
    let (host, port) = hostport.split_once(':').unwrap_or((hostport, "5432"));
    // The machine's server trusts loopback: any password does, but the trigger gets one the
    // way it would in production.
    let password = if password.is_empty() {
        "trusted-anyway"
    } else {
        password
    };

    let table = unique_ident("kedge_e2e_jobs");
    let sep = if url.contains('?') { '&' } else { '?' };
    let mut pg = PgConnection::connect(&format!("{url}{sep}sslmode=disable"))
        .await
        .unwrap();
    pg.execute(format!("CREATE TABLE {table} (id serial PRIMARY KEY, body text)").as_str())
        .await
        .unwrap();

    let h = Harness::start("e2e-postgresql").await;
    h.secret_auth("db", &[("password", "password", password)])
        .await;
    h.scaled_object(json!({
        "type": "postgresql",
        "metadata": {"host": host, "port": port, "userName": user, "dbName": db,
                     "sslmode": "disable", "query": format!("SELECT count(*) FROM {table}"),
                     "targetQueryValue": "5"},
        "authenticationRef": {"name": "db"},
    }))
    .await;
    let insert =
        format!("INSERT INTO {table} (body) SELECT 'job ' || g FROM generate_series(1, 15) g");
    let delete = format!("DELETE FROM {table}");
    // 15 rows at 5 per replica: 3 replicas.
    let mut pg2 = PgConnection::connect(&format!("{url}{sep}sslmode=disable"))
        .await
        .unwrap();
    h.scale_out_and_back(
        3,
        async {
            pg.execute(insert.as_str()).await.unwrap();
        },
        async {
            pg2.execute(delete.as_str()).await.unwrap();
        },
    )
    .await;
    pg2.execute(format!("DROP TABLE IF EXISTS {table}").as_str())
        .await
        .unwrap();
}
