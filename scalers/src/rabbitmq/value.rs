//! The metric value and activity of a RabbitMQ trigger, computed from a queue's counters exactly
//! as KEDA computes them (`GetMetricsAndActivity`, `getComposedQueue`). Pure, so it is tested
//! without a broker.

use std::fmt;
use std::str::FromStr;

/// What the trigger scales on (`mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Messages in the queue (ready + unacknowledged over HTTP unless `excludeUnacknowledged`;
    /// ready only over AMQP).
    QueueLength,
    /// Messages published per second (`message_stats.publish_details.rate`), HTTP only.
    MessageRate,
    /// Messages delivered or fetched per second (`message_stats.deliver_get_details.rate`), HTTP only.
    DeliverGetRate,
    /// Publish rate divided by deliver/get rate, HTTP only.
    PublishedToDeliveredRatio,
    /// Seconds the backlog needs to drain at the current rates, HTTP only.
    ExpectedQueueConsumptionTime,
}

impl Mode {
    /// Every mode, in KEDA's order (used in its error message).
    pub const ALL: [Mode; 5] = [
        Mode::QueueLength,
        Mode::MessageRate,
        Mode::DeliverGetRate,
        Mode::PublishedToDeliveredRatio,
        Mode::ExpectedQueueConsumptionTime,
    ];

    /// The name written in `mode`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::QueueLength => "QueueLength",
            Mode::MessageRate => "MessageRate",
            Mode::DeliverGetRate => "DeliverGetRate",
            Mode::PublishedToDeliveredRatio => "PublishedToDeliveredRatio",
            Mode::ExpectedQueueConsumptionTime => "ExpectedQueueConsumptionTime",
        }
    }

    /// True for the modes that need the management API's rates.
    pub fn http_only(self) -> bool {
        self != Mode::QueueLength
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Mode {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Mode::ALL.into_iter().find(|m| m.as_str() == s).ok_or(())
    }
}

/// How the counters of several queues matched by `useRegex` are combined (`operation`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// Sum over the queues (the default).
    Sum,
    /// Average over the queues (counts use integer division, as KEDA does).
    Avg,
    /// Largest value of each counter, taken separately.
    Max,
}

impl FromStr for Operation {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sum" => Ok(Operation::Sum),
            "avg" => Ok(Operation::Avg),
            "max" => Ok(Operation::Max),
            _ => Err(()),
        }
    }
}

/// The counters of one queue (or of several, combined), as the scaler reads them.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct QueueCounters {
    /// Ready + unacknowledged messages (HTTP `messages`); over AMQP, ready only.
    pub messages: i64,
    /// Ready messages (HTTP `messages_ready`).
    pub messages_ready: i64,
    /// `message_stats.publish_details.rate`, messages per second.
    pub publish_rate: f64,
    /// `message_stats.deliver_get_details.rate`, messages per second.
    pub deliver_get_rate: f64,
}

/// Combines the counters of the queues a regex matched, as KEDA's `getComposedQueue` does:
/// no queue gives all zeros.
pub fn compose(queues: &[QueueCounters], operation: Operation) -> QueueCounters {
    if queues.is_empty() {
        return QueueCounters::default();
    }
    let sum = queues
        .iter()
        .fold(QueueCounters::default(), |acc, q| QueueCounters {
            messages: acc.messages.saturating_add(q.messages),
            messages_ready: acc.messages_ready.saturating_add(q.messages_ready),
            publish_rate: acc.publish_rate + q.publish_rate,
            deliver_get_rate: acc.deliver_get_rate + q.deliver_get_rate,
        });
    match operation {
        Operation::Sum => sum,
        Operation::Avg => {
            // Go's integer division truncates toward zero; counters are never negative.
            let n = queues.len() as i64;
            QueueCounters {
                messages: sum.messages / n,
                messages_ready: sum.messages_ready / n,
                publish_rate: sum.publish_rate / n as f64,
                deliver_get_rate: sum.deliver_get_rate / n as f64,
            }
        }
        // KEDA starts each maximum at zero, so negative values never win.
        Operation::Max => queues
            .iter()
            .fold(QueueCounters::default(), |acc, q| QueueCounters {
                messages: acc.messages.max(q.messages),
                messages_ready: acc.messages_ready.max(q.messages_ready),
                publish_rate: acc.publish_rate.max(q.publish_rate),
                deliver_get_rate: acc.deliver_get_rate.max(q.deliver_get_rate),
            }),
    }
}

