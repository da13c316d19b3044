//! [`SharedClients`]: one client per connection identity, shared by every ScaledObject.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError, Weak};

/// A cache of clients keyed by connection identity (broker list + credentials, server URL +
/// auth, ...), so 3,000 ScaledObjects on one Kafka cluster share one client instead of opening
/// 3,000.
///
/// Entries are held weakly: a client lives as long as some scaler holds its `Arc`, and is
/// dropped (closing its connections) when the last scaler using it is dropped. Put credentials
/// in the key as [`crate::Secret`]s so a changed password gets a new client.
///
/// A factory typically owns one `SharedClients` and scalers ask it for their client at their
/// first poll (building a scaler must not contact anything).
///
/// ```
/// use std::sync::Arc;
/// use scaler_core::SharedClients;
///
/// struct Client { url: String }
/// let cache: SharedClients<String, Client> = SharedClients::new();
/// let make = |url: &String| Ok::<_, std::convert::Infallible>(Client { url: url.clone() });
///
/// let a = cache.get_or_try_init("http://q:15672".to_string(), make).unwrap();
/// let b = cache.get_or_try_init("http://q:15672".to_string(), make).unwrap();
/// assert!(Arc::ptr_eq(&a, &b));
/// assert_eq!(cache.live(), 1);
/// drop((a, b));
/// assert_eq!(cache.live(), 0);
/// ```
pub struct SharedClients<K, V> {
    entries: Mutex<HashMap<K, Weak<V>>>,
}

impl<K: Eq + Hash + Clone, V> SharedClients<K, V> {
    /// An empty cache.
    pub fn new() -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The client for `key`, created with `make` if no live one exists.
    ///
    /// `make` runs under the cache's lock, so it must be quick and must not block on I/O:
    /// create a client that connects lazily.
    pub fn get_or_try_init<E>(
        &self,
        key: K,
        make: impl FnOnce(&K) -> Result<V, E>,
    ) -> Result<Arc<V>, E> {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(client) = entries.get(&key).and_then(Weak::upgrade) {
            return Ok(client);
        }
        // Drop entries whose clients are gone, so the map does not grow with churn.
        entries.retain(|_, weak| weak.strong_count() > 0);
        let client = Arc::new(make(&key)?);
        entries.insert(key, Arc::downgrade(&client));
        Ok(client)
    }

    /// How many clients are alive.
    pub fn live(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .filter(|w| w.strong_count() > 0)
            .count()
    }
}

impl<K: Eq + Hash + Clone, V> Default for SharedClients<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Secret;

    #[test]
    fn different_credentials_get_different_clients() {
        let cache: SharedClients<(String, Secret), u32> = SharedClients::new();
        let mut n = 0;
        let mut make = |_: &(String, Secret)| {
            n += 1;
            Ok::<_, ()>(n)
        };
        let a = cache
            .get_or_try_init(("h".into(), Secret::new("p1")), &mut make)
            .unwrap_or_else(|()| Arc::new(0));
        let b = cache
            .get_or_try_init(("h".into(), Secret::new("p2")), &mut make)
            .unwrap_or_else(|()| Arc::new(0));
        assert_ne!(a, b);
        assert_eq!(cache.live(), 2);
    }

    #[test]
    fn failed_creation_caches_nothing() {
        let cache: SharedClients<u8, u8> = SharedClients::new();
        assert!(cache.get_or_try_init(1, |_| Err("down")).is_err());
        assert_eq!(cache.live(), 0);
        assert!(cache.get_or_try_init(1, |_| Ok::<_, ()>(7)).is_ok());
    }
}
