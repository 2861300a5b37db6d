//! MCP tool descriptions and call results, in the protocol's JSON shape.
//!
//! The core keeps its own small types instead of depending on an MCP SDK: it only stores, lists
//! and answers with them. Fields it does not interpret (`title`, `outputSchema`, `annotations`,
//! `_meta`, …) are carried through untouched so a stub lists exactly what the server listed.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One entry of a `tools/list` result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tool {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub input_schema: Map<String, Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Tool {
    /// A tool with an object schema and nothing else; convenient for tests and examples.
    pub fn new(name: impl Into<String>, input_schema: Value) -> Self {
        let input_schema = match input_schema {
            Value::Object(map) => map,
            _ => Map::from_iter([("type".to_owned(), Value::from("object"))]),
        };
        Self {
            name: name.into(),
            description: None,
            input_schema,
            extra: Map::new(),
        }
    }
}

/// The result of `tools/call`: `content`, `structuredContent` (written when present),
/// `isError` (written when true) and every other member in `extra`. Read and written by hand
/// (`tool_result_serde`): it is on every call's path, and serde's `flatten` buffers
/// the whole result (a large text included) before reading it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ToolResult {
    pub content: Vec<Value>,
    pub structured_content: Option<Value>,
    pub is_error: bool,
    pub extra: Map<String, Value>,
}

impl ToolResult {
    /// A failed call explained in one text block, as MCP asks for tool-level errors: the model
    /// reads it and can act on it (wait, ask the user to authorize).
    pub fn error_text(text: impl Into<String>) -> Self {
        Self {
            content: vec![serde_json::json!({"type": "text", "text": text.into()})],
            is_error: true,
            ..Self::default()
        }
    }

    /// The concatenated text blocks, for logs and tests.
    pub fn text(&self) -> String {
        self.content
            .iter()
            .filter_map(|c| c.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tools_round_trip_with_fields_the_core_does_not_know() {
        let wire = json!({
            "name": "search",
            "title": "Search issues",
            "description": "Find issues",
            "inputSchema": {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]},
            "outputSchema": {"type": "object"},
            "annotations": {"readOnlyHint": true}
        });
        let tool: Tool = serde_json::from_value(wire.clone()).expect("valid tool");
        assert_eq!(tool.name, "search");
        assert_eq!(serde_json::to_value(&tool).expect("serializes"), wire);
    }

    #[test]
    fn results_round_trip_with_members_the_core_does_not_know() {
        let wire = json!({
            "content": [{"type": "text", "text": "a"}],
            "structuredContent": {"n": 1},
            "isError": true,
            "_meta": {"k": "v"},
            "resultType": "complete"
        });
        let result: ToolResult = serde_json::from_value(wire.clone()).expect("valid result");
        assert_eq!(result.content.len(), 1);
        assert_eq!(result.structured_content, Some(json!({"n": 1})));
        assert!(result.is_error);
        assert_eq!(result.extra.len(), 2);
        assert_eq!(serde_json::to_value(&result).expect("serializes"), wire);
        let text = serde_json::to_string(&result).expect("serializes");
        let again: ToolResult = serde_json::from_str(&text).expect("reads back");
        assert_eq!(again, result);
    }

    #[test]
    fn absent_and_null_members_take_their_defaults() {
        let result: ToolResult =
            serde_json::from_str(r#"{"structuredContent": null}"#).expect("valid");
        assert_eq!(result, ToolResult::default());
        assert_eq!(
            serde_json::to_value(&result).expect("serializes"),
            json!({"content": []})
        );
    }

    #[test]
    fn malformed_results_are_refused() {
        for text in [
            r#"{"content": {}}"#,
            r#"{"isError": "yes"}"#,
            r#"{"isError": null}"#,
            r#"{"content": [], "content": []}"#,
            r#"[]"#,
            r#""text""#,
        ] {
            assert!(serde_json::from_str::<ToolResult>(text).is_err(), "{text}");
        }
    }

    #[test]
    fn extra_members_never_repeat_a_named_one() {
        let mut result = ToolResult::error_text("x");
        result.extra.insert("isError".to_owned(), json!(false));
        result.extra.insert("content".to_owned(), json!([]));
        let text = serde_json::to_string(&result).expect("serializes");
        assert_eq!(text.matches("\"isError\"").count(), 1, "{text}");
        assert_eq!(text.matches("\"content\"").count(), 1, "{text}");
    }

    #[test]
    fn error_results_say_is_error() {
        let r = ToolResult::error_text("down");
        let v = serde_json::to_value(&r).expect("serializes");
        assert_eq!(
            v,
            json!({"content": [{"type": "text", "text": "down"}], "isError": true})
        );
        assert_eq!(r.text(), "down");
    }
}
