//! Client-certificate authentication as kube-apiserver's delegated authentication does it:
//!
//! * the **request-header** (front-proxy) scheme: a certificate that chains to the
//!   request-header CA, whose common name is in the allowed names (an empty list allows any),
//!   makes the `X-Remote-User` / `X-Remote-Group` / `X-Remote-Extra-*` headers (or the names the
//!   cluster configured) trustworthy, and the user is read from them;
//! * plain **x509** users: a certificate that chains to the client CA is the user named by its
//!   common name, in the groups named by its organizations.
//!
//! The settings come from the `kube-system/extension-apiserver-authentication` ConfigMap that
//! kube-apiserver publishes ([`AuthenticationSettings::from_configmap`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use http::HeaderMap;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::ClientCertVerifier;

use super::UserInfo;
use crate::tls::{self, TlsError};

/// The namespace and name of the ConfigMap kube-apiserver publishes its settings in.
pub const AUTHENTICATION_CONFIGMAP: (&str, &str) =
    ("kube-system", "extension-apiserver-authentication");

/// A CA bundle client certificates are verified against.
#[derive(Clone)]
pub struct CaBundle {
    pem: String,
    verifier: Arc<dyn ClientCertVerifier>,
}

impl std::fmt::Debug for CaBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaBundle")
            .field("pem", &self.pem)
            .finish_non_exhaustive()
    }
}

impl CaBundle {
    /// A bundle from PEM text (`what` names it in errors).
    pub fn from_pem(pem: &str, what: &str) -> Result<Self, TlsError> {
        let roots = tls::root_store(pem.as_bytes(), what)?;
        Ok(Self {
            pem: pem.to_owned(),
            verifier: tls::client_verifier(roots, what)?,
        })
    }

