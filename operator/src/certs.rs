//! kedge's own certificates when cert-manager does not provide them: a CA kept in one Secret
//! (`kedge-certs`: `ca.crt`, `ca.key`, `tls.crt`, `tls.key`, as KEDA's cert rotator keeps
//! `kedaorg-certs`) that every replica shares, the serving certificate it signs for the metrics
//! Service, and the APIService's `caBundle` kept equal to the CA.
//!
//! The first replica to start creates the Secret; the others find it (a create that loses the
//! race reads the winner's). One CA for all replicas is what lets the APIService trust whichever
//! replica the Service picks, and lets replicas authenticate each other on the follower link.
//!
//! While running, [`spawn_manager`] keeps it that way: the Secret is the single source of truth.
//! Each replica re-reads it, renews the serving certificate (or the CA) in it before expiry (a
//! write guarded by the resourceVersion, so one replica renews and the others read the result),
//! and serves whatever certificate the Secret holds, swapped in without a restart. A replica
//! whose CA differs from the Secret's (the Secret was recreated, or another replica renewed the
//! CA) takes the Secret's rather than writing its own anywhere, and only the leader writes the
//! APIService's `caBundle`, always the Secret's CA: two replicas cannot patch it back and forth.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ApiResource, DynamicObject, ObjectMeta, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use metrics_adapter::tls::{SwappableCert, selfsigned};
use tokio::sync::watch;
use tracing::{info, warn};

/// Keys of the Secret.
const CA_CERT: &str = "ca.crt";
const CA_KEY: &str = "ca.key";
const TLS_CERT: &str = "tls.crt";
const TLS_KEY: &str = "tls.key";

/// The shared CA and the serving certificate it signed.
#[derive(Clone, PartialEq, Eq)]
pub struct CertBundle {
    /// CA certificate, PEM: the APIService `caBundle` and the follower link's trust anchor.
    pub ca_cert_pem: String,
    /// CA key, PEM: each replica signs its link certificate with it.
    pub ca_key_pem: String,
    /// Serving certificate chain, PEM.
    pub tls_cert_pem: String,
    /// Serving key, PEM.
    pub tls_key_pem: String,
}

impl std::fmt::Debug for CertBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertBundle").finish_non_exhaustive()
    }
}

/// Why certificates could not be had.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// An API call failed.
    #[error("Secret {namespace}/{name}: {source}")]
    Kube {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// Cause.
        #[source]
        source: kube::Error,
    },
    /// Generating a certificate failed.
    #[error("generating certificates: {0}")]
    Generate(#[from] metrics_adapter::tls::TlsError),
}

/// The DNS names a Service is reached by from inside the cluster.
pub fn service_names(service: &str, namespace: &str) -> Vec<String> {
    vec![
        service.to_owned(),
        format!("{service}.{namespace}"),
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
    ]
}

fn generate(names: &[String]) -> Result<CertBundle, CertError> {
    let (ca_cert_pem, ca_key_pem) = selfsigned::new_ca("kedge-ca")?;
    let serving =
        selfsigned::signed_by_ca(names, "kedge-metrics-apiserver", &ca_cert_pem, &ca_key_pem)?;
    Ok(CertBundle {
        ca_cert_pem,
        ca_key_pem,
        tls_cert_pem: serving.cert_pem,
        tls_key_pem: serving.key_pem,
    })
}

/// Certificates are renewed when they have less than this left (they last a year), at start-up
/// and by [`spawn_manager`] while running.
const RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);

/// How often a running replica re-reads the Secret (one GET). A change of the APIService makes
/// it look at once too, so a CA renewed by another replica is picked up within seconds.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(60);

fn expires_soon(pem: &str) -> bool {
    selfsigned::not_after(pem).is_none_or(|t| t < std::time::SystemTime::now() + RENEW_BEFORE)
}

fn from_secret(secret: &Secret) -> Option<CertBundle> {
    let data = secret.data.as_ref()?;
    let text = |k: &str| {
        data.get(k)
            .and_then(|b| String::from_utf8(b.0.clone()).ok())
            .filter(|s| !s.trim().is_empty())
    };
    Some(CertBundle {
        ca_cert_pem: text(CA_CERT)?,
        ca_key_pem: text(CA_KEY)?,
        tls_cert_pem: text(TLS_CERT)?,
        tls_key_pem: text(TLS_KEY)?,
    })
}

