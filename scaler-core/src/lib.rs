//! # scaler-core: the contract of a kedge scaler
//!
//! kedge polls event sources through *scalers*: one [`Scaler`] per trigger of a ScaledObject,
//! built by a [`ScalerFactory`] registered for the trigger's `type` in a [`Registry`]. This crate
//! is everything a scaler needs and nothing more (no Kubernetes client, and no I/O but the
//! name resolution of [`AddressGuard`]), so your own scaler is an ordinary crate depending on
//! `scaler-core` alone.
//!
//! A scaler:
//!
//! 1. declares its parameters as a struct deriving [`ScalerParams`], which reads them from the
//!    trigger's metadata, its TriggerAuthentication and the target's env with KEDA's rules;
//! 2. reports its metric specs ([`MetricSpec`], names prefixed `s<index>-` as KEDA does);
//! 3. at each poll returns values and whether it is active ([`MetricsAndActivity`]).
//!
//! ## A complete scaler
//!
//! ```
//! use async_trait::async_trait;
//! use scaler_core::*;
//!
//! /// Scales on a number read from a file (e.g. a queue depth written by another process).
//! #[derive(ScalerParams)]
//! struct FileParams {
//!     /// Path of the file holding the number.
//!     path: String,
//!     /// Target value per replica.
//!     #[param(default = 10, min = 0.001)]
//!     target_value: f64,
//!     /// The scaler is active above this value.
//!     #[param(default = 0)]
//!     activation_target_value: f64,
//! }
//!
//! struct FileScaler {
//!     params: FileParams,
//!     cfg: ScalerConfig,
//!     target_type: MetricTargetType,
//! }
//!
//! #[async_trait]
//! impl Scaler for FileScaler {
//!     async fn metric_specs(&self) -> Result<Vec<MetricSpec>, ScalerError> {
//!         let name = self.cfg.metric_name(&normalize_metric_name(&format!("file-{}", self.params.path)));
//!         Ok(vec![MetricSpec { name, target: MetricTarget::new(self.target_type, self.params.target_value) }])
//!     }
//!
//!     async fn metrics_and_activity(&self, metric_name: &str) -> Result<MetricsAndActivity, ScalerError> {
//!         let text = std::fs::read_to_string(&self.params.path)
//!             .map_err(|e| ScalerError::source_with(&self.cfg.trigger, format!("reading {}", self.params.path), e))?;
//!         let value: f64 = text.trim().parse()
//!             .map_err(|_| ScalerError::source(&self.cfg.trigger, format!("{:?} is not a number", text.trim())))?;
//!         Ok(MetricsAndActivity {
//!             metrics: vec![MetricValue::new(metric_name, value)],
//!             active: value > self.params.activation_target_value,
//!         })
//!     }
//! }
//!
//! struct FileFactory;
//!
//! impl ScalerFactory for FileFactory {
//!     fn trigger_types(&self) -> &'static [&'static str] {
//!         &["file"]
//!     }
//!     fn build(&self, cfg: &ScalerConfig) -> Result<Box<dyn Scaler>, ScalerError> {
//!         let params = FileParams::from_config(cfg)?;
//!         let target_type = cfg.metric_target_type()?;
//!         Ok(Box::new(FileScaler { params, cfg: cfg.clone(), target_type }))
//!     }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let path = std::env::temp_dir().join(format!("scaler-core-doc-{}", std::process::id()));
//! std::fs::write(&path, "25\n").unwrap();
//!
//! let mut registry = Registry::new();
//! registry.register(FileFactory);
//! let cfg = ScalerConfig::new("file", 0).with_metadata("path", path.to_str().unwrap());
//! let scaler = registry.build(&cfg).unwrap();
//!
//! let specs = scaler.metric_specs().await.unwrap();
//! assert!(specs[0].name.starts_with("s0-file-"));
//! assert_eq!(specs[0].target.value.to_string(), "10");
//!
//! let poll = scaler.metrics_and_activity(&specs[0].name).await.unwrap();
//! assert_eq!(poll.metrics[0].value.to_string(), "25");
//! assert!(poll.active);
//!
//! // Every problem is reported at once, naming the trigger and the parameter.
//! let bad = ScalerConfig::new("file", 2).with_metadata("targetValue", "lots");
//! assert_eq!(
//!     registry.build(&bad).err().unwrap().to_string(),
//!     "triggers[2] (file): missing required parameter \"path\" in [triggerMetadata]; \
//!      unable to set param \"targetValue\" value \"lots\": expected a number"
//! );
//! # std::fs::remove_file(&path).unwrap();
//! # });
//! ```

#![warn(missing_docs)]

// Lets the derive's `::scaler_core::` paths resolve inside this crate's own tests.
extern crate self as scaler_core;

pub mod address;
pub mod config;
pub mod error;
pub mod metric;
pub mod naming;
pub mod params;
pub mod quantity;
pub mod registry;
pub mod scaler;
pub mod secret;
pub mod shared;

pub use address::AddressGuard;
pub use config::{DEFAULT_TIMEOUT, ScalerConfig, TriggerId};
pub use error::{BoxError, ScalerError};
pub use metric::{
    MetricSpec, MetricTarget, MetricTargetType, MetricValue, MetricsAndActivity,
    UTILIZATION_UNSUPPORTED,
};
pub use naming::{metric_name_with_index, normalize_metric_name};
pub use params::{FromParam, ParamReader, ParamSpec, ScalerParams, Source};
pub use quantity::Quantity;
pub use registry::Registry;
pub use scaler::{ActivityStream, Scaler, ScalerFactory};
pub use secret::Secret;
pub use shared::SharedClients;

/// Derives [`ScalerParams`](trait@ScalerParams) for a struct of trigger parameters.
/// See the trait for the attributes.
pub use scaler_core_derive::ScalerParams;

/// Re-exported so scaler crates use the same `async_trait` as the traits.
pub use async_trait::async_trait;

/// Re-exported so push scalers can implement `Stream` for [`ActivityStream`] without another
/// dependency.
pub use futures_core;
