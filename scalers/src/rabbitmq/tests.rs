//! The rabbitmq parameter table against KEDA's own test cases
//! (`pkg/scalers/rabbitmq_scaler_test.go`), metric names and error messages.

use super::*;

const HOST: &str = "myHostSecret";
const USERNAME: &str = "myUsernameSecret";
const PASSWORD: &str = "myPasswordSecret";

fn cfg(index: usize, metadata: &[(&str, &str)], auth: &[(&str, &str)]) -> ScalerConfig {
    let mut c = ScalerConfig::new("rabbitmq", index)
        .with_resolved_env(HOST, "amqp://user:sercet@somehost.com:5236/vhost")
        .with_resolved_env(USERNAME, "user")
        .with_resolved_env(PASSWORD, "Password");
    for (k, v) in metadata {
        c = c.with_metadata(*k, *v);
    }
    for (k, v) in auth {
        c = c.with_auth_param(*k, *v);
    }
    c
}

fn settings(metadata: &[(&str, &str)], auth: &[(&str, &str)]) -> Result<RabbitMqSettings, String> {
    RabbitMqSettings::from_config(&cfg(0, metadata, auth)).map_err(|e| e.to_string())
}

fn build(metadata: &[(&str, &str)], auth: &[(&str, &str)]) -> Result<RabbitMqScaler, String> {
    RabbitMqScaler::new(&RabbitMqFactory::new(), &cfg(0, metadata, auth)).map_err(|e| e.to_string())
}

/// KEDA's `testRabbitMQMetadata`: (metadata, is_error, auth params).
type Case = (
    &'static [(&'static str, &'static str)],
    bool,
    &'static [(&'static str, &'static str)],
);

