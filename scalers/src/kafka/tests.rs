//! KEDA's parameter cases (`kafka_scaler_test.go`) and metric names, without a broker.
#![allow(clippy::unwrap_used, clippy::type_complexity)]

use super::*;

fn cfg(meta: &[(&str, &str)], auth: &[(&str, &str)]) -> ScalerConfig {
    let c = meta
        .iter()
        .fold(ScalerConfig::new("kafka", 0), |c, (k, v)| {
            c.with_metadata(*k, *v)
        });
    auth.iter().fold(c, |c, (k, v)| c.with_auth_param(*k, *v))
}

fn build(meta: &[(&str, &str)], auth: &[(&str, &str)]) -> Result<KafkaScaler, String> {
    KafkaScaler::new(&cfg(meta, auth)).map_err(|e| e.to_string())
}

const BASE: &[(&str, &str)] = &[
    ("bootstrapServers", "foobar:9092"),
    ("consumerGroup", "my-group"),
    ("topic", "my-topic"),
];

fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let mut v: Vec<_> = BASE.to_vec();
    v.extend_from_slice(extra);
    v
}

const SASL_PLAIN: &[(&str, &str)] = &[
    ("sasl", "plaintext"),
    ("username", "admin"),
    ("password", "admin"),
];

#[test]
fn keda_metadata_cases() {
    // (metadata, is_error) from KEDA's parseKafkaMetadataTestDataset, checked with and
    // without SASL auth params as KEDA does.
    let cases: &[(&[(&str, &str)], bool)] = &[
        (&[], true),
        (&[("bootstrapServers", "foobar:9092")], true),
        (
            &[
                ("bootstrapServers", "foobar:9092"),
                ("consumerGroup", "my-group"),
            ],
            false,
        ),
        (
            &[
                ("bootstrapServers", "foobar:9092"),
                ("consumerGroup", "my-group"),
                ("partitionLimitation", "1,2,3,4,5,6"),
            ],
            false,
        ),
        (
            &[
                ("bootstrapServers", "foobar:9092"),
                ("consumerGroup", "my-group"),
                ("partitionLimitation", "           "),
            ],
            false,
        ),
        (&with(&[("version", "1.2.3.4")]), true),
        (&with(&[("lagThreshold", "-1")]), true),
        (&with(&[("lagThreshold", "0")]), true),
        (
            &with(&[("lagThreshold", "1000000"), ("activationLagThreshold", "0")]),
            false,
        ),
        (
            &with(&[("lagThreshold", "10"), ("activationLagThreshold", "AA")]),
            true,
        ),
        (&with(&[("activationLagThreshold", "-1")]), true),
        (BASE, false),
        (&with(&[("partitionLimitation", "1,2,3,4")]), false),
        (&with(&[("partitionLimitation", "1-4")]), false),
        (&with(&[("partitionLimitation", "1-4,8,10-12")]), false),
        (&with(&[("partitionLimitation", "a,b,c,d")]), true),
        (&with(&[("offsetResetPolicy", "latest")]), false),
        (&with(&[("offsetResetPolicy", "foo")]), true),
        (&with(&[("offsetResetPolicy", "earliest")]), false),
        (&with(&[("allowIdleConsumers", "notvalid")]), true),
        (&with(&[("allowIdleConsumers", "true")]), false),
        (&with(&[("excludePersistentLag", "notvalid")]), true),
        (&with(&[("excludePersistentLag", "true")]), false),
        (
            &with(&[("allowIdleConsumers", "true"), ("version", "1.0.0")]),
            false,
        ),
        (&with(&[("limitToPartitionsWithLag", "true")]), false),
        (&with(&[("limitToPartitionsWithLag", "notvalid")]), true),
        (
            &with(&[
                ("allowIdleConsumers", "true"),
                ("limitToPartitionsWithLag", "true"),
            ]),
            true,
        ),
        (
            &with(&[
                ("allowIdleConsumers", "true"),
                ("limitToPartitionsWithLag", "false"),
            ]),
            false,
        ),
        (
            &[
                ("bootstrapServers", "foobar:9092"),
                ("consumerGroup", "my-group"),
                ("limitToPartitionsWithLag", "true"),
            ],
            true,
        ),
        (
            &[
                ("bootstrapServers", "foobar:9092"),
                ("consumerGroup", "my-group"),
                ("ensureEvenDistributionOfPartitions", "true"),
            ],
            true,
        ),
        (
            &with(&[("ensureEvenDistributionOfPartitions", "true")]),
            false,
        ),
        (
            &with(&[
                ("ensureEvenDistributionOfPartitions", "true"),
                ("limitToPartitionsWithLag", "true"),
            ]),
            true,
        ),
    ];
    for (meta, is_error) in cases {
        for auth in [SASL_PLAIN, &[]] {
            let got = build(meta, auth);
            assert_eq!(got.is_err(), *is_error, "{meta:?} with {auth:?}: {got:?}");
        }
    }
}

