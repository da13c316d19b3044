//! The CRDs in `deploy/crds/` match the Rust types, and manifests written for KEDA deserialize
//! into those types and round-trip without losing or renaming a field.
//!
//! Regenerate the YAML with `KEDGE_UPDATE_CRDS=1 cargo test -p kedge --test crds`
//! (or `cargo run -p kedge -- crd --write deploy/crds`).
#![allow(clippy::unwrap_used)]

use std::fmt::Debug;
use std::path::{Path, PathBuf};

use kedge::crd::{
    self, AuthenticationRefKind, ClusterTriggerAuthentication, FallbackBehavior, IdentityOwner,
    MetricType, ModifierMetricType, PodIdentityProvider, ScaledObject, TriggerAuthentication,
};
use kedge::policy::conditions::{self, ConditionType};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

const REGENERATE: &str = "run `cargo run -p kedge -- crd --write deploy/crds` \
     (or `KEDGE_UPDATE_CRDS=1 cargo test -p kedge --test crds`)";

fn crd_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/crds")
}

#[test]
fn deploy_crds_are_up_to_date() {
    let dir = crd_dir();
    if std::env::var("KEDGE_UPDATE_CRDS").as_deref() == Ok("1") {
        crd::write_dir(&dir).unwrap();
    }
    let files = crd::files(&dir);
    let names: Vec<String> = files
        .iter()
        .map(|(p, _)| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "scaledobjects.keda.sh.yaml",
            "triggerauthentications.keda.sh.yaml",
            "clustertriggerauthentications.keda.sh.yaml",
        ]
    );
    for (path, want) in files {
        let got = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            got == want,
            "{} does not match the generated CRD; {REGENERATE}",
            path.display()
        );
    }
}

#[test]
fn crds_yaml_is_deterministic_and_parses_back() {
    let yaml = crd::crds_yaml();
    assert_eq!(yaml, crd::crds_yaml());
    assert_eq!(yaml.matches("\n---\n").count(), 2, "three documents");
    let docs: Vec<Value> = serde_saphyr::from_multiple(&yaml).unwrap();
    let want: Vec<Value> = crd::all()
        .iter()
        .map(|c| serde_json::to_value(c).unwrap())
        .collect();
    assert_eq!(docs, want);
}

fn crd_json(name: &str) -> Value {
    let crd = crd::all()
        .into_iter()
        .find(|c| c.metadata.name.as_deref() == Some(name))
        .unwrap();
    serde_json::to_value(crd).unwrap()
}

