//! Attaching access tokens to HTTP requests: [`AuthorizedClient`] wraps a per-origin
//! `reqwest::Client` as rmcp's [`StreamableHttpClient`], and [`Credentials::send`] is the
//! one place that asks the [`BearerSource`] for a token, sends, and on a 401 asks it once more
//! and retries once. The legacy SSE transport uses the same [`Credentials::send`].
//!
//! Modelled on rmcp's own `AuthClient<C>` (`transport/common/auth/streamable_http_client.rs`),
//! with our source instead of rmcp's `AuthorizationManager`: the token comes from the source on
//! *every* request (so a refreshed token is used mid-session, also by the SSE reconnects rmcp
//! makes on its own), and the `auth_header` rmcp passes in is ignored.
//!
//! What it must not do: retry more than once per request (a second 401 is the answer), start
//! an authorization flow, or put a token into an error or log line.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::sync::Arc;

use futures::stream::BoxStream;
use reqwest::header::{HeaderName, HeaderValue};
use rmcp::model::ClientJsonRpcMessage;
use rmcp::transport::streamable_http_client::{
    SseError, StreamableHttpClient, StreamableHttpError, StreamableHttpPostResponse,
    StreamableHttpResponseLimits,
};
use sse_stream::Sse;
use tether_core::{ConnectError, ServerName, UserId};
use tracing::debug;

use crate::bearer::BearerSource;
use crate::error::Mapped;
use crate::http_leg::RequestClient;
use crate::streamable::Leg;

type HttpError = StreamableHttpError<reqwest::Error>;
type Headers = HashMap<HeaderName, HeaderValue>;

/// Whose token a session's requests carry, where it comes from, and the server URL it must
/// have been issued for.
#[derive(Debug, Clone)]
pub(crate) struct Credentials {
    source: Arc<dyn BearerSource>,
    user: UserId,
    server: ServerName,
    url: Arc<str>,
}

impl Credentials {
    pub(crate) fn new(
        source: Arc<dyn BearerSource>,
        user: UserId,
        server: ServerName,
        url: Arc<str>,
    ) -> Self {
        Self {
            source,
            user,
            server,
            url,
        }
    }

    /// Runs `call` with the current token; when it fails with what `unauthorized` recognises
    /// as a 401, asks the source for a new token once and runs `call` once more with it.
    /// Failures of the source itself become `E` through `source_failed`.
    pub(crate) async fn send<T, E, Fut>(
        &self,
        call: impl Fn(Option<String>) -> Fut,
        unauthorized: impl Fn(&E) -> bool,
        source_failed: impl Fn(ConnectError) -> E,
    ) -> Result<T, E>
    where
        Fut: Future<Output = Result<T, E>>,
    {
        let sent = self
            .source
            .bearer(&self.user, &self.server, &self.url)
            .await
            .map_err(&source_failed)?;
        let first = call(sent.as_ref().map(|b| b.secret().to_owned())).await;
        let error = match first {
            Err(error) if unauthorized(&error) => error,
            other => return other,
        };
        // Without a token there is nothing to refresh: the 401 is the answer.
        let Some(sent) = sent else { return Err(error) };
        match self
            .source
            .rejected(&self.user, &self.server, &self.url, &sent)
            .await
        {
            Ok(Some(fresh)) if fresh != sent => {
                debug!(user = %self.user, server = %self.server, "token rejected; retrying once with a refreshed one");
                call(Some(fresh.secret().to_owned())).await
            }
            // No new token: the server's 401 stands (it maps to NeedsAuthorization).
            Ok(_) => Err(error),
            Err(e) => Err(source_failed(e)),
        }
    }

    async fn send_http<T, Fut>(&self, call: impl Fn(Option<String>) -> Fut) -> Result<T, HttpError>
    where
        Fut: Future<Output = Result<T, HttpError>>,
    {
        let result = self
            .send(call, is_unauthorized, |e| {
                StreamableHttpError::Io(io::Error::other(Mapped(e)))
            })
            .await;
        if let Err(StreamableHttpError::InsufficientScope(refusal)) = &result {
            self.source
                .insufficient_scope(&self.user, &self.server, &refusal.www_authenticate_header)
                .await;
        }
        result
    }
}

/// Whether rmcp's reqwest client saw HTTP 401. It reports a 401 in three shapes: with a
/// `WWW-Authenticate` challenge as `AuthRequired`; without one, as the `reqwest::Error` of
/// `error_for_status` (GET, DELETE) or as the `"HTTP 401 …"` text of `UnexpectedServerResponse`
/// (POST). Only the status is read, never the challenge or body.
fn is_unauthorized(error: &HttpError) -> bool {
    match error {
        StreamableHttpError::AuthRequired(_) => true,
        StreamableHttpError::Client(e) => e.status() == Some(reqwest::StatusCode::UNAUTHORIZED),
        StreamableHttpError::UnexpectedServerResponse(text) => text.starts_with("HTTP 401"),
        _ => false,
    }
}