#[test]
fn parsed_values() {
    let s = build(
        &[
            ("bootstrapServers", "foo:9092, bar:9092"),
            ("consumerGroup", "my-group"),
            ("topic", "my-topic"),
            ("partitionLimitation", "1-4,8,10-12"),
            ("offsetResetPolicy", "earliest"),
        ],
        &[],
    )
    .expect("valid");
    assert_eq!(s.params().bootstrap_servers, ["foo:9092", "bar:9092"]);
    assert_eq!(s.limitation, Some(vec![1, 2, 3, 4, 8, 10, 11, 12]));
    assert_eq!(
        s.rules.offset_reset_policy,
        lag::OffsetResetPolicy::Earliest
    );
    assert_eq!(s.rules.lag_threshold, 10);
    assert_eq!(s.params().activation_lag_threshold, 0);
    assert_eq!(
        s.key.0[0],
        ("bootstrap.servers", Secret::new("foo:9092,bar:9092"))
    );

    // partitionLimitation is ignored without a topic, as in KEDA.
    let no_topic = build(
        &[
            ("bootstrapServers", "foobar:9092"),
            ("consumerGroup", "my-group"),
            ("partitionLimitation", "1,2"),
        ],
        &[],
    )
    .expect("valid");
    assert_eq!(no_topic.limitation, None);

    // bootstrapServers, consumerGroup and topic may come from the target's env.
    let env = ScalerConfig::new("kafka", 0)
        .with_metadata("bootstrapServersFromEnv", "BROKERS")
        .with_metadata("consumerGroupFromEnv", "GROUP")
        .with_metadata("topicFromEnv", "TOPIC")
        .with_resolved_env("BROKERS", "k1:9092,k2:9092")
        .with_resolved_env("GROUP", "g")
        .with_resolved_env("TOPIC", "t");
    let s = KafkaScaler::new(&env).expect("valid");
    assert_eq!(s.params().bootstrap_servers.len(), 2);
    assert_eq!(
        (s.params().group.as_str(), s.params().topic.as_deref()),
        ("g", Some("t"))
    );
}

#[test]
fn keda_error_messages() {
    let e = build(&[], &[]).unwrap_err();
    assert_eq!(
        e,
        "triggers[0] (kafka): missing required parameter \"bootstrapServers\" in [triggerMetadata resolvedEnv]; \
         missing required parameter \"consumerGroup\" in [triggerMetadata resolvedEnv]"
    );
    assert!(
        build(&with(&[("lagThreshold", "0")]), &[])
            .unwrap_err()
            .ends_with("\"lagThreshold\" must be positive number")
    );
    assert!(
        build(&with(&[("activationLagThreshold", "-3")]), &[])
            .unwrap_err()
            .ends_with("\"activationLagThreshold\" must be a non-negative number")
    );
    assert_eq!(
        build(&with(&[("partitionLimitation", "a,b")]), &[]).unwrap_err(),
        "triggers[0] (kafka): unable to set param \"partitionLimitation\": invalid partition limitation: a"
    );
    assert_eq!(
        build(&with(&[("partitionLimitation", "0-2147483647")]), &[]).unwrap_err(),
        "triggers[0] (kafka): unable to set param \"partitionLimitation\": invalid partition limitation: lists more than 65536 partitions"
    );
    assert_eq!(
        build(&with(&[("offsetResetPolicy", "foo")]), &[]).unwrap_err(),
        "triggers[0] (kafka): parameter \"offsetResetPolicy\" value \"foo\" must be one of [latest earliest]"
    );
    assert_eq!(
        build(&with(&[("version", "1.2.3.4")]), &[]).unwrap_err(),
        "triggers[0] (kafka): error parsing kafka version: invalid version `1.2.3.4`"
    );
    assert_eq!(
        build(
            &with(&[
                ("allowIdleConsumers", "true"),
                ("limitToPartitionsWithLag", "true")
            ]),
            &[]
        )
        .unwrap_err(),
        "triggers[0] (kafka): allowIdleConsumers and limitToPartitionsWithLag cannot be set simultaneously"
    );
    let utilization = cfg(BASE, &[]).with_metric_type("Utilization");
    assert!(
        KafkaScaler::new(&utilization)
            .unwrap_err()
            .to_string()
            .contains("'Utilization' metric type is unsupported")
    );
}

