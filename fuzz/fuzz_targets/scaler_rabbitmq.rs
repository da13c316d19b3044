//! `type: rabbitmq`: parameter parsing and validation through the factory, from any metadata,
//! auth params and env (the text form of `kedge_fuzz::trigger_config`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    kedge_fuzz::fuzz_scaler(
        &scalers::rabbitmq::RabbitMqFactory::new(),
        "rabbitmq",
        data,
        true,
        false,
    );
});
