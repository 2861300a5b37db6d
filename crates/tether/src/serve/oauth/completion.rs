//! `POST /v1/me/oauth/complete {"code": …}` (host JWT): the host page the callback sent the
//! browser to confirms who finished the authorization. The authorization code is exchanged and
//! the tokens stored only when the JWT's user is the flow's user; otherwise the answer is 403 and
//! the code is never exchanged, so no token of the person who finished the flow ever exists for
//! Tether to hold (stronger than exchanging and revoking).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use tether::gateway::auth::AuthUser;
use tether_core::AttemptOutcome;

use super::{CompletionAnswer, OAuthRoutes, completion_key, json_error, oauth_code, oauth_status};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CompleteRequest {
    code: String,
}

/// The host page confirms an authorization its user finished (`completion_code` from the
/// callback's redirect): exchanged only for the user who started it.
#[utoipa::path(post, path = "/v1/me/oauth/complete", tag = "oauth", security(("host_jwt" = [])),
    request_body = CompleteRequest,
    responses(
        (status = 200, description = "`{server, connected}`", body = serde_json::Value),
        (status = 400, description = "Not a completion code", body = tether::gateway::api::ErrorBody),
        (status = 401, description = "No acceptable host token", body = tether::gateway::api::ErrorBody),
        (status = 403, description = "Another user started this authorization", body = tether::gateway::api::ErrorBody),
        (status = 404, description = "No such completion (expired or used)", body = tether::gateway::api::ErrorBody),
    ))]
pub(super) async fn complete(
    State(routes): State<Arc<OAuthRoutes>>,
    AuthUser(user): AuthUser,
    body: Result<Json<CompleteRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(Json(request)) = body else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "the body must be {\"code\": \"…\"}",
        );
    };
    let key = completion_key(&request.code);
    let flows = &routes.flows.authorizer.stores().flows;
    let mut flow = match flows.take(&key).await {
        Ok(Some(flow)) => flow,
        Ok(None) => {
            return match routes.completions.get(&key) {
                // The host retried a confirmation that went through.
                Some(done) if done.user == user => answer(&done),
                _ => json_error(
                    StatusCode::BAD_REQUEST,
                    "unknown_code",
                    "this completion code is not valid: it expired, was used, or was not issued by this Tether",
                ),
            };
        }
        Err(error) => {
            tracing::warn!(%error, "flow store unavailable at /v1/me/oauth/complete");
            return json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Tether cannot reach its own storage right now; retry shortly",
            );
        }
    };
    let Some(params) = flow.callback.take() else {
        return json_error(
            StatusCode::BAD_REQUEST,
            "unknown_code",
            "this completion code is not valid",
        );
    };
    if flow.user != user {
        tracing::warn!(
            started_by = %flow.user,
            finished_by = %user,
            server = %flow.server,
            "an authorization started by one user was finished by another: refused, the code is not exchanged"
        );
        return json_error(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this authorization was started by another user; nothing was stored",
        );
    }
    // Back under its state, as the authorizer's code exchange takes it from there.
    if let Err(error) = flows.put(&params.state, flow).await {
        tracing::warn!(%error, "flow store unavailable at /v1/me/oauth/complete");
        return json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Tether cannot reach its own storage right now; start the connection again",
        );
    }
    let completed = routes
        .flows
        .authorizer
        .complete(
            &params.state,
            params.code.expose(),
            params.issuer.as_deref(),
        )
        .await;
    match completed {
        Ok((user, server)) => {
            let outcome = routes.connect_authorized(&user, &server).await;
            tracing::info!(%user, %server, ?outcome, "authorization completed");
            let done = CompletionAnswer {
                user,
                server,
                connected: outcome == AttemptOutcome::Connected,
            };
            routes.completions.insert(key, done.clone());
            answer(&done)
        }
        Err(error) => {
            tracing::info!(%error, "authorization could not be completed");
            json_error(oauth_status(&error), oauth_code(&error), &error.to_string())
        }
    }
}

fn answer(done: &CompletionAnswer) -> Response {
    Json(json!({
        "server": done.server.as_str(),
        "connected": done.connected,
    }))
    .into_response()
}
