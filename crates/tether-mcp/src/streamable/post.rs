//! One `POST` of a session's request and the HTTP facts of its response, sent with the
//! per-origin `reqwest::Client` directly instead of through rmcp's `StreamableHttpClient`.
//!
//! rmcp's client takes the endpoint as text and parses it (with IDNA) on every request, takes
//! the message by value (so the token-attaching retry clones it first) and reads a JSON answer
//! into its untagged `ServerJsonRpcMessage`, which the exchange then serialized again: on a
//! tool call that was about a tenth of the gateway's CPU. Here the URL is parsed once per
//! session, the message is serialized once (a retry after a refreshed token resends the same
//! bytes), and a JSON answer stays bytes until the exchange routes it.
//!
//! What must stay rmcp's, and is kept here with the same typed errors so that
//! [`crate::error::from_http`] maps every failure as before: a 401 or 403 with a challenge
//! (`AuthRequired`, `InsufficientScope` with the challenge's scope), a 404 on our session id
//! (`SessionExpired`), 429 and 5xx with `Retry-After` (`HttpStatus`) unless the body is a
//! JSON-RPC error, which is the answer; any other failure status as `"HTTP <code>"`, the same
//! leading text rmcp writes (the body is not carried); the size limits on a JSON body and on
//! each event of a stream. The handshake, resumptions and the standalone stream still go
//! through rmcp's client.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io;

use bytes::{Bytes, BytesMut};
use reqwest::header::{
    ACCEPT, CONTENT_TYPE, HeaderName, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE,
};
use reqwest::{Method, StatusCode, Url};
use rmcp::model::ServerJsonRpcMessage;
use rmcp::transport::streamable_http_client::{
    AuthRequiredError, HttpStatusError, InsufficientScopeError, StreamableHttpError,
    StreamableHttpPostResponse, StreamableHttpResponseLimits,
};

use super::endpoint::EventStream;
use crate::error::HttpError;
use crate::sse_limit;

const JSON: &str = "application/json";
const EVENT_STREAM: &str = "text/event-stream";
/// rmcp's order, so that a server sees the same request from either path.
const ACCEPT_BOTH: HeaderValue = HeaderValue::from_static("text/event-stream, application/json");
const JSON_BODY: HeaderValue = HeaderValue::from_static(JSON);
const SESSION_HEADER: HeaderName = HeaderName::from_static("mcp-session-id");
/// rmcp keeps a `Retry-After` only up to this length.
const MAX_RETRY_AFTER_BYTES: usize = 128;

/// The response to a request's `POST`.
pub(super) enum Posted {
    /// A JSON answer that rmcp's client has already typed (the handshake's path).
    Message(Box<ServerJsonRpcMessage>),
    /// A JSON body (the answer, or a JSON-RPC error sent with a failure status), unread.
    Json(Bytes),
    /// The answer's event stream, each event bounded.
    Events(EventStream),
    /// 202 or 204: no answer at all.
    Accepted,
}

impl From<StreamableHttpPostResponse> for Posted {
    fn from(response: StreamableHttpPostResponse) -> Self {
        match response {
            StreamableHttpPostResponse::Json(message, _) => Self::Message(Box::new(message)),
            StreamableHttpPostResponse::Sse(stream, _) => Self::Events(stream),
            // 202, or a kind a later rmcp adds: no answer to read either way.
            _ => Self::Accepted,
        }
    }
}

/// What one `POST` carries besides its body.
pub(super) struct Outgoing<'a> {
    pub(super) url: &'a Url,
    pub(super) session_id: Option<&'a str>,
    pub(super) headers: &'a HashMap<HeaderName, HeaderValue>,
    pub(super) limits: StreamableHttpResponseLimits,
}

