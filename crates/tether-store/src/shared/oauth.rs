//! tether-oauth's flow store and refresh lock in Redis, so that a callback may land on any
//! replica (SPEC §6) and a pair is refreshed by one replica at a time (SPEC §5, LibreChat
//! #14583, #15977).
//!
//! Flow records hold a PKCE verifier: they are sealed like stored tokens, bound to their
//! `state`, so a Redis dump does not hand out live verifiers.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};
use tether_core::{PairKey, StoreError};
use tether_oauth::store::{FLOW_TTL, FlowRecord, FlowStore, RefreshLock};

use super::keys::Keys;
use super::redis::{RedisState, millis, unavailable};
use super::scripts;
use crate::crypto::{Binding, Keyring, Sealed};

const FLOW_KIND: &str = "oauth_flow";

/// Flows in progress, shared by every replica; single use by `GETDEL`.
pub struct RedisFlowStore {
    conn: ConnectionManager,
    keys: Keys,
    keyring: Arc<Keyring>,
}

impl std::fmt::Debug for RedisFlowStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisFlowStore").finish_non_exhaustive()
    }
}

/// Refresh leases: `SET NX PX` with the owner as value, released only by their owner.
pub struct RedisRefreshLock {
    conn: ConnectionManager,
    keys: Keys,
    release: Script,
}

impl std::fmt::Debug for RedisRefreshLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisRefreshLock").finish_non_exhaustive()
    }
}

impl RedisState {
    pub fn flow_store(&self, keyring: Arc<Keyring>) -> RedisFlowStore {
        RedisFlowStore {
            conn: self.conn.clone(),
            keys: self.keys.clone(),
            keyring,
        }
    }

    pub fn refresh_lock(&self) -> RedisRefreshLock {
        RedisRefreshLock {
            conn: self.conn.clone(),
            keys: self.keys.clone(),
            release: Script::new(scripts::DELETE_IF_EQUAL),
        }
    }
}

fn binding(state: &str) -> Binding<'_> {
    Binding {
        kind: FLOW_KIND,
        user: "",
        server: state,
    }
}

#[async_trait]
impl FlowStore for RedisFlowStore {
    async fn put(&self, state: &str, record: FlowRecord) -> Result<(), StoreError> {
        let json = serde_json::to_vec(&record)
            .map_err(|_| StoreError::Corrupt("flow record does not serialize".to_owned()))?;
        let sealed = self
            .keyring
            .seal(binding(state), &json)
            .map_err(|e| StoreError::Corrupt(format!("seal flow: {e}")))?;
        // `key_id` then a NUL then the sealed bytes: one value, one command.
        let mut value = sealed.key_id.into_bytes();
        value.push(0);
        value.extend_from_slice(&sealed.bytes);
        self.conn
            .clone()
            .pset_ex::<_, _, ()>(self.keys.flow(state), value, millis(FLOW_TTL))
            .await
            .map_err(|e| unavailable("save flow", &e))
    }

    async fn take(&self, state: &str) -> Result<Option<FlowRecord>, StoreError> {
        let value: Option<Vec<u8>> = redis::cmd("GETDEL")
            .arg(self.keys.flow(state))
            .query_async(&mut self.conn.clone())
            .await
            .map_err(|e| unavailable("take flow", &e))?;
        let Some(value) = value else {
            return Ok(None);
        };
        let corrupt = || StoreError::Corrupt("flow record is unreadable".to_owned());
        let split = value.iter().position(|b| *b == 0).ok_or_else(corrupt)?;
        let key_id = String::from_utf8(value[..split].to_vec()).map_err(|_| corrupt())?;
        let sealed = Sealed {
            key_id,
            bytes: value[split + 1..].to_vec(),
        };
        let json = self
            .keyring
            .open(binding(state), &sealed)
            .map_err(|e| StoreError::Corrupt(format!("flow: {e}")))?;
        serde_json::from_slice(&json)
            .map(Some)
            .map_err(|_| corrupt())
    }
}

#[async_trait]
impl RefreshLock for RedisRefreshLock {
    async fn try_acquire(
        &self,
        pair: &PairKey,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let set: Option<String> = redis::cmd("SET")
            .arg(self.keys.refresh_lock(pair))
            .arg(owner)
            .arg("NX")
            .arg("PX")
            .arg(millis(ttl))
            .query_async(&mut self.conn.clone())
            .await
            .map_err(|e| unavailable("acquire refresh lock", &e))?;
        Ok(set.is_some())
    }

    async fn release(&self, pair: &PairKey, owner: &str) -> Result<bool, StoreError> {
        let deleted: i64 = self
            .release
            .key(self.keys.refresh_lock(pair))
            .arg(owner)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(|e| unavailable("release refresh lock", &e))?;
        Ok(deleted == 1)
    }

    async fn still_held(&self, pair: &PairKey, owner: &str) -> Result<bool, StoreError> {
        let holder: Option<String> = self
            .conn
            .clone()
            .get(self.keys.refresh_lock(pair))
            .await
            .map_err(|e| unavailable("read refresh lock", &e))?;
        Ok(holder.as_deref() == Some(owner))
    }
}