#[test]
fn scaledobject_crd_matches_keda() {
    let crd = crd_json("scaledobjects.keda.sh");
    let spec = &crd["spec"];
    assert_eq!(spec["group"], "keda.sh");
    assert_eq!(spec["scope"], "Namespaced");
    assert_eq!(spec["names"]["kind"], "ScaledObject");
    assert_eq!(spec["names"]["plural"], "scaledobjects");
    assert_eq!(spec["names"]["singular"], "scaledobject");
    assert_eq!(spec["names"]["shortNames"], json!(["so"]));
    let version = &spec["versions"][0];
    assert_eq!(version["name"], "v1alpha1");
    assert_eq!(version["served"], true);
    assert_eq!(version["storage"], true);
    assert_eq!(version["subresources"]["status"], json!({}));
    assert_eq!(
        version["additionalPrinterColumns"],
        json!([
            {"name": "ScaleTargetKind", "type": "string", "jsonPath": ".status.scaleTargetKind"},
            {"name": "ScaleTargetName", "type": "string", "jsonPath": ".spec.scaleTargetRef.name"},
            {"name": "Min", "type": "integer", "jsonPath": ".spec.minReplicaCount"},
            {"name": "Max", "type": "integer", "jsonPath": ".spec.maxReplicaCount"},
            {"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"},
            {"name": "Active", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Active\")].status"},
            {"name": "Fallback", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Fallback\")].status"},
            {"name": "Paused", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Paused\")].status"},
            {"name": "Triggers", "type": "string", "jsonPath": ".status.triggersTypes"},
            {"name": "Authentications", "type": "string", "jsonPath": ".status.authenticationsTypes"},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        ])
    );

    let schema = &version["schema"]["openAPIV3Schema"];
    let so = &schema["properties"]["spec"];
    assert_eq!(so["required"], json!(["scaleTargetRef", "triggers"]));
    assert_eq!(
        so["x-kubernetes-validations"],
        json!([{
            "rule": "!has(self.minReplicaCount) || self.minReplicaCount <= (has(self.maxReplicaCount) ? self.maxReplicaCount : 100)",
            "message": "minReplicaCount must be less than or equal to maxReplicaCount",
        }])
    );
    let p = &so["properties"];
    assert_eq!(p["triggers"]["minItems"], 1);
    assert_eq!(p["scaleTargetRef"]["required"], json!(["name"]));
    assert_eq!(p["scaleTargetRef"]["properties"]["name"]["minLength"], 1);
    // JSONSchemaProps holds `minimum` as a float.
    for (field, min) in [
        ("pollingInterval", 1.0),
        ("cooldownPeriod", 0.0),
        ("initialCooldownPeriod", 0.0),
        ("idleReplicaCount", 0.0),
        ("minReplicaCount", 0.0),
        ("maxReplicaCount", 1.0),
    ] {
        assert_eq!(p[field]["minimum"].as_f64(), Some(min), "{field}");
    }
    assert_eq!(p["pollingInterval"]["format"], "int32");

    let trigger = &p["triggers"]["items"];
    assert_eq!(trigger["required"], json!(["metadata", "type"]));
    assert_eq!(
        trigger["properties"]["metadata"]["additionalProperties"]["type"],
        "string"
    );
    assert_eq!(
        trigger["properties"]["metricType"]["enum"],
        json!(["AverageValue", "Value", "Utilization"])
    );
    assert_eq!(
        trigger["properties"]["authenticationRef"]["required"],
        json!(["name"])
    );

    let fallback = &p["fallback"];
    assert_eq!(
        fallback["required"],
        json!(["failureThreshold", "replicas"])
    );
    assert_eq!(
        fallback["properties"]["behavior"]["enum"],
        json!([
            "static",
            "currentReplicas",
            "currentReplicasIfHigher",
            "currentReplicasIfLower",
            "scalingModifiers"
        ])
    );
    assert_eq!(fallback["properties"]["behavior"]["default"], "static");

    let advanced = &p["advanced"]["properties"];
    assert_eq!(
        advanced["scalingModifiers"]["properties"]["metricType"]["enum"],
        json!(["AverageValue", "Value"])
    );
    let behavior = &advanced["horizontalPodAutoscalerConfig"]["properties"]["behavior"];
    assert!(behavior["properties"]["scaleDown"]["properties"]["policies"].is_object());

    let status = &schema["properties"]["status"]["properties"];
    for field in [
        "scaleTargetKind",
        "scaleTargetGVKR",
        "originalReplicaCount",
        "lastActiveTime",
        "externalMetricNames",
        "resourceMetricNames",
        "compositeScalerName",
        "conditions",
        "health",
        "triggersActivity",
        "pausedReplicaCount",
        "hpaName",
        "triggersTypes",
        "authenticationsTypes",
    ] {
        assert!(status[field].is_object(), "status.{field} missing");
    }
    assert_eq!(status["lastActiveTime"]["format"], "date-time");
    assert_eq!(
        status["conditions"]["items"]["required"],
        json!(["status", "type"])
    );
}

