//! The kubeconfig that points kubectl and kube-rs at a running local cluster.

use std::io::Write as _;
use std::path::Path;

use base64::Engine as _;

/// Name of the cluster, user and context.
pub const NAME: &str = "kedge-local";

/// Render a kubeconfig. Strings are quoted as JSON, which is valid YAML.
pub fn render(server: &str, token: &str, ca_pem: Option<&str>) -> String {
    let q = |s: &str| serde_json::Value::String(s.to_string()).to_string();
    let ca = ca_pem
        .map(|pem| {
            format!(
                "    certificate-authority-data: {}\n",
                base64::engine::general_purpose::STANDARD.encode(pem)
            )
        })
        .unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: {NAME}\n  cluster:\n    server: {server}\n{ca}contexts:\n- name: {NAME}\n  context:\n    cluster: {NAME}\n    user: {NAME}\n    namespace: default\ncurrent-context: {NAME}\nusers:\n- name: {NAME}\n  user:\n    token: {token}\npreferences: {{}}\n",
        server = q(server),
        token = q(token),
    )
}

/// Write `contents` to `path` atomically (temporary file + rename), creating parent
/// directories, readable by the owner only (it holds a credential).
pub fn write_atomically(path: &Path, contents: &str) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let file_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("kubeconfig");
    let tmp = dir.join(format!(".{file_name}.{}.tmp", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let result = (|| {
        let mut f = options.open(&tmp)?;
        f.write_all(contents.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn writes_private_file() {
        let dir = std::env::temp_dir().join(format!("kedge-kc-{}", uuid::Uuid::new_v4()));
        let path = dir.join("nested/kubeconfig");
        write_atomically(&path, &render("https://127.0.0.1:1", "t", Some("pem"))).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("current-context: kedge-local")
                && text.contains("certificate-authority-data")
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        std::fs::remove_dir_all(dir).unwrap();
    }
}
