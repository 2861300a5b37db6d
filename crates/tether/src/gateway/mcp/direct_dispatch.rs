//! Which `/mcp` POSTs the direct path answers, decided in one place (after the body is read,
//! see [`super::jsonrpc::check_body`]): a plain `tools/call` or `resources/read` on a session
//! the caller owns and rmcp has seen recently (the session guard's [`DirectAllowed`]), a
//! 2026-07-28 agent's plain `tools/call` ([`direct_modern`]), and an agent's cancel of a call
//! answered here, which rmcp never saw. Anything else is `None`: the body goes to rmcp unchanged.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tether_core::UserId;

use super::caller::Caller;
use super::direct::{self, AgentWire, DirectAllowed, Plain};
use super::direct_calls::{self, Running};
use super::direct_modern;
use super::direct_read;
use super::sessions::SESSION;
use crate::gateway::state::AppState;

/// The direct path's answer to this request, if it takes it.
pub(crate) async fn dispatch(
    app: &AppState,
    parts: &axum::http::request::Parts,
    body: &[u8],
) -> Option<Response> {
    if let Some(response) = try_direct(app, parts, body).await {
        return Some(response);
    }
    let id = direct_calls::cancelled_request(body)?;
    let session = parts.headers.get(SESSION)?.to_str().ok()?;
    // A call of the direct path: rmcp never saw it.
    app.session_owners()
        .direct_calls()
        .cancel(session, &id)
        .then(|| StatusCode::ACCEPTED.into_response())
}

/// Answers a `tools/call` or `resources/read` without rmcp's session worker when [`direct`]
/// allows it; `None` hands the (unchanged) body on to rmcp.
async fn try_direct(
    app: &AppState,
    parts: &axum::http::request::Parts,
    body: &[u8],
) -> Option<Response> {
    if parts.extensions.get::<DirectAllowed>().is_none() {
        return try_direct_modern(app, parts, body).await;
    }
    if !direct::plain_headers(&parts.headers) {
        return None;
    }
    let user = caller(parts)?;
    let session = parts.headers.get(SESSION)?.to_str().ok()?;
    let (id, plain) = direct::plain_request(body)?;
    if !app.session_owners().is_live(session).await {
        return None;
    }
    let running = app.session_owners().direct_calls().begin(session, &id);
    Some(match plain {
        Plain::Call(params) => {
            direct::answer(app, &user, id, params, running, AgentWire::Session).await
        }
        Plain::Read(params) => {
            direct_read::answer(app, &user, id, params, running, AgentWire::Session).await
        }
    })
}

/// A 2026-07-28 agent's `tools/call` or `resources/read`, answered without rmcp when
/// [`direct_modern`] allows it.
async fn try_direct_modern(
    app: &AppState,
    parts: &axum::http::request::Parts,
    body: &[u8],
) -> Option<Response> {
    if !direct_modern::modern_headers(&parts.headers) {
        return None;
    }
    let user = caller(parts)?;
    let (id, request) = direct_modern::modern_request(&parts.headers, body)?;
    let running = Running::detached();
    let wire = AgentWire::Modern;
    Some(match request {
        Plain::Call(params) => direct::answer(app, &user, id, params, running, wire).await,
        Plain::Read(params) => direct_read::answer(app, &user, id, params, running, wire).await,
    })
}

/// The authenticated caller the checks put on the request.
fn caller(parts: &axum::http::request::Parts) -> Option<Caller> {
    Some(Caller {
        user: parts.extensions.get::<UserId>()?.clone(),
        access: parts
            .extensions
            .get::<crate::gateway::ServerAccess>()?
            .clone(),
    })
}
