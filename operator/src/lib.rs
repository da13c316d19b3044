//! kedge: an event-driven autoscaler for Kubernetes that speaks KEDA's `keda.sh/v1alpha1` API.
//!
//! This crate holds the CRD types, the offline checker behind `kedge check`, and the wiring of the
//! `kedge` binary.

pub mod crd;
