//! A request's body. A request Tether built itself (`CustomRequest`: a method, a params object,
//! no metadata in its extensions) is written in one pass; rmcp's serializer turns every params
//! object into a JSON tree, takes its `_meta` out through another, and writes the tree (it merges
//! `_meta` from the extensions that way), which was the largest part of encoding a tool call
//! (callgrind, README "Benchmarks"). A `tools/call` is written straight from its borrowed parts
//! ([`Outbound::ToolCall`]), without a params tree at all. Anything else is written by rmcp as
//! before.

use rmcp::model::{
    ClientJsonRpcMessage, ClientRequest, CustomRequest, JsonRpcMessage, JsonRpcRequest, MetaObject,
    RequestId, RequestMetaObject,
};
use serde::Serialize;
use serde_json::{Map, Value};
use tether_core::ToolCallParams;

const TOOLS_CALL: &str = "tools/call";

/// A request on its way out: one of rmcp's, or a `tools/call` written from its parts.
#[derive(Debug)]
pub(super) enum Outbound<'a> {
    /// Boxed: a `ClientRequest` is ten times the size of the other variant.
    Typed(Box<ClientRequest>),
    ToolCall(ToolCallParams<'a>),
}

impl From<ClientRequest> for Outbound<'_> {
    fn from(request: ClientRequest) -> Self {
        Self::Typed(Box::new(request))
    }
}

impl Outbound<'_> {
    /// The request `id` as rmcp's message, for the roads that need one (rmcp's own client,
    /// the 2026-07-28 revision's stamping).
    pub(super) fn into_message(self, id: RequestId) -> ClientJsonRpcMessage {
        let request = match self {
            Self::Typed(request) => *request,
            Self::ToolCall(params) => ClientRequest::CustomRequest(CustomRequest::new(
                TOOLS_CALL,
                Some(params.to_value()),
            )),
        };
        ClientJsonRpcMessage::request(request, id)
    }

    /// The body of the request `id`: the same bytes either way (see the tests).
    pub(super) fn body(self, id: RequestId) -> serde_json::Result<Vec<u8>> {
        match self {
            Self::ToolCall(params) => serde_json::to_vec(&Envelope {
                jsonrpc: "2.0",
                id: &id,
                method: TOOLS_CALL,
                params: &params,
            }),
            typed => message_body(&typed.into_message(id)),
        }
    }
}

/// `message` as JSON, as rmcp writes it (up to the order of the params' keys).
pub(super) fn message_body(message: &ClientJsonRpcMessage) -> serde_json::Result<Vec<u8>> {
    if let JsonRpcMessage::Request(JsonRpcRequest {
        id,
        request: ClientRequest::CustomRequest(custom),
        ..
    }) = message
        && let Some(params) = plain_params(custom)
    {
        return serde_json::to_vec(&Envelope {
            jsonrpc: "2.0",
            id,
            method: &custom.method,
            params,
        });
    }
    serde_json::to_vec(message)
}

/// The params, when rmcp would write them unchanged: an object whose `_meta`, if any, is an
/// object (rmcp drops another), and no metadata in the extensions to merge in.
fn plain_params(custom: &CustomRequest) -> Option<&Map<String, Value>> {
    let params = custom.params.as_ref()?.as_object()?;
    let meta_is_object = params.get("_meta").is_none_or(Value::is_object);
    let no_extension_meta = custom.extensions.get::<RequestMetaObject>().is_none()
        && custom.extensions.get::<MetaObject>().is_none();
    (meta_is_object && no_extension_meta).then_some(params)
}

#[derive(Serialize)]
struct Envelope<'a, P> {
    jsonrpc: &'static str,
    id: &'a RequestId,
    method: &'a str,
    params: &'a P,
}

#[cfg(test)]
mod tests {
    use rmcp::model::{CallToolRequestParams, ClientRequest, Request};
    use serde_json::json;

    use super::*;

    fn request(request: ClientRequest, id: RequestId) -> ClientJsonRpcMessage {
        ClientJsonRpcMessage::request(request, id)
    }

    fn custom(method: &str, params: Option<Value>) -> ClientRequest {
        ClientRequest::CustomRequest(CustomRequest::new(method, params))
    }