const KEDA_METADATA: &[Case] = &[
    // nothing passed
    (&[], true, &[]),
    // properly formed metadata
    (
        &[
            ("queueLength", "10"),
            ("queueName", "sample"),
            ("hostFromEnv", HOST),
        ],
        false,
        &[],
    ),
    // malformed queueLength
    (
        &[
            ("queueLength", "AA"),
            ("queueName", "sample"),
            ("hostFromEnv", HOST),
        ],
        true,
        &[],
    ),
    // missing host
    (&[("queueLength", "AA"), ("queueName", "sample")], true, &[]),
    // missing queueName
    (&[("queueLength", "10"), ("hostFromEnv", HOST)], true, &[]),
    // host defined in authParams
    (
        &[("queueLength", "10"), ("hostFromEnv", HOST)],
        true,
        &[("host", HOST)],
    ),
    // properly formed metadata with http protocol
    (
        &[
            ("queueLength", "10"),
            ("queueName", "sample"),
            ("host", HOST),
            ("protocol", "http"),
        ],
        false,
        &[],
    ),
    // queue name with slashes
    (
        &[
            ("queueLength", "10"),
            ("queueName", "namespace/name"),
            ("hostFromEnv", HOST),
        ],
        false,
        &[],
    ),
    // vhost passed
    (
        &[
            ("vhostName", "myVhost"),
            ("queueName", "namespace/name"),
            ("hostFromEnv", HOST),
        ],
        false,
        &[],
    ),
    // vhost passed but empty
    (
        &[
            ("vhostName", ""),
            ("queueName", "namespace/name"),
            ("hostFromEnv", HOST),
        ],
        false,
        &[],
    ),
    // protocol defined in authParams
    (
        &[("queueName", "sample"), ("hostFromEnv", HOST)],
        false,
        &[("protocol", "http")],
    ),
    // auto protocol and a bad URL
    (
        &[("queueName", "sample"), ("host", "something://")],
        true,
        &[],
    ),
    // auto protocol and an HTTP URL
    (&[("queueName", "sample"), ("host", "http://")], false, &[]),
    // auto protocol and an HTTPS URL
    (&[("queueName", "sample"), ("host", "https://")], false, &[]),
    // queueLength and mode
    (
        &[
            ("queueLength", "10"),
            ("mode", "QueueLength"),
            ("queueName", "sample"),
            ("host", "https://"),
        ],
        true,
        &[],
    ),
    // queueLength and value
    (
        &[
            ("queueLength", "10"),
            ("value", "20"),
            ("queueName", "sample"),
            ("host", "https://"),
        ],
        true,
        &[],
    ),
    // queueLength and mode and value
    (
        &[
            ("queueLength", "10"),
            ("mode", "QueueLength"),
            ("value", "20"),
            ("queueName", "sample"),
            ("host", "https://"),
        ],
        true,
        &[],
    ),
    // only mode
    (
        &[
            ("mode", "QueueLength"),
            ("queueName", "sample"),
            ("host", "https://"),
        ],
        true,
        &[],
    ),
    // only value
    (
        &[
            ("value", "20"),
            ("queueName", "sample"),
            ("host", "https://"),
        ],
        true,
        &[],
    ),
    // mode and value
    (
        &[
            ("mode", "QueueLength"),
            ("value", "20"),
            ("queueName", "sample"),
            ("host", "https://"),
        ],
        false,
        &[],
    ),
    // invalid mode
    (
        &[
            ("mode", "Feelings"),
            ("value", "20"),
            ("queueName", "sample"),
            ("host", "https://"),
        ],
        true,
        &[],
    ),
    // invalid value
    (
        &[
            ("mode", "QueueLength"),
            ("value", "lots"),
            ("queueName", "sample"),
            ("host", "https://"),
        ],
        true,
        &[],
    ),
    // queue length amqp
    (
        &[
            ("mode", "QueueLength"),
            ("value", "20"),
            ("queueName", "sample"),
            ("host", "amqps://"),
        ],
        false,
        &[],
    ),
    // message rate amqps / amqp / http / https
    (
        &[
            ("mode", "MessageRate"),
            ("value", "1000"),
            ("queueName", "sample"),
            ("host", "amqps://"),
        ],
        true,
        &[],
    ),
    (
        &[
            ("mode", "MessageRate"),
            ("value", "1000"),
            ("queueName", "sample"),
            ("host", "amqp://"),
        ],
        true,
        &[],
    ),
    (
        &[
            ("mode", "MessageRate"),
            ("value", "1000"),
            ("queueName", "sample"),
            ("host", "http://"),
        ],
        false,
        &[],
    ),
    (
        &[
            ("mode", "MessageRate"),
            ("value", "1000"),
            ("queueName", "sample"),
            ("host", "https://"),
        ],
        false,
        &[],
    ),
    // deliverGet rate amqps / amqp / http / https
    (
        &[
            ("mode", "DeliverGetRate"),
            ("value", "1000"),
            ("queueName", "sample"),
            ("host", "amqps://"),
        ],
        true,
        &[],
    ),
    (
        &[
            ("mode", "DeliverGetRate"),
            ("value", "1000"),
            ("queueName", "sample"),
            ("host", "amqp://"),
        ],
        true,
        &[],
    ),
    (
        &[
            ("mode", "DeliverGetRate"),
            ("value", "1000"),
            ("queueName", "sample"),
            ("host", "http://"),
        ],
        false,
        &[],
    ),
    (
        &[
            ("mode", "DeliverGetRate"),
            ("value", "1000"),
            ("queueName", "sample"),
            ("host", "https://"),
        ],
        false,
        &[],
    ),
    // amqp host and useRegex
    (
        &[
            ("queueName", "sample"),
            ("host", "amqps://"),
            ("useRegex", "true"),
        ],
        true,
        &[],
    ),
    // http host and useRegex
    (
        &[
            ("queueName", "sample"),
            ("host", "http://"),
            ("useRegex", "true"),
        ],
        false,
        &[],
    ),
    // message rate and useRegex
    (
        &[
            ("mode", "MessageRate"),
            ("value", "1000"),
            ("queueName", "sample"),
            ("host", "http://"),
            ("useRegex", "true"),
        ],
        false,
        &[],
    ),
    // deliverGet rate and useRegex
    (
        &[
            ("mode", "DeliverGetRate"),
            ("value", "1000"),
            ("queueName", "sample"),
            ("host", "http://"),
            ("useRegex", "true"),
        ],
        false,
        &[],
    ),
    // queue length and useRegex
    (
        &[
            ("mode", "QueueLength"),
            ("value", "1000"),
            ("queueName", "sample"),
            ("host", "http://"),
            ("useRegex", "true"),
        ],
        false,
        &[],
    ),
    // http valid timeout
    (
        &[
            ("mode", "QueueLength"),
            ("value", "1000"),
            ("queueName", "sample"),
            ("host", "http://"),
            ("timeout", "1000"),
        ],
        false,
        &[],
    ),
    // http invalid timeout
    (
        &[
            ("mode", "QueueLength"),
            ("value", "1000"),
            ("queueName", "sample"),
            ("host", "http://"),
            ("timeout", "-10"),
        ],
        true,
        &[],
    ),
    // http wrong timeout
    (
        &[
            ("mode", "QueueLength"),
            ("value", "1000"),
            ("queueName", "sample"),
            ("host", "http://"),
            ("timeout", "error"),
        ],
        true,
        &[],
    ),
    // amqp timeout
    (
        &[
            ("mode", "QueueLength"),
            ("value", "1000"),
            ("queueName", "sample"),
            ("host", "amqp://"),
            ("timeout", "10"),
        ],
        true,
        &[],
    ),
    // valid pageSize
    (
        &[
            ("mode", "MessageRate"),
            ("value", "1000"),
            ("queueName", "sample"),
            ("host", "http://"),
            ("useRegex", "true"),
            ("pageSize", "100"),
        ],
        false,
        &[],
    ),
    // pageSize less than 1
    (
        &[
            ("mode", "MessageRate"),
            ("value", "1000"),
            ("queueName", "sample"),
            ("host", "http://"),
            ("useRegex", "true"),
            ("pageSize", "-1"),
        ],
        true,
        &[],
    ),
    // invalid pageSize
    (
        &[
            ("mode", "MessageRate"),
            ("value", "1000"),
            ("queueName", "sample"),
            ("host", "http://"),
            ("useRegex", "true"),
            ("pageSize", "a"),
        ],
        true,
        &[],
    ),
    (
        &[
            ("mode", "DeliverGetRate"),
            ("value", "1000"),
            ("queueName", "sample"),
            ("host", "http://"),
            ("useRegex", "true"),
            ("pageSize", "100"),
        ],
        false,
        &[],
    ),
    (
        &[
            ("mode", "DeliverGetRate"),
            ("value", "1000"),
            ("queueName", "sample"),
            ("host", "http://"),
            ("useRegex", "true"),
            ("pageSize", "-1"),
        ],
        true,
        &[],
    ),
    (
        &[
            ("mode", "DeliverGetRate"),
            ("value", "1000"),
            ("queueName", "sample"),
            ("host", "http://"),
            ("useRegex", "true"),
            ("pageSize", "a"),
        ],
        true,
        &[],
    ),
    // activationValue passed
    (
        &[
            ("activationValue", "10"),
            ("queueLength", "20"),
            ("queueName", "sample"),
            ("hostFromEnv", HOST),
        ],
        false,
        &[],
    ),
    // malformed activationValue
    (
        &[
            ("activationValue", "AA"),
            ("queueLength", "10"),
            ("queueName", "sample"),
            ("hostFromEnv", HOST),
        ],
        true,
        &[],
    ),
    // http and excludeUnacknowledged
    (
        &[
            ("mode", "QueueLength"),
            ("value", "1000"),
            ("queueName", "sample"),
            ("host", "http://"),
            ("useRegex", "true"),
            ("excludeUnacknowledged", "true"),
        ],
        false,
        &[],
    ),
    // amqp and excludeUnacknowledged
    (
        &[
            ("mode", "QueueLength"),
            ("value", "1000"),
            ("queueName", "sample"),
            ("host", "amqp://"),
            ("useRegex", "true"),
            ("excludeUnacknowledged", "true"),
        ],
        true,
        &[],
    ),
    // unsafeSsl true
    (
        &[
            ("queueName", "sample"),
            ("host", "https://"),
            ("unsafeSsl", "true"),
        ],
        false,
        &[],
    ),
    // unsafeSsl wrong input
    (
        &[
            ("queueName", "sample"),
            ("host", "https://"),
            ("unsafeSsl", "random"),
        ],
        true,
        &[],
    ),
];

