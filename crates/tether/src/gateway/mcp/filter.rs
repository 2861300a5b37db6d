//! Which tools of a server the host's agents may see and call: per-server allow and deny lists
//! (deny wins), applied to `tools/list` and `tools/call` alike.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tether_core::ServerName;

/// `allow`: when given, only these tools (an empty list allows none). `deny`: never these.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ToolFilter {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<String>,
}

impl ToolFilter {
    pub fn permits(&self, tool: &str) -> bool {
        if self.deny.iter().any(|d| d == tool) {
            return false;
        }
        self.allow
            .as_ref()
            .is_none_or(|allow| allow.iter().any(|a| a == tool))
    }
}

/// The filters of every server; a server without one exposes all its tools.
#[derive(Debug, Clone, Default)]
pub struct ToolPolicy {
    filters: BTreeMap<ServerName, ToolFilter>,
}

impl ToolPolicy {
    pub fn new(filters: BTreeMap<ServerName, ToolFilter>) -> Self {
        Self { filters }
    }

    pub fn permits(&self, server: &ServerName, tool: &str) -> bool {
        self.filters.get(server).is_none_or(|f| f.permits(tool))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deny_wins_over_allow() {
        let f = ToolFilter {
            allow: Some(vec!["a".into(), "b".into()]),
            deny: vec!["b".into()],
        };
        assert!(f.permits("a"));
        assert!(!f.permits("b"));
        assert!(!f.permits("c"));
        assert!(ToolFilter::default().permits("anything"));
        let none = ToolFilter {
            allow: Some(Vec::new()),
            deny: Vec::new(),
        };
        assert!(!none.permits("a"));
    }
}