#[test]
fn trigger_authentication_crds_match_keda() {
    let columns = json!([
        {"name": "PodIdentity", "type": "string", "jsonPath": ".spec.podIdentity.provider"},
        {"name": "Secret", "type": "string", "jsonPath": ".spec.secretTargetRef[*].name"},
        {"name": "Env", "type": "string", "jsonPath": ".spec.env[*].name"},
        {"name": "VaultAddress", "type": "string", "jsonPath": ".spec.hashiCorpVault.address"},
        {"name": "ScaledObjects", "type": "string", "priority": 1, "jsonPath": ".status.scaledobjects"},
        {"name": "ScaledJobs", "type": "string", "priority": 1, "jsonPath": ".status.scaledjobs"},
    ]);
    let ta = crd_json("triggerauthentications.keda.sh");
    let cta = crd_json("clustertriggerauthentications.keda.sh");
    for (crd, kind, scope, short) in [
        (
            &ta,
            "TriggerAuthentication",
            "Namespaced",
            json!(["ta", "triggerauth"]),
        ),
        (
            &cta,
            "ClusterTriggerAuthentication",
            "Cluster",
            json!(["cta", "clustertriggerauth"]),
        ),
    ] {
        let spec = &crd["spec"];
        assert_eq!(spec["group"], "keda.sh");
        assert_eq!(spec["names"]["kind"], kind);
        assert_eq!(spec["scope"], scope);
        assert_eq!(spec["names"]["shortNames"], short);
        let version = &spec["versions"][0];
        assert_eq!(version["name"], "v1alpha1");
        assert_eq!(version["subresources"]["status"], json!({}));
        assert_eq!(version["additionalPrinterColumns"], columns);
        let schema = &version["schema"]["openAPIV3Schema"]["properties"];
        let props = &schema["spec"]["properties"];
        for field in [
            "podIdentity",
            "secretTargetRef",
            "configMapTargetRef",
            "env",
            "hashiCorpVault",
            "azureKeyVault",
            "gcpSecretManager",
            "awsSecretManager",
            "awsParameterStore",
            "akeyless",
            "boundServiceAccountToken",
            "filePath",
            "oauth2",
        ] {
            assert!(props[field].is_object(), "{kind}: spec.{field} missing");
        }
        assert_eq!(
            props["podIdentity"]["properties"]["provider"]["enum"],
            json!(["azure-workload", "gcp", "aws", "aws-eks", "none"])
        );
        assert_eq!(
            props["podIdentity"]["properties"]["identityOwner"]["enum"],
            json!(["keda", "workload"])
        );
        assert_eq!(props["podIdentity"]["required"], json!(["provider"]));
        assert_eq!(
            props["hashiCorpVault"]["required"],
            json!(["address", "authentication", "secrets"])
        );
        assert!(schema["status"]["properties"]["scaledobjects"].is_object());
        assert!(schema["status"]["properties"]["scaledjobs"].is_object());
    }
    // Same spec and status schemas for both kinds.
    let schema = |crd: &Value| crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone();
    for part in ["spec", "status"] {
        assert!(
            schema(&ta)["properties"][part] == schema(&cta)["properties"][part],
            "{part} schemas differ between TriggerAuthentication and ClusterTriggerAuthentication"
        );
    }
}

/// Deserialize `doc` as `T`, check that serializing it gives back exactly the document (so no
/// field was ignored or renamed), and that YAML serialization round-trips to an equal value.
fn round_trip<T>(doc: &Value) -> T
where
    T: DeserializeOwned + Serialize + PartialEq + Debug,
{
    let typed: T =
        serde_json::from_value(doc.clone()).unwrap_or_else(|e| panic!("deserializing {doc}: {e}"));
    assert_eq!(
        &serde_json::to_value(&typed).unwrap(),
        doc,
        "serialized value differs from the manifest"
    );
    let yaml = serde_saphyr::to_string(&typed).unwrap();
    let back: T =
        serde_saphyr::from_str(&yaml).unwrap_or_else(|e| panic!("re-reading {yaml}: {e}"));
    assert_eq!(back, typed);
    typed
}

#[derive(Default, Debug)]
struct Parsed {
    scaled_objects: Vec<ScaledObject>,
    trigger_auths: Vec<TriggerAuthentication>,
    cluster_trigger_auths: Vec<ClusterTriggerAuthentication>,
}

/// Parse a multi-document manifest the way a user writes it, typed straight from YAML as well.
fn parse(yaml: &str) -> Parsed {
    let docs: Vec<Value> = serde_saphyr::from_multiple(yaml).unwrap();
    let mut parsed = Parsed::default();
    for (i, doc) in docs.iter().enumerate() {
        assert_eq!(doc["apiVersion"], "keda.sh/v1alpha1");
        match doc["kind"].as_str().unwrap() {
            "ScaledObject" => parsed.scaled_objects.push(round_trip(doc)),
            "TriggerAuthentication" => parsed.trigger_auths.push(round_trip(doc)),
            "ClusterTriggerAuthentication" => parsed.cluster_trigger_auths.push(round_trip(doc)),
            other => panic!("unexpected kind {other}"),
        }
        // Straight from YAML into the typed struct, as the operator/checker will do.
        let single = yaml.split("\n---\n").nth(i).unwrap();
        match doc["kind"].as_str().unwrap() {
            "ScaledObject" => {
                serde_saphyr::from_str::<ScaledObject>(single).unwrap();
            }
            "TriggerAuthentication" => {
                serde_saphyr::from_str::<TriggerAuthentication>(single).unwrap();
            }
            _ => {
                serde_saphyr::from_str::<ClusterTriggerAuthentication>(single).unwrap();
            }
        }
    }
    parsed
}

