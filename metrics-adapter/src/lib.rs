//! The `external.metrics.k8s.io/v1beta1` API server that the HorizontalPodAutoscaler calls.
//!
//! It serves the values that kedge's scale loop keeps for each ScaledObject's triggers.
//! The server itself arrives with the metrics-adapter work; this crate holds its place in the
//! workspace so the dependency direction (`operator → metrics-adapter → scaler-core`) is fixed.
