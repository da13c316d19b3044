//! Consumer lag from offsets: the pure part of the kafka scaler, tested without a broker.
//!
//! The rules are KEDA's (`kafka_scaler.go`, `getLagForPartition` and `getTotalLag`):
//!
//! * lag of a partition = latest offset (high watermark) − committed offset;
//! * a partition with no committed offset counts 1 (`offsetResetPolicy: latest`, the consumer
//!   would skip to the end, but something must start it) or the whole high watermark
//!   (`earliest`); `scaleToZeroOnInvalidOffset` makes it 0 in both cases;
//! * `excludePersistentLag`: a partition whose committed offset has not moved since the previous
//!   poll does not count towards the metric (it still counts for activation);
//! * the total is capped so the HPA does not ask for more consumers than there are partitions
//!   (unless `allowIdleConsumers`), or than partitions with lag (`limitToPartitionsWithLag`), and
//!   `ensureEvenDistributionOfPartitions` rounds the wanted consumer count up to a divisor of the
//!   partition count.

use std::collections::HashMap;

/// What to assume for a partition the group has never committed an offset for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OffsetResetPolicy {
    /// The consumer would start at the end: the partition counts 1 so the workload starts.
    #[default]
    Latest,
    /// The consumer would start at the beginning: the partition counts its high watermark.
    Earliest,
}

/// The lag rules of one trigger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LagRules {
    /// `lagThreshold`: target lag per replica (> 0).
    pub lag_threshold: i64,
    /// `offsetResetPolicy`.
    pub offset_reset_policy: OffsetResetPolicy,
    /// `scaleToZeroOnInvalidOffset`.
    pub scale_to_zero_on_invalid_offset: bool,
    /// `excludePersistentLag`.
    pub exclude_persistent_lag: bool,
    /// `allowIdleConsumers`.
    pub allow_idle_consumers: bool,
    /// `limitToPartitionsWithLag`.
    pub limit_to_partitions_with_lag: bool,
    /// `ensureEvenDistributionOfPartitions`.
    pub ensure_even_distribution_of_partitions: bool,
}

impl Default for LagRules {
    fn default() -> Self {
        Self {
            lag_threshold: 10,
            offset_reset_policy: OffsetResetPolicy::Latest,
            scale_to_zero_on_invalid_offset: false,
            exclude_persistent_lag: false,
            allow_idle_consumers: false,
            limit_to_partitions_with_lag: false,
            ensure_even_distribution_of_partitions: false,
        }
    }
}

/// The offsets of one partition, as read from the broker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionOffsets {
    /// Topic name.
    pub topic: String,
    /// Partition id.
    pub partition: i32,
    /// The group's committed offset; `None` when it has never committed one.
    pub committed: Option<i64>,
    /// The partition's latest offset (high watermark); `None` when the broker did not return
    /// one (KEDA counts such a partition as 0).
    pub latest: Option<i64>,
}

/// Committed offsets seen at the previous poll, for `excludePersistentLag`.
pub type PreviousOffsets = HashMap<(String, i32), i64>;

/// The result of one computation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct TotalLag {
    /// The metric value: the summed lag after persistent-lag exclusion and the caps.
    pub lag: i64,
    /// The summed lag counting persistent lag and without caps; activation compares this with
    /// `activationLagThreshold`, so a stuck partition still keeps the workload up.
    pub lag_with_persistent: i64,
    /// How many partitions were measured.
    pub partitions: i64,
    /// How many of them have lag (after persistent-lag exclusion).
    pub partitions_with_lag: i64,
}

/// The lag of one partition: `(lag, lag counting persistent lag)`.
///
/// `previous` is updated for `excludePersistentLag`. Lag is never negative: a committed offset
/// beyond the high watermark (after an unclean leader election or a truncated log) counts 0
/// instead of cancelling other partitions' lag.
pub fn partition_lag(
    rules: &LagRules,
    p: &PartitionOffsets,
    previous: &mut PreviousOffsets,
) -> (i64, i64) {
    let Some(committed) = p.committed else {
        if rules.scale_to_zero_on_invalid_offset {
            return (0, 0);
        }
        return match rules.offset_reset_policy {
            OffsetResetPolicy::Latest => (1, 1),
            OffsetResetPolicy::Earliest => {
                let latest = p.latest.unwrap_or(0).max(0);
                (latest, latest)
            }
        };
    };
    let Some(latest) = p.latest else {
        return (0, 0);
    };
    let lag = (latest - committed).max(0);
    if rules.exclude_persistent_lag {
        let key = (p.topic.clone(), p.partition);
        match previous.insert(key, committed) {
            // The consumer has not moved since the last poll: it may be stuck on a message it
            // cannot process, and more replicas would not help.
            Some(before) if before == committed => return (0, lag),
            _ => {}
        }
    }
    (lag, lag)
}

