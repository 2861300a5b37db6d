//! Which wire each Streamable HTTP server was last found to speak, so that a reconnect goes
//! straight to it: an earlier revision's server is not asked `server/discover` again on every
//! connect. Forgotten when a connect fails, so a server that changed is discovered anew.
//!
//! [`LocalWires`] keeps it per process (the default); replicas share one memory through
//! [`WireMemory`] (tether-store's Redis implementation), so a deployment discovers a server
//! once, not once per replica.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;

use crate::streamable::Wire;

/// Where the connector keeps what it learnt of each server's wire, keyed by the server's URL.
/// A memory that cannot answer (its store is away) answers `None`: the connect then discovers,
/// which costs one request and is never wrong.
#[async_trait]
pub trait WireMemory: Send + Sync + fmt::Debug + 'static {
    async fn get(&self, url: &str) -> Option<Wire>;
    async fn remember(&self, url: &str, wire: Wire);
    async fn forget(&self, url: &str);
}

/// More servers than any configuration has; past it the memory starts over (one discovery each).
const MAX_REMEMBERED: usize = 100_000;

/// The memory of one process.
#[derive(Debug, Default)]
pub struct LocalWires {
    known: Mutex<HashMap<String, Wire>>,
}

#[async_trait]
impl WireMemory for LocalWires {
    async fn get(&self, url: &str) -> Option<Wire> {
        self.known
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(url)
            .copied()
    }

    async fn remember(&self, url: &str, wire: Wire) {
        let mut known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
        if known.len() >= MAX_REMEMBERED && !known.contains_key(url) {
            known.clear();
        }
        known.insert(url.to_owned(), wire);
    }

    async fn forget(&self, url: &str) {
        self.known
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(url);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn remembered_until_forgotten() {
        let wires = LocalWires::default();
        assert_eq!(wires.get("http://a/mcp").await, None);
        wires.remember("http://a/mcp", Wire::Legacy).await;
        wires.remember("http://b/mcp", Wire::Modern).await;
        assert_eq!(wires.get("http://a/mcp").await, Some(Wire::Legacy));
        assert_eq!(wires.get("http://b/mcp").await, Some(Wire::Modern));
        wires.forget("http://a/mcp").await;
        assert_eq!(wires.get("http://a/mcp").await, None);
    }

    #[test]
    fn wires_have_names() {
        for wire in [Wire::Modern, Wire::Legacy] {
            assert_eq!(Wire::parse(wire.as_str()), Some(wire));
        }
        assert_eq!(Wire::parse("other"), None);
    }
}
