//! `GET /oauth/callback`: the user's browser back from the authorization server.
//!
//! By default the callback stores nothing: it checks that the browser is the one bound to the
//! flow, keeps what the authorization server sent (sealed, single use) under a fresh completion
//! code and sends the browser to the host's `oauth.return_url` with that code. The host page,
//! where the user is logged in, confirms with `POST /v1/me/oauth/complete` and the user's JWT
//! (see [`super::completion`]). With `oauth.unverified_callback = true` the callback exchanges
//! the code and stores the tokens itself, as Tether did before.
//!
//! The callback is idempotent: a repeated callback for a flow that completed here answers as the
//! first did (browsers retry, users reload — LibreChat #15876). A forged, replayed-elsewhere or
//! expired `state` gets a 400 page and changes nothing.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tether_core::redact::redact;
use tether_core::{AttemptOutcome, ServerName};
use tether_oauth::store::CallbackParams;
use tether_oauth::{OAuthError, Secret};

use super::page::page;
use super::{CallbackAnswer, OAuthRoutes, binding, completion_key, oauth_status};

/// The authorization server sends the user's browser back here.
#[utoipa::path(get, path = "/oauth/callback", tag = "oauth", security(()),
    params(
        ("state" = Option<String>, Query, description = "The flow's state"),
        ("code" = Option<String>, Query, description = "The authorization code"),
        ("iss" = Option<String>, Query, description = "The authorization server (RFC 9207)"),
        ("error" = Option<String>, Query, description = "The authorization server's refusal"),
    ),
    responses(
        (status = 200, description = "A page saying how it went", content_type = "text/html", body = String),
        (status = 303, description = "To the host page, with the server and a completion code"),
        (status = 400, description = "Not a valid callback", content_type = "text/html", body = String),
        (status = 403, description = "Not the browser that started the flow", content_type = "text/html", body = String),
    ))]
pub(super) async fn callback(
    State(routes): State<Arc<OAuthRoutes>>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Some(error) = params.get("error") {
        let description = params
            .get("error_description")
            .map(String::as_str)
            .unwrap_or("");
        return page(
            StatusCode::BAD_REQUEST,
            "Authorization refused",
            &format!(
                "The authorization server said: {} {}",
                redact(error),
                redact(description)
            ),
        );
    }
    let (Some(code), Some(state)) = (params.get("code"), params.get("state")) else {
        return page(
            StatusCode::BAD_REQUEST,
            "Not an authorization response",
            "This address is where an authorization server sends you back; the request lacked its code or state.",
        );
    };
    let issuer = params.get("iss").cloned();
    let mut response = if routes.policy.unverified {
        store_at_once(&routes, state, code, issuer.as_deref()).await
    } else {
        hand_to_host(&routes, &headers, state, code, issuer).await
    };
    // The code is in this page's URL: it must not travel on in a Referer.
    let headers = response.headers_mut();
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The default: the browser must be the flow's, the host confirms the user.
async fn hand_to_host(
    routes: &OAuthRoutes,
    headers: &HeaderMap,
    state: &str,
    code: &str,
    issuer: Option<String>,
) -> Response {
    let flows = &routes.flows.authorizer.stores().flows;
    let mut flow = match flows.take(state).await {
        Ok(Some(flow)) => flow,
        Ok(None) => {
            return match routes.callbacks.get(state) {
                Some(answer)
                    if binding::is_bound_browser(headers, state, Some(&answer.binding)) =>
                {
                    to_host(routes, state, &answer.server, &answer.completion_code)
                }
                _ => invalid_state(),
            };
        }
        Err(error) => {
            tracing::warn!(%error, "flow store unavailable at the callback");
            return page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Try again in a moment",
                "Tether cannot reach its own storage right now; reload this page shortly.",
            );
        }
    };
    let Some(bound) = flow
        .browser_binding
        .clone()
        .filter(|bound| binding::is_bound_browser(headers, state, Some(bound)))
    else {
        // The flow is spent: whoever holds this state cannot try again from yet another browser.
        tracing::warn!(user = %flow.user, server = %flow.server, "authorization finished in a browser that did not open it: refused, nothing stored");
        return page(
            StatusCode::FORBIDDEN,
            "This authorization was finished in another browser",
            "For your safety, an authorization must be finished in the browser that started it from the application. Nothing was stored. Start the connection again from the application.",
        );
    };
    let completion_code = binding::new_secret();
    flow.callback = Some(CallbackParams {
        state: state.to_owned(),
        code: Secret::new(code),
        issuer,
    });
    let server = flow.server.clone();
    if let Err(error) = flows.put(&completion_key(&completion_code), flow).await {
        tracing::warn!(%error, "flow store unavailable at the callback");
        return page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Try again in a moment",
            "Tether cannot reach its own storage right now. Start the connection again from the application.",
        );
    }
    routes.callbacks.insert(
        state.to_owned(),
        CallbackAnswer {
            server: server.clone(),
            completion_code: completion_code.clone(),
            binding: bound,
        },
    );
    to_host(routes, state, &server, &completion_code)
}

