//! A kedge scaler written outside kedge: `type: file-count` scales a worker on the number of
//! files waiting in a directory (an inbox, a spool, a drop folder), one replica per
//! `targetFileCount` files.
//!
//! It depends on `scaler-core` alone, which is everything a scaler needs: the [`Scaler`] and
//! [`ScalerFactory`] traits, typed parameters with KEDA's lookup rules ([`ScalerParams`]),
//! metric names and values as KEDA builds them. To use it, register [`FileCountFactory`] in
//! the registry of a kedge binary (see `kedge-bin/src/main.rs` and `docs/custom-scalers.md`):
//!
//! ```
//! let mut registry = scaler_core::Registry::new(); // in kedge: scalers::registry()
//! registry.register(custom_scaler::FileCountFactory);
//! assert!(registry.factory("file-count").is_some());
//! ```
//!
//! ```yaml
//! triggers:
//!   - type: file-count
//!     metadata:
//!       path: /data/inbox          # or pathFromEnv: INBOX_DIR
//!       suffix: .json              # count only these files (optional)
//!       targetFileCount: "20"      # files per replica (default 10)
//!       activationTargetFileCount: "0"
//! ```

use std::path::{Path, PathBuf};

use scaler_core::{
    MetricSpec, MetricTarget, MetricTargetType, MetricValue, MetricsAndActivity, ParamSpec, Scaler,
    ScalerConfig, ScalerError, ScalerFactory, ScalerParams, TriggerId, async_trait,
    normalize_metric_name,
};

/// The trigger's parameters. The derive reads them from the trigger metadata (and, for `path`,
/// from the container env named by `pathFromEnv`), applies the defaults and bounds, and
/// reports every problem at once, naming the trigger and the parameter.
#[derive(ScalerParams, Debug, Clone)]
#[params(validate = "Self::validate")]
pub struct FileCountParams {
    /// The directory to watch.
    #[param(from(metadata, env))]
    pub path: String,
    /// Count only files whose name ends with this, e.g. `.json`.
    pub suffix: Option<String>,
    /// Files per replica.
    #[param(default = 10, min = 1)]
    pub target_file_count: i64,
    /// The trigger is active (wakes the workload from zero) above this many files.
    #[param(default = 0, min = 0)]
    pub activation_target_file_count: i64,
}

impl FileCountParams {
    fn validate(&self) -> Result<(), String> {
        if Path::new(&self.path).is_relative() {
            return Err(format!("path {:?} must be absolute", self.path));
        }
        Ok(())
    }
}

/// Builds `file-count` scalers. Building only validates; nothing is read until the first poll.
#[derive(Clone, Copy, Debug, Default)]
pub struct FileCountFactory;

impl ScalerFactory for FileCountFactory {
    fn trigger_types(&self) -> &'static [&'static str] {
        &["file-count"]
    }

    fn build(&self, cfg: &ScalerConfig) -> Result<Box<dyn Scaler>, ScalerError> {
        Ok(Box::new(FileCountScaler::new(cfg)?))
    }

    fn params(&self) -> &'static [ParamSpec] {
        FileCountParams::PARAMS
    }
}

/// A `file-count` trigger.
#[derive(Debug)]
pub struct FileCountScaler {
    params: FileCountParams,
    dir: PathBuf,
    metric_name: String,
    target_type: MetricTargetType,
    trigger: TriggerId,
}

impl FileCountScaler {
    /// Validates the trigger.
    pub fn new(cfg: &ScalerConfig) -> Result<Self, ScalerError> {
        let target_type = cfg.metric_target_type()?;
        let params = FileCountParams::from_config(cfg)?;
        Ok(Self {
            dir: PathBuf::from(&params.path),
            // `s<index>-file-count-<path>`, with the characters KEDA replaces replaced.
            metric_name: cfg.metric_name(&normalize_metric_name(&format!(
                "file-count-{}",
                params.path.trim_matches('/')
            ))),
            params,
            target_type,
            trigger: cfg.trigger.clone(),
        })
    }

    /// Counts the matching regular files. Reading a directory is quick, so this stays
    /// synchronous; a slow source would use `tokio::task::spawn_blocking` or an async client.
    pub fn count(&self) -> Result<u64, ScalerError> {
        let entries = std::fs::read_dir(&self.dir).map_err(|e| {
            ScalerError::source_with(&self.trigger, format!("reading {}", self.dir.display()), e)
        })?;
        let mut count = 0;
        for entry in entries {
            let entry = entry.map_err(|e| {
                ScalerError::source_with(
                    &self.trigger,
                    format!("reading {}", self.dir.display()),
                    e,
                )
            })?;
            let is_file = entry.file_type().map(|t| t.is_file()).unwrap_or(false);
            let name = entry.file_name();
            let matches = match &self.params.suffix {
                Some(suffix) => name.to_string_lossy().ends_with(suffix.as_str()),
                None => true,
            };
            if is_file && matches {
                count += 1;
            }
        }
        Ok(count)
    }
}

#[async_trait]
impl Scaler for FileCountScaler {
    async fn metric_specs(&self) -> Result<Vec<MetricSpec>, ScalerError> {
        Ok(vec![MetricSpec {
            name: self.metric_name.clone(),
            target: MetricTarget::new(self.target_type, self.params.target_file_count as f64),
        }])
    }

    async fn metrics_and_activity(
        &self,
        metric_name: &str,
    ) -> Result<MetricsAndActivity, ScalerError> {
        let files = self.count()?;
        Ok(MetricsAndActivity {
            metrics: vec![MetricValue::new(metric_name, files as f64)],
            active: files > self.params.activation_target_file_count.unsigned_abs(),
        })
    }
}
