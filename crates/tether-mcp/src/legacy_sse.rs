//! The legacy HTTP+SSE transport (MCP 2024-11-05), which rmcp no longer ships a client for.
//!
//! Built directly on rmcp's [`Transport`] trait (not its sink/stream adapters: sending needs an
//! owned, `'static` future per message, which `Transport::send` gives us directly) with the
//! `sse-stream` crate rmcp itself uses for parsing:
//! 1. `GET <url>` with `Accept: text/event-stream` opens the session's one event stream;
//! 2. the first `endpoint` event names where to POST messages, resolved against `<url>`; an
//!    endpoint on another origin is refused (it would carry the user's token elsewhere);
//! 3. every client message is one `POST <endpoint>`; answers arrive on the event stream as
//!    `message` events and are handed to rmcp in order.
//!
//! It owns the two HTTP exchanges and the reader task. It must not reconnect a dropped stream
//! (the 2024-11-05 transport has no resumption: a new stream is a new session, which is the
//! core's decision), nor put URLs, headers, tokens or bodies into errors. Tokens come from the
//! session's [`Credentials`] on every request, as for Streamable HTTP.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use rmcp::RoleClient;
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::transport::Transport;
use sse_stream::{Error as SseError, Sse};
use tether_core::{ConnectError, ServerName, TransportFailure};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::debug;
use url::Url;

use crate::authorized::Credentials;
use crate::error::{self, Mapped};
use crate::sse_events::{self, MAX_SSE_EVENT_BYTES};

/// How many events may come before `endpoint`. The spec sends it first; a few pings or
/// comments before it are tolerated, an endless stream of other events is not.
const MAX_EVENTS_BEFORE_ENDPOINT: usize = 32;

/// Server messages read ahead of rmcp; the reader waits (and so stops reading the socket)
/// when rmcp falls this far behind.
const INBOUND_CAPACITY: usize = 16;

/// One session's transport: the event stream's reader task and what POSTs need.
#[derive(Debug)]
pub(crate) struct LegacySseTransport {
    post: Poster,
    inbound: mpsc::Receiver<ServerJsonRpcMessage>,
    reader: JoinHandle<()>,
}

/// Everything one POST needs; cloned into each send future.
#[derive(Debug, Clone)]
struct Poster {
    http: reqwest::Client,
    credentials: Option<Credentials>,
    endpoint: Arc<str>,
    timeout: Duration,
}

impl Drop for LegacySseTransport {
    fn drop(&mut self) {
        // The reader holds the HTTP response; ending it closes the stream (and the session,
        // server-side).
        self.reader.abort();
    }
}

/// Why one request failed, before it becomes a [`ConnectError`]: a 401 is kept apart because
/// it triggers the one token refresh.
enum Refusal {
    Unauthorized,
    Failed(ConnectError),
}

impl Refusal {
    fn into_error(self) -> ConnectError {
        match self {
            Self::Unauthorized => ConnectError::NeedsAuthorization {
                authorization_url: None,
                scope: None,
            },
            Self::Failed(e) => e,
        }
    }
}

impl LegacySseTransport {
    /// Opens the event stream and waits for the endpoint. The caller bounds the time (the
    /// connect timeout); the number of events read here is bounded by
    /// [`MAX_EVENTS_BEFORE_ENDPOINT`].
    pub(crate) async fn connect(
        http: reqwest::Client,
        credentials: Option<Credentials>,
        url: &str,
        post_timeout: Duration,
        server: &ServerName,
    ) -> Result<Self, ConnectError> {
        let base = Url::parse(url)
            .map_err(|_| ConnectError::Protocol("the server URL is not valid".to_owned()))?;
        let response = authorized(credentials.as_ref(), |token| {
            let mut request = http.get(base.as_str()).header(ACCEPT, "text/event-stream");
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            async move { check(request.send().await, Exchange::OpenStream) }
        })
        .await?;
        let is_event_stream = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().starts_with("text/event-stream"));
        if !is_event_stream {
            return Err(ConnectError::Protocol(
                "the server did not answer with an event stream".to_owned(),
            ));
        }
        let mut events = sse_events::events(response, MAX_SSE_EVENT_BYTES);
        let endpoint = wait_for_endpoint(&mut events, &base).await?;
        let (tx, inbound) = mpsc::channel(INBOUND_CAPACITY);
        let reader = tokio::spawn(read_messages(events, tx, server.clone()));
        debug!(server = %server, "legacy SSE stream open");
        Ok(Self {
            post: Poster {
                http,
                credentials,
                endpoint: Arc::from(endpoint.as_str()),
                timeout: post_timeout,
            },
            inbound,
            reader,
        })
    }
}

