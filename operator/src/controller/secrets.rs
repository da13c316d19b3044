//! Which Secrets kedge reads: with `--restrict-secret-access` (KEDA's
//! `KEDA_RESTRICT_SECRET_ACCESS`) only those of the cluster object namespace, so its
//! ServiceAccount needs no Secret access anywhere else (the Helm chart's
//! `rbac.restrictSecretAccess`).

use super::Settings;

impl Settings {
    /// The namespace whose Secrets are watched (by metadata), `None` for every namespace.
    /// Restricted, the cluster object namespace alone: a watch elsewhere would be refused.
    pub fn secret_watch_namespace(&self) -> Option<&str> {
        if self.restrict_secrets {
            Some(&self.resolve.cluster_object_namespace)
        } else {
            self.namespace.as_deref()
        }
    }

    /// Whether kedge reads Secrets in `namespace` (else it does not ask: the read would be
    /// refused, and the object gets `Ready=False` naming the Secret).
    pub fn reads_secrets_in(&self, namespace: &str) -> bool {
        !self.restrict_secrets || namespace == self.resolve.cluster_object_namespace
    }
}

/// Why a Secret outside the cluster object namespace is not read, for `Ready=False`.
pub(super) fn restricted_message(cluster_object_namespace: &str) -> String {
    format!(
        "kedge reads Secrets only in namespace {cluster_object_namespace} \
         (--restrict-secret-access): use a ClusterTriggerAuthentication with its Secrets there"
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::resolve::ResolveSettings;

    fn settings(namespace: Option<&str>, restrict_secrets: bool) -> Settings {
        Settings {
            resolve: ResolveSettings {
                cluster_object_namespace: "kedge".to_owned(),
            },
            timeout: Duration::from_secs(3),
            namespace: namespace.map(str::to_owned),
            resync: Duration::from_secs(300),
            max_concurrent_reconciles: 20,
            address_guard: Default::default(),
            restrict_secrets,
        }
    }

    #[test]
    fn restricted_secrets_are_watched_and_read_in_the_cluster_object_namespace_only() {
        let open = settings(None, false);
        assert_eq!(open.secret_watch_namespace(), None);
        assert!(open.reads_secrets_in("shop"));
        let one = settings(Some("shop"), false);
        assert_eq!(one.secret_watch_namespace(), Some("shop"));

        for watched in [None, Some("shop")] {
            let restricted = settings(watched, true);
            assert_eq!(restricted.secret_watch_namespace(), Some("kedge"));
            assert!(restricted.reads_secrets_in("kedge"));
            assert!(!restricted.reads_secrets_in("shop"));
        }
    }
}
