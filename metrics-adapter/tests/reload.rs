//! The serving certificate comes from files and follows them when they change, as cert-manager
//! rotates a Secret volume, without a restart; a broken rotation keeps the previous certificate.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::{Ca, Leaf, MapProvider, https_client, loopback, metric_url};
use metrics_adapter::{AdapterConfig, AdapterServer, Auth, ServingTls};

/// Replaces a file the way kubelet updates Secret volumes: write elsewhere, rename over.
fn replace(path: &Path, content: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn install(dir: &Path, leaf: &Leaf) {
    replace(&dir.join("tls.crt"), &leaf.cert_pem);
    replace(&dir.join("tls.key"), &leaf.key_pem);
}

/// Whether a fresh connection trusting only `ca` gets an answer.
async fn trusted_by(ca: &Ca, url: &str) -> bool {
    // A new client per call: a new connection, so a new handshake.
    match https_client(&ca.cert_pem, None).get(url).send().await {
        Ok(resp) => {
            assert_eq!(resp.status().as_u16(), 200);
            true
        }
        Err(_) => false,
    }
}

#[tokio::test]
async fn serving_certificate_follows_its_files() {
    let dir = tempfile::tempdir().unwrap();
    let (old_ca, new_ca) = (Ca::new("old-ca"), Ca::new("new-ca"));
    install(dir.path(), &old_ca.server(&["localhost"]));

    let config = AdapterConfig {
        bind: loopback(),
        tls: ServingTls::Files {
            cert_file: dir.path().join("tls.crt"),
            key_file: dir.path().join("tls.key"),
        },
        ..AdapterConfig::default()
    };
    let provider = MapProvider::with(&[("default", "orders", "s0-x", 1.0)]);
    let server = AdapterServer::bind(config, provider, Auth::disabled_for_local_mode())
        .await
        .unwrap();
    assert!(server.serving_cert_pem().is_none());
    let server = server.spawn().unwrap();
    let url = metric_url(server.local_addr(), "default", "s0-x", "orders");

    assert!(trusted_by(&old_ca, &url).await);
    assert!(!trusted_by(&new_ca, &url).await);

    // Rotation: the next connection gets the new certificate.
    install(dir.path(), &new_ca.server(&["localhost"]));
    assert!(trusted_by(&new_ca, &url).await);
    assert!(!trusted_by(&old_ca, &url).await);

    // A rotation that leaves unusable files (a key that does not match, then garbage) is
    // refused, and the last good certificate is still served.
    replace(
        &dir.path().join("tls.key"),
        &old_ca.server(&["localhost"]).key_pem,
    );
    assert!(trusted_by(&new_ca, &url).await);
    replace(&dir.path().join("tls.crt"), "not a certificate");
    assert!(trusted_by(&new_ca, &url).await);

    // And a good one after that is picked up again.
    install(dir.path(), &old_ca.server(&["localhost"]));
    assert!(trusted_by(&old_ca, &url).await);
    server.shutdown().await;
}

#[tokio::test]
async fn unusable_files_at_start_are_an_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tls.crt"), "nope").unwrap();
    std::fs::write(dir.path().join("tls.key"), "nope").unwrap();
    let config = AdapterConfig {
        bind: loopback(),
        tls: ServingTls::Files {
            cert_file: dir.path().join("tls.crt"),
            key_file: dir.path().join("tls.key"),
        },
        ..AdapterConfig::default()
    };
    let err = AdapterServer::bind(
        config,
        MapProvider::with(&[]),
        Auth::disabled_for_local_mode(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("tls.crt"), "{err}");

    let config = AdapterConfig {
        bind: loopback(),
        tls: ServingTls::Files {
            cert_file: dir.path().join("missing.crt"),
            key_file: dir.path().join("tls.key"),
        },
        ..AdapterConfig::default()
    };
    let err = AdapterServer::bind(
        config,
        MapProvider::with(&[]),
        Auth::disabled_for_local_mode(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("missing.crt"), "{err}");
}