impl Transport<RoleClient> for LegacySseTransport {
    type Error = Mapped;

    fn send(
        &mut self,
        item: ClientJsonRpcMessage,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        let post = self.post.clone();
        async move { post.send(&item).await.map_err(Mapped) }
    }

    fn receive(&mut self) -> impl Future<Output = Option<ServerJsonRpcMessage>> + Send {
        // `None` once the reader has ended: rmcp then ends the service, and the session
        // reports itself closed (a lost session, for the core).
        self.inbound.recv()
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        self.reader.abort();
        self.inbound.close();
        Ok(())
    }
}

impl Poster {
    async fn send(&self, message: &ClientJsonRpcMessage) -> Result<(), ConnectError> {
        let body = serde_json::to_vec(message)
            .map_err(|_| ConnectError::Protocol("could not encode a message".to_owned()))?;
        authorized(self.credentials.as_ref(), |token| {
            let mut request = self
                .http
                .post(&*self.endpoint)
                .header(CONTENT_TYPE, "application/json")
                // The answer comes on the event stream; the POST itself only hands the message
                // over, so it gets the per-request limit rather than none.
                .timeout(self.timeout)
                .body(body.clone());
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            async move { check(request.send().await, Exchange::Post) }
        })
        .await
        // The body ("Accepted") carries nothing; dropping the response releases it.
        .map(drop)
    }
}

/// Runs one request with the session's token (if any), retrying once after a 401 when the
/// source has a new token.
async fn authorized<T, Fut>(
    credentials: Option<&Credentials>,
    call: impl Fn(Option<String>) -> Fut,
) -> Result<T, ConnectError>
where
    Fut: Future<Output = Result<T, Refusal>>,
{
    let result = match credentials {
        Some(credentials) => {
            credentials
                .send(
                    call,
                    |r: &Refusal| matches!(r, Refusal::Unauthorized),
                    Refusal::Failed,
                )
                .await
        }
        None => call(None).await,
    };
    result.map_err(Refusal::into_error)
}

#[derive(Debug, Clone, Copy)]
enum Exchange {
    OpenStream,
    Post,
}

/// A response with a success status, or why not.
fn check(
    result: Result<reqwest::Response, reqwest::Error>,
    exchange: Exchange,
) -> Result<reqwest::Response, Refusal> {
    let response = result.map_err(|e| Refusal::Failed(error::from_reqwest(&e)))?;
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    if status == StatusCode::UNAUTHORIZED {
        return Err(Refusal::Unauthorized);
    }
    let error = match (status, exchange) {
        (StatusCode::NOT_FOUND, Exchange::OpenStream) => {
            ConnectError::Protocol("the server answered HTTP 404 (no MCP endpoint)".to_owned())
        }
        // The endpoint's session id is unknown to the server (it restarted, or dropped the
        // session): this session is over.
        (StatusCode::NOT_FOUND, Exchange::Post) => ConnectError::SessionLost,
        _ => {
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok());
            error::from_status(status.as_u16(), retry_after)
        }
    };
    Err(Refusal::Failed(error))
}

