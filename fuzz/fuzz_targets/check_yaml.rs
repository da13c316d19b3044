//! `kedge check`'s input: multi-document YAML read into an inventory, then every ScaledObject
//! checked offline (KEDA's admission rules, auth and env resolution, every trigger's factory)
//! and both reports rendered, as `kedge check -f` does.
//!
//! The registry is kedge's built-in one, except that external scalers are built (so their
//! parameters are checked) but never asked for their metric spec: that calls the address in
//! the YAML, and a fuzzer must contact nothing.
#![no_main]

use std::sync::OnceLock;

use kedge::fuzzing::{CheckOptions, Inventory, check, render_json, render_table};
use libfuzzer_sys::fuzz_target;
use scaler_core::{
    MetricSpec, MetricTarget, MetricTargetType, MetricsAndActivity, ParamSpec, Registry, Scaler,
    ScalerConfig, ScalerError, ScalerFactory, async_trait,
};

/// `external` and `external-push`, validated by the real factory, answering metric specs
/// locally.
struct OfflineExternal;

struct FixedSpec(String);

#[async_trait]
impl Scaler for FixedSpec {
    async fn metric_specs(&self) -> Result<Vec<MetricSpec>, ScalerError> {
        Ok(vec![MetricSpec {
            name: self.0.clone(),
            target: MetricTarget::new(MetricTargetType::AverageValue, 1.0),
        }])
    }

    async fn metrics_and_activity(&self, _: &str) -> Result<MetricsAndActivity, ScalerError> {
        Ok(MetricsAndActivity::default())
    }
}

impl ScalerFactory for OfflineExternal {
    fn trigger_types(&self) -> &'static [&'static str] {
        scalers::external::ExternalFactory.trigger_types()
    }

    fn build(&self, cfg: &ScalerConfig) -> Result<Box<dyn Scaler>, ScalerError> {
        drop(scalers::external::ExternalFactory.build(cfg)?);
        Ok(Box::new(FixedSpec(cfg.metric_name("external"))))
    }

    fn params(&self) -> &'static [ParamSpec] {
        scalers::external::ExternalFactory.params()
    }
}

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let mut registry = scalers::registry();
        registry.register(OfflineExternal);
        registry
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut inventory = Inventory::default();
    if inventory.add_file("fuzz.yaml", text).is_err() {
        return;
    }
    let options = CheckOptions::default();
    let reports = kedge_fuzz::runtime().block_on(check(&inventory, registry(), &options));
    let _ = render_json(&reports);
    let _ = render_table(&reports);
});