#[test]
fn keda_metadata_cases() {
    for (i, (metadata, is_error, auth)) in KEDA_METADATA.iter().enumerate() {
        let got = settings(metadata, auth);
        assert_eq!(
            got.is_err(),
            *is_error,
            "case {i} {metadata:?} {auth:?}: {got:?}"
        );
    }
}

/// KEDA's `testRabbitMQAuthParamData` (minus Azure Workload Identity, see below):
/// (metadata, auth params, is_error, TLS enabled).
#[allow(clippy::type_complexity)]
const KEDA_AUTH: &[(&[(&str, &str)], &[(&str, &str)], bool, bool)] = &[
    (
        &[("queueName", "sample"), ("hostFromEnv", HOST)],
        &[
            ("tls", "enable"),
            ("ca", "caaa"),
            ("cert", "ceert"),
            ("key", "keey"),
        ],
        false,
        true,
    ),
    // TLS cert/key and assumed public CA
    (
        &[("queueName", "sample"), ("hostFromEnv", HOST)],
        &[("tls", "enable"), ("cert", "ceert"), ("key", "keey")],
        false,
        true,
    ),
    // TLS CA only
    (
        &[("queueName", "sample"), ("hostFromEnv", HOST)],
        &[("tls", "enable"), ("ca", "caaa")],
        false,
        true,
    ),
    // TLS missing cert
    (
        &[("queueName", "sample"), ("hostFromEnv", HOST)],
        &[("tls", "enable"), ("ca", "caaa"), ("key", "kee")],
        true,
        true,
    ),
    // TLS missing key
    (
        &[("queueName", "sample"), ("hostFromEnv", HOST)],
        &[("tls", "enable"), ("ca", "caaa"), ("cert", "ceert")],
        true,
        true,
    ),
    // TLS invalid
    (
        &[("queueName", "sample"), ("hostFromEnv", HOST)],
        &[
            ("tls", "yes"),
            ("ca", "caaa"),
            ("cert", "ceert"),
            ("key", "kee"),
        ],
        true,
        true,
    ),
    // username and password
    (
        &[("queueName", "sample"), ("hostFromEnv", HOST)],
        &[("username", "user"), ("password", "PASSWORD")],
        false,
        false,
    ),
    // username but no password, and the reverse
    (
        &[("queueName", "sample"), ("hostFromEnv", HOST)],
        &[("username", "user")],
        true,
        false,
    ),
    (
        &[("queueName", "sample"), ("hostFromEnv", HOST)],
        &[("password", "PASSWORD")],
        true,
        false,
    ),
    // vhostName, and vhostName empty
    (
        &[("queueName", "sample"), ("hostFromEnv", HOST)],
        &[("vhostName", "myVhost")],
        false,
        false,
    ),
    (
        &[("queueName", "sample"), ("hostFromEnv", HOST)],
        &[("vhostName", "")],
        false,
        false,
    ),
    // username and password from env
    (
        &[
            ("queueName", "sample"),
            ("hostFromEnv", HOST),
            ("usernameFromEnv", USERNAME),
            ("passwordFromEnv", PASSWORD),
        ],
        &[],
        false,
        false,
    ),
    // username from env but not password, and the reverse
    (
        &[
            ("queueName", "sample"),
            ("hostFromEnv", HOST),
            ("usernameFromEnv", USERNAME),
        ],
        &[],
        true,
        false,
    ),
    (
        &[
            ("queueName", "sample"),
            ("hostFromEnv", HOST),
            ("passwordFromEnv", PASSWORD),
        ],
        &[],
        true,
        false,
    ),
];

