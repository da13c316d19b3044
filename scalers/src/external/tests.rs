#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

fn cfg(trigger_type: &str, pairs: &[(&str, &str)]) -> ScalerConfig {
    pairs
        .iter()
        .fold(ScalerConfig::new(trigger_type, 0), |c, (k, v)| {
            c.with_metadata(*k, *v)
        })
}

fn build(cfg: &ScalerConfig) -> Result<ExternalScaler, String> {
    ExternalScaler::new(cfg).map_err(|e| e.to_string())
}

/// KEDA's testExternalScalerMetadata.
#[test]
fn keda_metadata_cases() {
    assert_eq!(
        build(&cfg("external", &[])).unwrap_err(),
        "triggers[0] (external): missing required parameter \"scalerAddress\" in [triggerMetadata]"
    );
    let ok = cfg(
        "external",
        &[
            ("scalerAddress", "myservice"),
            ("test1", "7"),
            ("test2", "SAMPLE_CREDS"),
        ],
    );
    let scaler = build(&ok).expect("valid");
    assert_eq!(scaler.inner.key.authority, "myservice:443");
    assert!(!scaler.inner.key.tls);
    assert!(
        build(&cfg(
            "external-push",
            &[("test1", "1"), ("test2", "SAMPLE_CREDS")]
        ))
        .is_err()
    );
}

#[test]
fn metadata_reaches_the_server_as_keda_sends_it() {
    let mut c = cfg(
        "external-push",
        &[
            ("scalerAddress", "scaler.ns:9090"),
            ("queue", " jobs "),
            ("tokenFromEnv", "TOKEN"),
            ("missingFromEnv", "NOPE"),
        ],
    )
    .with_resolved_env("TOKEN", "t0k3n");
    c.scaled_object = "worker".to_owned();
    c.namespace = "billing".to_owned();
    let scaler = build(&c).expect("valid");
    let r = scaler.scaled_object_ref();
    assert_eq!(
        (r.name.as_str(), r.namespace.as_str()),
        ("worker", "billing")
    );
    let mut entries: Vec<(&str, &str)> = r
        .scaler_metadata
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    entries.sort();
    assert_eq!(
        entries,
        [
            ("queue", " jobs "),
            ("scalerAddress", "scaler.ns:9090"),
            ("tokenFromEnv", "t0k3n"),
        ]
    );
}

#[test]
fn tls_is_used_as_in_keda() {
    let (cert, key) = {
        let c = rcgen::generate_simple_self_signed(vec!["scaler".to_owned()]).expect("cert");
        (c.cert.pem(), c.signing_key.serialize_pem())
    };
    let base = cfg("external", &[("scalerAddress", "scaler:9090")]);
    let uses_tls = |c: &ScalerConfig| build(c).expect("valid").inner.key.tls;
    assert!(!uses_tls(&base));
    assert!(!uses_tls(&base.clone().with_metadata("unsafeSsl", "true")));
    assert!(uses_tls(&base.clone().with_metadata("enableTLS", "true")));
    assert!(uses_tls(
        &base.clone().with_auth_param("caCert", cert.as_str())
    ));
    assert!(uses_tls(
        &base
            .clone()
            .with_auth_param("tlsClientCert", cert.as_str())
            .with_auth_param("tlsClientKey", key.as_str())
    ));
    assert_eq!(
        build(&base.clone().with_auth_param("tlsClientCert", cert.as_str())).unwrap_err(),
        "triggers[0] (external): tlsClientCert and tlsClientKey must be given together"
    );
    let err = build(&base.clone().with_auth_param("caCert", "not a cert")).unwrap_err();
    assert!(err.contains("caCert: no PEM certificate found"), "{err}");
    let err = build(&cfg("external", &[("scalerAddress", "http://scaler:80")])).unwrap_err();
    assert_eq!(
        err,
        "triggers[0] (external): scalerAddress \"http://scaler:80\" is not a host:port address"
    );
    assert!(
        build(&base.with_metadata("enableTLS", "yes"))
            .unwrap_err()
            .contains("unable to set param \"enableTLS\" value \"yes\"")
    );
}

#[test]
fn only_external_push_pushes() {
    let poll_only = build(&cfg("external", &[("scalerAddress", "s:1")])).expect("valid");
    assert!(poll_only.activity_changes().is_none());
    let push = build(&cfg("external-push", &[("scalerAddress", "s:1")])).expect("valid");
    assert!(push.activity_changes().is_some());
}

#[tokio::test]
async fn metric_names_need_their_index() {
    let scaler = build(&cfg("external", &[("scalerAddress", "127.0.0.1:1")])).expect("valid");
    let err = scaler
        .metrics_and_activity("s1-queue")
        .await
        .expect_err("wrong index")
        .to_string();
    assert_eq!(
        err,
        "triggers[0] (external): metric name s1-queue does not contain index prefix s0-"
    );
}

#[test]
fn every_metadata_key_is_accepted() {
    let registry = crate::registry();
    for trigger_type in ["external", "external-push"] {
        let factory = registry.factory(trigger_type).expect("registered");
        assert!(factory.params().is_empty());
    }
    assert_eq!(float_or_int(0.0, 7), 7.0);
    assert_eq!(float_or_int(2.5, 7), 2.5);
}

fn deny_loopback() -> scaler_core::AddressGuard {
    scaler_core::AddressGuard::parse("127.0.0.0/8,::1/128").unwrap()
}

#[test]
fn a_scaler_address_in_a_denied_range_fails_the_build_naming_the_parameter() {
    for address in ["127.0.0.1:50051", "[::1]:50051", "dns:///localhost:6000"] {
        let c = cfg("external", &[("scalerAddress", address)]).with_address_guard(deny_loopback());
        let err = build(&c).expect_err(address);
        assert!(
            err.starts_with(
                "triggers[0] (external): parameter \"scalerAddress\": its host resolves into "
            ),
            "{address}: {err}"
        );
    }
    assert!(build(&cfg("external", &[("scalerAddress", "127.0.0.1:50051")])).is_ok());
}

#[tokio::test]
async fn the_channel_connects_only_to_addresses_outside_the_denied_ranges() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let address = format!("localhost:{port}");
    let mut scaler = build(&cfg("external", &[("scalerAddress", address.as_str())])).unwrap();
    // The name resolved elsewhere when the trigger was built and into the range now.
    Arc::get_mut(&mut scaler.inner).unwrap().key.guard = deny_loopback();
    let err = scaler.metric_specs().await.expect_err("denied").to_string();
    assert!(err.contains("its host resolves into"), "{err}");
    let accepted =
        tokio::time::timeout(std::time::Duration::from_millis(300), listener.accept()).await;
    assert!(accepted.is_err(), "the scaler was connected to");
}
