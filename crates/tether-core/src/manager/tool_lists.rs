//! One copy of each server's tool list in memory.
//!
//! Thousands of users of one server almost always see the same `tools/list`; keeping a copy per
//! pair made tool schemas the largest part of a connected pair's memory (a JSON schema is a few
//! nested maps, about 2 KB a tool). Comparing a fresh list with the last one is cheap next to
//! the network round trip that fetched it.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::ids::ServerName;
use crate::sync::lock;
use crate::tool::Tool;
use crate::tool_cache::ToolList;

#[derive(Debug, Default)]
pub(crate) struct ToolLists {
    latest: Mutex<HashMap<ServerName, ToolList>>,
}

impl ToolLists {
    /// The shared list equal to `tools`, which becomes the server's latest when it differs.
    pub fn intern(&self, server: &ServerName, tools: Vec<Tool>) -> ToolList {
        let mut latest = lock(&self.latest);
        if let Some(list) = latest.get(server)
            && **list == *tools
        {
            return list.clone();
        }
        let list: ToolList = tools.into();
        latest.insert(server.clone(), list.clone());
        list
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn equal_lists_share_one_allocation_and_a_change_replaces_it() {
        let lists = ToolLists::default();
        let s = ServerName::new("s");
        let tools = || vec![Tool::new("a", serde_json::json!({"type": "object"}))];
        let first = lists.intern(&s, tools());
        let second = lists.intern(&s, tools());
        assert!(Arc::ptr_eq(&first, &second));
        let changed = lists.intern(&s, vec![Tool::new("b", serde_json::json!({}))]);
        assert!(!Arc::ptr_eq(&first, &changed));
        assert!(Arc::ptr_eq(
            &changed,
            &lists.intern(&s, vec![Tool::new("b", serde_json::json!({}))])
        ));
    }
}
