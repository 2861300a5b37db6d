//! rmcp model types ⇄ tether-core types, through serde_json.
//!
//! Both sides are the MCP JSON shape, so a JSON round trip is the whole conversion: no field is
//! copied by hand, and fields one side does not model (`title`, `annotations`, `_meta`, …) are
//! carried through by the core's `extra` maps.

use serde::Serialize;
use serde::de::DeserializeOwned;
use tether_core::ConnectError;

/// The most `tools/list` pages one listing follows. Real servers use a handful; a server whose
/// cursors never end (bug or hostility) must not keep a connect attempt busy forever.
pub const MAX_TOOL_PAGES: usize = 100;

/// The most tools one listing accepts. Far beyond any real server (models cope badly with even
/// a few hundred tools), low enough that a hostile server cannot make the gateway hold an
/// unbounded list in memory and in every user's tool stubs.
pub const MAX_TOOLS: usize = 10_000;

/// The most bytes (the tools' JSON) one listing accepts. The count alone does not bound memory:
/// 10,000 tools of a megabyte each would pass it. Real servers list well under a megabyte.
pub const MAX_TOOL_LIST_BYTES: usize = 8 * 1024 * 1024;

/// Re-types a value through its JSON form; `what` names it in the error.
pub(crate) fn via_json<T: Serialize, U: DeserializeOwned>(
    value: &T,
    what: &str,
) -> Result<U, ConnectError> {
    let json = serde_json::to_value(value)
        .map_err(|_| ConnectError::Protocol(format!("could not encode {what}")))?;
    // The serde error can quote the server's data; only the field path class is kept.
    serde_json::from_value(json)
        .map_err(|e| ConnectError::Protocol(format!("invalid {what} ({:?})", e.classify())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tether_core::{Tool, ToolResult};

    #[test]
    fn rmcp_tools_become_core_tools_with_unknown_fields_kept() {
        let wire = json!({
            "name": "search",
            "title": "Search",
            "description": "Find things",
            "inputSchema": {"type": "object", "properties": {"q": {"type": "string"}}},
            "annotations": {"readOnlyHint": true}
        });
        let rmcp_tool: rmcp::model::Tool = serde_json::from_value(wire.clone()).expect("rmcp tool");
        let tool: Tool = via_json(&rmcp_tool, "tool").expect("converts");
        assert_eq!(tool.name, "search");
        assert_eq!(tool.description.as_deref(), Some("Find things"));
        assert_eq!(tool.extra.get("title"), Some(&json!("Search")));
        assert_eq!(
            tool.extra.get("annotations"),
            Some(&json!({"readOnlyHint": true}))
        );
    }

    #[test]
    fn rmcp_results_become_core_results() {
        let wire = json!({
            "content": [{"type": "text", "text": "42"}],
            "structuredContent": {"sum": 42},
            "isError": false
        });
        let rmcp_result: rmcp::model::CallToolResult =
            serde_json::from_value(wire).expect("rmcp result");
        let result: ToolResult = via_json(&rmcp_result, "tool result").expect("converts");
        assert_eq!(result.text(), "42");
        assert_eq!(result.structured_content, Some(json!({"sum": 42})));
        assert!(!result.is_error);
    }
}