/// Sends `body` once with `token` and classifies the response.
pub(super) async fn send(
    http: reqwest::Client,
    outgoing: &Outgoing<'_>,
    body: Bytes,
    token: Option<String>,
) -> Result<Posted, HttpError> {
    let mut request = http
        .request(Method::POST, outgoing.url.clone())
        .header(ACCEPT, ACCEPT_BOTH)
        .header(CONTENT_TYPE, JSON_BODY)
        .body(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(session_id) = outgoing.session_id {
        request = request.header(SESSION_HEADER, session_id);
    }
    for (name, value) in outgoing.headers {
        request = request.header(name, value);
    }
    let response = request.send().await?;
    classify(response, outgoing.session_id.is_some(), outgoing.limits).await
}

async fn classify(
    response: reqwest::Response,
    session_attached: bool,
    limits: StreamableHttpResponseLimits,
) -> Result<Posted, HttpError> {
    let status = response.status();
    if let Some(challenge) = challenge(&response)? {
        return Err(challenge);
    }
    if matches!(status, StatusCode::ACCEPTED | StatusCode::NO_CONTENT) {
        return Ok(Posted::Accepted);
    }
    if status == StatusCode::NOT_FOUND && session_attached {
        return Err(StreamableHttpError::SessionExpired);
    }
    let is_json = has_media_type(&response, JSON);
    let status_error = status_error(status, response.headers());
    if !status.is_success() {
        // A JSON-RPC error body is the answer (rmcp's rule), except after 401/403 and 429,
        // whose status is the answer.
        let auth_failure = matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN);
        if is_json && !auth_failure && status != StatusCode::TOO_MANY_REQUESTS {
            match bounded_body(response, limits.max_json_response_size).await {
                Ok(body) if is_jsonrpc_error(&body) => return Ok(Posted::Json(body)),
                Ok(_) | Err(StreamableHttpError::Client(_)) => {}
                Err(too_large @ StreamableHttpError::ResponseBodyTooLarge { .. }) => {
                    return Err(status_error.map_or(too_large, StreamableHttpError::from));
                }
                Err(other) => return Err(other),
            }
        }
        return Err(match status_error {
            Some(error) => error.into(),
            None => StreamableHttpError::UnexpectedServerResponse(Cow::Owned(format!(
                "HTTP {}",
                status.as_u16()
            ))),
        });
    }
    if has_media_type(&response, EVENT_STREAM) {
        return Ok(Posted::Events(sse_limit::events(
            response,
            limits.max_sse_event_size,
        )));
    }
    if is_json {
        return Ok(Posted::Json(
            bounded_body(response, limits.max_json_response_size).await?,
        ));
    }
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    Err(StreamableHttpError::UnexpectedContentType(content_type))
}

/// A 401 or 403 that carries a challenge, as rmcp types it.
fn challenge(response: &reqwest::Response) -> Result<Option<HttpError>, HttpError> {
    let status = response.status();
    if !matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
        return Ok(None);
    }
    let Some(header) = response.headers().get(WWW_AUTHENTICATE) else {
        return Ok(None);
    };
    let header = header.to_str().map_err(|_| {
        StreamableHttpError::UnexpectedServerResponse(Cow::Borrowed(
            "invalid www-authenticate header value",
        ))
    })?;
    Ok(Some(if status == StatusCode::UNAUTHORIZED {
        StreamableHttpError::AuthRequired(AuthRequiredError::new(header.to_owned()))
    } else {
        StreamableHttpError::InsufficientScope(InsufficientScopeError::new(
            header.to_owned(),
            challenge_scope(header),
        ))
    }))
}

/// The `scope` parameter of a challenge, quoted or not (rmcp's reading, which is private).
fn challenge_scope(header: &str) -> Option<String> {
    let start = header.to_ascii_lowercase().find("scope=")? + "scope=".len();
    let value = header.get(start..)?;
    if let Some(quoted) = value.strip_prefix('"') {
        return quoted.find('"').map(|end| quoted[..end].to_owned());
    }
    let end = value
        .find(|c: char| c == ',' || c == ';' || c.is_whitespace())
        .unwrap_or(value.len());
    (end > 0).then(|| value[..end].to_owned())
}

