//! Turning rmcp, reqwest and I/O failures into tether-core's typed [`ConnectError`].
//!
//! The core's breakers and admission limits act on the *kind* of a failure (who is to blame,
//! whether to wait), so the mapping matters more than the text. Texts are built from fixed
//! phrases and numbers only: rmcp's own messages can carry a `WWW-Authenticate` value, a
//! response body preview or a request URL (whose query may hold a token), and none of that may
//! reach a user or a model.
//!
//! # What rmcp lets us see (3.11)
//!
//! rmcp's built-in reqwest client keeps these HTTP facts as typed values, which are mapped
//! exactly:
//! - 429 and 5xx → [`HttpStatusError`] with the status and the raw `Retry-After` (only for
//!   responses that are not a JSON-RPC error body; a 5xx *with* a JSON-RPC error body arrives
//!   as that JSON-RPC error and becomes [`ConnectError::Protocol`]);
//! - 401/403 with a `WWW-Authenticate` challenge → `AuthRequired` / `InsufficientScope`;
//! - 404 on a request that carried a session id → `SessionExpired`.
//!
//! Every other non-success status (401/403 *without* a challenge, a 404 without a session,
//! 3xx since redirects are not followed, other 4xx) only survives as the text
//! `"HTTP <code> <reason>: <body>"` in `UnexpectedServerResponse`. We read the leading status
//! code out of that text (and nothing else), which is the best honest mapping rmcp allows; if a
//! future rmcp changes the wording those statuses fall back to a generic protocol error.

use std::error::Error as StdError;
use std::io;
use std::time::Duration;

use rmcp::ServiceError;
use rmcp::model::ErrorData;
use rmcp::service::ClientInitializeError;
use rmcp::transport::streamable_http_client::{HttpStatusError, StreamableHttpError};
use tether_core::{ConnectError, TransportFailure};

/// The rmcp transport error of the built-in reqwest client.
pub(crate) type HttpError = StreamableHttpError<reqwest::Error>;

/// A failure that is already a [`ConnectError`], carried through rmcp's error types: a
/// [`BearerSource`](crate::BearerSource) failure inside rmcp's HTTP error (as an `io::Error`
/// payload), and every error of the legacy SSE transport. Its text is the `ConnectError`'s,
/// which is safe by that type's rules.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Mapped(pub(crate) ConnectError);

/// Longest server-provided text (a JSON-RPC error message) kept in an error.
const MAX_SERVER_TEXT: usize = 200;

/// How deep we follow `source()` chains; real chains are a handful of links, and a bound keeps a
/// pathological (cyclic-looking) chain from spinning.
const MAX_SOURCE_DEPTH: usize = 16;

/// A failed `initialize` (the whole connect).
pub(crate) fn from_initialize(error: &ClientInitializeError) -> ConnectError {
    match error {
        ClientInitializeError::TransportError { error, .. } => {
            match from_dyn(error.error.as_ref()) {
                // There is no session yet to lose: the peer went away mid-handshake.
                ConnectError::SessionLost => closed_during_initialize(),
                other => other,
            }
        }
        ClientInitializeError::JsonRpcError(data) => refused_initialize(data),
        ClientInitializeError::ConnectionClosed(_) => closed_during_initialize(),
        ClientInitializeError::NoCompatibleProtocolVersion { .. } => {
            ConnectError::Protocol("no MCP protocol version in common with the server".to_owned())
        }
        ClientInitializeError::Cancelled => {
            ConnectError::Protocol("initialize was cancelled".to_owned())
        }
        // ExpectedInitResponse, ExpectedInitResult, ConflictInitResponseId, … : the server said
        // something that is not a valid initialize answer. Their Display embeds the server's
        // message, so it is not reused.
        _ => ConnectError::Protocol("the server's initialize answer was not valid".to_owned()),
    }
}

/// The server answered `initialize` with a JSON-RPC error.
pub(crate) fn refused_initialize(data: &ErrorData) -> ConnectError {
    ConnectError::Protocol(format!(
        "the server refused initialize ({}: {})",
        data.code.0,
        clip(&data.message)
    ))
}

/// The server answered a request on an open session with a JSON-RPC error: the request
/// failed, the session goes on.
pub(crate) fn from_jsonrpc(data: &ErrorData) -> ConnectError {
    ConnectError::Refused {
        code: data.code.0,
        message: clip(&data.message),
    }
}

