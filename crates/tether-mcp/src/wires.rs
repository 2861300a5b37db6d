//! Which wire each Streamable HTTP server was last found to speak, so that a reconnect goes
//! straight to it: an earlier revision's server is not asked `server/discover` again on every
//! connect. Forgotten when a connect fails, so a server that changed is discovered anew.
//!
//! Kept per process: a replica that has not met the server yet pays one discovery.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use crate::streamable::Wire;

/// More servers than any configuration has; past it the memory starts over (one discovery each).
const MAX_REMEMBERED: usize = 100_000;

#[derive(Debug, Default)]
pub(crate) struct Wires {
    known: Mutex<HashMap<String, Wire>>,
}

impl Wires {
    pub(crate) fn get(&self, url: &str) -> Option<Wire> {
        self.known
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(url)
            .copied()
    }

    pub(crate) fn remember(&self, url: &str, wire: Wire) {
        let mut known = self.known.lock().unwrap_or_else(PoisonError::into_inner);
        if known.len() >= MAX_REMEMBERED && !known.contains_key(url) {
            known.clear();
        }
        known.insert(url.to_owned(), wire);
    }

    pub(crate) fn forget(&self, url: &str) {
        self.known
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(url);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembered_until_forgotten() {
        let wires = Wires::default();
        assert_eq!(wires.get("http://a/mcp"), None);
        wires.remember("http://a/mcp", Wire::Legacy);
        wires.remember("http://b/mcp", Wire::Modern);
        assert_eq!(wires.get("http://a/mcp"), Some(Wire::Legacy));
        assert_eq!(wires.get("http://b/mcp"), Some(Wire::Modern));
        wires.forget("http://a/mcp");
        assert_eq!(wires.get("http://a/mcp"), None);
    }
}
