//! kedge's own certificates when cert-manager does not provide them: a CA kept in one Secret
//! (`kedge-certs`: `ca.crt`, `ca.key`, `tls.crt`, `tls.key`, as KEDA's cert rotator keeps
//! `kedaorg-certs`) that every replica shares, the serving certificate it signs for the metrics
//! Service, and the APIService's `caBundle` kept equal to the CA.
//!
//! The first replica to start creates the Secret; the others find it (a create that loses the
//! race reads the winner's). One CA for all replicas is what lets the APIService trust whichever
//! replica the Service picks, and lets replicas authenticate each other on the follower link.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ApiResource, DynamicObject, ObjectMeta, Patch, PatchParams, PostParams};
use kube::core::GroupVersionKind;
use metrics_adapter::tls::selfsigned;
use tracing::{info, warn};

/// Keys of the Secret.
const CA_CERT: &str = "ca.crt";
const CA_KEY: &str = "ca.key";
const TLS_CERT: &str = "tls.crt";
const TLS_KEY: &str = "tls.key";

/// The shared CA and the serving certificate it signed.
#[derive(Clone)]
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

/// Certificates are renewed at start-up when they have less than this left (the serving
/// certificate lasts a year; kedge restarts with every upgrade).
const RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);

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

/// Keeps the APIService's `caBundle` equal to `ca_pem`: watches that one APIService (by name,
/// so RBAC can restrict the watch with `resourceNames`) and patches it whenever it appears or
/// changes without kedge's CA — an APIService applied after kedge started, or re-applied from
/// a manifest without a caBundle, gets it back at once.
pub fn spawn_ca_bundle_keeper(
    client: kube::Client,
    name: String,
    ca_pem: String,
) -> tokio::task::JoinHandle<()> {
    use futures::StreamExt as _;
    use kube::runtime::{WatchStreamExt as _, watcher};
    tokio::spawn(async move {
        let api: Api<DynamicObject> = Api::all_with(client, &apiservice_resource());
        let wanted = base64::engine::general_purpose::STANDARD.encode(&ca_pem);
        let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
        let mut seen = false;
        let mut stream = watcher(api.clone(), config)
            .default_backoff()
            .touched_objects()
            .boxed();
        let missing = tokio::time::sleep(Duration::from_secs(10));
        tokio::pin!(missing);
        loop {
            tokio::select! {
                item = stream.next() => match item {
                    None => return,
                    Some(Err(e)) => warn!(apiservice = %name, "watching the APIService: {e}"),
                    Some(Ok(obj)) => {
                        seen = true;
                        if obj.data.pointer("/spec/caBundle").and_then(|v| v.as_str()) == Some(wanted.as_str()) {
                            continue;
                        }
                        let patch = Patch::Merge(serde_json::json!({"spec": {"caBundle": wanted}}));
                        match api.patch(&name, &PatchParams::default(), &patch).await {
                            Ok(_) => info!(apiservice = %name, "set the APIService's caBundle to kedge's CA"),
                            Err(e) => warn!(apiservice = %name, "cannot set the APIService's caBundle: {e}"),
                        }
                    }
                },
                () = &mut missing, if !seen => {
                    seen = true;
                    warn!(apiservice = %name, "APIService not found: the HPA cannot read metrics from kedge until it exists");
                }
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
}
