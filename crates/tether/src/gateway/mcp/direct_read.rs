//! `resources/read` on the direct path (see [`direct_dispatch`](super::direct_dispatch) for
//! when a request may skip rmcp): the upstream's contents go to the agent as a JSON body whose
//! large strings are moved in, not serialized again ([`JsonChunks`]), so a 1 MiB blob is held
//! once from the upstream's parsed answer to the agent, where rmcp's typed path held it in
//! rmcp's result type and again in the serialized event. A 2026-07-28 agent's answer is shaped
//! as rmcp's stateless road shapes it (caching hints, error codes and statuses).

use std::convert::Infallible;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rmcp::ErrorData as McpError;
use rmcp::model::{ErrorCode, ReadResourceRequestParams, RequestId};
use serde_json::{Value, json};

use super::caller::Caller;
use super::direct::{self, AgentWire, JSON};
use super::direct_calls::Running;
use super::handler;
use super::handler::surface::{is_input_required, questions};
use super::json_chunks::JsonChunks;
use crate::gateway::state::AppState;

/// Reads the resource and answers as one JSON-RPC message; a cancel by the agent ends it.
pub(crate) async fn answer(
    app: &AppState,
    user: &Caller,
    id: RequestId,
    mut params: ReadResourceRequestParams,
    running: Running,
    wire: AgentWire,
) -> Response {
    let context = match wire {
        // The request's `_meta` goes upstream in its params, as before.
        AgentWire::Session => wire.context(None),
        AgentWire::Modern => wire.context(params.meta.take()),
    };
    tokio::select! {
        outcome = handler::read_resource_json(app, user, params, &context) => {
            encode(&id, outcome, wire)
        }
        () = running.cancelled.cancelled() => direct::cancelled(&id),
    }
}

fn encode(id: &RequestId, outcome: Result<Value, McpError>, wire: AgentWire) -> Response {
    let id = serde_json::to_value(id).unwrap_or(Value::Null);
    let mut result = match outcome {
        Ok(result) => result,
        Err(error) => return error_response(id, error, wire),
    };
    match wire {
        // The session revisions have no `resultType` (rmcp's typed path drops it for them too).
        AgentWire::Session => {
            if let Value::Object(members) = &mut result
                && members.get("resultType").and_then(Value::as_str) == Some("complete")
            {
                members.remove("resultType");
            }
        }
        AgentWire::Modern => match modern_result(result) {
            Ok(shaped) => result = shaped,
            Err(error) => return error_response(id, error, wire),
        },
    }
    let mut chunks = JsonChunks::default();
    chunks.text(br#"{"jsonrpc":"2.0","id":"#);
    chunks.value(id);
    chunks.text(br#","result":"#);
    chunks.value(result);
    chunks.text(b"}");
    let (chunks, len) = chunks.finish();
    let body = Body::from_stream(futures::stream::iter(
        chunks.into_iter().map(Ok::<_, Infallible>),
    ));
    json_response(body, Some(len))
}

/// A 2026-07-28 agent's result as rmcp's typed path gives it: an upstream's questions read as
/// MCP's input-required result, a complete result with the caching hints that revision asks
/// for (the upstream's own were dropped: they held for its token, not for this view).
fn modern_result(result: Value) -> Result<Value, McpError> {
    let Value::Object(mut members) = result else {
        return Ok(result);
    };
    if is_input_required(&members) {
        return serde_json::to_value(questions(members)?).map_err(|_| {
            McpError::internal_error("the server's questions could not be written", None)
        });
    }
    members.entry("ttlMs").or_insert_with(|| Value::from(0));
    members
        .entry("cacheScope")
        .or_insert_with(|| Value::from("private"));
    Ok(Value::Object(members))
}

/// An error as rmcp's stateless road answers it: for 2026-07-28 agents an unknown resource is
/// "invalid params", and the codes that describe the request itself are HTTP errors too.
fn error_response(id: Value, mut error: McpError, wire: AgentWire) -> Response {
    let mut status = StatusCode::OK;
    if wire == AgentWire::Modern {
        if error.code == ErrorCode::RESOURCE_NOT_FOUND {
            error.code = ErrorCode::INVALID_PARAMS;
        }
        status = match error.code {
            ErrorCode::UNSUPPORTED_PROTOCOL_VERSION
            | ErrorCode::MISSING_REQUIRED_CLIENT_CAPABILITY
            | ErrorCode::HEADER_MISMATCH => StatusCode::BAD_REQUEST,
            ErrorCode::METHOD_NOT_FOUND => StatusCode::NOT_FOUND,
            _ => StatusCode::OK,
        };
    }
    let message = json!({"jsonrpc": "2.0", "id": id, "error": error});
    let mut response = json_response(Body::from(message.to_string()), None);
    *response.status_mut() = status;
    response
}

fn json_response(body: Body, len: Option<usize>) -> Response {
    let mut response = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, HeaderValue::from_static(JSON))],
        body,
    )
        .into_response();
    if let Some(len) = len {
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    response
}
