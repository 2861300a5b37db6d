//! `tools/call` on a live session, answered here as `application/json` without rmcp's session
//! worker.
//!
//! rmcp's stateful server routes every request through the session's worker task and answers
//! on an event stream: channel hops, task wake-ups and an SSE response per call, the largest
//! part of the gateway's own cost per call after the upstream request itself. A call needs
//! none of the session's state (the user comes from the JWT, the owner check is done by
//! [`guard_sessions`](super::sessions::guard_sessions)), so a call rmcp would accept without
//! special handling is answered directly; the spec lets a server answer a POSTed request
//! with either a JSON body or a stream. Anything else (other methods, notifications, requests
//! with the 2026 per-request protocol metadata, which [`direct_modern`](super::direct_modern)
//! looks at, Accept or version headers that need rmcp's full rules) goes to rmcp as before.
//!
//! What the worker did that still matters is kept: the session's idle timer (a request goes
//! through rmcp at least every half idle timeout, see `SessionOwners::presented`) and a session
//! rmcp ended is not served. A caller who gives up closes its HTTP request: this future is
//! dropped, and with it the upstream request, which the upstream session cancels.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rmcp::ErrorData as McpError;
use rmcp::model::{
    CallToolRequestParams, ErrorCode, InputRequiredResult, ProtocolVersion,
    ReadResourceRequestParams, RequestId, RequestMetaObject,
};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value, json};
use tether_core::{AgentInput, CallContext, ToolResult};

use super::call::{UnknownTool, call_tool};
use super::caller::Caller;
use super::direct_calls::Running;
use super::direct_stream;
use super::handler::surface::{is_input_required, questions, without_protocol_meta};
use crate::gateway::state::AppState;

pub(crate) const JSON: &str = "application/json";
const EVENT_STREAM: &str = "text/event-stream";
// Header names as values: a name given as text is parsed again at every lookup.
pub(crate) const PROTOCOL_VERSION_HEADER: HeaderName =
    HeaderName::from_static("mcp-protocol-version");
pub(crate) const METHOD_HEADER: HeaderName = HeaderName::from_static("mcp-method");
pub(crate) const NAME_HEADER: HeaderName = HeaderName::from_static("mcp-name");

/// Put into a request's extensions by the session guard: the session id belongs to the caller
/// and rmcp has seen the session recently enough that skipping its worker keeps it alive.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DirectAllowed;

/// Whether a request's headers are ones rmcp accepts with no rule of its own to apply: both
/// media types accepted without parameters, a JSON body, a protocol version from before the
/// 2026 revision (whose standard headers rmcp checks against the body) and none of those
/// standard headers.
pub(crate) fn plain_headers(headers: &HeaderMap) -> bool {
    accepts_json_and_event_stream(headers)
        && is_json_body(headers)
        && session_protocol_version(headers)
        && !headers.contains_key(METHOD_HEADER)
        && !headers.contains_key(NAME_HEADER)
}

pub(crate) fn accepts_json_and_event_stream(headers: &HeaderMap) -> bool {
    // The value MCP clients send (rmcp's, the TypeScript SDK's), matched whole first: this
    // runs on every request.
    let mut values = headers.get_all(header::ACCEPT).iter();
    if let (Some(only), None) = (values.next(), values.next())
        && (only == "application/json, text/event-stream"
            || only == "text/event-stream, application/json")
    {
        return true;
    }
    let (mut json, mut event_stream) = (false, false);
    for value in headers.get_all(header::ACCEPT) {
        let Ok(value) = value.to_str() else {
            return false;
        };
        for entry in value.split(',') {
            let entry = entry.trim();
            if entry.contains([';', '"']) {
                // Weights and parameters: rmcp's parser decides.
                return false;
            }
            json |= entry.eq_ignore_ascii_case(JSON);
            event_stream |= entry.eq_ignore_ascii_case(EVENT_STREAM);
        }
    }
    json && event_stream
}

pub(crate) fn is_json_body(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            let essence = v.split_once(';').map_or(v, |(essence, _)| essence);
            essence.trim().eq_ignore_ascii_case(JSON)
        })
}

