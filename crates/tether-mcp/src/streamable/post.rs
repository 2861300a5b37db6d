//! One `POST` of a session's request and the HTTP facts of its response, sent with the
//! origin's own client ([`crate::http_leg`], hyper directly; reqwest when the environment
//! proxies the origin) instead of through rmcp's `StreamableHttpClient`.
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
//! each event of a stream. Failures below HTTP are classified here ([`error::from_transport`])
//! the way reqwest's are. The handshake's `initialize`, resumptions and the standalone stream
//! still go through rmcp's client.

use std::borrow::Cow;
use std::collections::HashMap;
use std::error::Error as StdError;
use std::io;

use bytes::{Bytes, BytesMut};
use http::header::{
    ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER,
    WWW_AUTHENTICATE,
};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body::Body as HttpBody;
use http_body_util::{BodyDataStream, BodyExt, Full};
use rmcp::model::ServerJsonRpcMessage;
use rmcp::transport::streamable_http_client::{
    AuthRequiredError, HttpStatusError, InsufficientScopeError, StreamableHttpError,
    StreamableHttpPostResponse, StreamableHttpResponseLimits,
};
use url::Url;

use super::endpoint::EventStream;
use crate::error::{self, HttpError, Mapped};
use crate::http_leg::RequestClient;
use crate::sse_events;

const JSON: &str = "application/json";
const EVENT_STREAM: &str = "text/event-stream";
/// rmcp's order, so that a server sees the same request from either path.
const ACCEPT_BOTH: HeaderValue = HeaderValue::from_static("text/event-stream, application/json");
const JSON_BODY: HeaderValue = HeaderValue::from_static(JSON);
const SESSION_HEADER: HeaderName = HeaderName::from_static("mcp-session-id");
const PROTOCOL_VERSION_HEADER: HeaderName = HeaderName::from_static("mcp-protocol-version");
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

/// The session's endpoint, parsed once: for hyper and for reqwest.
#[derive(Debug, Clone)]
pub(super) struct Target {
    uri: Uri,
    url: Url,
}

impl Target {
    /// `None` when `text` is not an absolute URL both parsers accept.
    pub(super) fn parse(text: &str) -> Option<Self> {
        Some(Self {
            uri: text.parse().ok()?,
            url: Url::parse(text).ok()?,
        })
    }
}

/// The client a session's requests go out with: its origin's hyper client, or reqwest's when
/// the environment proxies the origin (see [`crate::http_leg`]).
#[derive(Debug, Clone)]
pub(crate) enum Leg {
    Direct(RequestClient),
    Proxied(reqwest::Client),
}

/// What one `POST` carries besides its body.
pub(super) struct Outgoing<'a> {
    pub(super) target: &'a Target,
    pub(super) session_id: Option<&'a str>,
    /// The session's `MCP-Protocol-Version`, when `headers` does not carry it.
    pub(super) version: Option<&'a HeaderValue>,
    pub(super) headers: &'a HashMap<HeaderName, HeaderValue>,
    pub(super) limits: StreamableHttpResponseLimits,
}

/// Sends `body` once with `token` and classifies the response.
pub(super) async fn send(
    leg: Leg,
    outgoing: &Outgoing<'_>,
    body: Bytes,
    token: Option<String>,
) -> Result<Posted, HttpError> {
    let mut headers = HeaderMap::with_capacity(5 + outgoing.headers.len());
    headers.insert(ACCEPT, ACCEPT_BOTH);
    headers.insert(CONTENT_TYPE, JSON_BODY);
    if let Some(token) = token {
        headers.insert(AUTHORIZATION, bearer(&token)?);
    }
    if let Some(session_id) = outgoing.session_id {
        let value = HeaderValue::from_str(session_id).map_err(|_| {
            StreamableHttpError::UnexpectedServerResponse(Cow::Borrowed(
                "the server's session id is not a valid header value",
            ))
        })?;
        headers.insert(SESSION_HEADER, value);
    }
    if let Some(version) = outgoing.version {
        headers.insert(PROTOCOL_VERSION_HEADER, version.clone());
    }
    for (name, value) in outgoing.headers {
        headers.append(name, value.clone());
    }
    match leg {
        Leg::Direct(client) => {
            let mut request = Request::new(Full::new(body));
            *request.method_mut() = Method::POST;
            *request.uri_mut() = outgoing.target.uri.clone();
            *request.headers_mut() = headers;
            let response = client
                .send(request)
                .await
                .map_err(|e| transport_failed(error::from_transport(&e, e.is_connect())))?;
            classify(response, outgoing.session_id.is_some(), outgoing.limits).await
        }
        Leg::Proxied(client) => {
            let response = client
                .request(Method::POST, outgoing.target.url.clone())
                .headers(headers)
                .body(body)
                .send()
                .await?;
            let response: Response<reqwest::Body> = response.into();
            classify(response, outgoing.session_id.is_some(), outgoing.limits).await
        }
    }
}

