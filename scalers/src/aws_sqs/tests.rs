//! The aws-sqs-queue parameter table against KEDA's own test cases
//! (`pkg/scalers/aws_sqs_queue_scaler_test.go`), metric names and error messages.

use super::*;

const PROPER_URL: &str = "https://sqs.eu-west-1.amazonaws.com/account_id/DeleteArtifactQ";
const IMPROPER_URL_1: &str = "https://sqs.eu-west-1.amazonaws.com/account_id";
const IMPROPER_URL_2: &str = "https://sqs.eu-west-1.amazonaws.com";
const SIMPLE_URL: &str = "my-queue";
const KEYS: &[(&str, &str)] = &[("awsAccessKeyId", "none"), ("awsSecretAccessKey", "none")];

type Pairs = &'static [(&'static str, &'static str)];

fn cfg(
    index: usize,
    metadata: &[(&str, &str)],
    auth: &[(&str, &str)],
    env: &[(&str, &str)],
) -> ScalerConfig {
    let mut c = ScalerConfig::new("aws-sqs-queue", index);
    for (k, v) in metadata {
        c = c.with_metadata(*k, *v);
    }
    for (k, v) in auth {
        c = c.with_auth_param(*k, *v);
    }
    for (k, v) in env {
        c = c.with_resolved_env(*k, *v);
    }
    c
}

fn build(
    metadata: &[(&str, &str)],
    auth: &[(&str, &str)],
    env: &[(&str, &str)],
) -> Result<AwsSqsScaler, String> {
    AwsSqsScaler::new(&AwsSqsFactory::new(), &cfg(0, metadata, auth, env))
        .map_err(|e| e.to_string())
}

