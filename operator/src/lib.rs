//! kedge: an event-driven autoscaler for Kubernetes that speaks KEDA's `keda.sh/v1alpha1` API.
//!
//! This crate holds the CRD types, KEDA's admission rules, auth and env resolution, HPA
//! planning, the offline checker behind `kedge check`, and the wiring of the `kedge` binary.

pub mod adapter;
pub mod admission;
pub mod certs;
pub mod check;
pub mod cli;
pub mod controller;
pub mod crd;
pub mod decision;
pub mod dev;
pub mod events;
pub mod fallback;
pub mod hpa;
pub mod kube_client;
pub mod leader;
pub mod metrics_source;
pub mod modifiers;
pub mod resolve;
pub mod run;
pub mod runtime;
pub mod scale_loop;
pub mod status;
pub mod target;
pub mod telemetry;
