//! `type: external` and `external-push` (with a line `push=true`): parameter parsing and
//! validation through the factory, from any metadata, auth params and env (the text form of
//! `kedge_fuzz::trigger_config`). Never asks for metric specs: that would call the address.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let push = data.split(|&b| b == b'\n').any(|line| line == b"push=true");
    let trigger_type = if push { "external-push" } else { "external" };
    kedge_fuzz::fuzz_scaler(
        &scalers::external::ExternalFactory,
        trigger_type,
        data,
        false,
        false,
    );
});
