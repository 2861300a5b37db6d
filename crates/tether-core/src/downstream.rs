//! The agent's side of one request while it runs upstream: where the upstream's progress and
//! log notifications for that request go, and who answers the upstream's own requests
//! (`sampling/createMessage`, `elicitation/create`, `roots/list`) made on its behalf.
//!
//! The core only carries it from the gateway to the session; what reaches the agent and how
//! (its event stream, refusal when it did not declare a capability) is the gateway's business.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Map, Value};

use crate::tool_call::ToolCallParams;

/// An agent's JSON-RPC error answer to an upstream's request, passed back as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerError {
    pub code: i32,
    pub message: String,
}

#[async_trait]
pub trait Downstream: Send + Sync + fmt::Debug {
    /// A notification of the upstream that belongs to this request.
    async fn notify(&self, method: &str, params: Option<Value>);

    /// A request of the upstream, answered by the agent.
    async fn request(&self, method: &str, params: Option<Value>) -> Result<Value, PeerError>;
}

/// What travels with one request besides its method and params.
#[derive(Debug, Clone, Default)]
pub struct CallContext {
    /// The agent's `_meta` (its `progressToken` among others), sent upstream unchanged.
    pub meta: Option<Map<String, Value>>,
    /// The way back to the agent; `None`: notifications are dropped and the upstream's requests
    /// refused.
    pub downstream: Option<Arc<dyn Downstream>>,
    /// `Some` for an agent of 2026-07-28 or later, which answers a server's questions itself
    /// (SEP-2322): they go back to it as the server's input-required result, not through
    /// `downstream`, and its retry's answers go to the server unchanged.
    pub input: Option<AgentInput>,
}

/// What a 2026-07-28 agent's retry of a request carries for the server that asked: its
/// `inputResponses` and the server's `requestState`, both opaque to Tether. Empty on the first
/// try.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgentInput {
    pub responses: Option<Value>,
    pub request_state: Option<String>,
}

impl AgentInput {
    /// A first try: no answers and no state to send.
    pub fn is_empty(&self) -> bool {
        self.responses.is_none() && self.request_state.is_none()
    }
}

impl CallContext {
    pub fn progress_token(&self) -> Option<&Value> {
        self.meta.as_ref()?.get("progressToken")
    }

    /// Whether there is anything to carry besides the method and params. An agent's first try
    /// carries no answers: its `input` says only how a question would go back to it, which
    /// matters when there is a way back (`downstream`) or an upstream that asks by result
    /// (checked by the session, not here).
    pub fn is_empty(&self) -> bool {
        self.meta.is_none()
            && self.downstream.is_none()
            && self.input.as_ref().is_none_or(AgentInput::is_empty)
    }

    /// `params` with the agent's `_meta` put in (params that are not an object are left as
    /// they are: the upstream will refuse them).
    pub fn with_meta(&self, mut params: Option<Value>) -> Option<Value> {
        if let Some(meta) = &self.meta {
            match &mut params {
                Some(Value::Object(object)) => {
                    object.insert("_meta".to_owned(), Value::Object(meta.clone()));
                }
                None => {
                    params = Some(Value::Object(Map::from_iter([(
                        "_meta".to_owned(),
                        Value::Object(meta.clone()),
                    )])));
                }
                Some(_) => {}
            }
        }
        params
    }

    /// The params of a `tools/call` of `name`, with the agent's `_meta` and answers, to be
    /// written as they are ([`ToolCallParams`] holds which members they have).
    pub fn tool_call<'a>(
        &'a self,
        name: &'a str,
        arguments: Option<&'a Map<String, Value>>,
    ) -> ToolCallParams<'a> {
        ToolCallParams::new(self, name, arguments)
    }

    /// The same params as a JSON tree, for the roads that need one (a 2026-07-28 server's,
    /// whose request is sent again with answers; rmcp's session).
    pub fn tool_call_params(&self, name: &str, arguments: Option<Map<String, Value>>) -> Value {
        self.tool_call(name, arguments.as_ref()).to_value()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_agents_meta_goes_into_the_params() {
        let plain = CallContext::default();
        assert!(plain.is_empty());
        assert_eq!(
            plain.with_meta(Some(json!({"uri": "a"}))),
            Some(json!({"uri": "a"}))
        );
        assert_eq!(plain.with_meta(None), None);
        let context = CallContext {
            meta: Some(Map::from_iter([("progressToken".to_owned(), json!("t"))])),
            downstream: None,
            input: None,
        };
        assert!(!context.is_empty());
        assert_eq!(context.progress_token(), Some(&json!("t")));
        assert_eq!(
            context.with_meta(Some(json!({"uri": "a"}))),
            Some(json!({"uri": "a", "_meta": {"progressToken": "t"}}))
        );
        assert_eq!(
            context.with_meta(None),
            Some(json!({"_meta": {"progressToken": "t"}}))
        );
        assert_eq!(
            context.tool_call_params("add", json!({"a": 1}).as_object().cloned()),
            json!({"name": "add", "arguments": {"a": 1}, "_meta": {"progressToken": "t"}})
        );
        assert_eq!(plain.tool_call_params("add", None), json!({"name": "add"}));
        let retry = CallContext {
            input: Some(AgentInput {
                responses: Some(json!({"name": {"action": "accept"}})),
                request_state: Some("opaque".into()),
            }),
            ..CallContext::default()
        };
        assert!(!retry.is_empty(), "answers to carry");
        let first_try = CallContext {
            input: Some(AgentInput::default()),
            ..CallContext::default()
        };
        assert!(first_try.is_empty(), "a first try carries no answers");
        assert_eq!(
            retry.tool_call_params("ask", None),
            json!({"name": "ask", "inputResponses": {"name": {"action": "accept"}}, "requestState": "opaque"})
        );
    }
}