/// Reads events until `endpoint` and resolves it against the stream's URL.
async fn wait_for_endpoint(
    events: &mut BoxStream<'static, Result<Sse, SseError>>,
    base: &Url,
) -> Result<Url, ConnectError> {
    for _ in 0..MAX_EVENTS_BEFORE_ENDPOINT {
        match events.next().await {
            Some(Ok(event)) if event.event.as_deref() == Some("endpoint") => {
                return resolve_endpoint(base, event.data.as_deref().unwrap_or_default());
            }
            // Pings and anything else a server sends before the endpoint.
            Some(Ok(_)) => {}
            Some(Err(_)) => {
                return Err(ConnectError::transport(
                    TransportFailure::Network,
                    "the server's event stream broke off",
                ));
            }
            None => {
                return Err(ConnectError::transport(
                    TransportFailure::Network,
                    "the server's event stream ended before naming its message endpoint",
                ));
            }
        }
    }
    Err(ConnectError::Protocol(format!(
        "the server sent {MAX_EVENTS_BEFORE_ENDPOINT} events without naming its message endpoint"
    )))
}

/// The POST URL from an `endpoint` event: relative to the stream's URL, and on its origin.
fn resolve_endpoint(base: &Url, data: &str) -> Result<Url, ConnectError> {
    let endpoint = base.join(data.trim()).map_err(|_| {
        ConnectError::Protocol("the server named an invalid message endpoint".to_owned())
    })?;
    if endpoint.origin() != base.origin() {
        return Err(ConnectError::Protocol(
            "the server named a message endpoint on another origin".to_owned(),
        ));
    }
    Ok(endpoint)
}

/// Hands the stream's JSON-RPC messages to rmcp until the stream ends, fails, or rmcp is gone.
///
/// The loop has no count bound on purpose: it lives as long as the session (the server's stream)
/// does, one event at a time, each bounded in size; the transport aborts it on close.
async fn read_messages(
    mut events: BoxStream<'static, Result<Sse, SseError>>,
    tx: mpsc::Sender<ServerJsonRpcMessage>,
    server: ServerName,
) {
    while let Some(event) = events.next().await {
        let event = match event {
            Ok(event) => event,
            Err(_) => {
                debug!(server = %server, "legacy SSE stream broke off");
                return;
            }
        };
        if !matches!(event.event.as_deref(), None | Some("") | Some("message")) {
            // A repeated `endpoint` or a server's own event types: nothing for rmcp.
            continue;
        }
        let Some(data) = event.data else { continue };
        match serde_json::from_str::<ServerJsonRpcMessage>(&data) {
            Ok(message) => {
                if tx.send(message).await.is_err() {
                    return;
                }
            }
            // Only the error class: the data is the server's.
            Err(e) => {
                debug!(server = %server, kind = ?e.classify(), "ignored an event that is not JSON-RPC")
            }
        }
    }
    debug!(server = %server, "legacy SSE stream ended");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Url {
        Url::parse("http://127.0.0.1:8080/sse").expect("valid")
    }

    #[test]
    fn relative_and_same_origin_endpoints_resolve() {
        let e = resolve_endpoint(&base(), "/message?sessionId=abc").expect("relative");
        assert_eq!(e.as_str(), "http://127.0.0.1:8080/message?sessionId=abc");
        let e = resolve_endpoint(&base(), " messages/?session_id=1\n").expect("path-relative");
        assert_eq!(e.as_str(), "http://127.0.0.1:8080/messages/?session_id=1");
        resolve_endpoint(&base(), "http://127.0.0.1:8080/m").expect("absolute, same origin");
    }

    #[test]
    fn endpoints_on_other_origins_are_refused() {
        for other in [
            "http://evil.example/message",
            "//evil.example/message",
            "http://127.0.0.1:8081/message",
            "https://127.0.0.1:8080/message",
        ] {
            let err = resolve_endpoint(&base(), other).expect_err(other);
            assert_eq!(
                err,
                ConnectError::Protocol(
                    "the server named a message endpoint on another origin".to_owned()
                )
            );
            assert!(!err.to_string().contains("evil"));
        }
    }
}