const CRON: &str = r#"apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata:
  name: cron-scaledobject
  namespace: default
spec:
  scaleTargetRef:
    name: my-deployment
  triggers:
  - type: cron
    metadata:
      # Required
      timezone: Asia/Kolkata  # The acceptable values would be a value from the IANA Time Zone Database.
      start: 30 * * * *       # Every hour on the 30th minute
      end: 45 * * * *         # Every hour on the 45th minute
      desiredReplicas: "10"
"#;

#[test]
fn cron_scaledobject() {
    let p = parse(CRON);
    let so = &p.scaled_objects[0];
    assert_eq!(so.metadata.name.as_deref(), Some("cron-scaledobject"));
    assert_eq!(so.spec.scale_target_ref.name, "my-deployment");
    assert_eq!(so.spec.scale_target_ref.kind(), "Deployment");
    assert_eq!(so.spec.polling_interval(), 30);
    assert_eq!(so.spec.min_replica_count(), 0);
    assert_eq!(so.spec.max_replica_count(), 100);
    assert_eq!(
        so.spec.hpa_name("cron-scaledobject"),
        "keda-hpa-cron-scaledobject"
    );
    let t = &so.spec.triggers[0];
    assert_eq!(t.type_, "cron");
    assert_eq!(t.metadata["start"], "30 * * * *");
    assert_eq!(t.metadata["desiredReplicas"], "10");
    assert!(so.status.is_none());
}

const KAFKA: &str = r#"apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata:
  name: kafka-scaledobject
  namespace: default
spec:
  scaleTargetRef:
    name: azure-functions-deployment
  pollingInterval: 30
  triggers:
  - type: kafka
    metadata:
      bootstrapServers: localhost:9092
      consumerGroup: my-group
      topic: test-topic
      # Optional
      lagThreshold: '5'
      offsetResetPolicy: latest
"#;

#[test]
fn kafka_scaledobject() {
    let p = parse(KAFKA);
    let so = &p.scaled_objects[0];
    assert_eq!(so.spec.polling_interval, Some(30));
    assert_eq!(so.spec.triggers[0].metadata["lagThreshold"], "5");
    assert_eq!(
        so.spec.triggers[0].metadata["bootstrapServers"],
        "localhost:9092"
    );
}

const RABBITMQ: &str = r#"apiVersion: keda.sh/v1alpha1
kind: TriggerAuthentication
metadata:
  name: keda-trigger-auth-rabbitmq-conn
  namespace: default
spec:
  secretTargetRef:
    - parameter: host
      name: keda-rabbitmq-secret
      key: host
---
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata:
  name: rabbitmq-scaledobject
  namespace: default
spec:
  scaleTargetRef:
    name: rabbitmq-deployment
  triggers:
  - type: rabbitmq
    metadata:
      protocol: amqp
      queueName: testqueue
      mode: QueueLength
      value: "20"
    authenticationRef:
      name: keda-trigger-auth-rabbitmq-conn
"#;

#[test]
fn rabbitmq_scaledobject_with_authentication_ref() {
    let p = parse(RABBITMQ);
    let ta = &p.trigger_auths[0];
    let refs = ta.spec.secret_target_ref.as_ref().unwrap();
    assert_eq!(refs[0].parameter, "host");
    assert_eq!(refs[0].name, "keda-rabbitmq-secret");
    assert_eq!(refs[0].key, "host");
    let so = &p.scaled_objects[0];
    let auth = so.spec.triggers[0].authentication_ref.as_ref().unwrap();
    assert_eq!(auth.name, "keda-trigger-auth-rabbitmq-conn");
    assert_eq!(auth.kind, None);
    assert_eq!(auth.kind(), AuthenticationRefKind::TriggerAuthentication);
    assert_eq!(ta.metadata.name.as_deref(), Some(auth.name.as_str()));
}

const PROMETHEUS: &str = r#"apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata:
  name: prometheus-scaledobject
  namespace: default
