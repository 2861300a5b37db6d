//! `GET /oauth/begin/{state}`: every authorization link Tether hands out (to the host, in stubs
//! shown to the model) points here, never at the authorization server. The first browser to open
//! it is bound to the flow (a cookie, see [`super::binding`]) and sent on to the authorization
//! server; the same browser may open it again; any other browser is refused.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::OAuthRoutes;
use super::binding;
use super::page::page;

/// The user's browser opens the authorization link: the flow is bound to this browser
/// (cookie) and the browser sent on to the authorization server.
#[utoipa::path(get, path = "/oauth/begin/{state}", tag = "oauth", security(()),
    params(("state" = String, Path, description = "The flow's state")),
    responses(
        (status = 303, description = "To the authorization server"),
        (status = 400, description = "Not a flow's state", content_type = "text/html", body = String),
        (status = 403, description = "The link was opened in another browser", content_type = "text/html", body = String),
        (status = 404, description = "No such flow (expired or used)", content_type = "text/html", body = String),
    ))]
pub(super) async fn begin(
    State(routes): State<Arc<OAuthRoutes>>,
    Path(state): Path<String>,
    headers: HeaderMap,
) -> Response {
    let flows = &routes.flows.authorizer.stores().flows;
    // Taken and put back, so that of two browsers opening the link at once only one binds.
    let mut flow = match flows.take(&state).await {
        Ok(Some(flow)) => flow,
        Ok(None) => return invalid_link(),
        Err(error) => {
            tracing::warn!(%error, "flow store unavailable at /oauth/begin");
            return unavailable();
        }
    };
    let Some(authorization_url) = flow.authorization_url.clone() else {
        return invalid_link();
    };
    let cookie = match &flow.browser_binding {
        Some(bound) if binding::is_bound_browser(&headers, &state, Some(bound)) => None,
        Some(_) => {
            tracing::info!(user = %flow.user, server = %flow.server, "authorization link opened in a second browser: refused");
            if flows.put(&state, flow).await.is_err() {
                return unavailable();
            }
            return page(
                StatusCode::FORBIDDEN,
                "This link was opened in another browser",
                "An authorization link works only in the browser that opened it first. Continue there, or start the connection again from the application.",
            );
        }
        None => {
            let secret = binding::new_secret();
            flow.browser_binding = Some(binding::digest(&secret));
            binding::set_cookie(&state, &secret, routes.policy.secure_cookies)
        }
    };
    if let Err(error) = flows.put(&state, flow).await {
        tracing::warn!(%error, "flow store unavailable at /oauth/begin");
        return unavailable();
    }
    let mut response = (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, authorization_url),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
    )
        .into_response();
    if let Some(cookie) = cookie {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

fn invalid_link() -> Response {
    page(
        StatusCode::BAD_REQUEST,
        "This authorization link is not valid",
        "It expired, was already used, or was not issued by this Tether. Start the connection again from the application.",
    )
}

fn unavailable() -> Response {
    page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Try again in a moment",
        "Tether cannot reach its own storage right now.",
    )
}
