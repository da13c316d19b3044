//! The pure layer: what kedge decides, as functions of plain data. Nothing here has a clock, a
//! Kubernetes client or any I/O, and nothing depends on anything in this crate but [`crate::crd`],
//! so every rule can be tested with a table and a controlled time.
//!
//! - [`decision`]: one poll of a ScaledObject → scale action, conditions, Events.
//! - [`pause`]: the pause annotations and the plan both the reconciler and the scale loop follow.
//! - [`fallback`]: `spec.fallback`: health, when it applies, what it stands for.
//! - [`modifiers`]: `advanced.scalingModifiers` formulas.
//! - [`conditions`] and [`event`]: the condition vocabulary (types, reasons, messages, the one
//!   setter) and the Events, with KEDA's reasons.

pub mod conditions;
pub mod decision;
pub mod event;
pub mod fallback;
pub mod modifiers;
pub mod pause;
