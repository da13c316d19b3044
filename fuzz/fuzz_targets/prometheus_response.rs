//! The Prometheus scaler's reading of a query reply (`scalers::prometheus::response::interpret`),
//! a body from a server the tenant names. The first byte picks `ignoreNullValues` (bit 0) and
//! the HTTP status (bit 1 set: an error status); the rest is the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scalers::prometheus::response::interpret;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, body)) = data.split_first() else {
        return;
    };
    let ignore_null_values = flags & 1 == 1;
    let status = if flags & 2 == 0 {
        200
    } else {
        400 + u16::from(flags >> 2)
    };
    if let Ok(value) = interpret(status, body, "up", ignore_null_values) {
        // What the HPA is given is always a number.
        assert!(value.is_finite(), "interpret returned {value}");
        assert!(
            (200..=299).contains(&status),
            "a value from status {status}"
        );
    }
});
