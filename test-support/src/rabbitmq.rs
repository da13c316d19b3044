//! RabbitMQ from the test's side, with lapin: a queue to fill and messages in it.

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection};

/// A channel on `conn` with publisher confirms, and the (non-durable) queue `name` declared on
/// it. The queue expires 10 minutes after its last use, so test runs leave nothing behind.
///
/// # Panics
///
/// When the channel cannot be opened or the broker refuses the declaration.
pub async fn declare_queue(conn: &Connection, name: &str) -> Channel {
    let ch = conn.create_channel().await.expect("a channel");
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("publisher confirms");
    let mut args = FieldTable::default();
    args.insert("x-expires".into(), AMQPValue::LongInt(600_000));
    ch.queue_declare(name.into(), QueueDeclareOptions::default(), args)
        .await
        .unwrap_or_else(|e| panic!("declaring queue {name}: {e}"));
    ch
}

/// Publishes `n` messages to `queue` through the default exchange, each confirmed by the
/// broker before the next is sent (`ch` must have publisher confirms, as [`declare_queue`]'s
/// has).
///
/// # Panics
///
/// When a message is refused or not confirmed.
pub async fn publish(ch: &Channel, queue: &str, n: usize) {
    for i in 0..n {
        ch.basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions::default(),
            format!("job {i}").as_bytes(),
            BasicProperties::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("publishing to {queue}: {e}"))
        .await
        .unwrap_or_else(|e| panic!("confirming a message to {queue}: {e}"));
    }
}