#[test]
fn keda_auth_param_cases() {
    for (i, (metadata, auth, is_error, tls)) in KEDA_AUTH.iter().enumerate() {
        let got = settings(metadata, auth);
        assert_eq!(got.is_err(), *is_error, "case {i}: {got:?}");
        if let Ok(s) = got {
            assert_eq!(s.tls.ca.is_some() || s.tls.cert.is_some(), *tls, "case {i}");
            let ca = auth.iter().find(|(k, _)| *k == "ca").map(|(_, v)| *v);
            assert_eq!(s.tls.ca.as_ref().map(Secret::expose), ca.filter(|_| *tls));
        }
    }
    let s = settings(
        &[
            ("queueName", "sample"),
            ("hostFromEnv", HOST),
            ("usernameFromEnv", USERNAME),
            ("passwordFromEnv", PASSWORD),
        ],
        &[],
    )
    .expect("valid");
    let c = s.credentials.expect("credentials");
    assert_eq!(
        (c.username.expose(), c.password.expose()),
        ("user", "Password")
    );
}

#[test]
fn keda_default_queue_length() {
    for metadata in [
        &[("queueName", "sample"), ("hostFromEnv", HOST)][..],
        &[
            ("queueName", "sample"),
            ("hostFromEnv", HOST),
            ("protocol", "http"),
        ][..],
    ] {
        let s = settings(metadata, &[]).expect("valid");
        assert_eq!((s.mode, s.value), (Mode::QueueLength, DEFAULT_QUEUE_LENGTH));
    }
    let legacy = settings(
        &[
            ("queueName", "q"),
            ("hostFromEnv", HOST),
            ("queueLength", "7.5"),
        ],
        &[],
    )
    .expect("valid");
    assert_eq!((legacy.mode, legacy.value), (Mode::QueueLength, 7.5));
}