fn to_host(
    routes: &OAuthRoutes,
    state: &str,
    server: &ServerName,
    completion_code: &str,
) -> Response {
    let Some(return_url) = &routes.policy.return_url else {
        // Configuration validation requires a return URL in this mode.
        return page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Tether is not configured to finish authorizations",
            "oauth.return_url is not set.",
        );
    };
    let separator = if return_url.contains('?') { '&' } else { '?' };
    let location = format!(
        "{return_url}{separator}server={}&completion_code={completion_code}",
        encode(server.as_str()),
    );
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response();
    if let Some(cookie) = binding::clear_cookie(state, routes.policy.secure_cookies) {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// `oauth.unverified_callback = true`: whoever finishes the flow attaches their account to the
/// flow's user.
async fn store_at_once(
    routes: &OAuthRoutes,
    state: &str,
    code: &str,
    issuer: Option<&str>,
) -> Response {
    match routes.flows.authorizer.complete(state, code, issuer).await {
        Ok((user, server)) => {
            routes.remember(state, &user, &server);
            // A fresh authorization wipes the pair's failures and breaker, then connects now.
            let outcome = routes.connect_authorized(&user, &server).await;
            tracing::info!(%user, %server, ?outcome, "authorization completed (unverified callback)");
            finish(routes, &server, &outcome)
        }
        Err(OAuthError::UnknownState) => match routes.completed(state) {
            Some((user, server)) => {
                let connected = routes.manager.state(&user, &server).await.is_connected();
                let outcome = if connected {
                    AttemptOutcome::Connected
                } else {
                    AttemptOutcome::Cancelled
                };
                finish(routes, &server, &outcome)
            }
            None => invalid_state(),
        },
        Err(error) => {
            tracing::info!(%error, "authorization callback failed");
            page(
                oauth_status(&error),
                "Authorization failed",
                &error.to_string(),
            )
        }
    }
}

fn invalid_state() -> Response {
    page(
        StatusCode::BAD_REQUEST,
        "This authorization link is not valid",
        "It expired, was already used elsewhere, or was not issued by this Tether. Start the connection again from the application.",
    )
}

fn encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

fn finish(routes: &OAuthRoutes, server: &ServerName, outcome: &AttemptOutcome) -> Response {
    let connected = *outcome == AttemptOutcome::Connected;
    if let Some(return_url) = &routes.policy.return_url {
        let separator = if return_url.contains('?') { '&' } else { '?' };
        let location = format!(
            "{return_url}{separator}server={}&status={}",
            encode(server.as_str()),
            if connected { "connected" } else { "authorized" }
        );
        return (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response();
    }
    let detail = match outcome {
        AttemptOutcome::Connected => {
            "Its tools are available now. You can close this window.".to_owned()
        }
        AttemptOutcome::Failed { error, .. } => format!(
            "Tether is authorized, but connecting failed ({error}); it will retry by itself. You can close this window."
        ),
        _ => "Tether is authorized and will connect shortly. You can close this window.".to_owned(),
    };
    page(StatusCode::OK, &format!("Connected to {server}"), &detail)
}