#[test]
fn keda_auth_cases() {
    // (authParams, is_error, tls enabled) from KEDA's parseKafkaAuthParamsTestDataset.
    let cases: &[(&[(&str, &str)], bool, bool)] = &[
        (SASL_PLAIN, false, false),
        (
            &[
                ("sasl", "scram_sha256"),
                ("username", "admin"),
                ("password", "admin"),
            ],
            false,
            false,
        ),
        (
            &[
                ("sasl", "scram_sha512"),
                ("username", "admin"),
                ("password", "admin"),
            ],
            false,
            false,
        ),
        (
            &[
                ("tls", "enable"),
                ("ca", "caaa"),
                ("cert", "ceert"),
                ("key", "keey"),
            ],
            false,
            true,
        ),
        (
            &[("tls", "enable"), ("cert", "ceert"), ("key", "keey")],
            false,
            true,
        ),
        (
            &[
                ("tls", "enable"),
                ("cert", "ceert"),
                ("key", "keey"),
                ("keyPassword", "pw"),
            ],
            false,
            true,
        ),
        (&[("tls", "enable"), ("ca", "caaa")], false, true),
        (
            &[
                ("sasl", "plaintext"),
                ("username", "admin"),
                ("password", "admin"),
                ("tls", "disable"),
            ],
            false,
            false,
        ),
        (
            &[
                ("sasl", "oauthbearer"),
                ("username", "admin"),
                ("password", "admin"),
                ("scopes", "scope"),
                ("oauthTokenEndpointUri", "https://website.com"),
                ("tls", "disable"),
            ],
            false,
            false,
        ),
        (
            &[
                ("sasl", "oauthbearer"),
                ("username", "admin"),
                ("password", "admin"),
                ("oauthTokenEndpointUri", "https://website.com"),
            ],
            false,
            false,
        ),
        (
            &[
                ("sasl", "oauthbearer"),
                ("username", "admin"),
                ("password", "admin"),
                ("scopes", "scope"),
                ("oauthTokenEndpointUri", ""),
            ],
            true,
            false,
        ),
        (
            &[
                ("sasl", "oauthbearer"),
                ("username", "admin"),
                ("password", "admin"),
                ("oauthTokenEndpointUri", "https://website.com"),
                ("oauthExtensions", "extension_foo=bar,extension_baz=baz"),
            ],
            false,
            false,
        ),
        (
            &[
                ("sasl", "oauthbearer"),
                ("username", "admin"),
                ("password", "admin"),
                ("oauthTokenEndpointUri", "https://website.com"),
                ("oauthExtensions", "extension_foo=bar,extension_bazbaz"),
            ],
            true,
            false,
        ),
        (
            &[
                ("sasl", "foo"),
                ("username", "admin"),
                ("password", "admin"),
            ],
            true,
            false,
        ),
        (&[("sasl", "plaintext"), ("password", "admin")], true, false),
        (&[("sasl", "plaintext"), ("username", "admin")], true, false),
        (
            &[("tls", "enable"), ("ca", "caaa"), ("key", "keey")],
            true,
            false,
        ),
        (
            &[("tls", "enable"), ("ca", "caaa"), ("cert", "ceert")],
            true,
            false,
        ),
        (
            &[
                ("tls", "yes"),
                ("ca", "caaa"),
                ("cert", "ceert"),
                ("key", "keey"),
            ],
            true,
            false,
        ),
        // Values with stray whitespace in the TriggerAuthentication are trimmed.
        (
            &[
                ("sasl", "scram_sha512\n"),
                ("username", "admin"),
                ("password", "admin"),
            ],
            false,
            false,
        ),
    ];
    for (auth, is_error, tls) in cases {
        let got = build(BASE, auth);
        assert_eq!(got.is_err(), *is_error, "{auth:?}: {got:?}");
        if let Ok(s) = got {
            let protocol = s
                .key
                .0
                .iter()
                .find(|(k, _)| *k == "security.protocol")
                .map(|(_, v)| v.expose().to_owned());
            assert_eq!(
                protocol.as_deref().is_some_and(|p| p.ends_with("ssl")),
                *tls,
                "{auth:?}: {protocol:?}"
            );
        }
    }
}

