//! `type: prometheus`: parameter parsing and validation through the factory, from any metadata,
//! auth params and env (the text form of `kedge_fuzz::trigger_config`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    kedge_fuzz::fuzz_scaler(
        &scalers::prometheus::PrometheusFactory,
        "prometheus",
        data,
        true,
        false,
    );
});