/// 429 and 5xx with a bounded `Retry-After`, as rmcp keeps them.
fn status_error(
    status: StatusCode,
    headers: &reqwest::header::HeaderMap,
) -> Option<HttpStatusError> {
    if status != StatusCode::TOO_MANY_REQUESTS && !status.is_server_error() {
        return None;
    }
    let retry_after = headers
        .get(RETRY_AFTER)
        .filter(|value| value.as_bytes().len() <= MAX_RETRY_AFTER_BYTES)
        .and_then(|value| std::str::from_utf8(value.as_bytes()).ok())
        .map(str::to_owned);
    Some(HttpStatusError::new(status.as_u16(), retry_after))
}

fn has_media_type(response: &reqwest::Response, wanted: &str) -> bool {
    response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            let essence = v.split_once(';').map_or(v, |(essence, _)| essence);
            essence.trim().eq_ignore_ascii_case(wanted)
        })
}

fn is_jsonrpc_error(body: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct ErrorOnly {
        #[expect(dead_code, reason = "read to require an error object")]
        error: rmcp::model::ErrorData,
    }
    serde_json::from_slice::<ErrorOnly>(body).is_ok()
}

/// The whole body, refused once it passes `limit` (announced or read).
async fn bounded_body(mut response: reqwest::Response, limit: usize) -> Result<Bytes, HttpError> {
    let too_large = || StreamableHttpError::ResponseBodyTooLarge { max_size: limit };
    if response
        .content_length()
        .is_some_and(|announced| announced > limit as u64)
    {
        return Err(too_large());
    }
    let Some(first) = response.chunk().await? else {
        return Ok(Bytes::new());
    };
    if first.len() > limit {
        return Err(too_large());
    }
    let Some(second) = response.chunk().await? else {
        // The common case: one chunk, kept without a copy.
        return Ok(first);
    };
    let mut body = BytesMut::with_capacity(first.len() + second.len());
    body.extend_from_slice(&first);
    let mut next = Some(second);
    while let Some(chunk) = next {
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
        next = response.chunk().await?;
    }
    Ok(body.freeze())
}

/// A message that could not be serialized (none of ours can fail; kept typed all the same).
pub(super) fn unserializable(error: serde_json::Error) -> HttpError {
    StreamableHttpError::Io(io::Error::new(io::ErrorKind::InvalidInput, error))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scope_of_a_challenge_is_read_quoted_or_not() {
        assert_eq!(
            challenge_scope(r#"Bearer error="insufficient_scope", scope="a b""#).as_deref(),
            Some("a b")
        );
        assert_eq!(
            challenge_scope("Bearer scope=read:data, error=x").as_deref(),
            Some("read:data")
        );
        assert_eq!(challenge_scope("Bearer error=\"insufficient_scope\""), None);
        assert_eq!(challenge_scope("Bearer scope="), None);
        assert_eq!(challenge_scope("Bearer scope=\"unterminated"), None);
    }

    #[test]
    fn only_429_and_5xx_keep_their_status() {
        let headers = reqwest::header::HeaderMap::new();
        for code in [200u16, 400, 401, 404, 429, 500, 503] {
            let Ok(status) = StatusCode::from_u16(code) else {
                continue;
            };
            assert_eq!(
                status_error(status, &headers).is_some(),
                code == 429 || code >= 500,
                "HTTP {code}"
            );
        }
    }

    #[test]
    fn a_long_retry_after_is_not_kept() {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("17"));
        let kept = status_error(StatusCode::SERVICE_UNAVAILABLE, &headers);
        assert_eq!(kept.and_then(|e| e.retry_after).as_deref(), Some("17"));
        let long = "1".repeat(MAX_RETRY_AFTER_BYTES + 1);
        let Ok(value) = HeaderValue::from_str(&long) else {
            panic!("digits are a valid header value");
        };
        headers.insert(RETRY_AFTER, value);
        let kept = status_error(StatusCode::SERVICE_UNAVAILABLE, &headers);
        assert_eq!(kept.and_then(|e| e.retry_after), None);
    }

    #[test]
    fn only_a_jsonrpc_error_body_is_an_answer() {
        assert!(is_jsonrpc_error(
            br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32600,"message":"no"}}"#
        ));
        assert!(!is_jsonrpc_error(
            br#"{"jsonrpc":"2.0","id":1,"result":{}}"#
        ));
        assert!(!is_jsonrpc_error(b"not json"));
    }
}