/// The metric value and whether the trigger is active, for `messages` (the queue length the
/// protocol and `excludeUnacknowledged` select) and the rates.
pub fn value_and_activity(
    mode: Mode,
    messages: i64,
    publish_rate: f64,
    deliver_get_rate: f64,
    activation: f64,
) -> (f64, bool) {
    let messages = messages as f64;
    match mode {
        Mode::QueueLength => (messages, messages > activation),
        // A backlog keeps a rate trigger active even when nothing is being published.
        Mode::MessageRate => (
            publish_rate,
            publish_rate > activation || messages > activation,
        ),
        Mode::DeliverGetRate => (deliver_get_rate, deliver_get_rate > activation),
        Mode::PublishedToDeliveredRatio => {
            let ratio = if publish_rate > 0.0 && deliver_get_rate == 0.0 {
                activation
            } else if publish_rate > 0.0 && deliver_get_rate > 0.0 {
                publish_rate / deliver_get_rate
            } else {
                0.0
            };
            (
                ratio,
                ratio > activation || (publish_rate > 0.0 && deliver_get_rate == 0.0),
            )
        }
        Mode::ExpectedQueueConsumptionTime => {
            let eta = if deliver_get_rate == 0.0 {
                activation
            } else {
                (publish_rate - deliver_get_rate) / deliver_get_rate + messages / deliver_get_rate
            };
            (eta, eta > activation || deliver_get_rate == 0.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(messages: i64, ready: i64, publish: f64, deliver: f64) -> QueueCounters {
        QueueCounters {
            messages,
            messages_ready: ready,
            publish_rate: publish,
            deliver_get_rate: deliver,
        }
    }

    #[test]
    fn modes_parse_by_their_keda_names() {
        for mode in Mode::ALL {
            assert_eq!(mode.as_str().parse::<Mode>(), Ok(mode));
        }
        assert!("queueLength".parse::<Mode>().is_err());
        assert!(!Mode::QueueLength.http_only());
        assert!(Mode::MessageRate.http_only());
    }

    // The cases of KEDA's TestGetQueueInfo: (messages, publish, deliver) → active, activation 0.
    #[test]
    fn activity_matches_keda_cases() {
        let cases: &[(Mode, i64, f64, f64, bool)] = &[
            (Mode::QueueLength, 4, 0.0, 0.0, true),
            (Mode::QueueLength, 1, 0.0, 0.0, true),
            (Mode::QueueLength, 0, 0.0, 0.0, false),
            (Mode::QueueLength, 0, 1.4, 2.0, false),
            (Mode::MessageRate, 4, 0.0, 1.3, true),
            (Mode::MessageRate, 0, 0.0, 0.0, false),
            (Mode::MessageRate, 0, 1.4, 0.0, true),
            (Mode::DeliverGetRate, 30, 5.0, 1.0, true),
            (Mode::DeliverGetRate, 20, 0.0, 10.0, true),
            (Mode::DeliverGetRate, 0, 0.0, 0.0, false),
        ];
        for &(mode, messages, publish, deliver, active) in cases {
            let (_, got) = value_and_activity(mode, messages, publish, deliver, 0.0);
            assert_eq!(got, active, "{mode} {messages} {publish} {deliver}");
        }
    }

    #[test]
    fn values_per_mode() {
        assert_eq!(
            value_and_activity(Mode::QueueLength, 12, 3.0, 1.0, 12.0),
            (12.0, false)
        );
        assert_eq!(
            value_and_activity(Mode::MessageRate, 12, 3.5, 1.0, 20.0),
            (3.5, false)
        );
        assert_eq!(
            value_and_activity(Mode::DeliverGetRate, 12, 3.5, 1.25, 0.0),
            (1.25, true)
        );
        // Ratio: publishing with nobody consuming reads as the activation value, and active.
        assert_eq!(
            value_and_activity(Mode::PublishedToDeliveredRatio, 0, 2.0, 0.0, 1.5),
            (1.5, true)
        );
        assert_eq!(
            value_and_activity(Mode::PublishedToDeliveredRatio, 0, 3.0, 1.5, 0.0),
            (2.0, true)
        );
        assert_eq!(
            value_and_activity(Mode::PublishedToDeliveredRatio, 0, 0.0, 0.0, 0.0),
            (0.0, false)
        );
        // ETA: (publish - deliver) / deliver + messages / deliver.
        assert_eq!(
            value_and_activity(Mode::ExpectedQueueConsumptionTime, 20, 3.0, 2.0, 100.0),
            (10.5, false)
        );
        // Nobody consuming: the activation value, and active.
        assert_eq!(
            value_and_activity(Mode::ExpectedQueueConsumptionTime, 20, 3.0, 0.0, 7.0),
            (7.0, true)
        );
    }

    #[test]
    fn composition_of_several_queues() {
        let queues = [q(10, 7, 1.5, 1.0), q(3, 3, 0.5, 4.0), q(0, 0, 0.0, 0.0)];
        assert_eq!(compose(&queues, Operation::Sum), q(13, 10, 2.0, 5.0));
        // 13 / 3 and 10 / 3 truncate, as Go's integer division does.
        assert_eq!(
            compose(&queues, Operation::Avg),
            q(4, 3, 2.0 / 3.0, 5.0 / 3.0)
        );
        // Each counter's maximum is taken on its own.
        assert_eq!(compose(&queues, Operation::Max), q(10, 7, 1.5, 4.0));
        assert_eq!(compose(&[], Operation::Max), QueueCounters::default());
        assert_eq!("avg".parse::<Operation>(), Ok(Operation::Avg));
        assert!("mean".parse::<Operation>().is_err());
    }
}