/// KEDA's `testAWSSQSMetadata`: (metadata, auth params, resolved env, is_error, comment).
/// KEDA's cases with `podIdentity.provider: aws` have no credentials in the auth params; they
/// run here with that pod identity, which makes the default credential chain stand in.
const KEDA_METADATA: &[(Pairs, Pairs, Pairs, bool, &str)] = &[
    (&[], KEYS, &[], true, "metadata empty"),
    (
        &[
            ("queueURL", PROPER_URL),
            ("queueLength", "1"),
            ("awsRegion", "eu-west-1"),
        ],
        KEYS,
        &[],
        false,
        "properly formed queue and region",
    ),
    (
        &[
            ("queueURL", PROPER_URL),
            ("queueLength", "1"),
            ("awsRegion", "eu-west-1"),
            ("awsEndpoint", "http://localhost:4566"),
        ],
        KEYS,
        &[],
        false,
        "with custom endpoint",
    ),
    (
        &[
            ("queueURL", IMPROPER_URL_1),
            ("queueLength", "1"),
            ("awsRegion", "eu-west-1"),
        ],
        KEYS,
        &[],
        true,
        "missing queueName",
    ),
    (
        &[
            ("queueURL", IMPROPER_URL_2),
            ("queueLength", "1"),
            ("awsRegion", "eu-west-1"),
        ],
        KEYS,
        &[],
        true,
        "missing path",
    ),
    (
        &[
            ("queueURL", PROPER_URL),
            ("queueLength", "1"),
            ("awsRegion", ""),
        ],
        KEYS,
        &[],
        true,
        "empty region",
    ),
    (
        &[
            ("queueURL", PROPER_URL),
            ("queueLength", "a"),
            ("awsRegion", "eu-west-1"),
        ],
        KEYS,
        &[],
        true,
        "invalid queueLength",
    ),
    (
        &[
            ("queueURL", PROPER_URL),
            ("queueLength", "1"),
            ("activationQueueLength", "1"),
            ("awsRegion", "eu-west-1"),
        ],
        KEYS,
        &[],
        false,
        "integer activationQueueLength",
    ),
    (
        &[
            ("queueURL", PROPER_URL),
            ("queueLength", "1"),
            ("activationQueueLength", "a"),
            ("awsRegion", "eu-west-1"),
        ],
        KEYS,
        &[],
        true,
        "invalid activationQueueLength",
    ),
    (
        &[
            ("queueURL", PROPER_URL),
            ("queueLength", "1"),
            ("awsRegion", "eu-west-1"),
        ],
        &[
            ("awsAccessKeyId", "none"),
            ("awsSecretAccessKey", "none"),
            ("awsSessionToken", "none"),
        ],
        &[],
        false,
        "temporary credentials",
    ),
    (
        &[
            ("queueURL", PROPER_URL),
            ("queueLength", "1"),
            ("awsRegion", "eu-west-1"),
        ],
        &[("awsAccessKeyId", ""), ("awsSecretAccessKey", "none")],
        &[],
        true,
        "missing access key id",
    ),
    (
        &[
            ("queueURL", PROPER_URL),
            ("queueLength", "1"),
            ("awsRegion", "eu-west-1"),
        ],
        &[("awsAccessKeyId", "none"), ("awsSecretAccessKey", "")],
        &[],
        true,
        "missing secret access key",
    ),
    (
        &[
            ("queueURL", PROPER_URL),
            ("queueLength", "1"),
            ("awsRegion", "eu-west-1"),
        ],
        &[
            ("awsAccessKeyId", ""),
            ("awsSecretAccessKey", "none"),
            ("awsSessionToken", "none"),
        ],
        &[],
        true,
        "temporary, missing access key id",
    ),
    (
        &[
            ("queueURL", PROPER_URL),
            ("queueLength", "1"),
            ("awsRegion", "eu-west-1"),
        ],
        &[
            ("awsAccessKeyId", "none"),
            ("awsSecretAccessKey", ""),
            ("awsSessionToken", "none"),
        ],
        &[],
        true,
        "temporary, missing secret access key",
    ),
    (
        &[
            ("queueURL", PROPER_URL),
            ("queueLength", "1"),
            ("awsRegion", "eu-west-1"),
        ],
        &[("awsRoleArn", "none")],
        &[],
        false,
        "role from pod identity",
    ),
    (
        &[
            ("queueURL", PROPER_URL),
            ("queueLength", "1"),
            ("awsRegion", "eu-west-1"),
        ],
        &[],
        &[],
        false,
        "pod identity without role",
    ),
    (
        &[
            ("queueURL", PROPER_URL),
            ("queueLength", "1"),
            ("awsRegion", "eu-west-1"),
            ("identityOwner", "operator"),
        ],
        &[("awsAccessKeyId", ""), ("awsSecretAccessKey", "")],
        &[],
        false,
        "operator identity",
    ),
    (
        &[
            ("queueURL", PROPER_URL),
            ("queueLength", "1"),
            ("awsRegion", "eu-west-1"),
            ("identityOwner", "operator"),
        ],
        &[
            ("awsRoleArn", "none"),
            ("awsAccessKeyId", ""),
            ("awsSecretAccessKey", ""),
        ],
        &[],
        false,
        "operator identity, deprecated role path",
    ),
    (
        &[
            ("queueURL", SIMPLE_URL),
            ("queueLength", "1"),
            ("awsRegion", "eu-west-1"),
        ],
        KEYS,
        &[],
        false,
        "simple queue name",
    ),
    (
        &[
            ("queueURL", SIMPLE_URL),
            ("queueLength", "1"),
            ("awsRegion", "eu-west-1"),
            ("scaleOnInFlight", "false"),
        ],
        KEYS,
        &[],
        false,
        "scaleOnInFlight false",
    ),
    (
        &[
            ("queueURL", SIMPLE_URL),
            ("queueLength", "1"),
            ("awsRegion", "eu-west-1"),
            ("scaleOnInFlight", "true"),
        ],
        KEYS,
        &[],
        false,
        "scaleOnInFlight true",
    ),
    (
        &[
            ("queueURLFromEnv", "QUEUE_URL"),
            ("queueLength", "1"),
            ("awsRegion", "eu-west-1"),
        ],
        KEYS,
        &[("QUEUE_URL", PROPER_URL)],
        false,
        "queue URL from env",
    ),
    (
        &[("queueLength", "1"), ("awsRegion", "eu-west-1")],
        KEYS,
        &[],
        true,
        "no queueURL nor queueURLFromEnv",
    ),
    (
        &[
            ("queueURLFromEnv", "QUEUE_URL"),
            ("queueLength", "1"),
            ("awsRegion", "eu-west-1"),
        ],
        KEYS,
        &[("QUEUE_URL", "")],
        true,
        "empty QUEUE_URL",
    ),
    (
        &[
            ("queueURLFromEnv", "MISSING_ENV_VAR"),
            ("awsRegion", "eu-west-1"),
        ],
        KEYS,
        &[("QUEUE_URL", PROPER_URL)],
        true,
        "missing env var",
    ),
];

#[test]
fn keda_metadata_cases() {
    for (metadata, auth, env, is_error, comment) in KEDA_METADATA {
        let got =
            AwsSqsParams::from_config(&cfg(0, metadata, auth, env)).map_err(|e| e.to_string());
        assert_eq!(got.is_err(), *is_error, "{comment}: {got:?}");
        let mut config = cfg(0, metadata, auth, env);
        if auth.is_empty() {
            config = config.with_pod_identity("aws");
        }
        let built = AwsSqsScaler::new(&AwsSqsFactory::new(), &config);
        assert_eq!(built.is_err(), *is_error, "{comment}");
    }
}