#[tokio::test]
async fn keda_metric_names() {
    let factory = RabbitMqFactory::new();
    for (index, metadata, name) in [
        (0, KEDA_METADATA[1].0, "s0-rabbitmq-sample"),
        (1, KEDA_METADATA[7].0, "s1-rabbitmq-namespace-2Fname"),
        (
            2,
            &[("queueName", "a.b c"), ("host", "http://h/")][..],
            "s2-rabbitmq-a-b+c",
        ),
    ] {
        let scaler = RabbitMqScaler::new(&factory, &cfg(index, metadata, &[])).expect("valid");
        let specs = scaler.metric_specs().await.expect("specs");
        assert_eq!(specs.len(), 1);
        assert_eq!(specs[0].name, name);
    }
    // Targets with milli precision, AverageValue unless metricType says otherwise.
    let scaler = RabbitMqScaler::new(
        &factory,
        &cfg(
            0,
            &[
                ("queueName", "q"),
                ("host", "http://h/"),
                ("mode", "MessageRate"),
                ("value", "100.5"),
            ],
            &[],
        )
        .with_metric_type("Value"),
    )
    .expect("valid");
    let spec = &scaler.metric_specs().await.expect("specs")[0];
    assert_eq!(spec.target.value.to_string(), "100500m");
    assert_eq!(
        spec.target.target_type,
        scaler_core::MetricTargetType::Value
    );
}

#[test]
fn keda_error_messages() {
    let t = "triggers[0] (rabbitmq): ";
    assert_eq!(
        settings(&[], &[]).err(),
        Some(format!(
            "{t}missing required parameter \"queueName\" in [triggerMetadata]; \
             missing required parameter \"host\" in [triggerMetadata authParams resolvedEnv]"
        ))
    );
    let base = [("queueName", "q"), ("host", "http://h")];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut m = base.to_vec();
        m.extend_from_slice(extra);
        settings(&m, &[]).err().unwrap_or_default()
    };
    assert_eq!(
        with(&[("protocol", "stomp")]),
        format!("{t}the protocol has to be either `amqp`, `http`, or `auto` but is `stomp`")
    );
    assert_eq!(
        with(&[("queueLength", "10"), ("mode", "QueueLength")]),
        format!("{t}queueLength is deprecated; use mode and value")
    );
    assert_eq!(
        with(&[("mode", "QueueLength")]),
        format!("{t}value must be specified")
    );
    assert_eq!(
        with(&[("value", "5")]),
        format!("{t}mode must be specified")
    );
    assert_eq!(
        with(&[("mode", "Feelings"), ("value", "5")]),
        format!(
            "{t}trigger mode Feelings must be one of QueueLength, MessageRate, DeliverGetRate, \
             PublishedToDeliveredRatio or ExpectedQueueConsumptionTime"
        )
    );
    assert_eq!(
        with(&[("pageSize", "0")]),
        format!("{t}pageSize should be 1 or greater")
    );
    assert_eq!(
        with(&[("useRegex", "true"), ("operation", "median")]),
        format!("{t}operation mode median must be one of sum, avg, max")
    );
    // Without useRegex the operation is never used, and KEDA does not look at it.
    assert_eq!(with(&[("operation", "median")]), "");
    assert_eq!(
        with(&[("mode", "QueueLength"), ("value", "lots")]),
        format!("{t}unable to set param \"value\" value \"lots\": expected a number")
    );
    let amqp = |extra: &[(&'static str, &'static str)]| {
        let mut m = vec![("queueName", "q"), ("host", "amqp://h")];
        m.extend_from_slice(extra);
        settings(&m, &[]).err().unwrap_or_default()
    };
    assert_eq!(
        amqp(&[("mode", "MessageRate"), ("value", "5")]),
        format!("{t}protocol amqp not supported; must be HTTP to use trigger mode MessageRate")
    );
    assert_eq!(
        amqp(&[("useRegex", "true")]),
        format!("{t}configure useRegex=true only with HTTP protocol")
    );
    assert_eq!(
        amqp(&[("excludeUnacknowledged", "true")]),
        format!("{t}configure excludeUnacknowledged=true only with HTTP protocol")
    );
    assert_eq!(
        amqp(&[("mode", "QueueLength"), ("value", "5"), ("timeout", "10")]),
        format!("{t}AMQP protocol doesn't support custom timeouts: 10ms")
    );
    assert_eq!(
        settings(&[("queueName", "q"), ("host", "something://")], &[]).err(),
        Some(format!("{t}unknown host URL scheme: `something`"))
    );
    assert_eq!(
        settings(&base, &[("username", "u")]).err(),
        Some(format!("{t}username and password must be given together"))
    );
    assert_eq!(
        settings(&base, &[("tls", "yes")]).err(),
        Some(format!(
            "{t}incorrect value for TLS given: auth parameter \"tls\" must be `enable` or `disable`"
        ))
    );
    assert_eq!(
        settings(&base, &[("cert", "c")]).err(),
        Some(format!("{t}both key and certificate must be provided"))
    );
}

