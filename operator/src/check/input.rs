//! Reading the manifests `kedge check` is given: multi-document YAML holding ScaledObjects and
//! the objects they reference.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{ConfigMap, PodTemplateSpec, Secret};
use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_saphyr::Spanned;

use crate::crd::{ClusterTriggerAuthentication, ScaleTarget, TriggerAuthentication};
use crate::resolve::{ObjectSource, Snapshot};

/// Where a document came from, for messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// File name as given (`-` for standard input).
    pub file: String,
    /// 1-based line where the document's content starts.
    pub line: u64,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// A problem with the input itself (unreadable file, bad YAML, malformed object): `kedge check`
/// exits 2 on these.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InputError(pub String);

/// A ScaledObject document, kept untyped until it is checked so that a malformed one becomes a
/// finding of that object rather than an input error.
#[derive(Clone, Debug)]
pub struct ScaledObjectDoc {
    /// Where it was read.
    pub origin: Origin,
    /// `metadata.namespace`, or `default`.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// The document.
    pub value: Value,
}

/// Everything read from the input files, indexed for resolution.
#[derive(Default)]
pub struct Inventory {
    /// ScaledObjects in input order.
    pub scaled_objects: Vec<ScaledObjectDoc>,
    /// The objects they may reference.
    pub objects: Snapshot,
}

impl Inventory {
    /// Adds every document of one file.
    pub fn add_file(&mut self, file: &str, text: &str) -> Result<(), InputError> {
        let docs: Vec<Spanned<Value>> = serde_saphyr::from_multiple(text).map_err(|e| {
            let at = e
                .location()
                .map(|l| format!("{file}:{}:{}", l.line(), l.column()))
                .unwrap_or_else(|| file.to_owned());
            InputError(format!(
                "{at}: invalid YAML: {}",
                first_line(&e.to_string())
            ))
        })?;
        for doc in docs {
            let origin = Origin {
                file: file.to_owned(),
                line: doc.referenced.line(),
            };
            self.add_value(origin, doc.value)?;
        }
        Ok(())
    }

    fn add_value(&mut self, origin: Origin, value: Value) -> Result<(), InputError> {
        if value.is_null() {
            return Ok(()); // an empty document, e.g. a trailing `---`
        }
        let text = |key: &str| {
            value
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let (kind, api_version) = (text("kind"), text("apiVersion"));
        let (kind, api_version) = (kind.as_str(), api_version.as_str());
        if kind.is_empty() || api_version.is_empty() {
            return Err(InputError(format!(
                "{origin}: document has no apiVersion and kind; is this a Kubernetes manifest?"
            )));
        }
        let meta = value.get("metadata");
        let name = meta
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let namespace = meta
            .and_then(|m| m.get("namespace"))
            .and_then(Value::as_str)
            .filter(|ns| !ns.is_empty())
            .unwrap_or("default")
            .to_owned();
        let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
        match (group, kind) {
            (_, "List") => {
                let items = match value.get("items") {
                    Some(Value::Array(items)) => items.clone(),
                    _ => Vec::new(),
                };
                for item in items {
                    self.add_value(origin.clone(), item)?;
                }
            }
            ("keda.sh", "ScaledObject") => self.scaled_objects.push(ScaledObjectDoc {
                origin,
                namespace,
                name,
                value,
            }),
            ("keda.sh", "TriggerAuthentication") => {
                let ta: TriggerAuthentication = typed(&origin, kind, value)?;
                self.objects
                    .insert_trigger_authentication(&namespace, &name, Arc::new(ta));
            }
            ("keda.sh", "ClusterTriggerAuthentication") => {
                let cta: ClusterTriggerAuthentication = typed(&origin, kind, value)?;
                self.objects
                    .insert_cluster_trigger_authentication(&name, Arc::new(cta));
            }
            ("", "Secret") => {
                let secret: Secret = typed(&origin, kind, value)?;
                self.objects
                    .insert_secret(&namespace, &name, Arc::new(secret));
            }
            ("", "ConfigMap") => {
                let cm: ConfigMap = typed(&origin, kind, value)?;
                self.objects
                    .insert_config_map(&namespace, &name, Arc::new(cm));
            }
            _ => {
                // Any workload with a pod template (Deployment, StatefulSet, custom kinds) can
                // be a scale target whose env resolves `<param>FromEnv`.
                if let Some(template) = value.get("spec").and_then(|s| s.get("template")) {
                    let template: PodTemplateSpec =
                        typed(&origin, &format!("{kind} pod template"), template.clone())?;
                    self.objects
                        .insert_workload(&namespace, api_version, kind, &name, template);
                }
            }
        }
        Ok(())
    }

    /// Whether the scale target of a ScaledObject is in the input.
    pub fn has_workload(&self, namespace: &str, target: &ScaleTarget) -> bool {
        self.objects.pod_template(namespace, target).is_some()
    }
}

fn typed<T: DeserializeOwned>(origin: &Origin, what: &str, value: Value) -> Result<T, InputError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        InputError(format!(
            "{origin}: invalid {what}: {}: {}",
            e.path(),
            e.inner()
        ))
    })
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_lines_and_kinds() {
        let text = "---\napiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: ns}\nstringData: {password: pw}\n---\n\n---\napiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata: {name: so}\nspec: {}\n";
        let mut inv = Inventory::default();
        match inv.add_file("in.yaml", text) {
            Ok(()) => {}
            Err(e) => panic!("{e}"),
        }
        assert!(inv.objects.secret("ns", "s").is_some());
        assert_eq!(inv.scaled_objects.len(), 1);
        let so = &inv.scaled_objects[0];
        assert_eq!((so.namespace.as_str(), so.name.as_str()), ("default", "so"));
        assert_eq!(so.origin.to_string(), "in.yaml:9");
    }

    #[test]
    fn yaml_errors_name_file_and_line() {
        let mut inv = Inventory::default();
        let err = inv
            .add_file(
                "bad.yaml",
                "apiVersion: v1\nkind: ConfigMap\ndata: [unclosed\n",
            )
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.starts_with("bad.yaml:"), "{err}");
        assert!(err.contains("invalid YAML"), "{err}");
    }

    #[test]
    fn malformed_reference_is_an_input_error() {
        let mut inv = Inventory::default();
        let err = inv
            .add_file(
                "s.yaml",
                "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {k: \"not base64!\"}\n",
            )
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.starts_with("s.yaml:1: invalid Secret: data.k"), "{err}");
        let err = inv
            .add_file("n.yaml", "just: a map\n")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("n.yaml:1: document has no apiVersion and kind"),
            "{err}"
        );
    }
}
