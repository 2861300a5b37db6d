//! The 2026-07-28 wire: no `initialize` and no session (SEP-2567, SEP-2575); every request
//! carries the protocol version, Tether's client info and capabilities in its `_meta`, and the
//! standard headers that repeat what a proxy needs from the body (SEP-2243:
//! `MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name`, and `Mcp-Param-*` for a tool's annotated
//! arguments, [`super::param_headers`]).
//!
//! Messages are stamped here, just before they are sent, so that the exchange and the session
//! stay the same for both wires.

use std::collections::HashMap;
use std::sync::LazyLock;

use base64::Engine as _;
use reqwest::header::{HeaderName, HeaderValue};
use rmcp::model::{ClientJsonRpcMessage, ProtocolVersion};
use serde_json::{Map, Value};

use super::param_headers::ToolParamHeaders;
use crate::connector::client_config;

/// The revision this wire is.
pub(crate) const VERSION: ProtocolVersion = ProtocolVersion::V_2026_07_28;

pub(super) const PROTOCOL_VERSION_KEY: &str = "io.modelcontextprotocol/protocolVersion";
const CLIENT_INFO_KEY: &str = "io.modelcontextprotocol/clientInfo";
const CLIENT_CAPABILITIES_KEY: &str = "io.modelcontextprotocol/clientCapabilities";

const METHOD_HEADER: HeaderName = HeaderName::from_static("mcp-method");
const NAME_HEADER: HeaderName = HeaderName::from_static("mcp-name");
const PROTOCOL_VERSION_HEADER: HeaderName = HeaderName::from_static("mcp-protocol-version");

/// The `_meta` members every request carries on this wire: the same for every request, so
/// built once.
fn request_meta() -> &'static Map<String, Value> {
    static META: LazyLock<Map<String, Value>> = LazyLock::new(build_request_meta);
    &META
}

fn build_request_meta() -> Map<String, Value> {
    let config = client_config();
    let mut meta = Map::new();
    meta.insert(
        PROTOCOL_VERSION_KEY.to_owned(),
        Value::String(VERSION.as_str().to_owned()),
    );
    if let Ok(info) = serde_json::to_value(&config.client_info) {
        meta.insert(CLIENT_INFO_KEY.to_owned(), info);
    }
    if let Ok(capabilities) = serde_json::to_value(&config.capabilities) {
        meta.insert(CLIENT_CAPABILITIES_KEY.to_owned(), capabilities);
    }
    meta
}

/// `message` with this wire's `_meta` merged into its params (what the agent put there, such
/// as its progress token, stays), and the standard headers for it. A message that cannot be
/// read back is sent as it was: the server's refusal then names the problem.
pub(super) fn stamp(
    message: ClientJsonRpcMessage,
    tools: Option<&ToolParamHeaders>,
) -> (ClientJsonRpcMessage, HashMap<HeaderName, HeaderValue>) {
    let mut headers = HashMap::new();
    if let Ok(version) = HeaderValue::from_str(VERSION.as_str()) {
        headers.insert(PROTOCOL_VERSION_HEADER, version);
    }
    let Ok(mut value) = serde_json::to_value(&message) else {
        return (message, headers);
    };
    let Some(object) = value.as_object_mut() else {
        return (message, headers);
    };
    let Some(method) = object
        .get("method")
        .and_then(Value::as_str)
        .map(str::to_owned)
    else {
        // Answers to the server's requests carry no method and no `_meta`.
        return (message, headers);
    };
    if let Ok(value) = HeaderValue::from_str(&method) {
        headers.insert(METHOD_HEADER, value);
    }
    let is_request = object.contains_key("id");
    let params = object
        .entry("params")
        .or_insert_with(|| Value::Object(Map::new()));
    if params.is_null() {
        *params = Value::Object(Map::new());
    }
    if let Some(params) = params.as_object_mut() {
        if let Some(name) = named(&method, params)
            && let Ok(value) = HeaderValue::from_str(&encode_header_value(name))
        {
            headers.insert(NAME_HEADER, value);
        }
        if method == "tools/call"
            && let Some(declared) = named(&method, params).and_then(|tool| tools?.of(tool))
        {
            headers.extend(declared.headers(params.get("arguments")));
        }
        if is_request {
            let meta = params
                .entry("_meta")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Some(meta) = meta.as_object_mut() {
                meta.extend(request_meta().clone());
            }
        }
    }
    match serde_json::from_value(value) {
        Ok(stamped) => (stamped, headers),
        Err(_) => (message, headers),
    }
}

