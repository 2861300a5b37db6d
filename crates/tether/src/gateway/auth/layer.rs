//! The axum side of host authentication: a middleware that verifies the bearer token and puts
//! the [`UserId`] into the request extensions (where rmcp's handlers find it too, inside the
//! `http::request::Parts` it passes along), and an extractor for handlers.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tether_core::UserId;
use tracing::Instrument;

use super::UserGroups;
use super::error::AuthError;
use crate::gateway::ServerAccess;
use crate::gateway::state::AppState;

/// Longer Authorization headers are refused before any parsing.
const MAX_TOKEN_LEN: usize = 16 * 1024;

/// Middleware: 401 unless the request carries an acceptable host token; otherwise the user is
/// recorded as seen and handed on in the request extensions.
pub async fn require_user(State(app): State<AppState>, request: Request, next: Next) -> Response {
    authenticated(&app, request, |request| next.run(request)).await
}

/// [`require_user`] with the rest of the request's handling as `next`, so that `/mcp` runs its
/// checks as one middleware (each axum layer boxes the request's future and clones the inner
/// service again, on every call).
pub(crate) async fn authenticated<F, Fut>(app: &AppState, mut request: Request, next: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    let (user, groups) = match authenticate(app, request.headers()).await {
        Ok(caller) => caller,
        Err(error) => {
            tracing::debug!(%error, path = %request.uri().path(), "host token refused");
            return error.into_response();
        }
    };
    app.users().seen(&user);
    // A user whose token no longer has a server's group (a new token after leaving the group)
    // loses their sessions to it at this request: their tokens for it stay, unused.
    let access = app.access(&user, groups);
    for server in access.denied() {
        app.manager().disconnect(&user, server).await;
    }
    let id = request_id(request.headers());
    let span = tracing::info_span!("request", id = %id, %user);
    request.extensions_mut().insert(user);
    // Computed once here for every handler of the request (`AuthAccess`).
    request.extensions_mut().insert(access);
    let mut response = next(request).instrument(span).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The caller's `X-Request-Id` when it is a plain token (at most 64 letters, digits, `.`, `_`,
/// `-`), so a host's id follows the request into Tether's logs; else a new random one.
fn request_id(headers: &axum::http::HeaderMap) -> String {
    let given = headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            (1..=64).contains(&v.len())
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        });
    match given {
        Some(id) => id.to_owned(),
        None => hex_id(rand::random::<u64>()),
    }
}

/// `n` as 16 lowercase hex digits (`format!` costs several times this on every request).
fn hex_id(n: u64) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    (0..16)
        .rev()
        .map(|nibble| char::from(DIGITS[((n >> (nibble * 4)) & 0xf) as usize]))
        .collect()
}

async fn authenticate(
    app: &AppState,
    headers: &axum::http::HeaderMap,
) -> Result<(UserId, UserGroups), AuthError> {
    let value = headers.get(AUTHORIZATION).ok_or(AuthError::Missing)?;
    if value.len() > MAX_TOKEN_LEN {
        return Err(AuthError::Malformed);
    }
    let text = value.to_str().map_err(|_| AuthError::Malformed)?;
    let token = bearer_token(text).ok_or(AuthError::Missing)?;
    app.host_auth().verify_caller(token).await
}

/// The token of an `Authorization: Bearer …` value (the scheme is case-insensitive).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The servers the authenticated user of a request may see and use (their token's groups, their
/// own servers), as [`require_user`] found them.
#[derive(Debug, Clone)]
pub struct AuthAccess(pub ServerAccess);

impl<S: Send + Sync> FromRequestParts<S> for AuthAccess {
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // Absent only if a route was mounted without the middleware: refuse, never default.
        parts
            .extensions
            .get::<ServerAccess>()
            .cloned()
            .map(AuthAccess)
            .ok_or(AuthError::Missing)
    }
}

/// The authenticated user of a request that went through [`require_user`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthUser(pub UserId);

impl<S: Send + Sync> FromRequestParts<S> for AuthUser {
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // Absent only if a route was mounted without the middleware: refuse, never default.
        parts
            .extensions
            .get::<UserId>()
            .cloned()
            .map(AuthUser)
            .ok_or(AuthError::Missing)
    }
}

#[cfg(test)]
mod tests {
    use super::bearer_token;

    #[test]
    fn a_hosts_request_id_is_kept_only_when_it_is_a_plain_token() {
        let with = |value: &str| {
            let mut headers = axum::http::HeaderMap::new();
            headers.insert(
                super::REQUEST_ID,
                axum::http::HeaderValue::from_str(value).expect("header"),
            );
            super::request_id(&headers)
        };
        assert_eq!(with("req-42.a_b"), "req-42.a_b");
        for odd in ["a b", "x\"y", &"z".repeat(65)] {
            let id = with(odd);
            assert_eq!(id.len(), 16, "{odd:?} replaced: {id}");
            assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        }
    }

    #[test]
    fn new_request_ids_are_the_number_in_16_hex_digits() {
        assert_eq!(super::hex_id(0x0123_4567_89ab_cdef), "0123456789abcdef");
        assert_eq!(super::hex_id(0), "0000000000000000");
        assert_eq!(super::hex_id(u64::MAX), "ffffffffffffffff");
        assert_eq!(super::hex_id(0xa), "000000000000000a");
    }

    #[test]
    fn bearer_values_are_parsed_strictly() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer  abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer"), None);
        assert_eq!(bearer_token("Bearer "), None);
    }
}