spec:
  scaleTargetRef:
    name: my-deployment
  minReplicaCount: 1
  maxReplicaCount: 10
  triggers:
  - type: prometheus
    metadata:
      # Required fields:
      serverAddress: http://prometheus-server.monitoring.svc.cluster.local:9090
      query: sum(rate(http_requests_total{deployment="my-deployment"}[2m])) # Note: query must return a vector/scalar single element response
      threshold: '100.50'
      activationThreshold: '5.5'
      # Optional fields:
      namespace: example-namespace  # for namespaced queries, eg. Thanos
      ignoreNullValues: "false" # Default is `true`, which means ignoring the empty value list from Prometheus. Set to `false` the scaler will return error when Prometheus target is lost
      unsafeSsl: "false" #  Default is `false`, Used for skipping certificate check when having self-signed certs for Prometheus endpoint
"#;

#[test]
fn prometheus_scaledobject() {
    let p = parse(PROMETHEUS);
    let so = &p.scaled_objects[0];
    assert_eq!(so.spec.min_replica_count(), 1);
    assert_eq!(so.spec.max_replica_count(), 10);
    let md = &so.spec.triggers[0].metadata;
    assert_eq!(
        md["query"],
        r#"sum(rate(http_requests_total{deployment="my-deployment"}[2m]))"#
    );
    assert_eq!(md["threshold"], "100.50");
    assert_eq!(md["ignoreNullValues"], "false");
}

const AWS_SQS: &str = r#"apiVersion: keda.sh/v1alpha1
kind: TriggerAuthentication
metadata:
  name: keda-trigger-auth-aws-credentials
  namespace: keda-test
spec:
  podIdentity:
    provider: aws
    roleArn: arn:aws:iam::123456789012:role/keda-sqs-reader
---
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata:
  name: aws-sqs-queue-scaledobject
  namespace: keda-test
spec:
  scaleTargetRef:
    name: nginx-deployment
  triggers:
  - type: aws-sqs-queue
    authenticationRef:
      name: keda-trigger-auth-aws-credentials
    metadata:
      queueURL: https://sqs.eu-west-1.amazonaws.com/account_id/QueueName
      queueLength: "5"
      awsRegion: "eu-west-1"
"#;

#[test]
fn aws_sqs_scaledobject_with_pod_identity() {
    let p = parse(AWS_SQS);
    let pi = p.trigger_auths[0].spec.pod_identity.as_ref().unwrap();
    assert_eq!(pi.provider, PodIdentityProvider::Aws);
    assert_eq!(
        pi.role_arn.as_deref(),
        Some("arn:aws:iam::123456789012:role/keda-sqs-reader")
    );
    let so = &p.scaled_objects[0];
    assert_eq!(so.spec.triggers[0].type_, "aws-sqs-queue");
    assert_eq!(so.spec.triggers[0].metadata["awsRegion"], "eu-west-1");
}

const ADVANCED: &str = r#"apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata:
  name: worker
  namespace: shop
  annotations:
    scaledobject.keda.sh/transfer-hpa-ownership: "true"
    autoscaling.keda.sh/paused: "false"
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: StatefulSet
    name: worker
    envSourceContainerName: worker
  pollingInterval: 15
  cooldownPeriod: 120
  initialCooldownPeriod: 60
  idleReplicaCount: 0
  minReplicaCount: 1
  maxReplicaCount: 20
  fallback:
    failureThreshold: 3
    replicas: 6
    behavior: currentReplicasIfHigher
  advanced:
    restoreToOriginalReplicaCount: true
    horizontalPodAutoscalerConfig:
      name: worker-hpa
      behavior:
        scaleDown:
          stabilizationWindowSeconds: 300
          policies:
          - type: Percent
            value: 100
            periodSeconds: 15
        scaleUp:
          stabilizationWindowSeconds: 0
          selectPolicy: Max
          policies:
          - type: Pods
            value: 4
            periodSeconds: 15
          - type: Percent
            value: 100
            periodSeconds: 15
    scalingModifiers:
      formula: "(trig_one + trig_two) / 2"
      target: "2"
      activationTarget: "2"
      metricType: AverageValue
  triggers:
  - type: kubernetes-workload
    name: trig_one
    metadata:
      podSelector: 'pod=workload-test'
      value: '1'
  - type: metrics-api
    name: trig_two
    useCachedMetrics: true
    metricType: Value
    metadata:
      url: "https://example.com/api/v1/stats"
      valueLocation: "tasks"
      targetValue: "2"
    authenticationRef:
      name: shared-api-credentials
      kind: ClusterTriggerAuthentication
  - type: cpu
    metricType: Utilization
    metadata:
      value: "60"
