//! A small time-bounded cache for authentication and authorization decisions, so an HPA asking
//! every 15 s for 1,000 metrics costs a handful of TokenReviews/SubjectAccessReviews, not
//! thousands.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Entries expire after the TTL given when they were inserted. The map never grows beyond
/// `capacity`: when full, expired entries are dropped, and if that is not enough, all of them
/// (a burst of distinct callers costs one round of reviews, never unbounded memory).
#[derive(Debug)]
pub(crate) struct TtlCache<K, V> {
    map: Mutex<HashMap<K, (Instant, V)>>,
    capacity: usize,
}

impl<K: Hash + Eq, V: Clone> TtlCache<K, V> {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    pub(crate) fn get(&self, key: &K) -> Option<V> {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.get(key)
            .filter(|(expires, _)| *expires > Instant::now())
            .map(|(_, v)| v.clone())
    }

    pub(crate) fn insert(&self, key: K, value: V, ttl: Duration) {
        if ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= self.capacity {
            map.retain(|_, (expires, _)| *expires > now);
            if map.len() >= self.capacity {
                map.clear();
            }
        }
        map.insert(key, (now + ttl, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_and_stays_bounded() {
        let c = TtlCache::new(2);
        c.insert(1, "a", Duration::from_secs(60));
        c.insert(2, "b", Duration::from_nanos(1));
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(c.get(&1), Some("a"));
        assert_eq!(c.get(&2), None);
        c.insert(3, "c", Duration::from_secs(60));
        c.insert(4, "d", Duration::from_secs(60));
        assert!(c.map.lock().unwrap_or_else(|e| e.into_inner()).len() <= 2);
    }
}
