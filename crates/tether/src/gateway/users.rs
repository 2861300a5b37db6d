//! The users this replica has seen (authenticated on the API or on `/mcp`), so that the
//! operator page can list them: the core keeps state per (user, server) but no user directory.
//!
//! Bounded: beyond the configured number the least recently seen user is forgotten.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use tether_core::FastMap;

use tether_core::UserId;

#[derive(Debug, Clone)]
pub struct UserRegistry {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    max: usize,
    /// Orders sightings; a counter rather than a clock so that ties cannot happen.
    next: AtomicU64,
    seen: Mutex<FastMap<UserId, u64>>,
}

impl UserRegistry {
    pub fn new(max: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                max: max.max(1),
                next: AtomicU64::new(0),
                seen: Mutex::new(FastMap::default()),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FastMap<UserId, u64>> {
        // Every update is one map operation: the map is consistent even after a panic.
        self.inner
            .seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub fn seen(&self, user: &UserId) {
        let tick = self.inner.next.fetch_add(1, Ordering::Relaxed);
        let mut seen = self.lock();
        if let Some(at) = seen.get_mut(user) {
            *at = tick;
            return;
        }
        if seen.len() >= self.inner.max {
            // O(n), but only when the registry is full and a new user arrives.
            if let Some(oldest) = seen
                .iter()
                .min_by_key(|(_, at)| **at)
                .map(|(u, _)| u.clone())
            {
                seen.remove(&oldest);
            }
        }
        seen.insert(user.clone(), tick);
    }

    /// The known users, sorted by id.
    pub fn users(&self) -> Vec<UserId> {
        let mut users: Vec<UserId> = self.lock().keys().cloned().collect();
        users.sort();
        users
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_recently_seen_user_is_forgotten_first() {
        let users = UserRegistry::new(2);
        users.seen(&UserId::new("a"));
        users.seen(&UserId::new("b"));
        users.seen(&UserId::new("a"));
        users.seen(&UserId::new("c"));
        assert_eq!(users.users(), [UserId::new("a"), UserId::new("c")]);
    }
}