status:
  scaleTargetKind: apps/v1.StatefulSet
  scaleTargetGVKR:
    group: apps
    kind: StatefulSet
    resource: statefulsets
    version: v1
  originalReplicaCount: 3
  lastActiveTime: "2024-05-01T10:00:00Z"
  compositeScalerName: composite-metric
  externalMetricNames:
  - composite-metric
  resourceMetricNames:
  - cpu
  hpaName: worker-hpa
  pausedReplicaCount: 2
  health:
    s0-kubernetes-workload:
      numberOfFailures: 0
      status: Happy
  triggersActivity:
    trig_one:
      isActive: true
    trig_two:
      isActive: false
  triggersTypes: kubernetes-workload,metrics-api,cpu
  authenticationsTypes: shared-api-credentials
  conditions:
  - type: Ready
    status: "True"
    reason: ScaledObjectReady
    message: ScaledObject is defined correctly and is ready for scaling
  - type: Active
    status: "True"
    reason: ScalerActive
    message: Scaling is performed because triggers are active
  - type: Fallback
    status: "False"
    reason: NoFallbackFound
    message: No fallbacks are active on this scaled object
  - type: Paused
    status: "False"
"#;

#[test]
fn advanced_scaledobject_with_behavior_fallback_modifiers_and_status() {
    let p = parse(ADVANCED);
    let so = &p.scaled_objects[0];
    let spec = &so.spec;
    assert_eq!(spec.scale_target_ref.api_version(), "apps/v1");
    assert_eq!(spec.scale_target_ref.kind(), "StatefulSet");
    assert_eq!(
        spec.scale_target_ref.env_source_container_name.as_deref(),
        Some("worker")
    );
    assert_eq!(spec.polling_interval(), 15);
    assert_eq!(spec.cooldown_period(), 120);
    assert_eq!(spec.initial_cooldown_period(), 60);
    assert_eq!(spec.idle_replica_count, Some(0));
    assert_eq!(spec.min_replica_count(), 1);
    assert_eq!(spec.max_replica_count(), 20);
    assert_eq!(spec.hpa_name("worker"), "worker-hpa");
    assert!(spec.restore_to_original_replica_count());

    let fallback = spec.fallback.as_ref().unwrap();
    assert_eq!(fallback.failure_threshold, 3);
    assert_eq!(fallback.replicas, 6);
    assert_eq!(
        fallback.behavior(),
        FallbackBehavior::CurrentReplicasIfHigher
    );

    let behavior = spec.hpa_behavior().unwrap();
    let down = behavior.scale_down.as_ref().unwrap();
    assert_eq!(down.stabilization_window_seconds, Some(300));
    let policies = down.policies.as_ref().unwrap();
    assert_eq!(policies[0].type_, "Percent");
    assert_eq!(policies[0].value, 100);
    assert_eq!(policies[0].period_seconds, 15);
    let up = behavior.scale_up.as_ref().unwrap();
    assert_eq!(up.select_policy.as_deref(), Some("Max"));
    assert_eq!(up.policies.as_ref().unwrap().len(), 2);

    let modifiers = spec.scaling_modifiers().unwrap();
    assert_eq!(
        modifiers.formula.as_deref(),
        Some("(trig_one + trig_two) / 2")
    );
    assert_eq!(modifiers.target.as_deref(), Some("2"));
    assert_eq!(modifiers.metric_type(), ModifierMetricType::AverageValue);

    let [one, two, cpu] = &spec.triggers[..] else {
        panic!("three triggers")
    };
    assert_eq!(one.name.as_deref(), Some("trig_one"));
    assert_eq!(one.metric_type(), MetricType::AverageValue);
    assert!(two.use_cached_metrics());
    assert_eq!(two.metric_type(), MetricType::Value);
    assert_eq!(
        two.authentication_ref.as_ref().unwrap().kind(),
        AuthenticationRefKind::ClusterTriggerAuthentication
    );
    assert_eq!(cpu.metric_type(), MetricType::Utilization);

    let status = so.status.as_ref().unwrap();
    assert_eq!(
        status.scale_target_kind.as_deref(),
        Some("apps/v1.StatefulSet")
    );
    assert_eq!(
        status.scale_target_gvkr.as_ref().unwrap().resource,
        "statefulsets"
    );
    assert_eq!(status.original_replica_count, Some(3));
    assert_eq!(
        status.last_active_time.as_ref().unwrap().0.to_string(),
        "2024-05-01T10:00:00Z"
    );
    assert_eq!(
        status.health.as_ref().unwrap()["s0-kubernetes-workload"].number_of_failures,
        Some(0)
    );
    assert!(status.triggers_activity.as_ref().unwrap()["trig_one"].is_active);
    assert!(!status.triggers_activity.as_ref().unwrap()["trig_two"].is_active);
    assert_eq!(
        conditions::get(status, ConditionType::Ready)
            .unwrap()
            .status,
        "True"
    );
    assert_eq!(
        conditions::get(status, ConditionType::Paused)
            .unwrap()
            .reason,
        None
    );
}

