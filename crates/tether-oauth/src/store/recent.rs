//! [`RecentTokens`]: the vault with a short memory of the records it handed out, so that the
//! access token of a busy pair is not read (a store query and a decryption) for every upstream
//! request.
//!
//! Why it cannot go wrong for long, and never past expiry:
//! - an entry is kept for [`RecentTokens::new`]'s `keep_for` at most (default 5 s), and the
//!   authorizer serves one only while its token is not due for refresh, which is well before
//!   it expires;
//! - every write through this vault (a refresh's rotation, a flow's new tokens, a disconnect)
//!   drops the pair's entry, and a read that raced a write is not remembered (a generation
//!   counter), so this replica never serves a record older than its own last write;
//! - the authorizer drops the entry when the MCP server answers 401 to its token, before it
//!   reads the store again; a server deleted from the catalog drops its entries
//!   ([`RecentTokens::forget_server`]).
//!
//! What is left is another replica's write, seen here up to `keep_for` late: a token that
//! replica rotated is usually still valid until it expires, and one it revoked gets a 401, which
//! drops the entry. Plain reads ([`TokenVault::get`]) always go to the store: a refresh decides
//! on what the store holds, never on a remembered record.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use tether_core::{PairKey, ServerName, StoreError, Timestamp};
use tokio::time::Instant;

use super::vault::{TokenRecord, TokenVault};
use crate::secret::Secret;

/// How long a record read for a request is remembered by default.
pub const KEEP_RECENT_FOR: Duration = Duration::from_secs(5);

/// Remembered records beyond this are dropped all at once (a bound, not an eviction policy:
/// entries live seconds, so the map only reaches it under a burst of that many busy pairs).
const MAX_ENTRIES: usize = 16_384;

pub struct RecentTokens {
    inner: Arc<dyn TokenVault>,
    keep_for: Duration,
    entries: Mutex<HashMap<PairKey, Entry>>,
    /// Bumped after every write: a read started before it must not be remembered.
    generation: AtomicU64,
}

struct Entry {
    record: TokenRecord,
    until: Instant,
}

impl fmt::Debug for RecentTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecentTokens")
            .field("inner", &self.inner)
            .field("keep_for", &self.keep_for)
            .finish_non_exhaustive()
    }
}

