//! Why a request was not authenticated, and why the authenticator could not be built.
//!
//! The texts are fixed phrases: they reach the caller, so they never contain the token, a claim
//! value or the upstream key server's answer.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// A request's bearer token was missing or not acceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("a bearer token is required")]
    Missing,
    #[error("the bearer token is malformed")]
    Malformed,
    #[error("the bearer token has expired")]
    Expired,
    #[error("the bearer token is not valid")]
    Invalid,
    /// The key server could not be reached and no cached key fits: our problem, not the
    /// caller's, hence 503 rather than 401 (a host would otherwise log its users out).
    #[error("the host's signing keys are unavailable")]
    KeysUnavailable,
}

impl AuthError {
    fn status(self) -> StatusCode {
        match self {
            Self::KeysUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::UNAUTHORIZED,
        }
    }

    /// RFC 6750 §3: no error code when the token is absent, `invalid_token` otherwise.
    fn challenge(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Self::Missing => r#"Bearer realm="tether""#,
            Self::Expired => {
                r#"Bearer realm="tether", error="invalid_token", error_description="token expired""#
            }
            _ => r#"Bearer realm="tether", error="invalid_token""#,
        })
    }
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        let code = match self {
            Self::KeysUnavailable => "unavailable",
            _ => "unauthorized",
        };
        let mut response = (
            self.status(),
            axum::Json(json!({"error": code, "message": self.to_string()})),
        )
            .into_response();
        if self.status() == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, self.challenge());
        }
        response
    }
}

/// The authenticator cannot be built from its configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthConfigError {
    #[error("host_auth needs hs256_secret_env or jwks_url")]
    NoKeySource,
    #[error("environment variable {0} is not set or not valid UTF-8")]
    MissingEnv(String),
    #[error("the HS256 secret in {0} is shorter than 32 bytes")]
    WeakSecret(String),
    #[error("host_auth.{0} must not be empty")]
    Empty(&'static str),
    #[error("host_auth.jwks_url is not an absolute http(s) URL")]
    BadJwksUrl,
    #[error("cannot set up the JWKS HTTP client")]
    HttpClient,
}
