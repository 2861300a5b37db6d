//! Opening a Streamable HTTP session: `initialize`, then `notifications/initialized`, the
//! lifecycle rmcp's client runs (`legacy_startup` in rmcp 3.11) with the same parameters.
//!
//! The caller bounds the whole handshake with the connect timeout. A request is never sent
//! twice here: a failure is the core's to retry.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::HeaderValue;
use rmcp::model::{
    ClientJsonRpcMessage, ClientNotification, ClientRequest, InitializeRequest, InitializeResult,
    InitializedNotification, RequestId,
};
use rmcp::transport::streamable_http_client::StreamableHttpPostResponse;
use tether_core::{ConnectError, ServerName};
use tracing::debug;

use super::endpoint::Endpoint;
use super::exchange::{self, AnswerError, ExchangeError, Phase};
use super::session::StreamableSession;
use crate::authorized::AuthorizedClient;
use crate::connector::client_config;
use crate::error;
use crate::offers::Offers;
use crate::resume::ResumePolicy;

/// What a session needs besides its endpoint.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    pub(crate) call_timeout: Duration,
    pub(crate) close_timeout: Duration,
    pub(crate) resume: ResumePolicy,
}

/// How the handshake ended.
#[derive(Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "returned once per connect and moved straight into an `Arc`"
)]
pub(crate) enum Handshake {
    Open(StreamableSession),
    /// The server named a protocol version without an `initialize` handshake (2026-07-28 or
    /// later: per-request `_meta` and SEP-2243 headers), which this session does not speak.
    /// rmcp's client does; the caller connects with it instead. The session is deleted.
    /// (A server following the spec never answers `initialize` with such a version.)
    NeedsPerRequestMetadata,
}

pub(crate) async fn open(
    server: ServerName,
    http: AuthorizedClient,
    uri: Arc<str>,
    settings: Settings,
) -> Result<Handshake, ConnectError> {
    let mut endpoint = Endpoint {
        http,
        uri,
        session_id: None,
        protocol_version: None,
        // rmcp does not resume the stream of an `initialize` answer either.
        resume: ResumePolicy {
            attempts: 0,
            ..settings.resume
        },
    };
    let id = RequestId::Number(0);
    // The same parameters as before: `client_config()` asks for rmcp's latest version.
    let initialize = ClientRequest::InitializeRequest(InitializeRequest::new(client_config()));
    let response = endpoint
        .post(ClientJsonRpcMessage::request(initialize, id.clone()))
        .await
        .map_err(|e| error::from_handshake(&e))?;
    let session_id = match &response {
        StreamableHttpPostResponse::Json(_, session_id)
        | StreamableHttpPostResponse::Sse(_, session_id) => session_id.clone(),
        _ => None,
    };
    let answer = exchange::read_answer(&endpoint, &id, response, Phase::Handshake)
        .await
        .map_err(handshake_failed)?;
    let result: InitializeResult = match answer.decode("initialize result") {
        Ok(result) => result,
        Err(AnswerError::Invalid(_)) => {
            return Err(ConnectError::Protocol(
                "the server's initialize answer was not valid".to_owned(),
            ));
        }
        Err(AnswerError::Refused(data)) => return Err(error::refused_initialize(&data)),
    };
    // A server that runs without sessions sends no id; rmcp's client accepts that too.
    endpoint.session_id = session_id.map(Arc::from);
    let version = result.protocol_version;
    // rmcp's client accepts any version the server names (the server chose among those it
    // supports, starting from ours); it only switches to per-request metadata for versions
    // without a handshake.
    if !version.has_initialize() {
        debug!(server = %server, version = %version, "the server named a version without initialize");
        if let Err(e) = endpoint.delete().await {
            debug!(server = %server, error = %error::from_http(&e), "deleting the session failed");
        }
        return Ok(Handshake::NeedsPerRequestMetadata);
    }
    // Sent with every later request, as rmcp's worker does; a value that cannot be a header
    // is left out, as rmcp leaves it out.
    endpoint.protocol_version = HeaderValue::from_str(version.as_str()).ok();

    let initialized = ClientJsonRpcMessage::notification(
        ClientNotification::InitializedNotification(InitializedNotification {
            method: Default::default(),
            extensions: Default::default(),
        }),
    );
    let failed = match endpoint.post(initialized).await {
        // 202 as the spec says; rmcp tolerates a JSON body too.
        Ok(StreamableHttpPostResponse::Accepted | StreamableHttpPostResponse::Json(..)) => None,
        Ok(_) => Some(ConnectError::Protocol(
            "the server answered notifications/initialized unexpectedly".to_owned(),
        )),
        Err(e) => Some(error::from_handshake(&e)),
    };
    if let Some(error) = failed {
        // The server holds a session for us that nobody will use: end it rather than leave
        // it until the server expires it (bounded, best effort).
        match tokio::time::timeout(settings.close_timeout, endpoint.delete()).await {
            Ok(Ok(())) => debug!(server = %server, "ended the half-opened session"),
            Ok(Err(e)) => {
                debug!(server = %server, error = %error::from_http(&e), "deleting the session failed");
            }
            Err(_) => debug!(server = %server, "deleting the session timed out"),
        }
        return Err(error);
    }
    endpoint.resume = settings.resume;
    debug!(server = %server, version = %version, "MCP handshake done");
    Ok(Handshake::Open(StreamableSession::new(
        server,
        endpoint,
        Offers::from_capabilities(&result.capabilities),
        settings.call_timeout,
        settings.close_timeout,
    )))
}

/// The connect error for a failed `initialize` exchange.
fn handshake_failed(error: ExchangeError) -> ConnectError {
    match error {
        ExchangeError::Send(e) => error::from_handshake(&e),
        ExchangeError::EndedEarly => error::closed_during_initialize(),
        other => other.into_connect_error(),
    }
}