impl RecentTokens {
    /// `keep_for` zero remembers nothing.
    pub fn new(inner: Arc<dyn TokenVault>, keep_for: Duration) -> Self {
        Self {
            inner,
            keep_for,
            entries: Mutex::new(HashMap::new()),
            generation: AtomicU64::new(0),
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<PairKey, Entry>> {
        // Every change is one map call: the map is consistent even after a holder panicked.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The pair's remembered access token, if a record was read less than `keep_for` ago and
    /// `usable` accepts it.
    pub fn remembered(
        &self,
        pair: &PairKey,
        usable: impl Fn(&TokenRecord) -> bool,
    ) -> Option<Secret> {
        let entries = self.entries();
        let entry = entries.get(pair)?;
        (Instant::now() < entry.until && usable(&entry.record))
            .then(|| entry.record.access_token.clone())
    }

    /// Reads the pair's record from the store and remembers it, unless a write happened
    /// meanwhile.
    pub async fn load(&self, pair: &PairKey) -> Result<Option<TokenRecord>, StoreError> {
        let generation = self.generation.load(Ordering::Acquire);
        let record = self.inner.get(pair).await?;
        if let Some(record) = &record
            && !self.keep_for.is_zero()
        {
            let mut entries = self.entries();
            if self.generation.load(Ordering::Acquire) == generation {
                if entries.len() >= MAX_ENTRIES {
                    entries.clear();
                }
                entries.insert(
                    pair.clone(),
                    Entry {
                        record: record.clone(),
                        until: Instant::now() + self.keep_for,
                    },
                );
            }
        }
        Ok(record)
    }

    /// Drops the pair's remembered record (its token was rejected, or it was written).
    pub fn forget(&self, pair: &PairKey) {
        let mut entries = self.entries();
        self.generation.fetch_add(1, Ordering::AcqRel);
        entries.remove(pair);
    }

    /// Drops every remembered record of `server` (deleted from the catalog, its tokens deleted
    /// in the store without this vault).
    pub fn forget_server(&self, server: &ServerName) {
        let mut entries = self.entries();
        self.generation.fetch_add(1, Ordering::AcqRel);
        entries.retain(|pair, _| pair.server != *server);
    }
}

// Writes go to the store first and are forgotten after, so that a read racing the write either
// sees the new record or is not remembered.
#[async_trait]
impl TokenVault for RecentTokens {
    async fn get(&self, pair: &PairKey) -> Result<Option<TokenRecord>, StoreError> {
        self.inner.get(pair).await
    }

    async fn put(&self, pair: &PairKey, record: TokenRecord) -> Result<(), StoreError> {
        let written = self.inner.put(pair, record).await;
        self.forget(pair);
        written
    }

    async fn delete(&self, pair: &PairKey) -> Result<(), StoreError> {
        let deleted = self.inner.delete(pair).await;
        self.forget(pair);
        deleted
    }

    async fn replace(
        &self,
        pair: &PairKey,
        replaced: Timestamp,
        record: TokenRecord,
    ) -> Result<bool, StoreError> {
        let replaced = self.inner.replace(pair, replaced, record).await;
        self.forget(pair);
        replaced
    }

    async fn remove_refresh_token(
        &self,
        pair: &PairKey,
        rejected: &Secret,
    ) -> Result<bool, StoreError> {
        let removed = self.inner.remove_refresh_token(pair, rejected).await;
        self.forget(pair);
        removed
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use tether_core::UserId;
    use tokio::sync::Notify;

    use super::*;
    use crate::store::MemoryTokenVault;

    fn pair(server: &str) -> PairKey {
        PairKey::new(UserId::new("alice"), ServerName::new(server))
    }

    fn record(access: &str) -> TokenRecord {
        TokenRecord {
            access_token: Secret::new(access),
            expires_at: None,
            scopes: vec![],
            refresh_token: None,
            obtained_at: Timestamp::from_millis(1),
            issuer: "https://as.example".into(),
            client_id: "c".into(),
            resource: "https://mcp.example/mcp".into(),
        }
    }

    /// A vault that counts its reads and can hold one read until told to go on.
    #[derive(Debug, Default)]
    struct Counted {
        inner: MemoryTokenVault,
        reads: AtomicUsize,
        hold_next_read: std::sync::atomic::AtomicBool,
        read_started: Notify,
        release_read: Notify,
    }

    #[async_trait]
    impl TokenVault for Counted {
        async fn get(&self, pair: &PairKey) -> Result<Option<TokenRecord>, StoreError> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            let record = self.inner.get(pair).await;
            if self.hold_next_read.swap(false, Ordering::SeqCst) {
                self.read_started.notify_one();
                self.release_read.notified().await;
            }
            record
        }
        async fn put(&self, pair: &PairKey, record: TokenRecord) -> Result<(), StoreError> {
            self.inner.put(pair, record).await
        }
        async fn delete(&self, pair: &PairKey) -> Result<(), StoreError> {
            self.inner.delete(pair).await
        }
    }

    fn token(recent: &RecentTokens, pair: &PairKey) -> Option<String> {
        recent
            .remembered(pair, |_| true)
            .map(|s| s.expose().to_owned())
    }

    #[tokio::test(start_paused = true)]
    async fn a_loaded_record_is_remembered_for_keep_for_only() {
        let store = Arc::new(Counted::default());
        let recent = RecentTokens::new(store.clone(), Duration::from_secs(5));
        let alice = pair("github");
        store.put(&alice, record("at-1")).await.expect("put");
        assert_eq!(token(&recent, &alice), None, "nothing read yet");
        recent.load(&alice).await.expect("load");
        assert_eq!(token(&recent, &alice).as_deref(), Some("at-1"));
        assert!(
            recent.remembered(&alice, |_| false).is_none(),
            "refused by the caller"
        );
        tokio::time::advance(Duration::from_millis(4_900)).await;
        assert_eq!(token(&recent, &alice).as_deref(), Some("at-1"));
        tokio::time::advance(Duration::from_millis(200)).await;
        assert_eq!(token(&recent, &alice), None, "older than keep_for");
        assert_eq!(token(&recent, &pair("linear")), None, "another pair");
        assert_eq!(store.reads.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn every_write_drops_the_pair_and_forget_server_drops_its_pairs() {
        let store = Arc::new(Counted::default());
        let recent = RecentTokens::new(store.clone(), KEEP_RECENT_FOR);
        let github = pair("github");
        let linear = pair("linear");
        recent.put(&linear, record("at-l")).await.expect("put");
        recent.load(&linear).await.expect("load");

        recent.put(&github, record("at-1")).await.expect("put");
        recent.load(&github).await.expect("load");
        recent.put(&github, record("at-2")).await.expect("put");
        assert_eq!(token(&recent, &github), None, "put");

        recent.load(&github).await.expect("load");
        let saved = recent
            .replace(&github, Timestamp::from_millis(1), record("at-3"))
            .await
            .expect("replace");
        assert!(saved);
        assert_eq!(token(&recent, &github), None, "replace");

        recent.load(&github).await.expect("load");
        recent
            .remove_refresh_token(&github, &Secret::new("rt"))
            .await
            .expect("remove");
        assert_eq!(
            token(&recent, &github),
            None,
            "remove_refresh_token, even a no-op"
        );

        recent.load(&github).await.expect("load");
        recent.delete(&github).await.expect("delete");
        assert_eq!(token(&recent, &github), None, "delete");
        recent.load(&github).await.expect("load");
        assert_eq!(token(&recent, &github), None, "no record is not remembered");

        assert_eq!(
            token(&recent, &linear).as_deref(),
            Some("at-l"),
            "untouched"
        );
        recent.forget_server(&ServerName::new("linear"));
        assert_eq!(token(&recent, &linear), None, "forget_server");
    }

    #[tokio::test(start_paused = true)]
    async fn a_read_that_raced_a_write_is_not_remembered() {
        let store = Arc::new(Counted::default());
        let recent = Arc::new(RecentTokens::new(store.clone(), KEEP_RECENT_FOR));
        let alice = pair("github");
        recent.put(&alice, record("at-old")).await.expect("put");

        store.hold_next_read.store(true, Ordering::SeqCst);
        let read = tokio::spawn({
            let recent = recent.clone();
            let alice = alice.clone();
            async move { recent.load(&alice).await }
        });
        store.read_started.notified().await;
        // The old record is read; the rotation lands before the read returns.
        recent.put(&alice, record("at-new")).await.expect("put");
        store.release_read.notify_one();
        let old = read.await.expect("task").expect("load").expect("record");
        assert_eq!(old.access_token.expose(), "at-old");
        assert_eq!(
            token(&recent, &alice),
            None,
            "the stale read is not remembered"
        );
        recent.load(&alice).await.expect("load");
        assert_eq!(token(&recent, &alice).as_deref(), Some("at-new"));
    }

    #[tokio::test(start_paused = true)]
    async fn keep_for_zero_remembers_nothing() {
        let store = Arc::new(Counted::default());
        let recent = RecentTokens::new(store.clone(), Duration::ZERO);
        let alice = pair("github");
        recent.put(&alice, record("at-1")).await.expect("put");
        recent.load(&alice).await.expect("load");
        assert_eq!(token(&recent, &alice), None);
    }
}