#[test]
fn what_kedge_does_not_support_is_rejected_clearly() {
    let base = [
        ("queueName", "q"),
        ("host", "http://h"),
        ("protocol", "http"),
    ];
    // KEDA accepts Azure Workload Identity over HTTP; kedge has no Azure identity.
    assert!(
        settings(&base, &[("workloadIdentityResource", "r")])
            .err()
            .unwrap_or_default()
            .ends_with("Azure AD Workload Identity is not supported by kedge")
    );
    let amqp = [
        ("queueName", "q"),
        ("host", "amqp://h"),
        ("protocol", "amqp"),
    ];
    assert!(
        settings(&amqp, &[("workloadIdentityResource", "r")])
            .err()
            .unwrap_or_default()
            .ends_with("workload identity is not supported for the AMQP protocol at the moment")
    );
    let oauth = [
        ("oauthTokenURI", "https://idp/token"),
        ("clientID", "c"),
        ("clientSecret", "s"),
    ];
    assert!(
        settings(&base, &oauth)
            .err()
            .unwrap_or_default()
            .ends_with("OAuth2 authentication is not supported by kedge")
    );
    assert!(
        settings(&base, &oauth[..1])
            .err()
            .unwrap_or_default()
            .ends_with("OAuth2 requires tokenUrl clientId and clientSecret to be configured in TriggerAuthentication")
    );
    assert!(
        settings(&amqp, &oauth)
            .err()
            .unwrap_or_default()
            .ends_with("OAuth2 authentication is only supported with HTTP protocol, not AMQP")
    );
    assert!(
        settings(
            &base,
            &[
                ("tls", "enable"),
                ("cert", "c"),
                ("key", "k"),
                ("keyPassword", "p")
            ]
        )
        .err()
        .unwrap_or_default()
        .contains("encrypted client keys are not supported")
    );
}

#[test]
fn build_checks_what_keda_checks_when_it_connects() {
    // KEDA parses the AMQP URI and builds the TLS configuration in its constructor.
    let err = build(&[("queueName", "q"), ("host", "amqp://h:notaport")], &[])
        .err()
        .unwrap_or_default();
    assert!(
        err.starts_with("triggers[0] (rabbitmq): error parsing RabbitMQ connection string: "),
        "{err}"
    );
    let err = build(
        &[("queueName", "q"), ("host", "amqps://h")],
        &[("tls", "enable"), ("ca", "caaa")],
    )
    .err()
    .unwrap_or_default();
    assert!(
        err.contains("(rabbitmq): ca: no PEM certificate found"),
        "{err}"
    );
    // A management URL that does not parse fails each poll, as in KEDA, not the build.
    assert!(
        build(
            &[("queueName", "q"), ("host", HOST), ("protocol", "http")],
            &[]
        )
        .is_ok()
    );
}