#[test]
fn no_credentials_and_no_pod_identity_is_an_error() {
    // A tenant must not get kedge's own AWS identity by leaving the credentials out.
    let metadata = [("queueURL", PROPER_URL), ("awsRegion", "eu-west-1")];
    let Err(e) = build(&metadata, &[], &[]) else {
        panic!("no credentials and no pod identity must not build");
    };
    assert!(
        e.contains("awsAccessKeyID not found") && e.contains("identityOwner: operator"),
        "{e}"
    );
    let operator = [
        ("queueURL", PROPER_URL),
        ("awsRegion", "eu-west-1"),
        ("identityOwner", "operator"),
    ];
    assert!(build(&operator, &[], &[]).is_ok());
    let pod = cfg(0, &metadata, &[], &[]).with_pod_identity("aws");
    assert!(AwsSqsScaler::new(&AwsSqsFactory::new(), &pod).is_ok());
}

#[tokio::test]
async fn keda_metric_names() {
    let factory = AwsSqsFactory::new();
    for (index, name) in [
        (0, "s0-aws-sqs-DeleteArtifactQ"),
        (1, "s1-aws-sqs-DeleteArtifactQ"),
    ] {
        let scaler =
            AwsSqsScaler::new(&factory, &cfg(index, KEDA_METADATA[1].0, KEYS, &[])).expect("valid");
        let specs = scaler.metric_specs().await.expect("specs");
        assert_eq!(specs.len(), 1);
        assert_eq!(specs[0].name, name);
        assert_eq!(specs[0].target.value.to_string(), "1");
    }
    // Names are normalised; the default target is 5.
    let scaler = AwsSqsScaler::new(
        &factory,
        &cfg(
            0,
            &[
                (
                    "queueURL",
                    "https://sqs.eu-west-1.amazonaws.com/1/jobs.fifo",
                ),
                ("awsRegion", "eu-west-1"),
            ],
            &[],
            &[],
        )
        .with_pod_identity("aws"),
    )
    .expect("valid");
    let spec = &scaler.metric_specs().await.expect("specs")[0];
    assert_eq!(spec.name, "s0-aws-sqs-jobs-fifo");
    assert_eq!(spec.target.value.to_string(), "5");
}

#[test]
fn defaults_and_credentials() {
    let p = AwsSqsParams::from_config(&cfg(
        0,
        &[("queueURL", PROPER_URL), ("awsRegion", "eu-west-1")],
        &[],
        &[],
    ))
    .expect("valid");
    assert_eq!((p.queue_length, p.activation_queue_length), (5, 0));
    assert!(p.scale_on_in_flight && !p.scale_on_delayed);
    // No credentials: only a pod identity (or identityOwner: operator) may stand in.
    assert_eq!(p.auth(Some("aws")), Ok(Auth::DefaultChain));
    assert_eq!(p.auth(Some("aws-eks")), Ok(Auth::DefaultChain));
    for none in [None, Some("azure-workload")] {
        let e = p.auth(none).expect_err("no credentials");
        assert!(e.starts_with("awsAccessKeyID not found"), "{e}");
    }

    let keys = AwsSqsParams::from_config(&cfg(
        0,
        &[("queueURL", PROPER_URL), ("awsRegion", "eu-west-1")],
        &[
            ("awsAccessKeyID", "AKID"),
            ("awsSecretAccessKey", "s"),
            ("awsSessionToken", "t"),
        ],
        &[],
    ))
    .expect("valid");
    assert!(matches!(
        keys.auth(None),
        Ok(Auth::Keys {
            session_token: Some(_),
            ..
        })
    ));

    // Keys may also come from the target's env, through <name>FromEnv, as in KEDA.
    let from_env = AwsSqsParams::from_config(&cfg(
        0,
        &[
            ("queueURL", PROPER_URL),
            ("awsRegion", "eu-west-1"),
            ("awsAccessKeyIDFromEnv", "ID"),
            ("awsSecretAccessKeyFromEnv", "SECRET"),
        ],
        &[],
        &[("ID", "AKID"), ("SECRET", "s")],
    ))
    .expect("valid");
    assert!(matches!(
        from_env.auth(None),
        Ok(Auth::Keys {
            session_token: None,
            ..
        })
    ));

    // A role wins over keys; identityOwner: operator ignores both.
    let role = AwsSqsParams::from_config(&cfg(
        0,
        &[("queueURL", PROPER_URL), ("awsRegion", "eu-west-1")],
        &[
            ("awsRoleArn", "arn:aws:iam::1:role/r"),
            ("awsAccessKeyID", "a"),
            ("awsSecretAccessKey", "b"),
        ],
        &[],
    ))
    .expect("valid");
    assert_eq!(
        role.auth(None),
        Ok(Auth::AssumeRole("arn:aws:iam::1:role/r".to_owned()))
    );
    // The region may come from the TriggerAuthentication.
    assert!(
        AwsSqsParams::from_config(&cfg(
            0,
            &[("queueURL", PROPER_URL)],
            &[("awsRegion", "eu-west-1")],
            &[]
        ))
        .is_ok()
    );
}