fn session_protocol_version(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(PROTOCOL_VERSION_HEADER) else {
        return true;
    };
    let Ok(version) = value.to_str() else {
        return false;
    };
    version < ProtocolVersion::STANDARD_HEADERS.as_str()
        && ProtocolVersion::KNOWN_VERSIONS
            .iter()
            .any(|known| known.as_str() == version)
}

/// A `tools/call` request, read in one pass straight into its parameters. rmcp's
/// `ClientJsonRpcMessage` buffers the message (flattened, untagged) and tries the request types
/// one after the other, building an error for each miss: several times the cost of this, on
/// every call. Anything that does not read as this goes through rmcp's parse as before.
#[derive(Deserialize)]
struct ToolsCall {
    #[expect(dead_code, reason = "read to require \"2.0\"")]
    #[serde(deserialize_with = "jsonrpc_2_0")]
    jsonrpc: (),
    id: RequestId,
    #[expect(dead_code, reason = "read to require \"tools/call\"")]
    #[serde(deserialize_with = "tools_call")]
    method: (),
    params: CallToolRequestParams,
}

fn jsonrpc_2_0<'de, D: Deserializer<'de>>(value: D) -> Result<(), D::Error> {
    exactly(value, "2.0")
}

fn tools_call<'de, D: Deserializer<'de>>(value: D) -> Result<(), D::Error> {
    exactly(value, "tools/call")
}

fn resources_read<'de, D: Deserializer<'de>>(value: D) -> Result<(), D::Error> {
    exactly(value, "resources/read")
}

/// A string that must be `expected`, compared where it lies: rmcp's constant-string types read
/// a `String` first, two allocations on every call for `jsonrpc` and `method`.
fn exactly<'de, D: Deserializer<'de>>(value: D, expected: &'static str) -> Result<(), D::Error> {
    struct Exactly(&'static str);
    impl Visitor<'_> for Exactly {
        type Value = ();

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "\"{}\"", self.0)
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
            if v == self.0 {
                Ok(())
            } else {
                Err(E::invalid_value(de::Unexpected::Str(v), &self))
            }
        }
    }
    value.deserialize_str(Exactly(expected))
}

/// The id and parameters, if `body` is a `tools/call` with nothing rmcp would look at: no
/// per-request protocol metadata (the 2026 revision, validated against the headers) and no
/// answers to an earlier "input required" result.
///
/// A progress token does not count: rmcp's client puts one on every request. A plain agent's
/// call (one that declared neither sampling, elicitation nor roots) is answered here, as JSON,
/// or as an event stream once the upstream sends progress for it ([`direct_stream`]). Agents
/// that declared those capabilities go through rmcp (see `SessionOwners::presented`).
/// A request the direct path answers.
pub(crate) enum Plain {
    Call(CallToolRequestParams),
    Read(ReadResourceRequestParams),
}

/// The id and parameters, if `body` is a request the direct path answers: a [`plain_call`] or
/// a [`plain_read`].
pub(crate) fn plain_request(body: &[u8]) -> Option<(RequestId, Plain)> {
    if let Some((id, params)) = plain_call(body) {
        return Some((id, Plain::Call(params)));
    }
    plain_read(body).map(|(id, params)| (id, Plain::Read(params)))
}

/// A `resources/read` request, read the same way.
#[derive(Deserialize)]
struct ResourceRead {
    #[expect(dead_code, reason = "read to require \"2.0\"")]
    #[serde(deserialize_with = "jsonrpc_2_0")]
    jsonrpc: (),
    id: RequestId,
    #[expect(dead_code, reason = "read to require \"resources/read\"")]
    #[serde(deserialize_with = "resources_read")]
    method: (),
    params: ReadResourceRequestParams,
}

/// The id and parameters, if `body` is a `resources/read` with nothing rmcp would look at (as
/// for [`plain_call`]).
fn plain_read(body: &[u8]) -> Option<(RequestId, ReadResourceRequestParams)> {
    let (id, params) = read_read(body)?;
    let versioned = params
        .meta
        .as_ref()
        .is_some_and(|meta| meta.protocol_version().is_some());
    (!versioned && params.input_responses.is_none() && params.request_state.is_none())
        .then_some((id, params))
}