#[test]
fn sasl_and_tls_from_trigger_metadata() {
    let s = build(
        &with(&[
            ("sasl", "scram_sha256"),
            ("tls", "enable"),
            ("unsafeSsl", "true"),
        ]),
        &[("username", "u"), ("password", "p"), ("ca", "CA")],
    )
    .expect("valid");
    let get = |k: &str| {
        s.key
            .0
            .iter()
            .find(|(key, _)| *key == k)
            .map(|(_, v)| v.expose().to_owned())
    };
    assert_eq!(get("security.protocol").as_deref(), Some("sasl_ssl"));
    assert_eq!(get("sasl.mechanism").as_deref(), Some("SCRAM-SHA-256"));
    assert_eq!(get("ssl.ca.pem").as_deref(), Some("CA"));
    assert_eq!(
        get("enable.ssl.certificate.verification").as_deref(),
        Some("false")
    );
    // The key never prints the password.
    assert!(!format!("{:?} {s:?}", s.key).contains("\"p\""));
}

#[test]
fn oauthbearer_maps_to_librdkafka_oidc() {
    let s = build(
        BASE,
        &[
            ("sasl", "oauthbearer"),
            ("username", "client"),
            ("password", "secret"),
            ("scopes", "a, b"),
            ("oauthTokenEndpointUri", "https://idp/token"),
            (
                "oauthExtensions",
                "logicalCluster=lkc-1,identityPoolId=pool",
            ),
        ],
    )
    .expect("valid");
    let got: Vec<(&str, &str)> = s.key.0.iter().map(|(k, v)| (*k, v.expose())).collect();
    for want in [
        ("security.protocol", "sasl_plaintext"),
        ("sasl.mechanism", "OAUTHBEARER"),
        ("sasl.oauthbearer.method", "oidc"),
        ("sasl.oauthbearer.client.id", "client"),
        ("sasl.oauthbearer.client.secret", "secret"),
        ("sasl.oauthbearer.token.endpoint.url", "https://idp/token"),
        ("sasl.oauthbearer.scope", "a b"),
        (
            "sasl.oauthbearer.extensions",
            "logicalCluster=lkc-1,identityPoolId=pool",
        ),
    ] {
        assert!(got.contains(&want), "{want:?} not in {got:?}");
    }
}

#[test]
fn unsupported_mechanisms_are_rejected_clearly() {
    let gssapi = build(
        BASE,
        &[
            ("sasl", "gssapi"),
            ("username", "admin"),
            ("password", "admin"),
            ("kerberosConfig", "<config>"),
            ("realm", "tst.com"),
        ],
    )
    .unwrap_err();
    assert!(
        gssapi.contains("\"gssapi\" (Kerberos) is not supported"),
        "{gssapi}"
    );
    // KEDA's own GSSAPI checks come first.
    let both = build(
        BASE,
        &[
            ("sasl", "gssapi"),
            ("username", "admin"),
            ("password", "admin"),
            ("keytab", "/k"),
            ("kerberosConfig", "<config>"),
            ("realm", "tst.com"),
        ],
    )
    .unwrap_err();
    assert!(
        both.contains("exactly one of 'password' or 'keytab'"),
        "{both}"
    );
    let msk = build(
        &with(&[("awsRegion", "eu-west-1")]),
        &[
            ("sasl", "oauthbearer"),
            ("saslTokenProvider", "aws_msk_iam"),
            ("tls", "enable"),
        ],
    )
    .unwrap_err();
    assert!(msk.contains("\"aws_msk_iam\" is not supported"), "{msk}");
    let msk_no_tls = build(
        BASE,
        &[
            ("sasl", "oauthbearer"),
            ("saslTokenProvider", "aws_msk_iam"),
        ],
    )
    .unwrap_err();
    assert!(
        msk_no_tls.ends_with("TLS is required for AWS MSK authentication"),
        "{msk_no_tls}"
    );
}

