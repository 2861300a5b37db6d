//! The idle connections of one [`RequestClient`](super::RequestClient), per origin, and how
//! long they are kept.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use http::Uri;
use http::uri::{Authority, Scheme};
use tokio::time::Instant;

use super::conn::Conn;

/// How long an idle connection is kept (hyper's pooled client keeps them as long).
pub(super) const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// Where a connection goes: its scheme and authority.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Origin {
    scheme: Scheme,
    authority: Authority,
}

impl Origin {
    /// `None` for a URI that is not absolute.
    pub(super) fn of(uri: &Uri) -> Option<Self> {
        Some(Self {
            scheme: uri.scheme()?.clone(),
            authority: uri.authority()?.clone(),
        })
    }
}

struct Idle {
    origin: Origin,
    conn: Conn,
    since: Instant,
}

/// Idle connections, the most recently used last (it is the first taken: its socket is the
/// least likely to have been closed by the server). One list, not a map by origin: a client
/// serves one origin (`RequestClient::for_origin`), so the match is the last entry, found
/// without hashing the authority twice per request.
#[derive(Default)]
pub(super) struct Pool {
    idle: Mutex<Vec<Idle>>,
    /// Whether the task that closes expired connections runs (started at the first check-in,
    /// which always happens inside the runtime).
    reaping: AtomicBool,
}

impl Pool {
    fn lock(&self) -> MutexGuard<'_, Vec<Idle>> {
        // Nothing is left half-done under this lock: a panic elsewhere does not spoil the map.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The most recently used idle connection to `origin` that has not expired.
    pub(super) fn checkout(&self, origin: &Origin) -> Option<Conn> {
        let now = Instant::now();
        let mut idle = self.lock();
        while let Some(at) = idle.iter().rposition(|entry| entry.origin == *origin) {
            let entry = idle.remove(at);
            if now.saturating_duration_since(entry.since) < IDLE_TIMEOUT && entry.conn.reusable() {
                return Some(entry.conn);
            }
        }
        None
    }

    /// Keeps `conn` for the next request to `origin`, if it can carry one.
    pub(super) fn checkin(self: &Arc<Self>, origin: Origin, mut conn: Conn) {
        conn.park();
        if !conn.reusable() {
            return;
        }
        let entry = Idle {
            origin,
            conn,
            since: Instant::now(),
        };
        self.lock().push(entry);
        if !self.reaping.swap(true, Ordering::Relaxed) && !reap(Arc::downgrade(self)) {
            // Outside a runtime (a body dropped after its shutdown): the next check-in tries.
            self.reaping.store(false, Ordering::Relaxed);
        }
    }

    /// Closes the connections idle for longer than [`IDLE_TIMEOUT`].
    pub(super) fn expire(&self) {
        let now = Instant::now();
        let mut idle = self.lock();
        // Oldest first: the expired ones are a prefix.
        let expired = idle
            .iter()
            .take_while(|entry| now.saturating_duration_since(entry.since) >= IDLE_TIMEOUT)
            .count();
        idle.drain(..expired);
    }

    #[cfg(test)]
    pub(super) fn idle(&self, origin: &Origin) -> usize {
        self.lock()
            .iter()
            .filter(|entry| entry.origin == *origin)
            .count()
    }
}

/// Closes expired connections every so often while the pool exists: an origin that gets no
/// more requests must not keep its sockets open. `false` when there is no runtime to run on.
fn reap(pool: Weak<Pool>) -> bool {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return false;
    };
    runtime.spawn(async move {
        let mut ticks = tokio::time::interval(IDLE_TIMEOUT / 3);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let Some(pool) = pool.upgrade() else {
                return;
            };
            pool.expire();
        }
    });
    true
}