/// A `resources/read` request's id and parameters, whatever they hold.
pub(crate) fn read_read(body: &[u8]) -> Option<(RequestId, ReadResourceRequestParams)> {
    let read: ResourceRead = serde_json::from_slice(body).ok()?;
    Some((read.id, read.params))
}

/// A `tools/call` request's id and parameters, whatever they hold.
pub(crate) fn read_call(body: &[u8]) -> Option<(RequestId, CallToolRequestParams)> {
    let call: ToolsCall = serde_json::from_slice(body).ok()?;
    Some((call.id, call.params))
}

fn plain_call(body: &[u8]) -> Option<(RequestId, CallToolRequestParams)> {
    let (id, params) = read_call(body)?;
    let versioned = params
        .meta
        .as_ref()
        .is_some_and(|meta| meta.protocol_version().is_some());
    (!versioned && params.input_responses.is_none() && params.request_state.is_none())
        .then_some((id, params))
}

/// The answer's envelope as `serde_json` writes it: what [`success`] writes, in the tests.
#[cfg(test)]
#[derive(serde::Serialize)]
struct Success<'a, R> {
    jsonrpc: &'static str,
    id: &'a RequestId,
    result: &'a R,
}

/// The wire an agent speaks, for what its answer carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AgentWire {
    /// The session revisions (up to 2025-11-25): the result as the core has it.
    Session,
    /// 2026-07-28, stateless ([`direct_modern`](super::direct_modern)): `resultType` on every
    /// result, an upstream's input-required result passed back, and the agent's `_meta` not
    /// sent upstream beyond its progress token.
    Modern,
}

impl AgentWire {
    /// What goes with a request to the core: its `_meta` when it carries a progress token
    /// (a session agent's as it is; of a 2026-07-28 agent's only the token, the rest describes
    /// this leg) and, for a 2026-07-28 agent, that it answers questions itself.
    pub(crate) fn context(self, meta: Option<RequestMetaObject>) -> CallContext {
        let meta = meta.and_then(|meta| {
            let token = meta.get_progress_token()?;
            match self {
                // The map itself: serializing it again would only copy it.
                Self::Session => Some(meta.0.0),
                Self::Modern => {
                    let token = serde_json::to_value(token).ok()?;
                    Some(Map::from_iter([("progressToken".to_owned(), token)]))
                }
            }
        });
        CallContext {
            meta,
            downstream: None,
            input: (self == Self::Modern).then(AgentInput::default),
        }
    }
}

/// A finished call's result as the agent's wire has it.
enum Shaped {
    Complete(ToolResult),
    Asks(InputRequiredResult),
}

/// The result for `wire`; `Err` when an upstream's questions do not read as MCP's (the error
/// rmcp's path answers with too).
fn shaped(mut result: ToolResult, wire: AgentWire) -> Result<Shaped, McpError> {
    if wire == AgentWire::Session {
        return Ok(Shaped::Complete(result));
    }
    if is_input_required(&result.extra) {
        return questions(result.extra).map(Shaped::Asks);
    }
    // The upstream leg's own protocol `_meta` describes that leg, not this one.
    without_protocol_meta(&mut result.extra);
    result.extra.insert(
        "resultType".to_owned(),
        Value::String("complete".to_owned()),
    );
    Ok(Shaped::Complete(result))
}

/// Makes the call and answers it as one JSON-RPC message; a call with a progress token is
/// watched for the upstream's notifications ([`direct_stream`]). `running` is the call's entry
/// among the session's running calls: a cancel by the agent ends it.
pub(crate) async fn answer(
    app: &AppState,
    user: &Caller,
    id: RequestId,
    params: CallToolRequestParams,
    running: Running,
    wire: AgentWire,
) -> Response {
    let CallToolRequestParams {
        name,
        arguments,
        meta,
        ..
    } = params;
    let context = wire.context(meta);
    if context.progress_token().is_some() {
        return direct_stream::answer(
            app.clone(),
            user.clone(),
            id,
            name.into(),
            arguments,
            context,
            running,
            wire,
        )
        .await;
    }
    tokio::select! {
        outcome = call_tool(app, user, &name, arguments, &context) => {
            encode(&id, outcome, wire)
        }
        () = running.cancelled.cancelled() => cancelled(&id),
    }
}