const TRIGGER_AUTH: &str = r#"apiVersion: keda.sh/v1alpha1
kind: TriggerAuthentication
metadata:
  name: azure-queue-auth
  namespace: default # must be same namespace as the ScaledObject
spec:
  podIdentity:
    provider: azure-workload
    identityId: 00000000-0000-0000-0000-000000000001
    identityTenantId: 00000000-0000-0000-0000-000000000002
    identityAuthorityHost: https://login.microsoftonline.com/
  secretTargetRef:
  - parameter: connectionString
    name: my-keda-secret-entity
    key: azure-storage-connectionstring
  env:
  - parameter: region
    name: my-env-var
    containerName: my-container
  - parameter: accountName
    name: ACCOUNT_NAME
  configMapTargetRef:
  - parameter: queueName
    name: queue-config
    key: queue
  boundServiceAccountToken:
  - parameter: bearerToken
    serviceAccountName: thanos
  azureKeyVault:
    vaultUri: https://my-vault.vault.azure.net
    podIdentity:
      provider: azure-workload
      identityId: 00000000-0000-0000-0000-000000000003
    cloud:
      type: Private
      keyVaultResourceURL: https://vault.azure.example
      activeDirectoryEndpoint: https://login.azure.example
    secrets:
    - parameter: password
      name: db-password
      version: "1"
---
apiVersion: keda.sh/v1alpha1
kind: TriggerAuthentication
metadata:
  name: cloud-secrets-auth
  namespace: default
spec:
  podIdentity:
    provider: aws
    identityOwner: workload
  awsSecretManager:
    credentials:
      accessKey:
        valueFrom:
          secretKeyRef:
            name: aws-credentials
            key: AWS_ACCESS_KEY_ID
      accessSecretKey:
        valueFrom:
          secretKeyRef:
            name: aws-credentials
            key: AWS_SECRET_ACCESS_KEY
    region: eu-west-1
    secrets:
    - parameter: password
      name: prod/db
      versionStage: AWSCURRENT
      secretKey: password
  awsParameterStore:
    podIdentity:
      provider: aws
    region: eu-west-1
    parameters:
    - parameter: apiKey
      name: /prod/api-key
      withDecryption: true
  gcpSecretManager:
    secrets:
    - parameter: token
      id: api-token
      version: latest
    credentials:
      clientSecret:
        valueFrom:
          secretKeyRef:
            name: gcp-sa
            key: key.json
  oauth2:
    type: clientCredentials
    clientId: my-client-id
    clientSecret:
      valueFrom:
        secretKeyRef:
          name: oauth-secret
          key: client-secret
    tokenUrl: https://oauth2-server.com/token
    scopes:
    - write
    - read
    tokenUrlParams:
      audience: aud
status:
  scaledobjects: azure-queue-scaledobject
"#;