/// rmcp's Streamable HTTP client with tokens from a [`BearerSource`]; without credentials it is
/// the plain per-origin client. Cheap to clone (rmcp clones it for every request).
#[derive(Debug, Clone)]
pub(crate) struct AuthorizedClient {
    http: reqwest::Client,
    /// The origin's hyper client for the requests the lean session sends itself; `None` keeps
    /// them on `http` (the environment proxies the origin, or rmcp's client owns the session).
    direct: Option<RequestClient>,
    credentials: Option<Credentials>,
    /// Whether the standalone event stream is refused (see [`Self::refusing_standalone_stream`]).
    no_standalone_stream: bool,
}

impl AuthorizedClient {
    pub(crate) fn new(http: reqwest::Client, credentials: Option<Credentials>) -> Self {
        Self {
            http,
            direct: None,
            credentials,
            no_standalone_stream: false,
        }
    }

    /// Answers rmcp's `GET` of the standalone event stream with
    /// [`StreamableHttpError::ServerDoesNotSupportSse`] when `refuse` is set
    /// ([`McpConnectorConfig::standalone_stream`](crate::McpConnectorConfig::standalone_stream)
    /// off).
    ///
    /// rmcp 3.11 has no setting for that stream: its worker always opens it after `initialize`,
    /// with a `GET` that has a session id and no `Last-Event-ID`, and skips it quietly on that
    /// error (what a server's 405 becomes). Every other `GET` it makes resumes a stream and
    /// carries `Last-Event-ID`: it resumes a request's response stream only after an event id,
    /// so those pass unchanged.
    pub(crate) fn refusing_standalone_stream(mut self, refuse: bool) -> Self {
        self.no_standalone_stream = refuse;
        self
    }

    fn refuses(&self, last_event_id: Option<&String>) -> bool {
        self.no_standalone_stream && last_event_id.is_none()
    }

    /// Sends the requests of [`send_with`](Self::send_with) with `direct` when there is one.
    pub(crate) fn with_direct(mut self, direct: Option<RequestClient>) -> Self {
        self.direct = direct;
        self
    }

    /// Runs `call` with the per-origin client (a reference count) and the source's token,
    /// under the same rule as every request of this client (one retry with a refreshed token
    /// after a 401).
    pub(crate) async fn send_with<T, Fut>(
        &self,
        call: impl Fn(Leg, Option<String>) -> Fut,
    ) -> Result<T, HttpError>
    where
        Fut: Future<Output = Result<T, HttpError>>,
    {
        self.send(|token| {
            let leg = match &self.direct {
                Some(direct) => Leg::Direct(direct.clone()),
                None => Leg::Proxied(self.http.clone()),
            };
            call(leg, token)
        })
        .await
    }

    async fn send<T, Fut>(&self, call: impl Fn(Option<String>) -> Fut) -> Result<T, HttpError>
    where
        Fut: Future<Output = Result<T, HttpError>>,
    {
        match &self.credentials {
            Some(credentials) => credentials.send_http(call).await,
            None => call(None).await,
        }
    }
}

// Every method forwards to reqwest's implementation (including the `_with_…` variants, so
// rmcp's size limits stay enforced) with the source's token instead of `_auth_header`.
impl StreamableHttpClient for AuthorizedClient {
    type Error = reqwest::Error;

    async fn post_message(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        _auth_header: Option<String>,
        custom_headers: Headers,
    ) -> Result<StreamableHttpPostResponse, HttpError> {
        self.send(|token| {
            self.http.post_message(
                uri.clone(),
                message.clone(),
                session_id.clone(),
                token,
                custom_headers.clone(),
            )
        })
        .await
    }

