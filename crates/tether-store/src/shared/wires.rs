//! The wire each MCP server speaks (tether-mcp's [`WireMemory`]), shared by the replicas in
//! Redis: a deployment asks an earlier revision's server `server/discover` once, not once per
//! replica. Entries expire after a day, so a server that changed without failing a connect is
//! discovered anew at the latest then.

use std::time::Duration;

use async_trait::async_trait;
use redis::aio::ConnectionManager;
use tether_mcp::{Wire, WireMemory};
use tracing::debug;

use super::keys::Keys;
use super::redis::{RedisState, millis, unavailable};

const REMEMBERED_FOR: Duration = Duration::from_secs(24 * 60 * 60);

#[derive(Clone)]
pub struct RedisWires {
    conn: ConnectionManager,
    keys: Keys,
}

impl std::fmt::Debug for RedisWires {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisWires").finish_non_exhaustive()
    }
}

impl RedisState {
    pub fn wire_memory(&self) -> RedisWires {
        RedisWires {
            conn: self.conn.clone(),
            keys: self.keys.clone(),
        }
    }
}

#[async_trait]
impl WireMemory for RedisWires {
    async fn get(&self, url: &str) -> Option<Wire> {
        let found: Result<Option<String>, _> = redis::cmd("GET")
            .arg(self.keys.wire(url))
            .query_async(&mut self.conn.clone())
            .await;
        match found {
            Ok(text) => text.as_deref().and_then(Wire::parse),
            Err(e) => {
                // Not knowing costs one discovery, never a wrong wire.
                debug!(error = %unavailable("read wire", &e), "wire memory unavailable");
                None
            }
        }
    }

    async fn remember(&self, url: &str, wire: Wire) {
        let stored: Result<(), _> = redis::cmd("SET")
            .arg(self.keys.wire(url))
            .arg(wire.as_str())
            .arg("PX")
            .arg(millis(REMEMBERED_FOR))
            .query_async(&mut self.conn.clone())
            .await;
        if let Err(e) = stored {
            debug!(error = %unavailable("remember wire", &e), "wire memory unavailable");
        }
    }

    async fn forget(&self, url: &str) {
        let deleted: Result<(), _> = redis::cmd("DEL")
            .arg(self.keys.wire(url))
            .query_async(&mut self.conn.clone())
            .await;
        if let Err(e) = deleted {
            debug!(error = %unavailable("forget wire", &e), "wire memory unavailable");
        }
    }
}