#[test]
fn trigger_authentications() {
    let p = parse(TRIGGER_AUTH);
    let [azure, cloud] = &p.trigger_auths[..] else {
        panic!("two TriggerAuthentications")
    };
    let spec = &azure.spec;
    let pi = spec.pod_identity.as_ref().unwrap();
    assert_eq!(pi.provider, PodIdentityProvider::AzureWorkload);
    assert_eq!(
        pi.identity_tenant_id.as_deref(),
        Some("00000000-0000-0000-0000-000000000002")
    );
    assert_eq!(
        spec.env.as_ref().unwrap()[0].container_name.as_deref(),
        Some("my-container")
    );
    assert_eq!(spec.env.as_ref().unwrap()[1].container_name, None);
    assert_eq!(spec.config_map_target_ref.as_ref().unwrap()[0].key, "queue");
    assert_eq!(
        spec.bound_service_account_token.as_ref().unwrap()[0].service_account_name,
        "thanos"
    );
    let akv = spec.azure_key_vault.as_ref().unwrap();
    assert_eq!(
        akv.cloud
            .as_ref()
            .unwrap()
            .key_vault_resource_url
            .as_deref(),
        Some("https://vault.azure.example")
    );
    assert_eq!(akv.secrets[0].version.as_deref(), Some("1"));

    let spec = &cloud.spec;
    assert_eq!(
        spec.pod_identity.as_ref().unwrap().identity_owner,
        Some(IdentityOwner::Workload)
    );
    let sm = spec.aws_secret_manager.as_ref().unwrap();
    assert_eq!(
        sm.credentials
            .as_ref()
            .unwrap()
            .access_key
            .value_from
            .secret_key_ref
            .key,
        "AWS_ACCESS_KEY_ID"
    );
    assert_eq!(sm.secrets[0].secret_key.as_deref(), Some("password"));
    let ps = spec.aws_parameter_store.as_ref().unwrap();
    assert_eq!(ps.parameters[0].with_decryption, Some(true));
    let oauth2 = spec.oauth2.as_ref().unwrap();
    assert_eq!(oauth2.token_url, "https://oauth2-server.com/token");
    assert_eq!(oauth2.token_url_params.as_ref().unwrap()["audience"], "aud");
    assert_eq!(
        cloud.status.as_ref().unwrap().scaledobjects.as_deref(),
        Some("azure-queue-scaledobject")
    );
}

const CLUSTER_TRIGGER_AUTH: &str = r#"apiVersion: keda.sh/v1alpha1
kind: ClusterTriggerAuthentication
metadata:
  name: vault-cluster-auth
spec:
  hashiCorpVault:
    address: https://vault.example.com:8200
    namespace: team-a
    authentication: kubernetes
    role: keda
    mount: kubernetes
    credential:
      serviceAccount: /var/run/secrets/kubernetes.io/serviceaccount/token
    secrets:
    - parameter: password
      key: password
      path: secret/data/rabbitmq
      type: secretV2
    - parameter: ca
      key: certificate
      path: pki/issue/keda
      type: pki
      pkiData:
        commonName: keda.example.com
        altNames: keda.svc
        ttl: 24h
  filePath:
  - parameter: apiKey
    path: credentials/api-key
---
apiVersion: keda.sh/v1alpha1
kind: ClusterTriggerAuthentication
metadata:
  name: akeyless-cluster-auth
spec:
  akeyless:
    gatewayUrl: https://api.akeyless.io
    accessId: p-abcdefghijkl
    k8sAuthConfigName: my-k8s-auth
    secrets:
    - parameter: password
      path: /prod/db
      key: password
"#;

#[test]
fn cluster_trigger_authentications() {
    let p = parse(CLUSTER_TRIGGER_AUTH);
    let [vault, akeyless] = &p.cluster_trigger_auths[..] else {
        panic!("two ClusterTriggerAuthentications")
    };
    assert_eq!(vault.metadata.namespace, None);
    let v = vault.spec.hashi_corp_vault.as_ref().unwrap();
    assert_eq!(v.address, "https://vault.example.com:8200");
    assert_eq!(v.authentication, "kubernetes");
    assert_eq!(v.namespace.as_deref(), Some("team-a"));
    assert_eq!(v.secrets[0].type_.as_deref(), Some("secretV2"));
    assert_eq!(
        v.secrets[1]
            .pki_data
            .as_ref()
            .unwrap()
            .common_name
            .as_deref(),
        Some("keda.example.com")
    );
    assert_eq!(
        vault.spec.file_path.as_ref().unwrap()[0].path,
        "credentials/api-key"
    );
    let a = akeyless.spec.akeyless.as_ref().unwrap();
    assert_eq!(a.access_id, "p-abcdefghijkl");
    assert_eq!(a.k8s_auth_config_name.as_deref(), Some("my-k8s-auth"));
}

#[test]
fn invalid_enum_values_are_rejected() {
    let bad = CRON.replace(
        "  - type: cron\n",
        "  - type: cron\n    metricType: Average\n",
    );
    assert!(serde_saphyr::from_str::<ScaledObject>(&bad).is_err());
    let bad = RABBITMQ.split("\n---\n").nth(1).unwrap().replace(
        "name: keda-trigger-auth-rabbitmq-conn\n",
        "name: keda-trigger-auth-rabbitmq-conn\n      kind: Secret\n",
    );
    assert!(serde_saphyr::from_str::<ScaledObject>(&bad).is_err());
}