    /// The body parsed, against rmcp's own serialization of the same message parsed.
    fn same_as_rmcp(message: &ClientJsonRpcMessage) {
        let ours = match message_body(message) {
            Ok(body) => body,
            Err(e) => panic!("not encoded: {e}"),
        };
        let rmcp = match serde_json::to_vec(message) {
            Ok(body) => body,
            Err(e) => panic!("rmcp did not encode it: {e}"),
        };
        let parse = |bytes: &[u8]| match serde_json::from_slice::<Value>(bytes) {
            Ok(value) => value,
            Err(e) => panic!("not JSON: {e}"),
        };
        assert_eq!(
            parse(&ours),
            parse(&rmcp),
            "{}",
            String::from_utf8_lossy(&ours)
        );
    }

    #[test]
    fn tether_built_requests_read_as_rmcp_writes_them() {
        let cases = [
            custom(
                "tools/call",
                Some(
                    json!({"name": "echo", "arguments": {"text": "hé \"quoted\"\n", "n": [1, 2.5, null]}}),
                ),
            ),
            custom(
                "tools/call",
                Some(json!({"name": "echo", "arguments": {}, "_meta": {"progressToken": 7}})),
            ),
            custom("resources/read", Some(json!({"uri": "file:///a"}))),
            custom("ping", Some(json!({}))),
        ];
        for (n, case) in cases.into_iter().enumerate() {
            let ClientRequest::CustomRequest(built) = &case else {
                panic!("a custom request");
            };
            assert!(plain_params(built).is_some(), "written in one pass: {n}");
            same_as_rmcp(&request(case.clone(), RequestId::Number(n as i64)));
            same_as_rmcp(&request(case, RequestId::String(format!("s{n}").into())));
        }
    }

    #[test]
    fn what_rmcp_would_change_is_left_to_rmcp() {
        // Each of these takes rmcp's road: the output must still be rmcp's exactly.
        let mut with_extension_meta = CustomRequest::new("tools/call", Some(json!({"name": "a"})));
        with_extension_meta
            .extensions
            .insert(RequestMetaObject::default());
        let others = [
            custom(
                "tools/call",
                Some(json!({"name": "a", "_meta": "not an object"})),
            ),
            custom("x/list", Some(json!([1, 2]))),
            custom("x/none", None),
            ClientRequest::CustomRequest(with_extension_meta),
            ClientRequest::CallToolRequest(Request::new(CallToolRequestParams::new("echo"))),
        ];
        for other in others {
            let message = request(other, RequestId::Number(1));
            let Ok(ours) = message_body(&message) else {
                panic!("not encoded");
            };
            let Ok(rmcp) = serde_json::to_vec(&message) else {
                panic!("rmcp did not encode it");
            };
            assert_eq!(ours, rmcp, "{}", String::from_utf8_lossy(&ours));
        }
    }

    #[test]
    fn a_tool_call_written_from_its_parts_is_the_bytes_of_its_tree() {
        use tether_core::{AgentInput, CallContext};

        let contexts = [
            CallContext::default(),
            CallContext {
                meta: json!({"progressToken": 7}).as_object().cloned(),
                ..CallContext::default()
            },
            CallContext {
                meta: json!({"progressToken": "p", "other": [1]})
                    .as_object()
                    .cloned(),
                input: Some(AgentInput {
                    responses: Some(json!({"q": {"action": "decline"}})),
                    request_state: Some("s \"quoted\"".into()),
                }),
                ..CallContext::default()
            },
        ];
        let arguments = json!({"text": "hé \"quoted\"\n", "n": [1, 2.5, null]});
        for (n, context) in contexts.iter().enumerate() {
            for args in [None, arguments.as_object()] {
                let id = RequestId::Number(n as i64);
                let parts = Outbound::ToolCall(context.tool_call("echo", args));
                let Ok(ours) = parts.body(id.clone()) else {
                    panic!("not encoded");
                };
                let tree = Outbound::Typed(Box::new(custom(
                    "tools/call",
                    Some(context.tool_call_params("echo", args.cloned())),
                )));
                let Ok(of_tree) = tree.body(id.clone()) else {
                    panic!("not encoded");
                };
                assert_eq!(ours, of_tree, "{}", String::from_utf8_lossy(&ours));
                let message = Outbound::ToolCall(context.tool_call("echo", args)).into_message(id);
                same_as_rmcp(&message);
            }
        }
    }
}
