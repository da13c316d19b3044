#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

fn cfg(pairs: &[(&str, &str)]) -> ScalerConfig {
    pairs
        .iter()
        .fold(ScalerConfig::new("prometheus", 0), |c, (k, v)| {
            c.with_metadata(*k, *v)
        })
}

fn build(cfg: &ScalerConfig) -> Result<PrometheusScaler, String> {
    PrometheusScaler::new(cfg).map_err(|e| e.to_string())
}

const BASE: &[(&str, &str)] = &[
    ("serverAddress", "http://localhost:9090"),
    ("metricName", "http_requests_total"),
    ("threshold", "100"),
    ("query", "up"),
];

fn with(extra: &[(&str, &str)]) -> ScalerConfig {
    let mut pairs: Vec<(&str, &str)> = BASE.to_vec();
    for (k, v) in extra {
        pairs.retain(|(key, _)| key != k);
        pairs.push((k, v));
    }
    cfg(&pairs)
}

/// KEDA's testPromMetadata.
#[test]
fn keda_metadata_cases() {
    let valid: &[&[(&str, &str)]] = &[
        &[],
        &[("namespace", "foo")],
        &[("ignoreNullValues", "false")],
        &[("activationThreshold", "50")],
        &[
            ("serverAddress", "https://localhost:9090"),
            ("unsafeSsl", "true"),
        ],
        &[("customHeaders", "key1=value1,key2=value2")],
        &[("queryParameters", "key1=value1,key2=value2")],
        &[("timeout", "1000")],
    ];
    for extra in valid {
        assert!(
            build(&with(extra)).is_ok(),
            "{extra:?}: {:?}",
            build(&with(extra)).err()
        );
    }
    let invalid: &[(&[(&str, &str)], &str)] = &[
        (
            &[("serverAddress", "")],
            "missing required parameter \"serverAddress\" in [triggerMetadata]",
        ),
        (
            &[("threshold", "")],
            "missing required parameter \"threshold\" in [triggerMetadata]",
        ),
        (
            &[("threshold", "one")],
            "unable to set param \"threshold\" value \"one\": expected a number",
        ),
        (
            &[("activationThreshold", "one")],
            "unable to set param \"activationThreshold\" value \"one\": expected a number",
        ),
        (
            &[("query", "")],
            "missing required parameter \"query\" in [triggerMetadata]",
        ),
        (
            &[("ignoreNullValues", "xxxx")],
            "unable to set param \"ignoreNullValues\" value \"xxxx\": expected a boolean (true or false)",
        ),
        (
            &[("customHeaders", "key1=value1,key2")],
            "unable to set param \"customHeaders\" value \"key1=value1,key2\": expected format key=value, got \"key2\"",
        ),
        (
            &[("queryParameters", "key1=value1,key2")],
            "unable to set param \"queryParameters\" value \"key1=value1,key2\": expected format key=value, got \"key2\"",
        ),
        (&[("timeout", "-1")], "timeout must be greater than 0: -1"),
        (
            &[("timeout", "a")],
            "unable to set param \"timeout\" value \"a\"",
        ),
        (
            &[("serverAddress", "localhost:9090")],
            "serverAddress \"localhost:9090\" must be an http:// or https:// URL",
        ),
    ];
    for (extra, message) in invalid {
        let err = build(&with(extra)).expect_err(message);
        assert!(err.starts_with("triggers[0] (prometheus): "), "{err}");
        assert!(err.contains(message), "{extra:?}: {err}");
    }
    let missing = build(&ScalerConfig::new("prometheus", 3)).unwrap_err();
    assert_eq!(
        missing,
        "triggers[3] (prometheus): missing required parameter \"serverAddress\" in [triggerMetadata]; \
         missing required parameter \"query\" in [triggerMetadata]; \
         missing required parameter \"threshold\" in [triggerMetadata]"
    );
}

/// KEDA's prometheusMetricIdentifiers.
#[tokio::test]
async fn metric_names() {
    for (index, name) in [(0, "s0-prometheus"), (1, "s1-prometheus")] {
        let mut c = with(&[]);
        c.trigger.index = index;
        let specs = build(&c)
            .expect("valid")
            .metric_specs()
            .await
            .expect("specs");
        assert_eq!(specs[0].name, name);
        assert_eq!(specs[0].target.value.to_string(), "100");
        assert_eq!(specs[0].target.target_type, MetricTargetType::AverageValue);
    }
    let float = with(&[("threshold", "100.50")]).with_metric_type("Value");
    let specs = build(&float)
        .expect("valid")
        .metric_specs()
        .await
        .expect("specs");
    assert_eq!(specs[0].target.value.to_string(), "100500m");
}

