//! Sorting rmcp's errors into Tether's outcomes.
//!
//! rmcp reports token-endpoint failures as strings (`TokenRefreshFailed(String)`), so whether a
//! failure was the network, a 5xx or a refusal is read from how the operation's last HTTP
//! request ended ([`Outcome`]) rather than parsed out of text.

use rmcp::transport::auth::AuthError;
use tracing::debug;
use url::Url;

use crate::error::OAuthError;
use crate::http::{GuardedHttpClient, HttpFailure, Outcome, error_chain, find_http_failure};

fn is_transient_status(status: u16) -> bool {
    status >= 500 || status == 429 || status == 408
}

fn from_outcome(outcome: &Outcome, message: &str) -> OAuthError {
    match &outcome.failure {
        Some(HttpFailure::Refused(reason)) => OAuthError::Refused(reason.clone()),
        Some(HttpFailure::Transport(_)) => OAuthError::transient(message),
        Some(HttpFailure::BodyTooLarge | HttpFailure::Invalid(_)) => OAuthError::protocol(message),
        None if outcome.status.is_some_and(is_transient_status) => OAuthError::transient(message),
        None => OAuthError::protocol(message),
    }
}

/// `http` is the client the failed operation used.
pub(crate) fn classify(error: AuthError, http: &GuardedHttpClient) -> OAuthError {
    let message = error_chain(&error);
    debug!(error = %tether_core::redact::redact(&message), "OAuth operation failed");
    if let Some(failure) = find_http_failure(&error) {
        return match failure {
            HttpFailure::Refused(reason) => OAuthError::Refused(reason),
            HttpFailure::Transport(_) => OAuthError::transient(&message),
            HttpFailure::BodyTooLarge | HttpFailure::Invalid(_) => OAuthError::protocol(&message),
        };
    }
    let outcome = http.outcome();
    match error {
        AuthError::AuthorizationRequired | AuthError::TokenRefreshRejected(_) => {
            OAuthError::needs_authorization(&message)
        }
        AuthError::AuthorizationServersUnavailable {
            authorization_servers,
            ..
        } => {
            // rmcp drops authorization servers its own host filter refuses without saying
            // why; Tether's policy names the reason (and is at least as strict).
            for server in &authorization_servers {
                if let Ok(url) = Url::parse(server)
                    && let Err(reason) = http.check(&url)
                {
                    return OAuthError::Refused(reason);
                }
            }
            from_outcome(&outcome, &message)
        }
        AuthError::DiscoveryRequestFailed { .. }
        | AuthError::TokenRefreshFailed(_)
        | AuthError::TokenExchangeFailed(_)
        | AuthError::RegistrationFailed(_)
        | AuthError::HttpError(_) => from_outcome(&outcome, &message),
        AuthError::CredentialStoreError(_) => OAuthError::transient(&message),
        _ => OAuthError::protocol(&message),
    }
}