fn to_data(b: &CertBundle) -> BTreeMap<String, ByteString> {
    [
        (CA_CERT, &b.ca_cert_pem),
        (CA_KEY, &b.ca_key_pem),
        (TLS_CERT, &b.tls_cert_pem),
        (TLS_KEY, &b.tls_key_pem),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), ByteString(v.as_bytes().to_vec())))
    .collect()
}

/// Reads the Secret `namespace/name`, creating it with a new CA and a serving certificate for
/// `names` when it does not exist or is incomplete, and renewing what expires within 30 days.
/// A usable Secret is never overwritten, so replicas starting together all end up with the
/// first one's CA.
pub async fn ensure_secret(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    names: &[String],
) -> Result<CertBundle, CertError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let err = |source| CertError::Kube {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        source,
    };
    for _ in 0..5 {
        let existing = api.get_opt(name).await.map_err(err)?;
        let found = existing.as_ref().and_then(from_secret);
        if let Some(bundle) = &found
            && !expires_soon(&bundle.ca_cert_pem)
            && !expires_soon(&bundle.tls_cert_pem)
        {
            return Ok(bundle.clone());
        }
        // Missing, incomplete, or about to expire: a new serving certificate from the same CA
        // while the CA itself lasts (the APIService keeps trusting it), else a new CA too.
        let bundle = match found {
            Some(old) if !expires_soon(&old.ca_cert_pem) => {
                let serving = selfsigned::signed_by_ca(
                    names,
                    "kedge-metrics-apiserver",
                    &old.ca_cert_pem,
                    &old.ca_key_pem,
                )?;
                CertBundle {
                    tls_cert_pem: serving.cert_pem,
                    tls_key_pem: serving.key_pem,
                    ..old
                }
            }
            _ => generate(names)?,
        };
        let result = match existing {
            None => {
                let secret = Secret {
                    metadata: ObjectMeta {
                        name: Some(name.to_owned()),
                        namespace: Some(namespace.to_owned()),
                        labels: Some(BTreeMap::from([(
                            "app.kubernetes.io/managed-by".to_owned(),
                            "kedge".to_owned(),
                        )])),
                        ..Default::default()
                    },
                    type_: Some("kubernetes.io/tls".into()),
                    data: Some(to_data(&bundle)),
                    ..Default::default()
                };
                api.create(&PostParams::default(), &secret).await
            }
            // Present but incomplete (e.g. created empty by a manifest) or expiring: replace
            // its data, guarded by its resourceVersion.
            Some(mut secret) => {
                secret.data = Some(to_data(&bundle));
                api.replace(name, &PostParams::default(), &secret).await
            }
        };
        match result {
            Ok(_) => {
                info!(secret = %format!("{namespace}/{name}"), "generated the metrics adapter's CA and serving certificate");
                return Ok(bundle);
            }
            // Another replica won the race: read its certificates.
            Err(kube::Error::Api(e)) if e.code == 409 => continue,
            Err(e) => return Err(err(e)),
        }
    }
    Err(err(kube::Error::Service(
        "the Secret kept changing while kedge tried to read it".into(),
    )))
}

fn apiservice_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("apiregistration.k8s.io", "v1", "APIService"),
        "apiservices",
    )
}

/// What [`spawn_manager`] looks after.
#[derive(Clone, Debug)]
pub struct ManagerSettings {
    /// Namespace of the Secret.
    pub namespace: String,
    /// Name of the Secret.
    pub secret: String,
    /// Names the serving certificate carries.
    pub names: Vec<String>,
    /// The APIService whose `caBundle` to keep equal to the Secret's CA; `None` leaves it alone
    /// (cert-manager's cainjector, or `--patch-apiservice-ca-bundle=false`).
    pub apiservice: Option<String>,
    /// How often to re-read the Secret.
    pub check_interval: Duration,
}