/// A failure of the HTTP exchange that carries `initialize` or `notifications/initialized`.
pub(crate) fn from_handshake(error: &HttpError) -> ConnectError {
    match from_http(error) {
        // There is no session yet to lose.
        ConnectError::SessionLost => closed_during_initialize(),
        other => other,
    }
}

pub(crate) fn closed_during_initialize() -> ConnectError {
    ConnectError::transport(
        TransportFailure::Network,
        "the connection closed during initialize",
    )
}

/// A failed request on an open session (`tools/list`, `tools/call`).
pub(crate) fn from_service(error: &ServiceError) -> ConnectError {
    match error {
        ServiceError::McpError(data) => from_jsonrpc(data),
        ServiceError::TransportSend(error) => from_dyn(error.error.as_ref()),
        // The service loop is gone (transport worker ended, child process exited): this session
        // cannot carry requests any more and the caller has to connect again.
        ServiceError::TransportClosed => ConnectError::SessionLost,
        ServiceError::Timeout { .. } => {
            ConnectError::transport(TransportFailure::Timeout, "the request timed out")
        }
        ServiceError::UnexpectedResponse => {
            ConnectError::Protocol("the server answered with an unexpected result".to_owned())
        }
        ServiceError::Cancelled { .. } => {
            ConnectError::Protocol("the request was cancelled".to_owned())
        }
        _ => ConnectError::Protocol("the request failed".to_owned()),
    }
}