/// What `Mcp-Name` repeats: the tool's or prompt's name, or the resource's URI.
fn named<'a>(method: &str, params: &'a Map<String, Value>) -> Option<&'a str> {
    let key = match method {
        "tools/call" | "prompts/get" => "name",
        "resources/read" => "uri",
        _ => return None,
    };
    params.get(key).and_then(Value::as_str)
}

/// A header value as SEP-2243 writes it: as it is when it is plain visible ASCII without
/// surrounding spaces, else `=?base64?{UTF-8 in base64}?=`.
pub(super) fn encode_header_value(value: &str) -> String {
    let plain = !value.is_empty()
        && value.bytes().all(|b| (0x20..0x7f).contains(&b))
        && value.trim() == value
        && !(value.starts_with("=?base64?") && value.ends_with("?="));
    if plain {
        value.to_owned()
    } else {
        format!(
            "=?base64?{}?=",
            base64::engine::general_purpose::STANDARD.encode(value.as_bytes())
        )
    }
}

#[cfg(test)]
mod tests {
    use rmcp::model::{CallToolRequest, CallToolRequestParams, ClientRequest, RequestId};
    use serde_json::json;

    use super::*;

    #[test]
    fn a_call_carries_the_version_its_client_and_the_standard_headers() {
        let mut params = CallToolRequestParams::new("get weather");
        params = params.with_arguments(
            json!({"city": "Oslo"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        );
        let message = ClientJsonRpcMessage::request(
            ClientRequest::CallToolRequest(CallToolRequest::new(params)),
            RequestId::Number(4),
        );
        let (stamped, headers) = stamp(message, None);
        let value = serde_json::to_value(&stamped).expect("serializes");
        let meta = &value["params"]["_meta"];
        assert_eq!(meta[PROTOCOL_VERSION_KEY], "2026-07-28", "{value}");
        assert_eq!(meta[CLIENT_INFO_KEY]["name"], "tether", "{value}");
        assert!(
            meta[CLIENT_CAPABILITIES_KEY]["elicitation"].is_object(),
            "{value}"
        );
        assert_eq!(value["params"]["arguments"]["city"], "Oslo");
        assert_eq!(headers[&PROTOCOL_VERSION_HEADER], "2026-07-28");
        assert_eq!(headers[&METHOD_HEADER], "tools/call");
        assert_eq!(headers[&NAME_HEADER], "get weather");
    }

    #[test]
    fn the_agents_own_meta_stays() {
        let message: ClientJsonRpcMessage = serde_json::from_value(json!({
            "jsonrpc": "2.0", "id": 1, "method": "resources/read",
            "params": {"uri": "file:///ä", "_meta": {"progressToken": "p"}}
        }))
        .expect("a request");
        let (stamped, headers) = stamp(message, None);
        let value = serde_json::to_value(&stamped).expect("serializes");
        assert_eq!(value["params"]["_meta"]["progressToken"], "p", "{value}");
        assert_eq!(value["params"]["_meta"][PROTOCOL_VERSION_KEY], "2026-07-28");
        assert_eq!(headers[&NAME_HEADER], "=?base64?ZmlsZTovLy/DpA==?=");
    }

    #[test]
    fn header_values_that_are_not_plain_ascii_are_base64() {
        assert_eq!(encode_header_value("add"), "add");
        assert_eq!(encode_header_value(" add"), "=?base64?IGFkZA==?=");
        assert_eq!(encode_header_value("a\nb"), "=?base64?YQpi?=");
        assert_eq!(
            encode_header_value("=?base64?x?="),
            "=?base64?PT9iYXNlNjQ/eD89?="
        );
    }
}

#[cfg(test)]
mod discover_tests {
    use rmcp::model::{ClientRequest, CustomRequest, RequestId};

    use super::*;

    #[test]
    fn a_discover_request_carries_the_meta() {
        let request = ClientRequest::CustomRequest(CustomRequest::new("server/discover", None));
        let message = ClientJsonRpcMessage::request(request, RequestId::Number(0));
        let (stamped, headers) = stamp(message, None);
        let value = serde_json::to_value(&stamped).expect("serializes");
        assert_eq!(
            value["params"]["_meta"][PROTOCOL_VERSION_KEY], "2026-07-28",
            "{value}"
        );
        assert_eq!(headers[&METHOD_HEADER], "server/discover");
    }
}
