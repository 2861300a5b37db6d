//! Concurrent requests for the same key share one run and its outcome (SPEC §3: concurrent
//! requests for the same (user, server) connection share one attempt).
//!
//! The run is spawned, so it finishes (and records its outcome) even when every requester has
//! gone away; requesters only wait on it.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use tokio_util::task::TaskTracker;

use crate::sync::lock;

type Running<V> = Shared<BoxFuture<'static, Option<V>>>;
/// Runs in progress by key, each tagged with its generation.
type Registry<K, V> = Arc<Mutex<HashMap<K, (u64, Running<V>)>>>;

#[derive(Debug)]
pub struct Coalescer<K, V> {
    running: Registry<K, V>,
    generation: AtomicU64,
}

impl<K, V> Default for Coalescer<K, V> {
    fn default() -> Self {
        Self {
            running: Arc::default(),
            generation: AtomicU64::new(0),
        }
    }
}

impl<K, V> Coalescer<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Joins the run for `key`, or starts `make()` on `tasks` if none is running.
    /// `None` when the run panicked or was aborted.
    pub async fn run<F>(&self, key: K, tasks: &TaskTracker, make: impl FnOnce() -> F) -> Option<V>
    where
        F: Future<Output = V> + Send + 'static,
    {
        let running = {
            let mut map = lock(&self.running);
            if let Some((_, running)) = map.get(&key) {
                running.clone()
            } else {
                let generation = self.generation.fetch_add(1, Ordering::Relaxed);
                let work = make();
                let registry = self.running.clone();
                let key_done = key.clone();
                let handle = tasks.spawn(async move {
                    let value = work.await;
                    let mut map = lock(&registry);
                    // Remove our own entry only: a later run may already sit under the key.
                    if map.get(&key_done).is_some_and(|(g, _)| *g == generation) {
                        map.remove(&key_done);
                    }
                    value
                });
                let running: Running<V> = async move { handle.await.ok() }.boxed().shared();
                map.insert(key, (generation, running.clone()));
                running
            }
        };
        running.await
    }

    /// Whether a run for `key` is in progress.
    pub fn is_running(&self, key: &K) -> bool {
        lock(&self.running).contains_key(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn concurrent_requests_share_one_run_and_later_ones_start_anew() {
        let coalescer: Arc<Coalescer<&'static str, usize>> = Arc::default();
        let tasks = TaskTracker::new();
        let runs = Arc::new(AtomicUsize::new(0));
        let mut joins = Vec::new();
        for _ in 0..20 {
            let (c, t, runs) = (coalescer.clone(), tasks.clone(), runs.clone());
            joins.push(tokio::spawn(async move {
                c.run("k", &t, || async move {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    runs.fetch_add(1, Ordering::SeqCst) + 1
                })
                .await
            }));
        }
        for j in joins {
            assert_eq!(j.await.expect("join"), Some(1));
        }
        assert!(!coalescer.is_running(&"k"));
        let again = coalescer
            .run("k", &tasks, || {
                let runs = runs.clone();
                async move { runs.fetch_add(1, Ordering::SeqCst) + 1 }
            })
            .await;
        assert_eq!(again, Some(2));
    }

    #[tokio::test(start_paused = true)]
    async fn the_run_finishes_when_its_requester_goes_away() {
        let coalescer: Arc<Coalescer<u8, ()>> = Arc::default();
        let tasks = TaskTracker::new();
        let done = Arc::new(AtomicUsize::new(0));
        let d = done.clone();
        let abandoned = tokio::time::timeout(
            Duration::from_millis(1),
            coalescer.run(1, &tasks, || async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                d.fetch_add(1, Ordering::SeqCst);
            }),
        )
        .await;
        assert!(abandoned.is_err());
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(done.load(Ordering::SeqCst), 1);
    }
}
