//! `tools/call` and `resources/read` of an agent of 2026-07-28 on the direct path.
//!
//! Such a request carries everything in itself (its `_meta` names the revision and the agent's
//! capabilities; the standard headers repeat the method and tool), so rmcp serves each one
//! with a fresh handler through its whole stateless road: the message parsed into its untagged
//! request type and serialized again to check the headers, a one-shot transport, a spawned
//! service, an event-stream answer. That cost a 2026-07-28 agent's call about twice a session
//! agent's CPU in the gateway. A call rmcp would accept with nothing left to decide (every
//! check below passes, and the agent declared no capability the gateway would need rmcp's peer
//! for) is answered here as JSON, as a session agent's plain call is
//! ([`direct`](super::direct)); anything else goes to rmcp, which gives its own answers and
//! errors. The agent cancels by closing its request: this future is dropped, and with it the
//! upstream request.

use axum::http::{HeaderMap, HeaderName};
use rmcp::model::{ProtocolVersion, RequestId};
use rmcp::transport::common::http_header::BASE64_HEADER_PREFIX;

use super::direct::{self, METHOD_HEADER, NAME_HEADER, PROTOCOL_VERSION_HEADER, Plain};
use super::sessions::SESSION;

const PARAM_PREFIX: &str = "mcp-param-";

/// Whether a request's headers are those of a stateless 2026-07-28 `tools/call` or
/// `resources/read` that rmcp would take with no rule of its own left to apply: both media
/// types accepted without parameters, a JSON body, no session, and exactly one each of the
/// version (2026-07-28), the method and its name (the tool's, the resource's URI).
/// `Mcp-Param-*` headers are left to rmcp.
pub(crate) fn modern_headers(headers: &HeaderMap) -> bool {
    direct::accepts_json_and_event_stream(headers)
        && direct::is_json_body(headers)
        && !headers.contains_key(SESSION)
        && single(headers, PROTOCOL_VERSION_HEADER) == Some(ProtocolVersion::V_2026_07_28.as_str())
        && matches!(
            single(headers, METHOD_HEADER),
            Some("tools/call" | "resources/read")
        )
        && single(headers, NAME_HEADER).is_some()
        && !headers
            .keys()
            .any(|name| name.as_str().starts_with(PARAM_PREFIX))
}

/// The one value of header `name`, as text.
fn single(headers: &HeaderMap, name: HeaderName) -> Option<&str> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    if values.next().is_some() {
        return None;
    }
    first.to_str().ok()
}