/// Walks an error chain and maps the first link we recognise.
pub(crate) fn from_dyn(error: &(dyn StdError + 'static)) -> ConnectError {
    let mut current: Option<&(dyn StdError + 'static)> = Some(error);
    for _ in 0..MAX_SOURCE_DEPTH {
        let Some(e) = current else { break };
        if let Some(mapped) = e.downcast_ref::<Mapped>() {
            return mapped.0.clone();
        }
        if let Some(http) = e.downcast_ref::<HttpError>() {
            return from_http(http);
        }
        if let Some(status) = e.downcast_ref::<HttpStatusError>() {
            return from_status(status.status, status.retry_after.as_deref());
        }
        if let Some(reqwest) = e.downcast_ref::<reqwest::Error>() {
            return from_reqwest(reqwest);
        }
        if let Some(io) = e.downcast_ref::<io::Error>() {
            return from_io(io);
        }
        current = e.source();
    }
    ConnectError::Protocol("the MCP transport failed".to_owned())
}

pub(crate) fn from_http(error: &HttpError) -> ConnectError {
    match error {
        StreamableHttpError::HttpStatus(status) => {
            from_status(status.status, status.retry_after.as_deref())
        }
        StreamableHttpError::AuthRequired(_) => ConnectError::NeedsAuthorization {
            authorization_url: None,
            scope: None,
        },
        StreamableHttpError::InsufficientScope(e) => ConnectError::NeedsAuthorization {
            authorization_url: None,
            scope: e.required_scope.clone(),
        },
        // Only raised for a 404 on a request that carried our session id (see the module doc).
        StreamableHttpError::SessionExpired
        | StreamableHttpError::SessionRecoveryTimeout
        | StreamableHttpError::ReinitializationFailed(_) => ConnectError::SessionLost,
        StreamableHttpError::Client(e) => from_reqwest(e),
        StreamableHttpError::Io(e) => from_io(e),
        StreamableHttpError::Sse(_) => ConnectError::transport(
            TransportFailure::Network,
            "the server's event stream broke off",
        ),
        StreamableHttpError::UnexpectedEndOfStream => ConnectError::transport(
            TransportFailure::Network,
            "the server's event stream ended early",
        ),
        StreamableHttpError::ControlRequestTimeout => {
            ConnectError::transport(TransportFailure::Timeout, "a control request timed out")
        }
        // The worker is gone; later requests on this session cannot succeed.
        StreamableHttpError::TransportChannelClosed => ConnectError::SessionLost,
        StreamableHttpError::UnexpectedServerResponse(text) => from_unexpected_response(text),
        StreamableHttpError::UnexpectedContentType(_) => {
            ConnectError::Protocol("the server answered with an unexpected content type".to_owned())
        }
        StreamableHttpError::ResponseBodyTooLarge { max_size } => {
            ConnectError::Protocol(format!("the server's answer exceeded {max_size} bytes"))
        }
        StreamableHttpError::Deserialize(_) => {
            ConnectError::Protocol("the server's answer was not valid JSON-RPC".to_owned())
        }
        StreamableHttpError::MissingSessionIdInResponse => {
            ConnectError::Protocol("the server did not assign a session id".to_owned())
        }
        _ => ConnectError::Protocol("the streamable HTTP transport failed".to_owned()),
    }
}

/// A status code we know for sure (rmcp kept it as a number).
pub(crate) fn from_status(status: u16, retry_after: Option<&str>) -> ConnectError {
    match status {
        429 => ConnectError::RateLimited {
            retry_after: retry_after.and_then(parse_retry_after),
        },
        500..=599 => ConnectError::transport(TransportFailure::ServerError(status), "")
            .with_retry_after(retry_after.and_then(parse_retry_after)),
        401 | 403 => ConnectError::NeedsAuthorization {
            authorization_url: None,
            scope: None,
        },
        _ => ConnectError::Protocol(format!("the server answered HTTP {status}")),
    }
}

/// `UnexpectedServerResponse` texts: rmcp formats non-success statuses as
/// `"HTTP <code> <reason>: <body>"`. Only the code is read; the body never leaves this function.
fn from_unexpected_response(text: &str) -> ConnectError {
    let status = text
        .strip_prefix("HTTP ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse::<u16>().ok())
        .filter(|code| (100..=599).contains(code));
    match status {
        // A 404 that reaches here carried no session id (rmcp maps the session case to
        // `SessionExpired`): the URL has no MCP endpoint.
        Some(404) => {
            ConnectError::Protocol("the server answered HTTP 404 (no MCP endpoint)".to_owned())
        }
        Some(status) => from_status(status, None),
        None => ConnectError::Protocol("the server answered with something unexpected".to_owned()),
    }
}

pub(crate) fn from_reqwest(error: &reqwest::Error) -> ConnectError {
    // reqwest's Display includes the request URL; never reuse it.
    if error.is_timeout() {
        return ConnectError::transport(TransportFailure::Timeout, "the HTTP request timed out");
    }
    if let Some(status) = error.status() {
        return from_status(status.as_u16(), None);
    }
    let connect = error.is_connect();
    let below = matches!(
        io_kind(error),
        Some(io::ErrorKind::ConnectionRefused | io::ErrorKind::TimedOut)
    );
    if !connect && !below && error.is_decode() {
        return ConnectError::Protocol("the server's answer could not be decoded".to_owned());
    }
    from_transport(error, connect)
}

/// A failure below HTTP (`connect`: before a connection stood), on either client: hyper's on
/// the upstream leg of [`crate::http_leg`], reqwest's through [`from_reqwest`]. Only the kind
/// of the first `io::Error` in the chain is read: the clients' texts are not carried.
pub(crate) fn from_transport(error: &(dyn StdError + 'static), connect: bool) -> ConnectError {
    match io_kind(error) {
        Some(io::ErrorKind::ConnectionRefused) => {
            ConnectError::transport(TransportFailure::Refused, "")
        }
        Some(io::ErrorKind::TimedOut) if connect => {
            ConnectError::transport(TransportFailure::Timeout, "connecting timed out")
        }
        Some(io::ErrorKind::TimedOut) => {
            ConnectError::transport(TransportFailure::Timeout, "the HTTP request timed out")
        }
        // DNS, TLS handshake, unreachable network: all below HTTP.
        _ if connect => ConnectError::transport(TransportFailure::Network, "could not connect"),
        _ => ConnectError::transport(TransportFailure::Network, "the HTTP exchange failed"),
    }
}

fn from_io(error: &io::Error) -> ConnectError {
    // `io::Error::source` skips its own payload, so a `Mapped` inside is looked up here.
    if let Some(mapped) = error.get_ref().and_then(|e| e.downcast_ref::<Mapped>()) {
        return mapped.0.clone();
    }
    match error.kind() {
        io::ErrorKind::ConnectionRefused => ConnectError::transport(TransportFailure::Refused, ""),
        io::ErrorKind::TimedOut => ConnectError::transport(TransportFailure::Timeout, ""),
        // A stdio server that exited or closed its pipes.
        io::ErrorKind::BrokenPipe | io::ErrorKind::UnexpectedEof => ConnectError::SessionLost,
        kind => ConnectError::transport(TransportFailure::Network, format!("I/O error ({kind})")),
    }
}

/// The kind of the first `io::Error` in the chain (hyper wraps the socket error a few levels
/// down).
fn io_kind(error: &(dyn StdError + 'static)) -> Option<io::ErrorKind> {
    let mut current: Option<&(dyn StdError + 'static)> = Some(error);
    for _ in 0..MAX_SOURCE_DEPTH {
        let e = current?;
        if let Some(io) = e.downcast_ref::<io::Error>() {
            return Some(io.kind());
        }
        current = e.source();
    }
    None
}

/// `Retry-After` in delay-seconds form. The HTTP-date form is not honoured (it would need a
/// date parser and a trustworthy clock); the core then falls back to its own backoff.
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// Server-provided text (a JSON-RPC error message), cut to a bounded length on a char boundary.
fn clip(text: &str) -> String {
    match text.char_indices().nth(MAX_SERVER_TEXT) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_their_kinds() {
        assert_eq!(
            from_status(503, None),
            ConnectError::transport(TransportFailure::ServerError(503), "")
        );
        let unavailable = from_status(503, Some("2"));
        assert_eq!(unavailable.retry_after(), Some(Duration::from_secs(2)));
        assert!(matches!(
            unavailable,
            ConnectError::Transport {
                kind: TransportFailure::ServerError(503),
                ..
            }
        ));
        assert_eq!(
            from_status(429, Some(" 7 ")),
            ConnectError::RateLimited {
                retry_after: Some(Duration::from_secs(7))
            }
        );
        assert_eq!(
            from_status(429, Some("Wed, 21 Oct 2015 07:28:00 GMT")),
            ConnectError::RateLimited { retry_after: None }
        );
        assert!(matches!(
            from_status(401, None),
            ConnectError::NeedsAuthorization { .. }
        ));
    }

    #[test]
    fn unexpected_responses_keep_the_status_and_drop_the_body() {
        let e = from_unexpected_response("HTTP 403 Forbidden: token abc123 is not valid");
        assert!(matches!(e, ConnectError::NeedsAuthorization { .. }));
        let e = from_unexpected_response("HTTP 418 I'm a teapot: secret-body");
        assert_eq!(
            e.to_string(),
            "protocol error: the server answered HTTP 418"
        );
        let e = from_unexpected_response("could not parse: secret-body");
        assert!(!e.to_string().contains("secret"));
    }

    #[test]
    fn server_texts_are_clipped() {
        let long = "x".repeat(1000);
        assert_eq!(clip(&long).chars().count(), MAX_SERVER_TEXT + 1);
        assert_eq!(clip("short"), "short");
    }

    mod props {
        use proptest::prelude::*;

        use super::super::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2_000))]

            /// Whatever follows the status in rmcp's text (the server's body) never reaches
            /// the error, and nothing panics on odd text (multi-byte characters at the cut).
            #[test]
            fn an_unexpected_answer_keeps_only_its_status(
                head in "(HTTP )?.{0,6}",
                body in "[a-zA-Z0-9]{12,24}",
            ) {
                let text = format!("{head}: SECRET{body}");
                let error = from_unexpected_response(&text).to_string();
                prop_assert!(!error.contains(&body), "{error}");
            }

            #[test]
            fn any_retry_after_is_a_number_of_seconds_or_nothing(value in "\\PC{0,24}") {
                let parsed = parse_retry_after(&value);
                prop_assert_eq!(parsed.is_some(), value.trim().parse::<u64>().is_ok());
                let _ = from_status(429, Some(&value));
            }

            #[test]
            fn any_status_maps_to_an_error_kind(status in any::<u16>()) {
                let error = from_status(status, None);
                if (500..=599).contains(&status) {
                    prop_assert!(matches!(error, ConnectError::Transport { .. }), "{error:?}");
                }
            }

            #[test]
            fn server_texts_are_clipped_on_character_boundaries(text in "\\PC{0,400}") {
                let clipped = clip(&text);
                prop_assert!(clipped.chars().count() <= MAX_SERVER_TEXT + 1);
            }
        }
    }
}
