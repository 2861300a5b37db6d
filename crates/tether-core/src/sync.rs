//! Locking of the core's small in-memory maps.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `m`, taking over a poisoned lock: the critical sections are a few map operations that
/// leave the map consistent at every step, so a panic elsewhere is no reason to refuse every
/// later call.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
