//! A `tools/call`'s params as they go upstream: one list of members, written straight from the
//! call's borrowed parts (the hot road: no JSON tree, no clone of the agent's `_meta`) or built
//! as a tree for the roads that need one ([`CallContext::tool_call_params`]).

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

/// One member's value, borrowed.
#[derive(Debug, Clone, Copy)]
enum Member<'a> {
    Object(&'a Map<String, Value>),
    Value(&'a Value),
    Text(&'a str),
}

impl Member<'_> {
    fn to_value(self) -> Value {
        match self {
            Self::Object(object) => Value::Object(object.clone()),
            Self::Value(value) => value.clone(),
            Self::Text(text) => Value::String(text.to_owned()),
        }
    }
}

impl Serialize for Member<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Object(object) => object.serialize(serializer),
            Self::Value(value) => value.serialize(serializer),
            Self::Text(text) => serializer.serialize_str(text),
        }
    }
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

    /// The members present, in the order of a JSON tree's keys (a `BTreeMap`), so that the
    /// written params and the tree's are the same bytes: the agent's `_meta` (its progress
    /// token among others), the arguments, a 2026-07-28 agent's answers and the server's state.
    fn members(&self) -> impl Iterator<Item = (&'static str, Member<'a>)> {
        let input = self.context.input.as_ref();
        [
            self.context
                .meta
                .as_ref()
                .map(|meta| ("_meta", Member::Object(meta))),
            self.arguments
                .map(|arguments| ("arguments", Member::Object(arguments))),
            input
                .and_then(|input| input.responses.as_ref())
                .map(|responses| ("inputResponses", Member::Value(responses))),
            Some(("name", Member::Text(self.name))),
            input
                .and_then(|input| input.request_state.as_deref())
                .map(|state| ("requestState", Member::Text(state))),
        ]
        .into_iter()
        .flatten()
    }

    /// The same params as a JSON tree, for the roads that need one.
    pub fn to_value(&self) -> Value {
        Value::Object(
            self.members()
                .map(|(key, member)| (key.to_owned(), member.to_value()))
                .collect(),
        )
    }
}

impl Serialize for ToolCallParams<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        for (key, member) in self.members() {
            map.serialize_entry(key, &member)?;
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
