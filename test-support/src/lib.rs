//! Helpers every kedge test crate shares, so each exists once: the service environment
//! `scripts/services.sh` prepares ([`env`](mod@env)), unique resource names ([`names`]),
//! polling until a condition holds ([`eventually()`]), and, behind cargo features of the same
//! names, broker clients (modules `kafka` and `rabbitmq`) and a test PKI (module `pki`).
//!
//! It depends on no kedge crate but `kedge-tls`, so any crate, the operator's included, can use
//! it in its tests.
#![warn(missing_docs)]

pub mod env;
pub mod eventually;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod names;
#[cfg(feature = "pki")]
pub mod pki;
#[cfg(feature = "rabbitmq")]
pub mod rabbitmq;

pub use env::{service_env, service_envs, services_required};
pub use eventually::eventually;
pub use names::{unique, unique_ident};