fn pem_pair() -> (String, String) {
    let cert = rcgen::generate_simple_self_signed(vec!["kedge.test".to_owned()]).expect("cert");
    (cert.cert.pem(), cert.signing_key.serialize_pem())
}

fn auth(modes: &str, params: &[(&str, &str)]) -> ScalerConfig {
    params
        .iter()
        .fold(with(&[("authModes", modes)]), |c, (k, v)| {
            c.with_auth_param(*k, *v)
        })
}

/// KEDA's testPrometheusAuthMetadata (with real PEM texts where KEDA's constructor would parse
/// them).
#[test]
fn keda_auth_cases() {
    let (cert, key) = pem_pair();
    let (ca, _) = pem_pair();
    let (cert, key, ca) = (cert.as_str(), key.as_str(), ca.as_str());
    let valid = [
        auth("tls", &[("ca", ca), ("cert", cert), ("key", key)]),
        auth("tls", &[("cert", cert), ("key", key)]),
        auth("bearer", &[("bearerToken", "tooooken")]),
        auth("basic", &[("username", "user"), ("password", "pass")]),
        auth(
            "tls, basic",
            &[
                ("ca", ca),
                ("cert", cert),
                ("key", key),
                ("username", "user"),
                ("password", "pass"),
            ],
        ),
        auth(
            "custom",
            &[("customAuthHeader", "header"), ("customAuthValue", "value")],
        ),
        auth(
            "custom",
            &[
                ("customAuthHeader", "header\n"),
                ("customAuthValue", "value\n"),
            ],
        ),
        // authModes may come from the TriggerAuthentication too.
        with(&[])
            .with_auth_param("authModes", "bearer")
            .with_auth_param("bearerToken", "t"),
    ];
    for c in &valid {
        assert!(build(c).is_ok(), "{:?}", build(c).err());
    }
    let invalid = [
        (
            auth("tls", &[("ca", ca), ("cert", cert)]),
            "cert and key are required when tls auth is enabled",
        ),
        (
            auth("tls", &[("ca", ca), ("key", key)]),
            "cert and key are required when tls auth is enabled",
        ),
        (
            auth("bearer", &[]),
            "bearer token is required when bearer auth is enabled",
        ),
        (
            auth("basic", &[]),
            "username is required when basic auth is enabled",
        ),
        (
            auth("tls,basic", &[("username", "user"), ("password", "pass")]),
            "cert and key are required when tls auth is enabled",
        ),
        (
            auth("custom", &[("customAuthHeader", "")]),
            "customAuthHeader and customAuthValue are required when custom auth is enabled",
        ),
        (
            auth("custom", &[("customAuthValue", "")]),
            "customAuthHeader and customAuthValue are required when custom auth is enabled",
        ),
        // The header name comes from the TriggerAuthentication: the message does not quote it.
        (
            auth(
                "custom",
                &[
                    ("customAuthHeader", "X-Secret: s3cr3t"),
                    ("customAuthValue", "v"),
                ],
            ),
            "customAuthHeader is not a valid header name",
        ),
        (
            auth("basic,bearer", &[("username", "u"), ("bearerToken", "t")]),
            "parameter \"authModes,authMode\" value \"basic,bearer\" must contain only one of [bearer basic oauth]",
        ),
        (
            auth("kerberos", &[]),
            "parameter \"authModes,authMode\" value \"kerberos\" must be one of [apiKey basic tls bearer custom oauth]",
        ),
        (
            auth("oauth", &[]),
            "authModes \"oauth\" is not supported by the prometheus scaler",
        ),
        (
            auth("tls", &[("cert", "ceert"), ("key", "keey")]),
            "cert: no PEM certificate found",
        ),
    ];
    for (c, message) in &invalid {
        let err = build(c).expect_err(message);
        assert!(err.contains(message), "{err}");
        assert!(!err.contains("s3cr3t"), "{err}");
    }
}