/// `Bearer <token>`, marked sensitive so that no debug output of the request shows it.
fn bearer(token: &str) -> Result<HeaderValue, HttpError> {
    let mut text = String::with_capacity("Bearer ".len() + token.len());
    text.push_str("Bearer ");
    text.push_str(token);
    let mut value = HeaderValue::try_from(text).map_err(|_| {
        // The token is not in the error: only that it could not be sent.
        StreamableHttpError::Io(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the access token is not a valid header value",
        ))
    })?;
    value.set_sensitive(true);
    Ok(value)
}

/// A failure below HTTP, already classified, in the error type rmcp's client has.
fn transport_failed(failure: tether_core::ConnectError) -> HttpError {
    StreamableHttpError::Io(io::Error::other(Mapped(failure)))
}

async fn classify<B>(
    response: Response<B>,
    session_attached: bool,
    limits: StreamableHttpResponseLimits,
) -> Result<Posted, HttpError>
where
    B: HttpBody<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
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
    let is_json = has_media_type(response.headers(), JSON);
    let status_error = status_error(status, response.headers());
    if !status.is_success() {
        // A JSON-RPC error body is the answer (rmcp's rule), except after 401/403 and 429,
        // whose status is the answer.
        let auth_failure = matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN);
        if is_json && !auth_failure && status != StatusCode::TOO_MANY_REQUESTS {
            match bounded_body(response.into_body(), limits.max_json_response_size).await {
                Ok(body) if is_jsonrpc_error(&body) => return Ok(Posted::Json(body)),
                // An unreadable body leaves the status as the answer.
                Ok(_) | Err(BodyFailure::Read(_)) => {}
                Err(BodyFailure::TooLarge { max_size }) => {
                    let too_large = StreamableHttpError::ResponseBodyTooLarge { max_size };
                    return Err(status_error.map_or(too_large, StreamableHttpError::from));
                }
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
    if has_media_type(response.headers(), EVENT_STREAM) {
        return Ok(Posted::Events(sse_events::events_of(
            BodyDataStream::new(response.into_body()),
            limits.max_sse_event_size,
        )));
    }
    if is_json {
        return bounded_body(response.into_body(), limits.max_json_response_size)
            .await
            .map(Posted::Json)
            .map_err(BodyFailure::into_http);
    }
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    Err(StreamableHttpError::UnexpectedContentType(content_type))
}

/// A 401 or 403 that carries a challenge, as rmcp types it.
fn challenge<B>(response: &Response<B>) -> Result<Option<HttpError>, HttpError> {
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
fn status_error(status: StatusCode, headers: &HeaderMap) -> Option<HttpStatusError> {
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

fn has_media_type(headers: &HeaderMap, wanted: &str) -> bool {
    headers
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

/// Why a body was not read whole.
enum BodyFailure {
    TooLarge { max_size: usize },
    Read(HttpError),
}

impl BodyFailure {
    fn into_http(self) -> HttpError {
        match self {
            Self::TooLarge { max_size } => StreamableHttpError::ResponseBodyTooLarge { max_size },
            Self::Read(error) => error,
        }
    }
}

/// The whole body, refused once it passes `limit` (announced or read).
async fn bounded_body<B>(mut body: B, limit: usize) -> Result<Bytes, BodyFailure>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    let too_large = || BodyFailure::TooLarge { max_size: limit };
    if body
        .size_hint()
        .exact()
        .is_some_and(|announced| announced > limit as u64)
    {
        return Err(too_large());
    }
    let Some(first) = next_chunk(&mut body).await? else {
        return Ok(Bytes::new());
    };
    if first.len() > limit {
        return Err(too_large());
    }
    let Some(second) = next_chunk(&mut body).await? else {
        // The common case: one chunk, kept without a copy.
        return Ok(first);
    };
    let mut whole = BytesMut::with_capacity(first.len() + second.len());
    whole.extend_from_slice(&first);
    let mut next = Some(second);
    while let Some(chunk) = next {
        if whole.len() + chunk.len() > limit {
            return Err(too_large());
        }
        whole.extend_from_slice(&chunk);
        next = next_chunk(&mut body).await?;
    }
    Ok(whole.freeze())
}

/// The next data of `body` (trailers are skipped); `None` at its end.
async fn next_chunk<B>(body: &mut B) -> Result<Option<Bytes>, BodyFailure>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn StdError + Send + Sync>>,
{
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            let e: Box<dyn StdError + Send + Sync> = e.into();
            BodyFailure::Read(transport_failed(error::from_transport(&*e, false)))
        })?;
        if let Ok(data) = frame.into_data() {
            return Ok(Some(data));
        }
    }
    Ok(None)
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
        let headers = HeaderMap::new();
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
        let mut headers = HeaderMap::new();
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
