//! `/v1/admin/…`: operator actions behind the admin credential (the one of `/status`).
//!
//! The credential may be HTTP Basic, which browsers attach on their own; so a request that
//! carries an `Origin` header (every cross-site browser POST does, API clients do not) is
//! refused: a web page cannot make an operator's browser take an admin action.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use crate::gateway::state::AppState;

/// The answer refusing a request whose `headers` lack the admin credential (or when none is
/// configured); `None` when the credential is there.
pub(crate) fn admin_refusal(app: &AppState, headers: &HeaderMap) -> Option<Response> {
    let admin = app.admin();
    if !admin.is_configured() {
        return Some(
            ApiError {
                status: StatusCode::NOT_FOUND,
                code: "not_found",
                message: "the admin credential is not configured".into(),
            }
            .into_response(),
        );
    }
    if !admin.allows(headers) {
        let mut response = ApiError {
            status: StatusCode::UNAUTHORIZED,
            code: "unauthorized",
            message: "the admin credential is required".into(),
        }
        .into_response();
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(r#"Basic realm="tether-status", charset="UTF-8""#),
        );
        return Some(response);
    }
    None
}

/// `POST /v1/admin/reload`: the servers are read again from the configuration file and
/// applied (see `Reloader`); answers what changed, or 400 with every problem of the file.
pub async fn reload(State(app): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(refused) = admin_refusal(&app, &headers) {
        return refused;
    }
    if headers.contains_key(header::ORIGIN) {
        return ApiError {
            status: StatusCode::FORBIDDEN,
            code: "cross_origin",
            message: "admin actions are not taken from web pages".into(),
        }
        .into_response();
    }
    let Some(reloader) = app.reloader() else {
        return ApiError {
            status: StatusCode::NOT_FOUND,
            code: "not_found",
            message: "this gateway has nothing to reload from".into(),
        }
        .into_response();
    };
    match reloader.reload().await {
        Ok(changes) => (StatusCode::OK, Json(changes)).into_response(),
        Err(error) => ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_configuration",
            message: error.0,
        }
        .into_response(),
    }
}
