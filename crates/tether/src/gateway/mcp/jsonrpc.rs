//! Checks on a `/mcp` POST body before rmcp sees it: the size limit (413) and JSON-RPC
//! well-formedness, answered as JSON-RPC errors.
//!
//! rmcp answers an unparsable body with a plain-text 415; MCP clients expect a JSON-RPC error
//! object (parse error −32700, invalid request −32600), so the body is read and checked here,
//! then handed on unchanged, unless the [direct path](super::direct_dispatch) answers it.

use axum::body::{Body, to_bytes};
use axum::extract::Request;
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rmcp::model::{ClientJsonRpcMessage, ClientRequest, ErrorCode, JsonRpcMessage};
use serde_json::{Value, json};

use super::direct_dispatch;
use super::sessions::InteractiveAgent;
use crate::gateway::state::AppState;

/// A JSON-RPC error object as an HTTP response.
pub fn jsonrpc_error_response(
    status: StatusCode,
    id: Option<Value>,
    code: ErrorCode,
    message: &str,
) -> Response {
    let body = json!({
        "jsonrpc": "2.0",
        "id": id.unwrap_or(Value::Null),
        "error": {"code": code.0, "message": message},
    });
    (status, axum::Json(body)).into_response()
}

fn too_large(limit: usize) -> Response {
    let body = json!({
        "jsonrpc": "2.0",
        "id": Value::Null,
        "error": {
            "code": ErrorCode::INVALID_REQUEST.0,
            "message": format!("request body exceeds {limit} bytes"),
        },
    });
    (StatusCode::PAYLOAD_TOO_LARGE, axum::Json(body)).into_response()
}

/// Standard MCP request methods. rmcp parses a standard method whose params do not fit as a
/// "custom request" (and would then answer "method not found"); for these the right answer is
/// "invalid params".
const STANDARD_METHODS: &[&str] = &[
    "initialize",
    "ping",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "prompts/list",
    "prompts/get",
    "completion/complete",
    "logging/setLevel",
];

/// Longest piece of rmcp's own error text carried into a JSON-RPC error.
const MAX_CARRIED_TEXT: usize = 200;

/// The request id, when the body has a usable one (a string or a number).
fn request_id(value: &Value) -> Option<Value> {
    value
        .get("id")
        .filter(|id| id.is_string() || id.is_number())
        .cloned()
}

/// The last check of `/mcp` ([`McpEndpoint::handle`](super::McpEndpoint::handle)): POST bodies
/// over the limit get 413, malformed ones a JSON-RPC error.
pub(crate) async fn check_body<F, Fut>(app: &AppState, request: Request, next: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    if request.method() != Method::POST {
        return as_jsonrpc_error(next(request).await).await;
    }
    let limit = app.mcp_config().max_body_bytes;
    // Refuse early when the client announces too much; the read below enforces the limit for
    // chunked bodies and lying headers.
    let announced = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit as u64) {
        return too_large(limit);
    }
    let (parts, body) = request.into_parts();
    // The only failures are the limit and a broken connection (whose answer nobody reads).
    let Ok(bytes) = to_bytes(body, limit).await else {
        return too_large(limit);
    };
    if let Some(response) = direct_dispatch::dispatch(app, &parts, &bytes).await {
        return response;
    }
    // The common case, a valid message, costs one parse; the generic `Value` is built only to
    // classify a failure.
    let mut interactive = false;
    match serde_json::from_slice::<ClientJsonRpcMessage>(&bytes) {
        Ok(JsonRpcMessage::Request(request)) => {
            if let ClientRequest::InitializeRequest(initialize) = &request.request {
                let capabilities = &initialize.params.capabilities;
                interactive = capabilities.sampling.is_some()
                    || capabilities.elicitation.is_some()
                    || capabilities.roots.is_some();
            }
            if let ClientRequest::CustomRequest(custom) = &request.request
                && STANDARD_METHODS.contains(&custom.method.as_str())
            {
                return jsonrpc_error_response(
                    StatusCode::BAD_REQUEST,
                    serde_json::to_value(&request.id).ok(),
                    ErrorCode::INVALID_PARAMS,
                    "invalid params for this method",
                );
            }
        }
        Ok(_) => {}
        Err(_) => return malformed(&bytes),
    }
    let response = next(Request::from_parts(parts, Body::from(bytes))).await;
    let mut response = as_jsonrpc_error(response).await;
    if interactive {
        response.extensions_mut().insert(InteractiveAgent);
    }
    response
}

/// The JSON-RPC error for a body that is not a message rmcp accepts.
fn malformed(bytes: &[u8]) -> Response {
    let Ok(value) = serde_json::from_slice::<Value>(bytes) else {
        return jsonrpc_error_response(
            StatusCode::BAD_REQUEST,
            None,
            ErrorCode::PARSE_ERROR,
            "parse error: the body is not JSON",
        );
    };
    let id = request_id(&value);
    // A request that names a method but whose params do not fit it is "invalid params";
    // anything that is not a JSON-RPC 2.0 message at all is "invalid request".
    let well_formed_request = value.get("jsonrpc") == Some(&json!("2.0"))
        && value.get("method").is_some_and(Value::is_string)
        && id.is_some();
    let (code, message) = if well_formed_request {
        (ErrorCode::INVALID_PARAMS, "invalid params for this method")
    } else {
        (
            ErrorCode::INVALID_REQUEST,
            "not a valid JSON-RPC 2.0 message",
        )
    };
    jsonrpc_error_response(StatusCode::BAD_REQUEST, id, code, message)
}

/// rmcp answers some client errors (no session id, unknown session, wrong media types) with
/// plain text; MCP clients parse JSON-RPC, so such answers are re-wrapped, status kept.
pub async fn as_jsonrpc_error(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !status.is_client_error() || is_json {
        return response;
    }
    let text = match to_bytes(response.into_body(), 16 * 1024).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes)
            .chars()
            .take(MAX_CARRIED_TEXT)
            .collect::<String>(),
        Err(_) => String::new(),
    };
    let message = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("bad request")
            .to_owned()
    } else {
        text
    };
    jsonrpc_error_response(status, None, ErrorCode::INVALID_REQUEST, &message)
}
