//! RBAC objects: any path-segment name (`system:auth-delegator`), as upstream's
//! `ValidatePathSegmentName`.

use super::Strategy;

/// The API group whose kinds this strategy covers.
pub(super) const GROUP: &str = "rbac.authorization.k8s.io";

pub(super) struct Rbac;

impl Strategy for Rbac {
    fn name_problem(&self, name: &str) -> Option<String> {
        (name.is_empty() || name == "." || name == ".." || name.contains(['/', '%']))
            .then_some("may not be '.' or '..' and may not contain '/' or '%'".to_owned())
    }
}
