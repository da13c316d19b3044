//! [`Registry`]: trigger type → factory.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::{Scaler, ScalerConfig, ScalerError, ScalerFactory};

/// Maps `triggers[].type` strings to the factories that build them.
///
/// kedge's binary starts from a registry holding the built-in scalers; a custom build adds its
/// own with [`Registry::register`].
///
/// ```
/// use scaler_core::{Registry, ScalerConfig};
/// let registry = Registry::new();
/// let err = registry.build(&ScalerConfig::new("carrier-pigeon", 0)).err().unwrap();
/// assert_eq!(err.to_string(), "no scaler found for type: carrier-pigeon");
/// ```
#[derive(Clone, Default)]
pub struct Registry {
    factories: BTreeMap<&'static str, Arc<dyn ScalerFactory>>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `factory` for each of its trigger types, replacing any earlier factory for the
    /// same type (so a custom build can override a built-in scaler).
    pub fn register(&mut self, factory: impl ScalerFactory + 'static) -> &mut Self {
        let factory: Arc<dyn ScalerFactory> = Arc::new(factory);
        for trigger_type in factory.trigger_types() {
            self.factories.insert(trigger_type, Arc::clone(&factory));
        }
        self
    }

    /// The factory for `trigger_type`.
    pub fn factory(&self, trigger_type: &str) -> Option<&Arc<dyn ScalerFactory>> {
        self.factories.get(trigger_type)
    }

    /// Builds the scaler for `cfg.trigger.trigger_type`.
    pub fn build(&self, cfg: &ScalerConfig) -> Result<Box<dyn Scaler>, ScalerError> {
        match self.factory(&cfg.trigger.trigger_type) {
            Some(factory) => factory.build(cfg),
            None => Err(ScalerError::UnknownType {
                trigger_type: cfg.trigger.trigger_type.clone(),
            }),
        }
    }

    /// The registered trigger types, sorted.
    pub fn trigger_types(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.factories.keys().copied()
    }
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("trigger_types", &self.factories.keys().collect::<Vec<_>>())
            .finish()
    }
}
