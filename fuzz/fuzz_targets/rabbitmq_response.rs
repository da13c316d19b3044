//! The RabbitMQ scaler's reading of a management API reply, a body from a server the tenant
//! names, through to the metric value: one queue (`GET /api/queues/<vhost>/<queue>`) or, with
//! `useRegex`, a page of the listing combined by `operation`. The first byte picks the reply
//! kind (bit 0), `excludeUnacknowledged` (bit 1), the operation (bits 2-3) and the mode
//! (bits 4-6); the rest is the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scalers::rabbitmq::fuzzing::{parse_page, parse_queue};
use scalers::rabbitmq::{Mode, Operation, anonymize, compose, value_and_activity};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, body)) = data.split_first() else {
        return;
    };
    let operation =
        [Operation::Sum, Operation::Avg, Operation::Max][usize::from(flags >> 2 & 3) % 3];
    let mode = Mode::ALL[usize::from(flags >> 4 & 7) % Mode::ALL.len()];
    let counters = if flags & 1 == 0 {
        parse_queue(body)
    } else {
        parse_page(body).map(|queues| compose(&queues, operation))
    };
    let counters = match counters {
        Ok(counters) => counters,
        Err(e) => {
            // What the scaler does with the error: it becomes the poll's message.
            let _ = anonymize(&format!("error inspecting RabbitMQ: {e}"));
            return;
        }
    };
    let messages = if flags & 2 == 0 {
        counters.messages
    } else {
        counters.messages_ready
    };
    let _ = value_and_activity(
        mode,
        messages,
        counters.publish_rate,
        counters.deliver_get_rate,
        0.0,
    );
});