/// Keeps this replica's serving certificate equal to the Secret's, renewing it there before it
/// expires, and while `may_patch` is true (the leader, or the only replica) the APIService's
/// `caBundle` equal to the Secret's CA. `current` is what `serving` serves now.
///
/// The APIService is watched by name (so RBAC can restrict the watch with `resourceNames`): one
/// applied after kedge started, or re-applied from a manifest without a caBundle, gets it back
/// at once. Each look starts by reading the Secret, and the caBundle written is the CA read
/// then, never this replica's own: replicas that started with different CAs all end up with
/// the Secret's, and the APIService is written once.
pub fn spawn_manager(
    client: kube::Client,
    settings: ManagerSettings,
    current: CertBundle,
    serving: Arc<SwappableCert>,
    mut may_patch: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    use futures::StreamExt as _;
    use kube::runtime::{WatchStreamExt as _, watcher};
    tokio::spawn(async move {
        let mut current = current;
        let secret = format!("{}/{}", settings.namespace, settings.secret);
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &apiservice_resource());
        let mut apiservices = settings.apiservice.clone().map(|name| {
            let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
            (name, watcher(api.clone(), config).default_backoff().boxed())
        });
        // The APIService as last seen (`None`: not seen yet, or it does not exist), and what a
        // relist in progress has found.
        let mut seen: Option<DynamicObject> = None;
        let mut relisted: Option<DynamicObject> = None;
        let mut leadership_open = true;
        let mut tick =
            tokio::time::interval(settings.check_interval.max(Duration::from_millis(100)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let missing = tokio::time::sleep(Duration::from_secs(10));
        tokio::pin!(missing);
        let mut warned_missing = false;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                item = async {
                    match apiservices.as_mut() {
                        Some((_, stream)) => stream.next().await,
                        None => std::future::pending().await,
                    }
                } => match item {
                    Some(Ok(watcher::Event::Apply(obj))) => seen = Some(obj),
                    Some(Ok(watcher::Event::Delete(_))) => {
                        seen = None;
                        continue;
                    }
                    Some(Ok(watcher::Event::Init)) => {
                        relisted = None;
                        continue;
                    }
                    Some(Ok(watcher::Event::InitApply(obj))) => {
                        relisted = Some(obj);
                        continue;
                    }
                    Some(Ok(watcher::Event::InitDone)) => seen = relisted.take(),
                    Some(Err(e)) => {
                        warn!(apiservice = ?settings.apiservice, "watching the APIService: {e}");
                        continue;
                    }
                    None => {
                        apiservices = None;
                        continue;
                    }
                },
                changed = may_patch.changed(), if leadership_open => {
                    // No sender left: the last value holds for good.
                    leadership_open = changed.is_ok();
                }
                () = &mut missing, if !warned_missing => {
                    warned_missing = true;
                    if seen.is_none() && let Some(name) = &settings.apiservice {
                        warn!(apiservice = %name, "APIService not found: the HPA cannot read metrics from kedge until it exists");
                    }
                    continue;
                }
            }
            let bundle = match ensure_secret(
                &client,
                &settings.namespace,
                &settings.secret,
                &settings.names,
            )
            .await
            {
                Ok(bundle) => bundle,
                Err(e) => {
                    warn!(%secret, "cannot read the certificates; keeping the current ones: {e}");
                    continue;
                }
            };
            if bundle != current {
                match serving.set_pem(&bundle.tls_cert_pem, &bundle.tls_key_pem) {
                    Ok(()) => {
                        let why = if bundle.ca_cert_pem == current.ca_cert_pem {
                            "renewed"
                        } else {
                            "another CA"
                        };
                        info!(%secret, why, "serving the Secret's new certificate");
                        current = bundle;
                    }
                    Err(e) => {
                        warn!(%secret, "the Secret's serving certificate is unusable; keeping the current one: {e}");
                        continue;
                    }
                }
            }
            if !*may_patch.borrow() {
                continue;
            }
            let (Some((name, _)), Some(obj)) = (&apiservices, &seen) else {
                continue;
            };
            let wanted = base64::engine::general_purpose::STANDARD.encode(&current.ca_cert_pem);
            if obj.data.pointer("/spec/caBundle").and_then(|v| v.as_str()) == Some(wanted.as_str())
            {
                continue;
            }
            let patch = Patch::Merge(serde_json::json!({"spec": {"caBundle": wanted}}));
            match api.patch(name, &PatchParams::default(), &patch).await {
                Ok(patched) => {
                    info!(apiservice = %name, "set the APIService's caBundle to the CA in {secret}");
                    seen = Some(patched);
                }
                Err(e) => warn!(apiservice = %name, "cannot set the APIService's caBundle: {e}"),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[tokio::test]
    async fn one_secret_for_all_replicas_renewed_from_the_same_ca() {
        let cluster = local_cluster::LocalCluster::start(local_cluster::Config::api_only())
            .await
            .unwrap();
        let client = cluster.client().await.unwrap();
        let names = service_names("kedge-metrics-apiserver", "default");

        let first = ensure_secret(&client, "default", "kedge-certs", &names)
            .await
            .unwrap();
        let again = ensure_secret(&client, "default", "kedge-certs", &names)
            .await
            .unwrap();
        assert_eq!(first.ca_cert_pem, again.ca_cert_pem);
        assert_eq!(first.tls_cert_pem, again.tls_cert_pem);
        assert!(!expires_soon(&first.tls_cert_pem));

        // An unreadable (or expiring) serving certificate is replaced, signed by the same CA,
        // so the APIService's caBundle stays valid.
        let api: Api<Secret> = Api::namespaced(client.clone(), "default");
        api.patch(
            "kedge-certs",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"data": {TLS_CERT: "bm90IGEgY2VydA=="}})),
        )
        .await
        .unwrap();
        let renewed = ensure_secret(&client, "default", "kedge-certs", &names)
            .await
            .unwrap();
        assert_eq!(renewed.ca_cert_pem, first.ca_cert_pem);
        assert_ne!(renewed.tls_cert_pem, first.tls_cert_pem);
        assert!(!expires_soon(&renewed.tls_cert_pem));
        let stored = from_secret(&api.get("kedge-certs").await.unwrap()).unwrap();
        assert_eq!(stored.tls_cert_pem, renewed.tls_cert_pem);
        cluster.shutdown().await;
    }

    const APISERVICE: &str = "v1beta1.external.metrics.k8s.io";

    /// Polls `check` every 100 ms until it holds, for at most 30 s.
    async fn until(what: &str, mut check: impl AsyncFnMut() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while !check().await {
            assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn leaf_der(pem: &str) -> Vec<u8> {
        kedge_tls::pem::certificates(pem.as_bytes(), "test")
            .unwrap()
            .remove(0)
            .to_vec()
    }

    fn served_der(cert: &SwappableCert) -> Vec<u8> {
        cert.current().cert[0].to_vec()
    }

    async fn create_apiservice(client: &kube::Client, ca_pem: &str) -> Api<DynamicObject> {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &apiservice_resource());
        let obj: DynamicObject = serde_json::from_value(serde_json::json!({
            "apiVersion": "apiregistration.k8s.io/v1",
            "kind": "APIService",
            "metadata": {"name": APISERVICE},
            "spec": {
                "group": "external.metrics.k8s.io",
                "version": "v1beta1",
                "service": {"namespace": "default", "name": "kedge-metrics-apiserver"},
                "groupPriorityMinimum": 100,
                "versionPriority": 100,
                "caBundle": base64::engine::general_purpose::STANDARD.encode(ca_pem),
            }
        }))
        .unwrap();
        api.create(&PostParams::default(), &obj).await.unwrap();
        api
    }

    async fn ca_bundle(api: &Api<DynamicObject>) -> String {
        let obj = api.get(APISERVICE).await.unwrap();
        let b64 = obj.data["spec"]["caBundle"].as_str().unwrap_or_default();
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap_or_default(),
        )
        .unwrap_or_default()
    }

    /// Counts writes of the APIService: distinct resourceVersions its watch delivers, less the
    /// one it had when counting started.
    fn count_writes(
        api: Api<DynamicObject>,
    ) -> Arc<std::sync::Mutex<std::collections::HashSet<String>>> {
        use futures::StreamExt as _;
        use kube::runtime::{WatchStreamExt as _, watcher};
        let versions = Arc::new(std::sync::Mutex::new(std::collections::HashSet::new()));
        let seen = Arc::clone(&versions);
        tokio::spawn(async move {
            let mut stream = watcher(api, watcher::Config::default())
                .default_backoff()
                .applied_objects()
                .boxed();
            while let Some(item) = stream.next().await {
                if let Ok(obj) = item
                    && let Some(rv) = obj.metadata.resource_version
                {
                    seen.lock().unwrap().insert(rv);
                }
            }
        });
        versions
    }

    fn manager_settings(apiservice: Option<&str>) -> ManagerSettings {
        ManagerSettings {
            namespace: "default".into(),
            secret: "kedge-certs".into(),
            names: service_names("kedge-metrics-apiserver", "default"),
            apiservice: apiservice.map(str::to_owned),
            check_interval: Duration::from_millis(200),
        }
    }

    #[tokio::test]
    async fn replicas_with_different_cas_converge_on_the_secrets_and_stop_patching() {
        let cluster = local_cluster::LocalCluster::start(local_cluster::Config::api_only())
            .await
            .unwrap();
        let client = cluster.client().await.unwrap();
        let names = service_names("kedge-metrics-apiserver", "default");
        // Replica A started with a CA of its own; then the Secret was recreated with another
        // (replica B's), and the APIService still carries A's.
        let a = generate(&names).unwrap();
        let b = ensure_secret(&client, "default", "kedge-certs", &names)
            .await
            .unwrap();
        assert_ne!(a.ca_cert_pem, b.ca_cert_pem);
        let apiservices = create_apiservice(&client, &a.ca_cert_pem).await;
        let writes = count_writes(apiservices.clone());
        until("the write counter sees the APIService", async || {
            writes.lock().unwrap().len() == 1
        })
        .await;

        // The worst case: both replicas believe they lead (a moment around a takeover).
        let serving_a = Arc::new(SwappableCert::from_pem(&a.tls_cert_pem, &a.tls_key_pem).unwrap());
        let serving_b = Arc::new(SwappableCert::from_pem(&b.tls_cert_pem, &b.tls_key_pem).unwrap());
        let (lead_a, may_a) = watch::channel(true);
        let (lead_b, may_b) = watch::channel(true);
        let settings = manager_settings(Some(APISERVICE));
        let ma = spawn_manager(
            client.clone(),
            settings.clone(),
            a,
            Arc::clone(&serving_a),
            may_a,
        );
        let mb = spawn_manager(
            client.clone(),
            settings,
            b.clone(),
            Arc::clone(&serving_b),
            may_b,
        );

        until(
            "one caBundle, the Secret's CA, served by both",
            async || {
                ca_bundle(&apiservices).await == b.ca_cert_pem
                    && served_der(&serving_a) == leaf_der(&b.tls_cert_pem)
                    && served_der(&serving_b) == leaf_der(&b.tls_cert_pem)
            },
        )
        .await;
        // Twenty more looks each (200 ms apart): no further write.
        let after = writes.lock().unwrap().len();
        tokio::time::sleep(Duration::from_secs(4)).await;
        let total = writes.lock().unwrap().len();
        assert_eq!(total, after, "the APIService kept being written");
        assert!(total - 1 <= 2, "{} writes to converge", total - 1);
        assert_eq!(ca_bundle(&apiservices).await, b.ca_cert_pem);

        // Followers never write: a caBundle re-applied from a manifest stays until a leader
        // looks, and the leader puts the Secret's CA back.
        lead_a.send(false).unwrap();
        lead_b.send(false).unwrap();
        apiservices
            .patch(
                APISERVICE,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"spec": {"caBundle": null}})),
            )
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(ca_bundle(&apiservices).await, "");
        lead_a.send(true).unwrap();
        until("the leader restores the caBundle", async || {
            ca_bundle(&apiservices).await == b.ca_cert_pem
        })
        .await;
        ma.abort();
        mb.abort();
        cluster.shutdown().await;
    }

    /// Connects trusting `ca_pem` and returns the leaf certificate the server presented, and the
    /// connection.
    async fn handshake(
        addr: std::net::SocketAddr,
        ca_pem: &str,
    ) -> (
        Vec<u8>,
        tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    ) {
        let roots = kedge_tls::pem::root_store(ca_pem.as_bytes(), "ca").unwrap();
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name =
            rustls::pki_types::ServerName::try_from("kedge-metrics-apiserver.default.svc").unwrap();
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .unwrap();
        let leaf = tls.get_ref().1.peer_certificates().unwrap()[0].to_vec();
        (leaf, tls)
    }

    /// The serial number and notAfter (Unix seconds) of a DER certificate.
    fn serial_and_not_after(der: &[u8]) -> (String, i64) {
        let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
        (
            cert.raw_serial_as_string(),
            cert.validity().not_after.timestamp(),
        )
    }

    async fn healthz(tls: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>) -> String {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: kedge\r\n\r\n")
            .await
            .unwrap();
        let mut buf = vec![0u8; 1024];
        let n = tls.read(&mut buf).await.unwrap();
        String::from_utf8_lossy(&buf[..n])
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned()
    }

    #[tokio::test]
    async fn a_serving_certificate_close_to_expiry_is_replaced_while_serving() {
        use kedge_tls::ca::{Ca, CertSpec, Validity};
        use metrics_adapter::{AdapterConfig, AdapterServer, Auth, ServingTls};

        let cluster = local_cluster::LocalCluster::start(local_cluster::Config::api_only())
            .await
            .unwrap();
        let client = cluster.client().await.unwrap();
        let names = service_names("kedge-metrics-apiserver", "default");
        // The Secret's serving certificate has five days left (renewal starts at thirty).
        let fresh = generate(&names).unwrap();
        let leaf = Ca::from_pem(&fresh.ca_cert_pem, &fresh.ca_key_pem)
            .unwrap()
            .issue(&CertSpec {
                common_name: Some("kedge-metrics-apiserver".into()),
                names: names.clone(),
                server_auth: true,
                validity: Some(Validity::from_now(Duration::from_secs(5 * 24 * 3600))),
                ..CertSpec::default()
            })
            .unwrap();
        let old = CertBundle {
            tls_cert_pem: format!("{}{}", leaf.cert_pem, fresh.ca_cert_pem),
            tls_key_pem: leaf.key_pem,
            ..fresh
        };
        let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
        secrets
            .create(
                &PostParams::default(),
                &Secret {
                    metadata: ObjectMeta {
                        name: Some("kedge-certs".into()),
                        ..Default::default()
                    },
                    data: Some(to_data(&old)),
                    ..Default::default()
                },
            )
            .await
            .unwrap();

        let serving =
            Arc::new(SwappableCert::from_pem(&old.tls_cert_pem, &old.tls_key_pem).unwrap());
        let server = AdapterServer::bind(
            AdapterConfig {
                bind: ([127, 0, 0, 1], 0).into(),
                tls: ServingTls::Swappable(Arc::clone(&serving)),
                ..AdapterConfig::default()
            },
            Arc::new(crate::adapter::LeaderProvider::default()),
            Auth::disabled_for_local_mode(),
        )
        .await
        .unwrap();
        let addr = server.local_addr().unwrap();
        let server = server.spawn().unwrap();
        let (before, mut open) = handshake(addr, &old.ca_cert_pem).await;
        let (old_serial, old_not_after) = serial_and_not_after(&before);
        assert!(old_not_after < chrono::Utc::now().timestamp() + 6 * 24 * 3600);
        assert_eq!(healthz(&mut open).await, "HTTP/1.1 200 OK");

        let (_keep, may_patch) = watch::channel(false);
        let manager = spawn_manager(
            client.clone(),
            manager_settings(None),
            old.clone(),
            Arc::clone(&serving),
            may_patch,
        );
        // A new connection gets the renewed certificate: another serial, a year left, from
        // the same CA (the caBundle stays valid), and the one the Secret now holds.
        let mut renewed = Vec::new();
        until("a new connection sees a renewed certificate", async || {
            renewed = handshake(addr, &old.ca_cert_pem).await.0;
            renewed != before
        })
        .await;
        let (serial, not_after) = serial_and_not_after(&renewed);
        assert_ne!(serial, old_serial);
        assert!(not_after > chrono::Utc::now().timestamp() + 300 * 24 * 3600);
        let stored = from_secret(&secrets.get("kedge-certs").await.unwrap()).unwrap();
        assert_eq!(leaf_der(&stored.tls_cert_pem), renewed);
        assert_eq!(stored.ca_cert_pem, old.ca_cert_pem);
        // The connection opened before the swap is still served.
        assert_eq!(healthz(&mut open).await, "HTTP/1.1 200 OK");
        manager.abort();
        server.shutdown().await;
        cluster.shutdown().await;
    }
}