/// The id and request, if `body` (sent with [`modern_headers`]) is a first try of the
/// 2026-07-28 request the headers describe: its `_meta` names 2026-07-28 and holds every member
/// that revision requires, the agent declared neither sampling, elicitation, roots nor tasks
/// (the upstream's questions are then refused, as rmcp's path refuses them, and no
/// authorization elicitation is due), sets no log level, and sends no answers. The `Mcp-Name`
/// header must be the name as it is (its Base64 form is rmcp's to decode).
pub(crate) fn modern_request(headers: &HeaderMap, body: &[u8]) -> Option<(RequestId, Plain)> {
    let (id, request, name) = match single(headers, METHOD_HEADER)? {
        "tools/call" => {
            let (id, params) = direct::read_call(body)?;
            let name = params.name.to_string();
            (id, Plain::Call(params), name)
        }
        "resources/read" => {
            let (id, params) = direct::read_read(body)?;
            let name = params.uri.clone();
            (id, Plain::Read(params), name)
        }
        _ => return None,
    };
    let (meta, answers) = match &request {
        Plain::Call(params) => (
            params.meta.as_ref(),
            params.input_responses.is_some() || params.request_state.is_some(),
        ),
        Plain::Read(params) => (
            params.meta.as_ref(),
            params.input_responses.is_some() || params.request_state.is_some(),
        ),
    };
    let meta = meta?;
    // The two members 2026-07-28 requires (rmcp's `missing_required_keys` reads the same two),
    // each parsed once: this runs on every such request.
    if answers
        || meta.protocol_version()? != ProtocolVersion::V_2026_07_28
        || meta.log_level().is_some()
    {
        return None;
    }
    let capabilities = meta.client_capabilities()?;
    if capabilities.sampling.is_some()
        || capabilities.elicitation.is_some()
        || capabilities.roots.is_some()
        || capabilities.supports_tasks()
    {
        return None;
    }
    let named = single(headers, NAME_HEADER)?;
    (named == name && !named.starts_with(BASE64_HEADER_PREFIX)).then_some((id, request))
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;
    use serde_json::{Value, json};

    use super::*;
    use crate::gateway::mcp::direct::headers;

    const MODERN: &[(&str, &str)] = &[
        ("accept", "application/json, text/event-stream"),
        ("content-type", "application/json"),
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/call"),
        ("mcp-name", "up__echo"),
    ];

    fn with(extra: (&'static str, &'static str)) -> HeaderMap {
        let mut pairs = MODERN.to_vec();
        pairs.retain(|(n, _)| *n != extra.0);
        pairs.push(extra);
        headers(&pairs)
    }

    fn without(name: &str) -> HeaderMap {
        let mut pairs = MODERN.to_vec();
        pairs.retain(|(n, _)| *n != name);
        headers(&pairs)
    }

    fn call(meta: Value, extra: Value) -> Vec<u8> {
        let mut params = json!({"name": "up__echo", "arguments": {"text": "hi"}, "_meta": meta});
        if let (Some(params), Some(extra)) = (params.as_object_mut(), extra.as_object()) {
            params.extend(extra.clone());
        }
        serde_json::to_vec(
            &json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": params}),
        )
        .unwrap_or_default()
    }

    fn meta() -> Value {
        json!({
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientInfo": {"name": "agent", "version": "1"},
            "io.modelcontextprotocol/clientCapabilities": {},
            "progressToken": 9
        })
    }

    #[test]
    fn a_plain_2026_call_qualifies() {
        assert!(modern_headers(&headers(MODERN)));
        let (id, request) =
            modern_request(&headers(MODERN), &call(meta(), json!({}))).expect("a plain 2026 call");
        assert_eq!(id, RequestId::Number(4));
        assert!(matches!(request, Plain::Call(params) if params.name == "up__echo"));
    }

    fn read(uri: &str) -> Vec<u8> {
        serde_json::to_vec(
            &json!({"jsonrpc": "2.0", "id": 5, "method": "resources/read",
            "params": {"uri": uri, "_meta": meta()}}),
        )
        .unwrap_or_default()
    }

    #[test]
    fn a_plain_2026_read_qualifies_when_the_name_header_is_its_uri() {
        let uri = "tether://up/notes://readme";
        let reading = headers(&[
            ("accept", "application/json, text/event-stream"),
            ("content-type", "application/json"),
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "resources/read"),
            ("mcp-name", "tether://up/notes://readme"),
        ]);
        assert!(modern_headers(&reading));
        let (_, request) = modern_request(&reading, &read(uri)).expect("a plain 2026 read");
        assert!(matches!(request, Plain::Read(params) if params.uri == uri));
        assert!(
            modern_request(&reading, &read("tether://up/other")).is_none(),
            "the name header is not the body's URI"
        );
        assert!(
            modern_request(&headers(MODERN), &read(uri)).is_none(),
            "the method header is not the body's"
        );
    }

    #[test]
    fn headers_rmcp_has_rules_for_go_to_rmcp() {
        for refused in [
            with(("mcp-protocol-version", "2025-11-25")),
            with(("mcp-protocol-version", "2027-01-01")),
            with(("mcp-method", "tools/list")),
            with(("accept", "application/json")),
            with(("content-type", "text/plain")),
            with(("mcp-session-id", "s")),
            with(("mcp-param-region", "eu")),
            without("mcp-name"),
            without("mcp-method"),
            without("mcp-protocol-version"),
        ] {
            assert!(!modern_headers(&refused), "{refused:?}");
        }
        let mut twice = headers(MODERN);
        twice.append("mcp-method", HeaderValue::from_static("tools/call"));
        assert!(!modern_headers(&twice), "a duplicated standard header");
    }

    #[test]
    fn bodies_rmcp_has_rules_for_go_to_rmcp() {
        let mut without_capabilities = meta();
        if let Some(meta) = without_capabilities.as_object_mut() {
            meta.remove("io.modelcontextprotocol/clientCapabilities");
        }
        let mut older = meta();
        older["io.modelcontextprotocol/protocolVersion"] = json!("2025-11-25");
        let declares = |capabilities: Value| {
            let mut meta = meta();
            meta["io.modelcontextprotocol/clientCapabilities"] = capabilities;
            meta
        };
        let mut logs = meta();
        logs["io.modelcontextprotocol/logLevel"] = json!("debug");
        for (meta, extra) in [
            (without_capabilities, json!({})),
            (older, json!({})),
            (declares(json!({"elicitation": {}})), json!({})),
            (declares(json!({"sampling": {}})), json!({})),
            (declares(json!({"roots": {}})), json!({})),
            (
                declares(json!({"extensions": {"io.modelcontextprotocol/tasks": {}}})),
                json!({}),
            ),
            (logs, json!({})),
            (meta(), json!({"requestState": "s"})),
            (
                meta(),
                json!({"inputResponses": {"q": {"action": "accept"}}}),
            ),
        ] {
            let body = call(meta, extra);
            assert!(
                modern_request(&headers(MODERN), &body).is_none(),
                "{}",
                String::from_utf8_lossy(&body)
            );
        }
        assert!(
            modern_request(
                &headers(MODERN),
                &call(json!({"progressToken": 1}), json!({}))
            )
            .is_none(),
            "no 2026 `_meta` at all"
        );
    }

    #[test]
    fn the_name_header_must_be_the_tools_name() {
        let body = call(meta(), json!({}));
        assert!(modern_request(&with(("mcp-name", "up__other")), &body).is_none());
        assert!(
            modern_request(&with(("mcp-name", "=?base64?dXBfX2VjaG8=?=")), &body).is_none(),
            "the Base64 form is rmcp's to decode"
        );
    }
}