/// The answer to a call as one JSON-RPC message.
pub(crate) fn encode(
    id: &RequestId,
    outcome: Result<ToolResult, UnknownTool>,
    wire: AgentWire,
) -> Response {
    let body = match outcome.map(|result| shaped(result, wire)) {
        Ok(Ok(Shaped::Complete(result))) => success(id, |body| {
            result.write_json(body);
            Ok(())
        }),
        Ok(Ok(Shaped::Asks(asked))) => success(id, |body| serde_json::to_writer(body, &asked)),
        Ok(Err(error)) => serde_json::to_vec(&error_message(id, error)),
        Err(unknown) => serde_json::to_vec(&unknown_tool(id, &unknown)),
    };
    match body {
        Ok(body) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, HeaderValue::from_static(JSON))],
            Body::from(body),
        )
            .into_response(),
        Err(_) => {
            tracing::warn!("a tool result could not be encoded");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// `{"jsonrpc":"2.0","id":…,"result":…}`, the result written by `result`: a tool result by
/// [`ToolResult::write_json`], whose string escaper is the point (a large text result is most
/// of such a call's CPU otherwise).
fn success(
    id: &RequestId,
    result: impl FnOnce(&mut Vec<u8>) -> serde_json::Result<()>,
) -> serde_json::Result<Vec<u8>> {
    let mut body = Vec::with_capacity(64);
    body.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
    serde_json::to_writer(&mut body, id)?;
    body.extend_from_slice(br#","result":"#);
    result(&mut body)?;
    body.push(b'}');
    Ok(body)
}

fn error_message(id: &RequestId, error: McpError) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": error})
}

fn unknown_tool(id: &RequestId, unknown: &UnknownTool) -> Value {
    json!({
        "jsonrpc": "2.0",
        "id": id,
        "error": {"code": ErrorCode::INVALID_PARAMS.0, "message": unknown.message()},
    })
}

/// The answer to a call as a JSON-RPC message, for an event stream.
pub(crate) fn message(
    id: &RequestId,
    outcome: Result<ToolResult, UnknownTool>,
    wire: AgentWire,
) -> Value {
    let result = match outcome.map(|result| shaped(result, wire)) {
        Err(unknown) => return unknown_tool(id, &unknown),
        Ok(Err(error)) => return error_message(id, error),
        Ok(Ok(Shaped::Complete(result))) => serde_json::to_value(&result),
        Ok(Ok(Shaped::Asks(asked))) => serde_json::to_value(&asked),
    };
    match result {
        Ok(result) => json!({"jsonrpc": "2.0", "id": id, "result": result}),
        Err(_) => {
            tracing::warn!("a tool result could not be encoded");
            json!({"jsonrpc": "2.0", "id": id, "error": {
                "code": ErrorCode::INTERNAL_ERROR.0, "message": "the tool result could not be encoded"}})
        }
    }
}

/// The error for a call the agent cancelled (the same error rmcp's path gives).
pub(crate) fn cancelled_message(id: &RequestId) -> Value {
    json!({
        "jsonrpc": "2.0",
        "id": id,
        "error": {"code": ErrorCode::INVALID_REQUEST.0, "message": "the call was cancelled"},
    })
}

/// The answer to a call the agent cancelled.
pub(crate) fn cancelled(id: &RequestId) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, HeaderValue::from_static(JSON))],
        Body::from(cancelled_message(id).to_string()),
    )
        .into_response()
}

