//! `GET /oauth/callback`: the user's browser back from the authorization server.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use tether_core::redact::redact;
use tether_core::{AttemptOutcome, ServerName};
use tether_oauth::OAuthError;

use super::page::page;
use super::{OAuthRoutes, oauth_status};

pub(super) async fn callback(
    State(routes): State<Arc<OAuthRoutes>>,
    Query(params): Query<HashMap<String, String>>,
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
    let issuer = params.get("iss").map(String::as_str);
    match routes.flows.authorizer.complete(state, code, issuer).await {
        Ok((user, server)) => {
            routes.remember(state, &user, &server);
            // A fresh authorization wipes the pair's failures and breaker, then connects now.
            routes.manager.authorized(&user, &server).await;
            let outcome = routes
                .manager
                .reconnect_server_outcome(&user, &server)
                .await
                .unwrap_or(AttemptOutcome::Cancelled);
            tracing::info!(%user, %server, ?outcome, "authorization completed");
            finish(&routes, &server, &outcome)
        }
        Err(OAuthError::UnknownState) => match routes.completed(state) {
            Some((user, server)) => {
                let connected = routes.manager.state(&user, &server).await.is_connected();
                let outcome = if connected {
                    AttemptOutcome::Connected
                } else {
                    AttemptOutcome::Cancelled
                };
                finish(&routes, &server, &outcome)
            }
            None => page(
                StatusCode::BAD_REQUEST,
                "This authorization link is not valid",
                "It expired, was already used elsewhere, or was not issued by this Tether. Start the connection again from the application.",
            ),
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

fn finish(routes: &OAuthRoutes, server: &ServerName, outcome: &AttemptOutcome) -> Response {
    let connected = *outcome == AttemptOutcome::Connected;
    if let Some(return_url) = &routes.return_url {
        let separator = if return_url.contains('?') { '&' } else { '?' };
        let location = format!(
            "{return_url}{separator}server={}&status={}",
            url::form_urlencoded::byte_serialize(server.as_str().as_bytes()).collect::<String>(),
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
