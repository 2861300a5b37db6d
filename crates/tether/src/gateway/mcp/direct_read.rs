//! `resources/read` on the direct path (see [`direct`](super::direct) for when a request may
//! skip rmcp's session worker): the upstream's contents go to the agent as a JSON body whose
//! large strings are moved in, not serialized again ([`JsonChunks`]), so a 1 MiB blob is held
//! once from the upstream's parsed answer to the agent, where rmcp's typed path held it in
//! rmcp's result type and again in the serialized event.

use std::convert::Infallible;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rmcp::ErrorData as McpError;
use rmcp::model::{ReadResourceRequestParams, RequestId};
use serde_json::{Value, json};

use super::caller::Caller;
use super::direct::{self, JSON};
use super::direct_calls::Running;
use super::handler;
use super::json_chunks::JsonChunks;
use crate::gateway::state::AppState;

/// Reads the resource and answers as one JSON-RPC message; a cancel by the agent ends it.
pub(crate) async fn answer(
    app: &AppState,
    user: &Caller,
    id: RequestId,
    params: ReadResourceRequestParams,
    running: Running,
) -> Response {
    tokio::select! {
        outcome = handler::read_resource_json(app, user, params) => encode(&id, outcome),
        () = running.cancelled.cancelled() => direct::cancelled(&id),
    }
}

fn encode(id: &RequestId, outcome: Result<Value, McpError>) -> Response {
    let id = serde_json::to_value(id).unwrap_or(Value::Null);
    let mut result = match outcome {
        Ok(result) => result,
        Err(error) => {
            let message = json!({"jsonrpc": "2.0", "id": id, "error": error});
            return json_response(Body::from(message.to_string()), None);
        }
    };
    // The session revisions have no `resultType` (rmcp's typed path drops it for them too).
    if let Value::Object(members) = &mut result
        && members.get("resultType").and_then(Value::as_str) == Some("complete")
    {
        members.remove("resultType");
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