    /// The PEM text.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// Whether `chain` (leaf first) chains to this bundle, valid now, for client authentication.
    fn verify(&self, chain: &[CertificateDer<'static>]) -> Result<(), String> {
        let Some((leaf, intermediates)) = chain.split_first() else {
            return Err("no client certificate".into());
        };
        self.verifier
            .verify_client_cert(leaf, intermediates, UnixTime::now())
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// The request-header (front-proxy) settings.
#[derive(Debug, Clone)]
pub struct RequestHeaderSettings {
    /// CA the proxy's client certificate must chain to (`requestheader-client-ca-file`).
    pub client_ca: CaBundle,
    /// Common names accepted; empty = any (`requestheader-allowed-names`).
    pub allowed_names: Vec<String>,
    /// Headers carrying the user name, first non-empty wins (`requestheader-username-headers`).
    pub username_headers: Vec<String>,
    /// Headers carrying the user's UID (`requestheader-uid-headers`, Kubernetes ≥ 1.32).
    pub uid_headers: Vec<String>,
    /// Headers carrying groups, each repeatable (`requestheader-group-headers`).
    pub group_headers: Vec<String>,
    /// Prefixes of headers carrying extra attributes (`requestheader-extra-headers-prefix`).
    pub extra_header_prefixes: Vec<String>,
}

impl RequestHeaderSettings {
    /// Settings with kube-apiserver's usual header names (`X-Remote-User`, `X-Remote-Group`,
    /// `X-Remote-Extra-`) and the given CA and allowed names.
    pub fn with_default_headers(client_ca: CaBundle, allowed_names: Vec<String>) -> Self {
        Self {
            client_ca,
            allowed_names,
            username_headers: vec!["X-Remote-User".into()],
            uid_headers: Vec::new(),
            group_headers: vec!["X-Remote-Group".into()],
            extra_header_prefixes: vec!["X-Remote-Extra-".into()],
        }
    }
}

static GENERATION: AtomicU64 = AtomicU64::new(1);

/// How client certificates are authenticated: the content of
/// `kube-system/extension-apiserver-authentication`.
#[derive(Debug, Clone)]
pub struct AuthenticationSettings {
    /// Plain x509 client authentication (`client-ca-file`).
    pub client_ca: Option<CaBundle>,
    /// Front-proxy authentication.
    pub request_header: Option<RequestHeaderSettings>,
    /// Distinguishes versions, so per-connection verdicts are recomputed after a change.
    pub(crate) generation: u64,
}

/// The ConfigMap holds something unusable.
#[derive(Debug, thiserror::Error)]
#[error("{key} in {}/{}: {message}", AUTHENTICATION_CONFIGMAP.0, AUTHENTICATION_CONFIGMAP.1)]
pub struct SettingsError {
    /// The ConfigMap key.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl AuthenticationSettings {
    /// Settings from their parts.
    pub fn new(client_ca: Option<CaBundle>, request_header: Option<RequestHeaderSettings>) -> Self {
        Self {
            client_ca,
            request_header,
            generation: GENERATION.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// No certificate is trusted (bearer tokens only).
    pub fn none() -> Self {
        Self::new(None, None)
    }

    /// Settings from the ConfigMap's `data`. List-valued keys hold JSON arrays of strings, as
    /// kube-apiserver writes them.
    pub fn from_configmap(data: &BTreeMap<String, String>) -> Result<Self, SettingsError> {
        let nonempty = |key: &str| data.get(key).map(|s| s.trim()).filter(|s| !s.is_empty());
        let list = |key: &str, default: &[&str]| -> Result<Vec<String>, SettingsError> {
            match nonempty(key) {
                None => Ok(default.iter().map(|s| (*s).to_owned()).collect()),
                Some(text) => {
                    serde_json::from_str::<Vec<String>>(text).map_err(|e| SettingsError {
                        key: key.to_owned(),
                        message: format!("not a JSON array of strings: {e}"),
                    })
                }
            }
        };
        let ca = |key: &str| -> Result<Option<CaBundle>, SettingsError> {
            nonempty(key)
                .map(|pem| {
                    CaBundle::from_pem(pem, key).map_err(|e| SettingsError {
                        key: key.to_owned(),
                        message: e.to_string(),
                    })
                })
                .transpose()
        };
        let client_ca = ca("client-ca-file")?;
        let request_header = match ca("requestheader-client-ca-file")? {
            None => None,
            Some(client_ca) => Some(RequestHeaderSettings {
                client_ca,
                allowed_names: list("requestheader-allowed-names", &[])?,
                username_headers: list("requestheader-username-headers", &["X-Remote-User"])?,
                uid_headers: list("requestheader-uid-headers", &[])?,
                group_headers: list("requestheader-group-headers", &["X-Remote-Group"])?,
                extra_header_prefixes: list(
                    "requestheader-extra-headers-prefix",
                    &["X-Remote-Extra-"],
                )?,
            }),
        };
        Ok(Self::new(client_ca, request_header))
    }

    /// What the client certificate of a connection proves (computed once per connection and
    /// settings version by the server).
    pub(crate) fn check_certificate(&self, chain: &[CertificateDer<'static>]) -> CertVerdict {
        if chain.is_empty() {
            return CertVerdict::NoCertificate;
        }
        let mut problems = Vec::new();
        if let Some(rh) = &self.request_header {
            match rh.client_ca.verify(chain) {
                Ok(()) => {
                    let cn = subject(&chain[0]).map(|(cn, _)| cn).unwrap_or_default();
                    if rh.allowed_names.is_empty() || rh.allowed_names.contains(&cn) {
                        return CertVerdict::FrontProxy;
                    }
                    problems.push(format!(
                        "front-proxy certificate CN {cn:?} is not in the allowed names"
                    ));
                }
                Err(e) => problems.push(format!("not a front-proxy certificate: {e}")),
            }
        }
        if let Some(ca) = &self.client_ca {
            match ca.verify(chain) {
                Ok(()) => {
                    if let Some((cn, orgs)) = subject(&chain[0]).filter(|(cn, _)| !cn.is_empty()) {
                        return CertVerdict::User(UserInfo {
                            username: cn,
                            groups: orgs,
                            ..UserInfo::default()
                        });
                    }
                    problems.push("client certificate has no common name".into());
                }
                Err(e) => problems.push(format!("not a client certificate: {e}")),
            }
        }
        if problems.is_empty() {
            problems.push("no client CA is configured".into());
        }
        CertVerdict::Rejected(problems.join("; "))
    }

    /// The user a front proxy names in `headers` (only call for a [`CertVerdict::FrontProxy`]
    /// connection). `None` when no user header is set.
    pub(crate) fn user_from_headers(&self, headers: &HeaderMap) -> Option<UserInfo> {
        let rh = self.request_header.as_ref()?;
        let first = |names: &[String]| {
            names.iter().find_map(|h| {
                headers
                    .get_all(h.as_str())
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .find(|v| !v.is_empty())
                    .map(str::to_owned)
            })
        };
        let username = first(&rh.username_headers)?;
        let uid = first(&rh.uid_headers).unwrap_or_default();
        let groups = rh
            .group_headers
            .iter()
            .flat_map(|h| headers.get_all(h.as_str()).iter())
            .filter_map(|v| v.to_str().ok())
            .map(str::to_owned)
            .collect();
        let mut extra: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (name, value) in headers {
            let name = name.as_str(); // lower case already
            for prefix in &rh.extra_header_prefixes {
                let prefix = prefix.to_ascii_lowercase();
                if let Some(key) = name.strip_prefix(prefix.as_str())
                    && !key.is_empty()
                    && let Ok(value) = value.to_str()
                {
                    // Keys are percent-encoded by the proxy (kube-apiserver unescapes them).
                    extra
                        .entry(unescape(key))
                        .or_default()
                        .push(value.to_owned());
                }
            }
        }
        Some(UserInfo {
            username,
            uid,
            groups,
            extra,
        })
    }
}

/// What a connection's client certificate proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CertVerdict {
    /// No certificate was presented.
    NoCertificate,
    /// A valid front-proxy certificate: the user is in the request headers.
    FrontProxy,
    /// A valid x509 client certificate for this user.
    User(UserInfo),
    /// A certificate nobody trusts (why, for the log).
    Rejected(String),
}

/// (common name, organizations) of a DER certificate.
fn subject(der: &CertificateDer<'_>) -> Option<(String, Vec<String>)> {
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    let subject = cert.subject();
    let cn = subject
        .iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok())
        .unwrap_or_default()
        .to_owned();
    let orgs = subject
        .iter_organization()
        .filter_map(|a| a.as_str().ok())
        .map(str::to_owned)
        .collect();
    Some((cn, orgs))
}

fn unescape(key: &str) -> String {
    let bytes = key.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = key.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).to_lowercase()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn configmap_lists_are_json() {
        let (ca, _) = crate::tls::selfsigned::new_ca("front-proxy-ca").unwrap();
        let data: BTreeMap<String, String> = [
            ("requestheader-client-ca-file", ca.as_str()),
            ("requestheader-allowed-names", r#"["front-proxy-client"]"#),
            ("requestheader-username-headers", r#"["X-Remote-User"]"#),
            ("requestheader-group-headers", r#"["X-Remote-Group"]"#),
            (
                "requestheader-extra-headers-prefix",
                r#"["X-Remote-Extra-"]"#,
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let s = AuthenticationSettings::from_configmap(&data).unwrap();
        let rh = s.request_header.as_ref().unwrap();
        assert_eq!(rh.allowed_names, vec!["front-proxy-client"]);
        assert!(s.client_ca.is_none());

        let mut headers = HeaderMap::new();
        headers.insert("x-remote-user", "alice".parse().unwrap());
        headers.append("x-remote-group", "g1".parse().unwrap());
        headers.append("x-remote-group", "g2".parse().unwrap());
        headers.insert("x-remote-extra-scopes%2Fa", "s".parse().unwrap());
        let user = s.user_from_headers(&headers).unwrap();
        assert_eq!(user.username, "alice");
        assert_eq!(user.groups, vec!["g1", "g2"]);
        assert_eq!(user.extra.get("scopes/a"), Some(&vec!["s".to_owned()]));

        let mut bad = data.clone();
        bad.insert(
            "requestheader-allowed-names".into(),
            "front-proxy-client".into(),
        );
        assert!(AuthenticationSettings::from_configmap(&bad).is_err());
    }
}
