//! The gRPC link between replicas (`proto/metrics.proto`): every replica serves the external
//! metrics API, only the leader owns values; followers forward reads to it over mutual TLS 1.3
//! ([`ForwardingProvider`]) and the leader answers them from its own provider ([`GrpcServer`]).
//!
//! Errors cross the link as gRPC statuses with a small `kedge-*` metadata marker, so a follower
//! tells "the leader answered: the trigger failed" (shown to the HPA as is) from "the leader
//! cannot be reached" (answered from the last known value, within the staleness bound).

mod client;
mod server;
mod tls;

pub use client::{ForwardingProvider, LeaderAddress};
pub use server::{GrpcServer, MetricsGrpcService};

/// Code generated from `proto/metrics.proto`.
#[allow(missing_docs, clippy::all, clippy::unwrap_used)]
pub mod proto {
    tonic::include_proto!("kedge.metrics.v1");
}

/// Metadata key set on NOT_FOUND statuses: `scaledobject` or `metric`.
const NOT_FOUND_KEY: &str = "kedge-not-found";
/// Metadata key set on INTERNAL statuses that carry a trigger failure (value `trigger`).
const ERROR_KEY: &str = "kedge-error";
