//! What keeps callers from making kedge issue reviews without bound: a token bucket per source
//! address for TokenReviews (the one review an unauthenticated caller can cause, with a new
//! random token per request), and a bound on reviews in flight.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Where a request comes from, as far as limits go: an IPv4 address, or an IPv6 /64 (one host
/// usually holds a whole /64, so single addresses would not limit it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Source {
    V4(u32),
    V6(u64),
}

impl From<IpAddr> for Source {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Source::V4(u32::from(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Source::V4(u32::from(v4)),
                None => Source::V6((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// A token bucket per source, in a map of bounded size.
#[derive(Debug)]
pub(crate) struct PerSource {
    buckets: Mutex<HashMap<Source, Bucket>>,
    burst: f64,
    per_second: f64,
    capacity: usize,
}

impl PerSource {
    /// `burst` reviews at once, refilled at `per_second`; `None` when either is zero (no limit).
    pub(crate) fn new(burst: u32, per_second: f64, capacity: usize) -> Option<Self> {
        (burst > 0 && per_second > 0.0 && per_second.is_finite()).then(|| Self {
            buckets: Mutex::new(HashMap::new()),
            burst: f64::from(burst),
            per_second,
            capacity: capacity.max(1),
        })
    }

    fn refilled(&self, bucket: Bucket, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        (bucket.tokens + elapsed * self.per_second).min(self.burst)
    }

    /// Takes one review from `source`'s bucket, or says when to come back.
    pub(crate) fn take(&self, source: Source) -> Result<(), Duration> {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if !buckets.contains_key(&source) && buckets.len() >= self.capacity {
            // A bucket that has refilled is as good as none: only sources active in the last
            // `burst / per_second` seconds are kept.
            buckets.retain(|_, b| self.refilled(*b, now) < self.burst);
            if buckets.len() >= self.capacity {
                // So many sources at once is an attack from many addresses; a newcomer waits
                // rather than reset everyone's bucket (tokens already cached still work).
                return Err(Duration::from_secs(1));
            }
        }
        let bucket = buckets.entry(source).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let tokens = self.refilled(*bucket, now);
        if tokens >= 1.0 {
            *bucket = Bucket {
                tokens: tokens - 1.0,
                at: now,
            };
            Ok(())
        } else {
            *bucket = Bucket { tokens, at: now };
            Err(Duration::from_secs_f64((1.0 - tokens) / self.per_second))
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.buckets.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// At most so many reviews of one kind in flight; a request waits up to `wait` for its turn.
#[derive(Debug)]
pub(crate) struct InFlight {
    slots: Arc<Semaphore>,
    wait: Duration,
}

impl InFlight {
    pub(crate) fn new(max: usize, wait: Duration) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(max.max(1))),
            wait,
        }
    }

    /// A slot, or `None` when none freed up in time.
    pub(crate) async fn acquire(&self) -> Option<OwnedSemaphorePermit> {
        tokio::time::timeout(self.wait, Arc::clone(&self.slots).acquire_owned())
            .await
            .ok()?
            .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_gets_its_burst_then_waits() {
        let limit = PerSource::new(3, 1.0, 10).unwrap_or_else(|| panic!("a limit"));
        let a = Source::from(IpAddr::from([10, 0, 0, 1]));
        for _ in 0..3 {
            assert!(limit.take(a).is_ok());
        }
        let wait = limit.take(a).err().unwrap_or_default();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        // Another source has its own bucket.
        assert!(
            limit
                .take(Source::from(IpAddr::from([10, 0, 0, 2])))
                .is_ok()
        );
    }

    #[test]
    fn the_map_stays_bounded() {
        let limit = PerSource::new(1, 0.001, 4).unwrap_or_else(|| panic!("a limit"));
        for i in 0..4u8 {
            assert!(
                limit
                    .take(Source::from(IpAddr::from([10, 0, 0, i])))
                    .is_ok()
            );
        }
        // Full of active sources: a newcomer is refused, nothing is evicted.
        assert!(
            limit
                .take(Source::from(IpAddr::from([10, 0, 1, 0])))
                .is_err()
        );
        assert_eq!(limit.len(), 4);
    }

    #[test]
    fn ipv6_sources_are_slash_64s() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap_or_else(|_| panic!("ip"));
        let b: IpAddr = "2001:db8:1:2:ffff::9"
            .parse()
            .unwrap_or_else(|_| panic!("ip"));
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap_or_else(|_| panic!("ip"));
        assert_eq!(Source::from(a), Source::from(b));
        assert_ne!(Source::from(a), Source::from(c));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap_or_else(|_| panic!("ip"));
        assert_eq!(
            Source::from(mapped),
            Source::from(IpAddr::from([10, 0, 0, 1]))
        );
    }

    #[test]
    fn zero_means_no_limit() {
        assert!(PerSource::new(0, 1.0, 10).is_none());
        assert!(PerSource::new(5, 0.0, 10).is_none());
    }
}