/// The total lag of a set of partitions, capped as KEDA caps it.
pub fn total_lag(
    rules: &LagRules,
    partitions: &[PartitionOffsets],
    previous: &mut PreviousOffsets,
) -> TotalLag {
    let mut total = TotalLag::default();
    for p in partitions {
        let (lag, with_persistent) = partition_lag(rules, p, previous);
        total.lag = total.lag.saturating_add(lag);
        total.lag_with_persistent = total.lag_with_persistent.saturating_add(with_persistent);
        total.partitions += 1;
        if lag > 0 {
            total.partitions_with_lag += 1;
        }
    }
    total.lag = capped(
        rules,
        total.lag,
        total.partitions,
        total.partitions_with_lag,
    );
    total
}

/// Applies `allowIdleConsumers`, `limitToPartitionsWithLag` and
/// `ensureEvenDistributionOfPartitions` to a summed lag.
pub fn capped(rules: &LagRules, lag: i64, partitions: i64, partitions_with_lag: i64) -> i64 {
    let threshold = rules.lag_threshold.max(1);
    if rules.allow_idle_consumers
        && !rules.limit_to_partitions_with_lag
        && !rules.ensure_even_distribution_of_partitions
    {
        return lag;
    }
    let mut lag = lag;
    if rules.ensure_even_distribution_of_partitions {
        lag = next_balanced_factor(lag, partitions, threshold).saturating_mul(threshold);
    }
    let upper_bound = if rules.limit_to_partitions_with_lag {
        partitions_with_lag
    } else {
        partitions
    };
    // Integer division, as KEDA's Go code does.
    if lag / threshold > upper_bound {
        lag = upper_bound.saturating_mul(threshold);
    }
    lag
}

