//! The `external.metrics.k8s.io/v1beta1` API server that the HorizontalPodAutoscaler calls,
//! speaking the same wire contract as KEDA's metrics adapter.
//!
//! * [`AdapterServer`] serves discovery, health, OpenAPI stubs and
//!   `GET /apis/external.metrics.k8s.io/v1beta1/namespaces/{ns}/{metric}?labelSelector=scaledobject.keda.sh/name=<so>`
//!   over TLS, answering every error with a Kubernetes `Status`.
//! * Values come from a [`MetricsProvider`] — in kedge, the operator's scale-loop state.
//! * [`auth`] authenticates the aggregator's front proxy (or x509 users, or bearer tokens via
//!   TokenReview) and authorizes with SubjectAccessReview, as `system:auth-delegator` allows.
//! * [`grpc`] lets every replica serve: followers forward reads to the leader over mutual TLS
//!   and fall back to their last known values for a bounded time.
//!
//! The dependency direction is `operator → metrics-adapter → scaler-core`: this crate knows
//! nothing about ScaledObjects beyond the provider seam.

#![warn(missing_docs)]

pub mod auth;
pub mod config;
pub mod discovery;
pub mod error;
pub mod grpc;
pub mod provider;
pub mod selector;
pub mod server;
pub mod status;
pub mod tls;

pub use auth::{Auth, DelegatedAuth, DelegatedAuthConfig};
pub use config::{AdapterConfig, GrpcConfig, GrpcTls, ServingTls};
pub use error::Error;
pub use provider::{MetricsProvider, ProviderError};
pub use server::{AdapterServer, ServerHandle};