#[test]
fn keda_error_messages() {
    let t = "triggers[0] (aws-sqs-queue): ";
    assert_eq!(
        build(&[], &[], &[]).err(),
        Some(format!(
            "{t}missing required parameter \"queueURL\" in [triggerMetadata resolvedEnv]; \
             missing required parameter \"awsRegion\" in [triggerMetadata authParams]"
        ))
    );
    let base = [("queueURL", PROPER_URL), ("awsRegion", "eu-west-1")];
    assert_eq!(
        build(&base, &[("awsAccessKeyID", "a")], &[]).err(),
        Some(format!("{t}awsSecretAccessKey not found"))
    );
    assert_eq!(
        build(&base, &[("awsSecretAccessKey", "s")], &[]).err(),
        Some(format!("{t}awsAccessKeyID not found"))
    );
    assert_eq!(
        build(
            &[("queueURL", IMPROPER_URL_1), ("awsRegion", "eu-west-1")],
            &[],
            &[]
        )
        .err(),
        Some(format!("{t}cannot get queueName from queueURL"))
    );
    let mut bad_owner = base.to_vec();
    bad_owner.push(("identityOwner", "Operator"));
    assert_eq!(
        build(&bad_owner, &[], &[]).err(),
        Some(format!(
            "{t}identityOwner must be either 'pod' or 'operator', got: Operator"
        ))
    );
    let mut bad_len = base.to_vec();
    bad_len.push(("queueLength", "1.5"));
    assert_eq!(
        build(&bad_len, &[], &[]).err(),
        Some(format!(
            "{t}unable to set param \"queueLength\" value \"1.5\": expected an integer between -9223372036854775808 and 9223372036854775807"
        ))
    );
}

#[test]
fn secrets_stay_out_of_debug_output() {
    let scaler = build(
        &[("queueURL", PROPER_URL), ("awsRegion", "eu-west-1")],
        &[
            ("awsAccessKeyID", "AKIAEXAMPLE"),
            ("awsSecretAccessKey", "wJalrXUtnFEMI"),
            ("awsSessionToken", "FwoGZXIvYXdz"),
        ],
        &[],
    )
    .expect("valid");
    let printed = format!("{scaler:?}");
    for secret in ["AKIAEXAMPLE", "wJalrXUtnFEMI", "FwoGZXIvYXdz"] {
        assert!(!printed.contains(secret), "{printed}");
    }
}

#[test]
fn registry_builds_aws_sqs_queue() {
    let registry = crate::registry();
    assert!(
        registry
            .build(
                &cfg(
                    0,
                    &[("queueURL", PROPER_URL), ("awsRegion", "eu-west-1")],
                    &[],
                    &[]
                )
                .with_pod_identity("aws")
            )
            .is_ok()
    );
}

#[test]
fn an_endpoint_in_a_denied_range_fails_the_build_naming_the_parameter() {
    let guard = AddressGuard::parse("169.254.169.254/32,127.0.0.0/8,::1/128").expect("ranges");
    for endpoint in ["http://169.254.169.254", "http://localhost:4566"] {
        let c = cfg(
            0,
            &[
                ("queueURL", PROPER_URL),
                ("awsRegion", "eu-west-1"),
                ("awsEndpoint", endpoint),
            ],
            KEYS,
            &[],
        )
        .with_address_guard(guard.clone());
        let err = AwsSqsScaler::new(&AwsSqsFactory::new(), &c)
            .map(|_| ())
            .expect_err(endpoint)
            .to_string();
        assert!(
            err.starts_with(
                "triggers[0] (aws-sqs-queue): parameter \"awsEndpoint\": its host resolves into "
            ),
            "{endpoint}: {err}"
        );
    }
    // The queue URL only names the queue: AWS's endpoint for the region is asked.
    let c = cfg(
        0,
        &[
            ("queueURL", "http://127.0.0.1:5055/123456789012/jobs"),
            ("awsRegion", "eu-west-1"),
        ],
        KEYS,
        &[],
    )
    .with_address_guard(guard);
    assert!(AwsSqsScaler::new(&AwsSqsFactory::new(), &c).is_ok());
}
