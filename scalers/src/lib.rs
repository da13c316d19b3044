//! kedge's built-in scalers, one module per trigger type, each behind a cargo feature of the
//! same name.
//!
//! [`registry`] returns a [`scaler_core::Registry`] holding every scaler this build includes.

#[cfg(feature = "cron")]
pub mod cron;

use scaler_core::Registry;

/// A registry with every built-in scaler enabled in this build.
///
/// ```
/// let registry = scalers::registry();
/// assert!(registry.factory("cron").is_some());
/// ```
pub fn registry() -> Registry {
    let mut registry = Registry::new();
    #[cfg(feature = "cron")]
    registry.register(cron::CronFactory);
    registry
}