/// The divisors of `n` in increasing order (KEDA's `FindFactors`); empty for `n < 1`.
pub fn factors(n: i64) -> Vec<i64> {
    if n < 1 {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut i: i64 = 1;
    while i.saturating_mul(i) <= n {
        if n % i == 0 {
            out.push(i);
            if i != n / i {
                out.push(n / i);
            }
        }
        i += 1;
    }
    out.sort_unstable();
    out
}

/// The smallest consumer count that divides the partitions evenly and handles `lag` at
/// `threshold` per consumer (KEDA's `getNextFactorThatBalancesConsumersToTopicPartitions`).
pub fn next_balanced_factor(lag: i64, partitions: i64, threshold: i64) -> i64 {
    factors(partitions)
        .into_iter()
        .find(|f| f.saturating_mul(threshold) >= lag)
        .unwrap_or(partitions)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(partition: i32, committed: Option<i64>, latest: Option<i64>) -> PartitionOffsets {
        PartitionOffsets {
            topic: "t".into(),
            partition,
            committed,
            latest,
        }
    }

    fn lag_of(rules: LagRules, parts: &[PartitionOffsets]) -> TotalLag {
        total_lag(&rules, parts, &mut PreviousOffsets::new())
    }

    #[test]
    fn lag_is_latest_minus_committed_summed() {
        let t = lag_of(
            LagRules {
                allow_idle_consumers: true,
                ..LagRules::default()
            },
            &[p(0, Some(5), Some(32)), p(1, Some(33), Some(33))],
        );
        assert_eq!(t.lag, 27);
        assert_eq!(t.lag_with_persistent, 27);
        assert_eq!((t.partitions, t.partitions_with_lag), (2, 1));
    }

    #[test]
    fn never_committed_partition_with_latest_policy_counts_one() {
        let rules = LagRules::default();
        let parts = [p(0, None, Some(32)), p(1, Some(5), Some(33))];
        assert_eq!(lag_of(rules, &parts).lag, 1 + 28);
    }

    #[test]
    fn never_committed_partition_with_earliest_policy_counts_its_high_watermark() {
        let rules = LagRules {
            offset_reset_policy: OffsetResetPolicy::Earliest,
            allow_idle_consumers: true,
            ..LagRules::default()
        };
        let parts = [p(0, None, Some(32)), p(1, Some(5), Some(33))];
        assert_eq!(lag_of(rules, &parts).lag, 32 + 28);
        // Missing watermark too: nothing to count.
        assert_eq!(lag_of(rules, &[p(0, None, None)]).lag, 0);
    }

    #[test]
    fn scale_to_zero_on_invalid_offset_zeroes_uncommitted_partitions_for_both_policies() {
        for policy in [OffsetResetPolicy::Latest, OffsetResetPolicy::Earliest] {
            let rules = LagRules {
                offset_reset_policy: policy,
                scale_to_zero_on_invalid_offset: true,
                ..LagRules::default()
            };
            let t = lag_of(rules, &[p(0, None, Some(32)), p(1, None, Some(3))]);
            assert_eq!((t.lag, t.lag_with_persistent), (0, 0), "{policy:?}");
        }
    }

    #[test]
    fn missing_latest_offset_counts_zero() {
        assert_eq!(lag_of(LagRules::default(), &[p(0, Some(3), None)]).lag, 0);
    }

    #[test]
    fn committed_beyond_high_watermark_counts_zero_not_negative() {
        let t = lag_of(
            LagRules::default(),
            &[p(0, Some(40), Some(34)), p(1, Some(0), Some(5))],
        );
        assert_eq!(t.lag, 5);
    }

    #[test]
    fn persistent_lag_is_excluded_from_the_metric_but_not_from_activation() {
        let rules = LagRules {
            exclude_persistent_lag: true,
            ..LagRules::default()
        };
        let mut previous = PreviousOffsets::new();
        let first = total_lag(&rules, &[p(0, Some(5), Some(20))], &mut previous);
        assert_eq!((first.lag, first.lag_with_persistent), (15, 15));
        // Same committed offset at the next poll: stuck.
        let stuck = total_lag(&rules, &[p(0, Some(5), Some(25))], &mut previous);
        assert_eq!((stuck.lag, stuck.lag_with_persistent), (0, 20));
        assert_eq!(stuck.partitions_with_lag, 0);
        // It moved: counts again.
        let moved = total_lag(&rules, &[p(0, Some(7), Some(25))], &mut previous);
        assert_eq!((moved.lag, moved.lag_with_persistent), (18, 18));
        // Uncommitted partitions are not tracked.
        let none = total_lag(&rules, &[p(1, None, Some(9))], &mut previous);
        assert_eq!(none.lag, 1);
        assert!(!previous.contains_key(&("t".to_owned(), 1)));
    }

    #[test]
    fn without_idle_consumers_lag_is_capped_at_partitions_times_threshold() {
        let rules = LagRules::default(); // threshold 10
        let parts = [p(0, Some(0), Some(500)), p(1, Some(0), Some(500))];
        let t = lag_of(rules, &parts);
        assert_eq!(t.lag, 20);
        assert_eq!(t.lag_with_persistent, 1000);
        let idle = LagRules {
            allow_idle_consumers: true,
            ..rules
        };
        assert_eq!(lag_of(idle, &parts).lag, 1000);
        // Below the cap nothing changes; integer division as in Go (29/10 = 2, not > 2).
        assert_eq!(capped(&rules, 29, 2, 2), 29);
        assert_eq!(capped(&rules, 30, 2, 2), 20);
    }

    #[test]
    fn limit_to_partitions_with_lag_caps_at_lagging_partitions() {
        let rules = LagRules {
            limit_to_partitions_with_lag: true,
            ..LagRules::default()
        };
        let parts = [
            p(0, Some(0), Some(500)),
            p(1, Some(7), Some(7)),
            p(2, Some(9), Some(9)),
        ];
        let t = lag_of(rules, &parts);
        assert_eq!(t.partitions_with_lag, 1);
        assert_eq!(t.lag, 10);
    }

    #[test]
    fn even_distribution_rounds_up_to_a_divisor_of_the_partition_count() {
        let rules = LagRules {
            ensure_even_distribution_of_partitions: true,
            ..LagRules::default()
        };
        // 100 partitions; lag 41 at threshold 10 wants 5 consumers (4 would not divide... it
        // would, but 4*10 < 41), so 5 → 50.
        assert_eq!(capped(&rules, 41, 100, 100), 50);
        // 6 partitions, lag 35: divisors 1,2,3,6 → 6*10 = 60, capped at 6*10.
        assert_eq!(capped(&rules, 35, 6, 6), 60);
        // 6 partitions, lag 5 → 1 consumer.
        assert_eq!(capped(&rules, 5, 6, 6), 10);
        // Applies even with allowIdleConsumers, as in KEDA.
        let idle = LagRules {
            allow_idle_consumers: true,
            ..rules
        };
        assert_eq!(capped(&idle, 1000, 6, 6), 60);
    }

    #[test]
    fn factors_and_next_factor_match_keda() {
        assert_eq!(factors(10), [1, 2, 5, 10]);
        assert_eq!(factors(13), [1, 13]);
        assert_eq!(factors(25), [1, 5, 25]);
        assert_eq!(factors(100), [1, 2, 4, 5, 10, 20, 25, 50, 100]);
        assert!(factors(0).is_empty());
        for (lag, want) in [
            (10, 1),
            (20, 2),
            (40, 4),
            (50, 5),
            (99, 10),
            (100, 10),
            (101, 20),
        ] {
            assert_eq!(next_balanced_factor(lag, 100, 10), want, "lag {lag}");
        }
        assert_eq!(next_balanced_factor(5000, 100, 10), 100);
    }
}
