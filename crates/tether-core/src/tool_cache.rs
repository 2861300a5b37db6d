//! The last good `tools/list` per pair, kept so that tools stay listed while a server is down.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::error::StoreError;
use crate::ids::PairKey;
use crate::sync::lock;
use crate::time::Timestamp;
use crate::tool::Tool;

/// A server's tool list, shared: identical lists (every user of one server, usually) are kept
/// once in memory.
pub type ToolList = Arc<[Tool]>;

#[derive(Debug, Clone, PartialEq)]
pub struct CachedTools {
    pub tools: ToolList,
    pub fetched_at: Timestamp,
}

/// Persisted by `tether-store`; [`MemoryToolCache`] for the embedded default and tests.
#[async_trait]
pub trait ToolCache: Send + Sync + std::fmt::Debug + 'static {
    async fn load(&self, pair: &PairKey) -> Result<Option<CachedTools>, StoreError>;
    async fn save(&self, pair: &PairKey, tools: &CachedTools) -> Result<(), StoreError>;
    async fn remove(&self, pair: &PairKey) -> Result<(), StoreError>;
}

#[derive(Debug, Default)]
pub struct MemoryToolCache {
    entries: Mutex<HashMap<PairKey, CachedTools>>,
}

impl MemoryToolCache {
    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<PairKey, CachedTools>> {
        lock(&self.entries)
    }
}

#[async_trait]
impl ToolCache for MemoryToolCache {
    async fn load(&self, pair: &PairKey) -> Result<Option<CachedTools>, StoreError> {
        Ok(self.entries().get(pair).cloned())
    }

    async fn save(&self, pair: &PairKey, tools: &CachedTools) -> Result<(), StoreError> {
        self.entries().insert(pair.clone(), tools.clone());
        Ok(())
    }

    async fn remove(&self, pair: &PairKey) -> Result<(), StoreError> {
        self.entries().remove(pair);
        Ok(())
    }
}
