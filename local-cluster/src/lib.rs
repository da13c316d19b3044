//! An embedded Kubernetes API control plane for `kedge dev` and for end-to-end tests.
//!
//! It will serve the Kubernetes REST dialect that kube-rs and kubectl speak (discovery, CRUD,
//! watch, `status` and `scale` subresources) together with simulated workload and HPA
//! controllers. Until then this crate only reserves its place in the workspace.