#[test]
fn query_url_is_keda_s() {
    let special = "sum(rate(test_metric{label=\"value & test=1\"}[5m]))";
    let c = with(&[
        ("serverAddress", "http://prom.example:9090/prometheus/"),
        ("query", special),
        ("namespace", "team-a"),
        (
            "queryParameters",
            "param1=value with spaces & symbols,param2=测试",
        ),
    ]);
    let url = build(&c).expect("valid").query_url("2026-01-02T03:04:05Z");
    assert_eq!(url.path(), "/prometheus/api/v1/query");
    let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    assert_eq!(
        pairs,
        [
            ("query", special),
            ("time", "2026-01-02T03:04:05Z"),
            ("namespace", "team-a"),
            ("param1", "value with spaces & symbols"),
            ("param2", "测试"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
    );
    // KEDA's trailing-slash cases.
    for (address, path) in [
        ("http://h:9090", "/api/v1/query"),
        ("http://h:9090/", "/api/v1/query"),
        ("http://h:9090/prometheus", "/prometheus/api/v1/query"),
        ("http://h:9090/prometheus/", "/prometheus/api/v1/query"),
    ] {
        let c = with(&[("serverAddress", address)]);
        assert_eq!(
            build(&c).expect("valid").query_url("t").path(),
            path,
            "{address}"
        );
    }
}

#[test]
fn headers_carry_custom_values_and_credentials() {
    let c = with(&[("customHeaders", "X-Client-Id=cid,X-Tenant-Id=tid")])
        .with_metadata("authModes", "basic")
        .with_auth_param("username", "kedge")
        .with_auth_param("password", "s3cr3t");
    let scaler = build(&c).expect("valid");
    assert_eq!(scaler.headers["x-client-id"], "cid");
    assert_eq!(scaler.headers["x-tenant-id"], "tid");
    // base64("kedge:s3cr3t")
    assert_eq!(scaler.headers[AUTHORIZATION], "Basic a2VkZ2U6czNjcjN0");
    assert!(scaler.headers[AUTHORIZATION].is_sensitive());
    assert!(!format!("{scaler:?}").contains("s3cr3t"));

    let bearer = with(&[("authModes", "bearer")]).with_auth_param("bearerToken", "tok");
    assert_eq!(
        build(&bearer).expect("valid").headers[AUTHORIZATION],
        "Bearer tok"
    );

    let custom = with(&[
        ("authModes", "custom"),
        ("customHeaders", "X-Auth=overridden"),
    ])
    .with_auth_param("customAuthHeader", "X-Auth")
    .with_auth_param("customAuthValue", "v");
    let headers = build(&custom).expect("valid").headers;
    assert_eq!(headers.get_all("x-auth").iter().collect::<Vec<_>>(), ["v"]);
}

#[test]
fn per_trigger_timeout_overrides_the_default() {
    assert_eq!(
        build(&with(&[("timeout", "1500")])).expect("valid").timeout,
        Duration::from_millis(1500)
    );
    assert_eq!(
        build(&with(&[])).expect("valid").timeout,
        scaler_core::DEFAULT_TIMEOUT
    );
}

#[test]
fn registered() {
    assert!(crate::registry().factory("prometheus").is_some());
}

fn deny_loopback() -> AddressGuard {
    AddressGuard::parse("127.0.0.0/8,::1/128").unwrap()
}

#[test]
fn a_server_address_in_a_denied_range_fails_the_build_naming_the_parameter() {
    for address in [
        "http://127.0.0.1:9090",
        "http://127.1.2.3",
        "http://[::1]:9090",
        "http://[::ffff:127.0.0.1]:9090",
        "http://0.0.0.0:9090",
        // The URL parser reads other spellings of an IPv4 address as that address.
        "http://2130706433:9090",
        "http://localhost:9090",
    ] {
        let cfg = with(&[("serverAddress", address)]).with_address_guard(deny_loopback());
        let err = build(&cfg).expect_err(address);
        assert!(
            err.starts_with(
                "triggers[0] (prometheus): parameter \"serverAddress\": its host resolves into "
            ),
            "{address}: {err}"
        );
        assert!(
            !err.contains(address),
            "{address}: the value is echoed: {err}"
        );
    }
    // Another range, and no guard at all, leave it alone.
    let other = AddressGuard::parse("169.254.169.254/32").unwrap();
    assert!(build(&with(&[]).with_address_guard(other)).is_ok());
    assert!(build(&with(&[])).is_ok());
}

#[tokio::test]
async fn a_name_that_resolves_into_a_denied_range_at_query_time_is_not_queried() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let address = format!("http://localhost:{port}");
    let mut scaler = PrometheusScaler::new(&with(&[("serverAddress", address.as_str())]))
        .expect("built without a guard");
    // As if the name had resolved to an allowed address when the trigger was built and
    // resolves into the denied range now (DNS rebinding): the client is made at the first
    // query, with the guard.
    scaler.guard = deny_loopback();
    let err = scaler.query_value().await.expect_err("denied").to_string();
    assert!(
        err.contains("parameter \"serverAddress\": its host resolves into"),
        "{err}"
    );
    let accepted = tokio::time::timeout(Duration::from_millis(300), listener.accept()).await;
    assert!(accepted.is_err(), "the server was connected to");
}