#[tokio::test]
async fn metric_names_as_keda_names_them() {
    for (meta, index, name) in [
        (BASE.to_vec(), 0, "s0-kafka-my-topic"),
        (BASE.to_vec(), 1, "s1-kafka-my-topic"),
        (
            vec![
                ("bootstrapServers", "foobar:9092"),
                ("consumerGroup", "my-group"),
            ],
            1,
            "s1-kafka-my-group-topics",
        ),
        (
            vec![
                ("bootstrapServers", "foobar:9092"),
                ("consumerGroup", "my-group"),
                ("topic", "orders.v1"),
            ],
            2,
            "s2-kafka-orders-v1",
        ),
    ] {
        let c = meta
            .iter()
            .fold(ScalerConfig::new("kafka", index), |c, (k, v)| {
                c.with_metadata(*k, *v)
            });
        let s = KafkaScaler::new(&c).expect("valid");
        let specs = s.metric_specs().await.expect("specs");
        assert_eq!(specs.len(), 1);
        assert_eq!(specs[0].name, name);
        assert_eq!(specs[0].target.value.to_string(), "10");
        assert_eq!(specs[0].target.target_type, MetricTargetType::AverageValue);
    }
    let v = KafkaScaler::new(&cfg(&with(&[("lagThreshold", "50")]), &[]).with_metric_type("Value"))
        .expect("valid");
    let specs = v.metric_specs().await.expect("specs");
    assert_eq!(specs[0].target.value.to_string(), "50");
    assert_eq!(specs[0].target.target_type, MetricTargetType::Value);
}

#[test]
fn registry_builds_kafka_and_declares_its_parameters() {
    let registry = crate::registry();
    assert!(registry.build(&cfg(BASE, &[])).is_ok());
    let names: Vec<&str> = KafkaFactory.params().iter().map(|p| p.names[0]).collect();
    for n in [
        "bootstrapServers",
        "consumerGroup",
        "topic",
        "lagThreshold",
        "activationLagThreshold",
        "offsetResetPolicy",
        "sasl",
        "tls",
    ] {
        assert!(names.contains(&n), "{n}");
    }
}

fn deny_loopback() -> AddressGuard {
    AddressGuard::parse("127.0.0.0/8,::1/128").unwrap()
}

#[test]
fn a_broker_or_token_endpoint_in_a_denied_range_fails_the_build_naming_the_parameter() {
    for (meta, auth, param) in [
        (
            &[("bootstrapServers", "kafka.invalid:9092,127.0.0.1:9092")][..],
            &[][..],
            "bootstrapServers",
        ),
        (
            &[("bootstrapServers", "[::1]:9092")][..],
            &[][..],
            "bootstrapServers",
        ),
        (
            &[("bootstrapServers", "localhost:9092")][..],
            &[][..],
            "bootstrapServers",
        ),
        (
            &[("sasl", "oauthbearer")][..],
            &[
                ("username", "client"),
                ("password", "s3cr3t"),
                ("oauthTokenEndpointUri", "http://localhost:8080/token"),
            ][..],
            "oauthTokenEndpointUri",
        ),
    ] {
        let mut m: Vec<(&str, &str)> = BASE.to_vec();
        for (k, v) in meta {
            m.retain(|(key, _)| key != k);
            m.push((k, v));
        }
        let c = cfg(&m, auth).with_address_guard(deny_loopback());
        let err = KafkaScaler::new(&c).map(|_| ()).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "triggers[0] (kafka): parameter {param:?}: its host resolves into "
            )),
            "{meta:?}: {err}"
        );
    }
}

#[tokio::test]
async fn brokers_are_checked_again_before_the_client_is_made() {
    let mut scaler = build(
        &[
            ("bootstrapServers", "localhost:9"),
            ("consumerGroup", "g"),
            ("topic", "t"),
        ],
        &[],
    )
    .unwrap();
    // The name resolved elsewhere when the trigger was built and into the range now.
    scaler.guard = deny_loopback();
    let err = scaler.measure().await.unwrap_err().to_string();
    assert!(
        err.contains("parameter \"bootstrapServers\": its host resolves into"),
        "{err}"
    );
    assert!(scaler.lock().clients.is_none(), "no client was made");
}