    async fn post_message_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        _auth_header: Option<String>,
        custom_headers: Headers,
        max_sse_event_size: usize,
    ) -> Result<StreamableHttpPostResponse, HttpError> {
        self.send(|token| {
            self.http.post_message_with_max_sse_event_size(
                uri.clone(),
                message.clone(),
                session_id.clone(),
                token,
                custom_headers.clone(),
                max_sse_event_size,
            )
        })
        .await
    }

    async fn post_message_with_response_limits(
        &self,
        uri: Arc<str>,
        message: ClientJsonRpcMessage,
        session_id: Option<Arc<str>>,
        _auth_header: Option<String>,
        custom_headers: Headers,
        limits: StreamableHttpResponseLimits,
    ) -> Result<StreamableHttpPostResponse, HttpError> {
        self.send(|token| {
            self.http.post_message_with_response_limits(
                uri.clone(),
                message.clone(),
                session_id.clone(),
                token,
                custom_headers.clone(),
                limits,
            )
        })
        .await
    }

    async fn delete_session(
        &self,
        uri: Arc<str>,
        session_id: Arc<str>,
        _auth_header: Option<String>,
        custom_headers: Headers,
    ) -> Result<(), HttpError> {
        self.send(|token| {
            self.http.delete_session(
                uri.clone(),
                session_id.clone(),
                token,
                custom_headers.clone(),
            )
        })
        .await
    }

    async fn get_stream(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        _auth_header: Option<String>,
        custom_headers: Headers,
    ) -> Result<BoxStream<'static, Result<Sse, SseError>>, HttpError> {
        if self.refuses(last_event_id.as_ref()) {
            return Err(StreamableHttpError::ServerDoesNotSupportSse);
        }
        self.send(|token| {
            self.http.get_stream(
                uri.clone(),
                session_id.clone(),
                last_event_id.clone(),
                token,
                custom_headers.clone(),
            )
        })
        .await
    }

    async fn get_stream_with_max_sse_event_size(
        &self,
        uri: Arc<str>,
        session_id: Option<Arc<str>>,
        last_event_id: Option<String>,
        _auth_header: Option<String>,
        custom_headers: Headers,
        max_sse_event_size: usize,
    ) -> Result<BoxStream<'static, Result<Sse, SseError>>, HttpError> {
        if self.refuses(last_event_id.as_ref()) {
            return Err(StreamableHttpError::ServerDoesNotSupportSse);
        }
        self.send(|token| {
            self.http.get_stream_with_max_sse_event_size(
                uri.clone(),
                session_id.clone(),
                last_event_id.clone(),
                token,
                custom_headers.clone(),
                max_sse_event_size,
            )
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bearer::Bearer;

    #[test]
    fn only_401_counts_as_a_rejected_token() {
        assert!(is_unauthorized(
            &StreamableHttpError::UnexpectedServerResponse("HTTP 401 Unauthorized: secret".into())
        ));
        assert!(!is_unauthorized(
            &StreamableHttpError::UnexpectedServerResponse("HTTP 403 Forbidden: secret".into())
        ));
        assert!(!is_unauthorized(&StreamableHttpError::SessionExpired));
    }

    #[test]
    fn credentials_debug_shows_no_token() {
        #[derive(Debug)]
        struct Fixed;
        #[async_trait::async_trait]
        impl BearerSource for Fixed {
            async fn bearer(
                &self,
                _: &UserId,
                _: &ServerName,
                _: &str,
            ) -> Result<Option<Bearer>, ConnectError> {
                Ok(Some(Bearer::new("secret-token")))
            }
            async fn rejected(
                &self,
                _: &UserId,
                _: &ServerName,
                _: &str,
                _: &Bearer,
            ) -> Result<Option<Bearer>, ConnectError> {
                Ok(None)
            }
        }
        let c = Credentials::new(
            Arc::new(Fixed),
            "alice".into(),
            "s".into(),
            Arc::from("https://mcp.example/mcp"),
        );
        assert!(!format!("{c:?}").contains("secret"));
    }

    /// The standalone stream's `GET` (no `Last-Event-ID`) is refused without a request when
    /// asked; resumptions, and every `GET` of a client not asked to refuse, are sent.
    #[tokio::test]
    async fn only_the_standalone_stream_is_refused_and_without_a_request() {
        use std::sync::atomic::{AtomicUsize, Ordering};

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let uri: Arc<str> =
            format!("http://{}/mcp", listener.local_addr().expect("address")).into();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counted = accepted.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                drop(socket);
            }
        });
        let refused = |result: &Result<_, HttpError>| {
            matches!(result, Err(StreamableHttpError::ServerDoesNotSupportSse))
        };
        let session: Option<Arc<str>> = Some("s-1".into());

        let http = reqwest::Client::new();
        let refusing = AuthorizedClient::new(http.clone(), None).refusing_standalone_stream(true);
        let standalone = refusing
            .get_stream(uri.clone(), session.clone(), None, None, HashMap::new())
            .await;
        assert!(refused(&standalone));
        let bounded = refusing
            .get_stream_with_max_sse_event_size(
                uri.clone(),
                session.clone(),
                None,
                None,
                HashMap::new(),
                1024,
            )
            .await;
        assert!(refused(&bounded));
        assert_eq!(accepted.load(Ordering::SeqCst), 0, "no request was sent");

        let resumed = refusing
            .get_stream(
                uri.clone(),
                session.clone(),
                Some("ev-1".to_owned()),
                None,
                HashMap::new(),
            )
            .await;
        assert!(!refused(&resumed));
        let allowing = AuthorizedClient::new(http, None);
        let opened = allowing
            .get_stream(uri, session, None, None, HashMap::new())
            .await;
        assert!(!refused(&opened));
        for _ in 0..100 {
            if accepted.load(Ordering::SeqCst) >= 2 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 2, "both were sent");
    }
}