#[tokio::test]
async fn malformed_management_url_is_a_poll_error() {
    let scaler = build(
        &[("queueName", "q"), ("host", HOST), ("protocol", "http")],
        &[],
    )
    .expect("valid");
    let err = scaler
        .metrics_and_activity("s0-rabbitmq-q")
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.starts_with(
            "triggers[0] (rabbitmq): error inspecting RabbitMQ: error parsing the RabbitMQ management URL"
        ),
        "{err}"
    );
}

#[test]
fn secrets_stay_out_of_debug_output() {
    let scaler = build(
        &[("queueName", "q"), ("host", "amqp://admin:hunter2@h/vh")],
        &[("username", "u"), ("password", "s3cr3t")],
    )
    .expect("valid");
    let printed = format!("{scaler:?}");
    assert!(
        !printed.contains("hunter2") && !printed.contains("s3cr3t"),
        "{printed}"
    );
}

#[test]
fn metric_name_parameter_is_accepted_and_ignored() {
    let s = settings(
        &[
            ("queueName", "jobs"),
            ("host", "http://h"),
            ("metricName", "custom"),
        ],
        &[],
    )
    .expect("valid");
    assert_eq!(s.metric_name(), "rabbitmq-jobs");
}

#[test]
fn registry_builds_rabbitmq() {
    let registry = crate::registry();
    let c = cfg(0, &[("queueName", "q"), ("host", "amqp://h")], &[]);
    assert!(registry.build(&c).is_ok());
    assert!(
        registry
            .factory("rabbitmq")
            .is_some_and(|f| !f.params().is_empty())
    );
}

fn deny_loopback() -> AddressGuard {
    AddressGuard::parse("127.0.0.0/8,::1/128").expect("ranges")
}

#[test]
fn a_host_in_a_denied_range_fails_the_build_naming_the_parameter_not_the_url() {
    for (host, protocol) in [
        ("amqp://user:s3cr3t@127.0.0.1:5672/vhost", "amqp"),
        ("amqp://user:s3cr3t@localhost/vhost", "auto"),
        ("http://user:s3cr3t@[::1]:15672/vhost", "http"),
        ("https://user:s3cr3t@localhost/vhost", "auto"),
    ] {
        let cfg = ScalerConfig::new("rabbitmq", 0)
            .with_metadata("queueName", "jobs")
            .with_metadata("protocol", protocol)
            .with_auth_param("host", host)
            .with_address_guard(deny_loopback());
        let err = RabbitMqScaler::new(&RabbitMqFactory::new(), &cfg)
            .map(|_| ())
            .expect_err(host)
            .to_string();
        assert!(
            err.starts_with("triggers[0] (rabbitmq): parameter \"host\": its host resolves into "),
            "{host}: {err}"
        );
        assert!(
            !err.contains("s3cr3t") && !err.contains("localhost"),
            "{err}"
        );
    }
}

#[tokio::test]
async fn amqp_connects_only_to_addresses_outside_the_denied_ranges() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("listener");
    let port = listener.local_addr().expect("address").port();
    let host = format!("amqp://guest:guest@localhost:{port}/");
    let cfg = ScalerConfig::new("rabbitmq", 0)
        .with_metadata("queueName", "jobs")
        .with_auth_param("host", host.as_str());
    let mut scaler = RabbitMqScaler::new(&RabbitMqFactory::new(), &cfg).expect("no guard yet");
    // The name resolved elsewhere when the trigger was built and into the range now.
    scaler.guard = deny_loopback();
    let err = scaler
        .metrics_and_activity("s0-rabbitmq-jobs")
        .await
        .expect_err("denied")
        .to_string();
    assert!(err.contains("its host resolves into"), "{err}");
    let accepted =
        tokio::time::timeout(std::time::Duration::from_millis(300), listener.accept()).await;
    assert!(accepted.is_err(), "the broker was connected to");
}
