//! The file-count scaler, through the registry as kedge uses it, on real directories.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use custom_scaler::FileCountFactory;
use scaler_core::{MetricTargetType, Registry, ScalerConfig};

/// A fresh, empty directory for one test.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kedge-file-count-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn registry() -> Registry {
    let mut registry = Registry::new();
    registry.register(FileCountFactory);
    registry
}

fn trigger(index: usize, pairs: &[(&str, &str)]) -> ScalerConfig {
    pairs
        .iter()
        .fold(ScalerConfig::new("file-count", index), |c, (k, v)| {
            c.with_metadata(*k, *v)
        })
}

#[tokio::test]
async fn counts_matching_files_and_activates_above_the_threshold() {
    let dir = temp_dir("count");
    let path = dir.to_str().unwrap();
    let scaler = registry()
        .build(&trigger(
            1,
            &[
                ("path", path),
                ("suffix", ".json"),
                ("targetFileCount", "2"),
                ("activationTargetFileCount", "1"),
            ],
        ))
        .expect("valid trigger");
    let specs = scaler.metric_specs().await.unwrap();
    assert!(
        specs[0].name.starts_with("s1-file-count-"),
        "{}",
        specs[0].name
    );
    assert_eq!(specs[0].target.value.to_string(), "2");
    assert_eq!(specs[0].target.target_type, MetricTargetType::AverageValue);

    let poll = || scaler.metrics_and_activity(&specs[0].name);
    let empty = poll().await.unwrap();
    assert_eq!(
        (empty.metrics[0].value.to_string().as_str(), empty.active),
        ("0", false)
    );

    std::fs::write(dir.join("a.json"), "{}").unwrap();
    std::fs::write(dir.join("notes.txt"), "not counted").unwrap();
    std::fs::create_dir(dir.join("sub.json")).unwrap(); // a directory: not counted
    let one = poll().await.unwrap();
    assert_eq!(
        (one.metrics[0].value.to_string().as_str(), one.active),
        ("1", false)
    );

    for i in 0..4 {
        std::fs::write(dir.join(format!("job-{i}.json")), "{}").unwrap();
    }
    let five = poll().await.unwrap();
    assert_eq!(
        (five.metrics[0].value.to_string().as_str(), five.active),
        ("5", true)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn path_from_the_workload_env_and_a_missing_directory() {
    let dir = temp_dir("env");
    let cfg = trigger(0, &[("pathFromEnv", "INBOX_DIR")])
        .with_resolved_env("INBOX_DIR", dir.to_str().unwrap());
    let scaler = registry().build(&cfg).expect("valid trigger");
    let name = scaler.metric_specs().await.unwrap()[0].name.clone();
    assert_eq!(
        scaler.metrics_and_activity(&name).await.unwrap().metrics[0]
            .value
            .to_string(),
        "0"
    );

    std::fs::remove_dir_all(&dir).unwrap();
    let err = scaler
        .metrics_and_activity(&name)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(&format!(
            "triggers[0] (file-count): reading {}: ",
            dir.display()
        )),
        "{err}"
    );
}

#[test]
fn invalid_triggers_say_what_to_fix() {
    let err = |pairs: &[(&str, &str)]| {
        registry()
            .build(&trigger(2, pairs))
            .err()
            .unwrap()
            .to_string()
    };
    assert_eq!(
        err(&[]),
        "triggers[2] (file-count): missing required parameter \"path\" in [triggerMetadata resolvedEnv]"
    );
    assert_eq!(
        err(&[("path", "inbox"), ("targetFileCount", "0")]),
        "triggers[2] (file-count): parameter \"targetFileCount\" value \"0\" must be at least 1"
    );
    assert_eq!(
        err(&[("path", "inbox")]),
        "triggers[2] (file-count): path \"inbox\" must be absolute"
    );
    assert_eq!(
        err(&[("path", "/inbox"), ("activationTargetFileCount", "some")]),
        "triggers[2] (file-count): unable to set param \"activationTargetFileCount\" value \"some\": \
         expected an integer between -9223372036854775808 and 9223372036854775807"
    );
    let utilization = trigger(0, &[("path", "/inbox")]).with_metric_type("Utilization");
    assert!(
        registry()
            .build(&utilization)
            .err()
            .unwrap()
            .to_string()
            .contains("'Utilization'")
    );
}
