//! A `tools/call`'s params as they go upstream, written from the call's borrowed parts: the
//! same members as [`CallContext::tool_call_params`], in the same order, without building the
//! JSON tree (a map, its keys and a clone of the agent's `_meta`) that every call wrote once
//! and dropped.

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};

use crate::CallContext;

/// The params of one `tools/call`; see [`CallContext::tool_call`].
#[derive(Debug, Clone, Copy)]
pub struct ToolCallParams<'a> {
    context: &'a CallContext,
    name: &'a str,
    arguments: Option<&'a Map<String, Value>>,
}

impl<'a> ToolCallParams<'a> {
    pub(crate) fn new(
        context: &'a CallContext,
        name: &'a str,
        arguments: Option<&'a Map<String, Value>>,
    ) -> Self {
        Self {
            context,
            name,
            arguments,
        }
    }

    /// The same params as a JSON tree, for the roads that need one.
    pub fn to_value(&self) -> Value {
        self.context
            .tool_call_params(self.name, self.arguments.cloned())
    }
}

impl Serialize for ToolCallParams<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let input = self.context.input.as_ref();
        let responses = input.and_then(|input| input.responses.as_ref());
        let state = input.and_then(|input| input.request_state.as_deref());
        // The order of the tree's keys (a `BTreeMap`), so that both write the same bytes.
        let mut map = serializer.serialize_map(None)?;
        if let Some(meta) = &self.context.meta {
            map.serialize_entry("_meta", meta)?;
        }
        if let Some(arguments) = self.arguments {
            map.serialize_entry("arguments", arguments)?;
        }
        if let Some(responses) = responses {
            map.serialize_entry("inputResponses", responses)?;
        }
        map.serialize_entry("name", self.name)?;
        if let Some(state) = state {
            map.serialize_entry("requestState", state)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::AgentInput;

    fn meta(token: Value) -> Option<Map<String, Value>> {
        Some(Map::from_iter([("progressToken".to_owned(), token)]))
    }

    #[test]
    fn the_params_are_written_as_the_tree_is() {
        let contexts = [
            CallContext::default(),
            CallContext {
                meta: meta(json!("t")),
                ..CallContext::default()
            },
            CallContext {
                meta: meta(json!(7)),
                input: Some(AgentInput {
                    responses: Some(json!({"q": {"action": "accept", "content": {"a": "\"x\""}}})),
                    request_state: Some("opaque \u{e9}".into()),
                }),
                ..CallContext::default()
            },
            CallContext {
                input: Some(AgentInput::default()),
                ..CallContext::default()
            },
        ];
        let arguments = [
            None,
            json!({}).as_object().cloned(),
            json!({"b": [1, 2.5, null], "a": {"z": true, "_meta": "theirs"}})
                .as_object()
                .cloned(),
        ];
        for context in &contexts {
            for args in &arguments {
                let params = context.tool_call("up__echo", args.as_ref());
                let tree = context.tool_call_params("up__echo", args.clone());
                let written = serde_json::to_string(&params).expect("writable");
                let of_tree = serde_json::to_string(&tree).expect("writable");
                assert_eq!(written, of_tree, "{context:?} {args:?}");
                assert_eq!(params.to_value(), tree);
            }
        }
    }
}
