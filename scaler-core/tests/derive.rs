//! The `ScalerParams` derive, driven through its public behaviour.

use std::collections::BTreeMap;
use std::time::Duration;

use scaler_core::{ScalerConfig, ScalerParams, Secret, Source};

#[derive(ScalerParams, Debug, PartialEq)]
#[params(validate = "Self::check")]
struct KitchenSink {
    /// Broker address.
    #[param(from(metadata, env))]
    bootstrap_servers: Vec<String>,
    #[param(name = "value", alias = "queueLength", default = 20)]
    target: f64,
    #[param(optional)]
    allow_idle_consumers: bool,
    partition_limitation: Option<Vec<i32>>,
    #[param(
        from(auth, metadata),
        one_of("plaintext", "scram_sha256"),
        default = "plaintext"
    )]
    sasl: String,
    #[param(from(auth))]
    password: Option<Secret>,
    #[param(default = "5s")]
    timeout: Duration,
    #[param(optional, separator = ";")]
    custom_headers: BTreeMap<String, String>,
    #[param(default = -1, min = -1, max = 100)]
    r#limit: i64,
    #[param(skip)]
    trigger_index: usize,
    /// An alias alone keeps the field's own name first.
    #[param(optional, alias = "legacyMode")]
    mode: String,
}

impl KitchenSink {
    fn check(&self) -> Result<(), String> {
        if self.allow_idle_consumers && self.partition_limitation.is_some() {
            return Err("allowIdleConsumers and partitionLimitation cannot be combined".into());
        }
        Ok(())
    }
}

fn base() -> ScalerConfig {
    ScalerConfig::new("kafka", 3).with_metadata("bootstrapServers", "a:9092, b:9092")
}

#[test]
fn defaults_names_and_types() {
    let p = KitchenSink::from_config(&base()).expect("valid");
    assert_eq!(
        p,
        KitchenSink {
            bootstrap_servers: vec!["a:9092".into(), "b:9092".into()],
            target: 20.0,
            allow_idle_consumers: false,
            partition_limitation: None,
            sasl: "plaintext".into(),
            password: None,
            timeout: Duration::from_secs(5),
            custom_headers: BTreeMap::new(),
            limit: -1,
            trigger_index: 0,
            mode: String::new(),
        }
    );
}

#[test]
fn written_values_aliases_and_sources() {
    let cfg = ScalerConfig::new("kafka", 0)
        .with_metadata("bootstrapServersFromEnv", "BROKERS")
        .with_resolved_env("BROKERS", "k:9092")
        .with_metadata("queueLength", "7.5")
        .with_metadata("partitionLimitation", "1,2")
        .with_metadata("sasl", "ignored-because-auth-wins")
        .with_auth_param("sasl", "scram_sha256")
        .with_auth_param("password", "pw")
        .with_metadata("customHeaders", "A=1;B=2")
        .with_metadata("limit", "100");
    let p = KitchenSink::from_config(&cfg).expect("valid");
    assert_eq!(p.bootstrap_servers, vec!["k:9092".to_string()]);
    assert_eq!(p.target, 7.5);
    assert_eq!(p.partition_limitation, Some(vec![1, 2]));
    assert_eq!(p.sasl, "scram_sha256");
    assert_eq!(p.password.as_ref().map(Secret::expose), Some("pw"));
    assert_eq!(p.custom_headers.len(), 2);
    assert_eq!(p.limit, 100);
}

#[test]
fn every_problem_is_reported_with_the_trigger() {
    let cfg = ScalerConfig::new("kafka", 1)
        .with_metadata("allowIdleConsumers", "maybe")
        .with_metadata("limit", "101")
        .with_auth_param("sasl", "gssapi");
    let err = KitchenSink::from_config(&cfg)
        .expect_err("invalid")
        .to_string();
    assert_eq!(
        err,
        "triggers[1] (kafka): missing required parameter \"bootstrapServers\" in [triggerMetadata resolvedEnv]; \
         unable to set param \"allowIdleConsumers\" value \"maybe\": expected a boolean (true or false); \
         parameter \"sasl\" (value from authParams not shown) must be one of [plaintext scram_sha256]; \
         parameter \"limit\" value \"101\" must be at most 100"
    );
}

#[test]
fn validate_hook_runs_after_fields() {
    let cfg = base()
        .with_metadata("allowIdleConsumers", "true")
        .with_metadata("partitionLimitation", "1");
    let err = KitchenSink::from_config(&cfg)
        .expect_err("invalid")
        .to_string();
    assert!(
        err.ends_with("allowIdleConsumers and partitionLimitation cannot be combined"),
        "{err}"
    );
}

#[test]
fn secrets_do_not_leak_through_debug() {
    let cfg = base().with_auth_param("password", "hunter2");
    let p = KitchenSink::from_config(&cfg).expect("valid");
    assert!(!format!("{p:?} {cfg:?}").contains("hunter2"));
}

#[test]
fn table_is_public_for_tools() {
    let names: Vec<&str> = KitchenSink::PARAMS.iter().map(|p| p.names[0]).collect();
    assert_eq!(
        names,
        [
            "bootstrapServers",
            "value",
            "allowIdleConsumers",
            "partitionLimitation",
            "sasl",
            "password",
            "timeout",
            "customHeaders",
            "limit",
            "mode"
        ]
    );
    assert_eq!(KitchenSink::PARAMS[0].doc, "Broker address.");
    assert_eq!(
        KitchenSink::PARAMS[0].order,
        [Source::TriggerMetadata, Source::ResolvedEnv]
    );
    assert_eq!(KitchenSink::PARAMS[1].names, ["value", "queueLength"]);
    assert_eq!(KitchenSink::PARAMS[9].names, ["mode", "legacyMode"]);
}

#[test]
fn unknown_metadata_keys_are_listed() {
    let cfg = base()
        .with_metadata("lagThreshhold", "5")
        .with_metadata("queueLength", "5")
        .with_metadata("timeoutFromEnv", "T");
    assert_eq!(
        KitchenSink::unknown_metadata_keys(&cfg),
        vec!["lagThreshhold".to_string()]
    );
}