/// A header map of `pairs`, for the tests of the direct paths' header rules.
#[cfg(test)]
pub(crate) fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(*name, HeaderValue::from_static(value));
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAIN: &[(&str, &str)] = &[
        ("accept", "application/json, text/event-stream"),
        ("content-type", "application/json"),
        ("mcp-protocol-version", "2025-06-18"),
    ];

    #[test]
    fn plain_requests_qualify() {
        assert!(plain_headers(&headers(PLAIN)));
        assert!(plain_headers(&headers(&[
            ("accept", "text/event-stream"),
            ("accept", "Application/JSON"),
            ("content-type", "application/json; charset=utf-8"),
        ])));
        // The common value, either way round, matched whole; one in two headers too.
        for accept in [
            "text/event-stream, application/json",
            "application/json, text/event-stream",
        ] {
            assert!(accepts_json_and_event_stream(&headers(&[(
                "accept", accept
            )])));
            assert!(accepts_json_and_event_stream(&headers(&[
                ("accept", accept),
                ("accept", "text/plain"),
            ])));
        }
        assert!(!accepts_json_and_event_stream(&headers(&[(
            "accept",
            "application/json, text/event-stream;q=0"
        )])));
    }

    #[test]
    fn anything_rmcp_has_rules_for_goes_to_rmcp() {
        let with = |extra: (&'static str, &'static str)| {
            let mut pairs = PLAIN.to_vec();
            pairs.retain(|(n, _)| *n != extra.0);
            pairs.push(extra);
            plain_headers(&headers(&pairs))
        };
        assert!(!with(("accept", "application/json")));
        assert!(!with(("accept", "application/json;q=0, text/event-stream")));
        assert!(!with(("content-type", "text/plain")));
        assert!(!with(("mcp-protocol-version", "2026-07-28")));
        assert!(!with(("mcp-protocol-version", "1999-01-01")));
        assert!(!with(("mcp-method", "tools/call")));
        assert!(!with(("mcp-name", "x")));
        assert!(!plain_headers(&headers(&PLAIN[..1])), "no content type");
    }

    #[test]
    fn a_result_is_written_as_serde_json_writes_it() {
        let result = ToolResult {
            content: vec![json!({"type": "text", "text": "a \"quoted\"\n\u{1}line"})],
            structured_content: Some(json!({"n": [1, 2.5, null]})),
            is_error: true,
            extra: Map::from_iter([("_meta".to_owned(), json!({"k": "v"}))]),
        };
        for id in [RequestId::Number(7), RequestId::String("id \"7\"".into())] {
            let theirs = serde_json::to_vec(&Success {
                jsonrpc: "2.0",
                id: &id,
                result: &result,
            })
            .expect("serializes");
            let ours = success(&id, |body| {
                result.write_json(body);
                Ok(())
            });
            assert_eq!(ours.expect("writes"), theirs);
        }
    }

    #[test]
    fn plain_calls_are_read_in_one_pass() {
        let (id, params) = plain_call(
            br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"a__b","arguments":{"x":1},"_meta":{"progressToken":3}}}"#,
        )
        .expect("a plain call");
        assert_eq!(id, RequestId::Number(7));
        assert_eq!(params.name, "a__b");
        assert_eq!(
            params.arguments.and_then(|a| a.get("x").cloned()),
            Some(json!(1))
        );
    }

    #[test]
    fn anything_else_is_left_to_rmcp() {
        for body in [
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
            r#"{"jsonrpc":"1.0","id":1,"method":"tools/call","params":{"name":"a"}}"#,
            r#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"a"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","requestState":"s"}}"#,
            r#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a"}}]"#,
            "not json",
        ] {
            assert!(plain_call(body.as_bytes()).is_none(), "{body}");
        }
    }

    // === Property: the one-pass reader never disagrees with rmcp ===

    mod props {
        use proptest::prelude::*;
        use rmcp::model::{ClientJsonRpcMessage, ClientRequest, GetMeta, JsonRpcMessage};
        use serde_json::{Value, json};
        use tether_testkit::json_strategies::{any_json, body_of, member, object};

        use super::plain_call;

        fn params() -> impl Strategy<Value = Option<Value>> {
            let meta = member(vec![
                json!({"progressToken": 3}),
                json!({"progressToken": "p"}),
                json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28"}),
                json!({}),
            ]);
            (
                member(vec![json!("a__b"), json!("x"), json!("")]),
                member(vec![json!({"x": 1}), json!({}), Value::Null]),
                meta,
                member(vec![json!("state")]),
                member(vec![json!({})]),
                prop::option::of(("[a-z]{1,5}", any_json())),
                any::<bool>(),
            )
                .prop_map(|(name, arguments, meta, state, inputs, extra, present)| {
                    if !present {
                        return None;
                    }
                    let mut params = object(vec![
                        ("name", name),
                        ("arguments", arguments),
                        ("_meta", meta),
                        ("requestState", state),
                        ("inputResponses", inputs),
                    ]);
                    if let (Some((key, value)), Some(map)) = (extra, params.as_object_mut()) {
                        map.insert(key, value);
                    }
                    Some(params)
                })
        }

        /// Bodies near a `tools/call`: each member present, right, or wrong; sometimes in a
        /// batch, cut short, or not JSON at all.
        fn message() -> impl Strategy<Value = Value> {
            (
                member(vec![json!("2.0"), json!("1.0"), json!(2.0)]),
                member(vec![json!(1), json!("id-1"), json!(-7)]),
                member(vec![
                    json!("tools/call"),
                    json!("tools/list"),
                    json!("ping"),
                ]),
                params(),
            )
                .prop_map(|(jsonrpc, id, method, params)| {
                    object(vec![
                        ("jsonrpc", jsonrpc),
                        ("id", id),
                        ("method", method),
                        ("params", params),
                    ])
                })
        }

        fn body() -> impl Strategy<Value = Vec<u8>> {
            body_of(message)
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2_000))]

            #[test]
            fn a_plain_call_is_what_rmcp_reads_and_nothing_else_is_taken(body in body()) {
                let ours = plain_call(&body);
                let theirs = serde_json::from_slice::<ClientJsonRpcMessage>(&body).ok();
                // rmcp moves a request's `_meta` out of its params into the request's
                // extensions; the direct path keeps it in the params. Compared where each keeps it.
                let rmcp_call = match theirs {
                    Some(JsonRpcMessage::Request(request)) => {
                        let meta = serde_json::to_value(request.request.get_meta()).ok();
                        match request.request {
                            ClientRequest::CallToolRequest(call) => {
                                let mut params = call.params;
                                if params.meta.is_none() {
                                    params.meta = meta
                                        .filter(|m| m.as_object().is_some_and(|o| !o.is_empty()))
                                        .and_then(|m| serde_json::from_value(m).ok());
                                }
                                Some((request.id, params))
                            }
                            _ => None,
                        }
                    }
                    _ => None,
                };
                match (ours, rmcp_call) {
                    (Some((id, mut params)), Some((their_id, their_params))) => {
                        // An empty `_meta` is no `_meta`.
                        if params.meta.as_ref().is_some_and(|m| m.is_empty()) {
                            params.meta = None;
                        }
                        let versioned = params.meta.as_ref().is_some_and(|m| m.protocol_version().is_some());
                        prop_assert!(
                            !versioned && params.input_responses.is_none() && params.request_state.is_none(),
                            "what rmcp has rules for is left to rmcp: {}", String::from_utf8_lossy(&body)
                        );
                        prop_assert_eq!(id, their_id);
                        prop_assert_eq!(
                            serde_json::to_value(&params).ok(),
                            serde_json::to_value(&their_params).ok()
                        );
                    }
                    (Some(_), None) => {
                        prop_assert!(false, "taken as a plain call, but rmcp reads it otherwise: {}",
                            String::from_utf8_lossy(&body));
                    }
                    (None, Some((_, params))) => {
                        // Left to rmcp: only for what rmcp has rules for.
                        let versioned = params.meta.as_ref().is_some_and(|m| m.protocol_version().is_some());
                        prop_assert!(
                            versioned || params.input_responses.is_some() || params.request_state.is_some(),
                            "a plain call left to rmcp: {}", String::from_utf8_lossy(&body)
                        );
                    }
                    (None, None) => {}
                }
            }
        }
    }
}
