//! `keda.sh/v1alpha1` custom resources.
