//! kedge: an event-driven autoscaler for Kubernetes that speaks KEDA's `keda.sh/v1alpha1` API.
//!
//! The `kedge` binary is this crate. What it offers as a library is small: the CRD types
//! ([`crd`]), the pure scaling rules ([`policy`]), the command line a custom build with its own
//! scalers calls ([`cli::main_with_registry`]), and, with the default `dev` feature, the
//! embedded-cluster helpers of `kedge dev` ([`dev`]). Everything else is the operator's inside.
//!
//! | module | what |
//! |---|---|
//! | `controller` | the ScaledObject reconciler: a list of steps returning `NotReady` or an API error |
//! | `scale_loop` | polls every object at its interval and acts on [`policy::decision`] |
//! | `trigger_plan` | triggers → scaler configurations and Resource metrics (reconciler and `kedge check`) |
//! | `resolve` | TriggerAuthentication, Secret, ConfigMap and container-env resolution |
//! | `admission` | KEDA's admission rules |
//! | `hpa` | the HPA kedge owns |
//! | `metrics_source`, `adapter` | the values the external metrics API serves, and its wiring |
//! | `leader`, `run` | leader election and `kedge run` |

#![warn(missing_docs)]

pub(crate) mod access;
pub(crate) mod adapter;
pub(crate) mod admission;
pub(crate) mod certs;
pub(crate) mod check;
pub mod cli;
pub(crate) mod controller;
pub mod crd;
#[cfg(feature = "dev")]
pub mod dev;
pub(crate) mod events;
pub(crate) mod health;
/// `kedge check`'s input and checks, for the fuzz targets in `fuzz/`; not a stable API.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::check::{CheckOptions, Inventory, check, render_json, render_table};
}
pub(crate) mod fence;
pub(crate) mod hpa;
pub(crate) mod kube_client;
pub(crate) mod leader;
pub(crate) mod metrics_source;
pub mod policy;
pub(crate) mod resolve;
pub(crate) mod run;
pub(crate) mod runtime;
pub(crate) mod scale_loop;
pub(crate) mod status;
pub(crate) mod target;
pub(crate) mod telemetry;
pub(crate) mod trigger_plan;
