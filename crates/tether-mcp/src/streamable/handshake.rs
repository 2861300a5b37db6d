//! Opening a Streamable HTTP session. First `server/discover` on the 2026-07-28 wire: a server
//! that answers it speaks that wire, and the session is only its endpoint (no `initialize`, no
//! session id). A server that refuses it without a modern error (any other JSON-RPC error, or a
//! 4xx without one; the spec's backward-compatibility rule) is an earlier revision's: then
//! `initialize` with the newest version that has it, and `notifications/initialized`, the
//! lifecycle rmcp's client runs (`legacy_startup` in rmcp 3.11). A server already known to be
//! of an earlier revision skips the discovery.
//!
//! The caller bounds the whole handshake with the connect timeout. A request is never sent
//! twice here: a failure is the core's to retry.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::HeaderValue;
use rmcp::model::{
    ClientJsonRpcMessage, ClientNotification, ClientRequest, CustomRequest, ErrorCode,
    InitializeRequest, InitializeResult, InitializedNotification, ProtocolVersion, RequestId,
    ServerCapabilities,
};
use rmcp::transport::streamable_http_client::StreamableHttpError;
use rmcp::transport::streamable_http_client::StreamableHttpPostResponse;
use serde::Deserialize;
use tether_core::{ConnectError, ServerName};
use tracing::debug;

use super::endpoint::Endpoint;
use super::exchange::{self, Answer, AnswerError, ExchangeError, Phase};
use super::modern;
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

/// Which wire a Streamable HTTP server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// 2026-07-28: `server/discover`, no session, per-request `_meta` and standard headers.
    Modern,
    /// An earlier revision: `initialize` and a session.
    Legacy,
}

impl Wire {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Modern => "modern",
            Self::Legacy => "legacy",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "modern" => Some(Self::Modern),
            "legacy" => Some(Self::Legacy),
            _ => None,
        }
    }
}

/// What `server/discover` told.
enum Discovered {
    Modern(ServerCapabilities),
    /// An earlier revision; `initialize` proposes this version.
    Legacy(ProtocolVersion),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DiscoverAnswer {
    #[serde(default)]
    supported_versions: Vec<String>,
    #[serde(default)]
    capabilities: ServerCapabilities,
}

/// Opens a session; `known` is the wire the server was last found to speak, if any.
pub(crate) async fn open(
    server: ServerName,
    http: AuthorizedClient,
    uri: Arc<str>,
    settings: Settings,
    known: Option<Wire>,
) -> Result<Handshake, ConnectError> {
    let target = super::post::Target::parse(&uri);
    let mut endpoint = Endpoint {
        http,
        uri,
        target,
        session_id: None,
        protocol_version: None,
        // rmcp does not resume the stream of an `initialize` answer either.
        resume: ResumePolicy {
            attempts: 0,
            ..settings.resume
        },
        modern: false,
        tool_headers: None,
    };
    let version = match known {
        Some(Wire::Legacy) => ProtocolVersion::LATEST_WITH_INITIALIZE,
        Some(Wire::Modern) | None => match discover(&server, &mut endpoint).await? {
            Discovered::Modern(capabilities) => {
                endpoint.modern = true;
                endpoint.tool_headers = Some(Default::default());
                endpoint.protocol_version = HeaderValue::from_str(modern::VERSION.as_str()).ok();
                endpoint.resume = settings.resume;
                debug!(server = %server, version = %modern::VERSION, "MCP server discovered");
                return Ok(Handshake::Open(StreamableSession::new(
                    server,
                    endpoint,
                    Offers::from_capabilities(&capabilities),
                    settings.call_timeout,
                    settings.close_timeout,
                )));
            }
            Discovered::Legacy(version) => version,
        },
    };
    initialize(server, endpoint, settings, version).await
}

/// `server/discover` on the 2026-07-28 wire, and what its answer says about the server.
async fn discover(
    server: &ServerName,
    endpoint: &mut Endpoint,
) -> Result<Discovered, ConnectError> {
    endpoint.modern = true;
    let id = RequestId::Number(0);
    let request = ClientRequest::CustomRequest(CustomRequest::new("server/discover", None));
    let answer = match endpoint
        .post(ClientJsonRpcMessage::request(request, id.clone()))
        .await
    {
        Ok(response) => {
            exchange::read_answer(endpoint, &id, response.into(), Phase::Handshake).await
        }
        Err(e) => Err(ExchangeError::Send(e)),
    };
    endpoint.modern = false;
    let legacy = Discovered::Legacy(ProtocolVersion::LATEST_WITH_INITIALIZE);
    match answer {
        Ok(Answer::Result(raw)) => {
            let Ok(found) = serde_json::from_str::<DiscoverAnswer>(raw.get()) else {
                return Err(ConnectError::Protocol(
                    "the server's server/discover answer was not valid".to_owned(),
                ));
            };
            if found
                .supported_versions
                .iter()
                .any(|v| v == modern::VERSION.as_str())
            {
                Ok(Discovered::Modern(found.capabilities))
            } else {
                Ok(Discovered::Legacy(newest_with_initialize(
                    &found.supported_versions,
                )))
            }
        }
        Ok(Answer::Error(data)) if data.code == ErrorCode::UNSUPPORTED_PROTOCOL_VERSION => {
            let supported: Vec<String> = data
                .data
                .as_ref()
                .and_then(|d| d.get("supported"))
                .and_then(|s| serde_json::from_value(s.clone()).ok())
                .unwrap_or_default();
            debug!(server = %server, "the server does not speak 2026-07-28");
            Ok(Discovered::Legacy(newest_with_initialize(&supported)))
        }
        Ok(Answer::Error(data))
            if data.code == ErrorCode::HEADER_MISMATCH
                || data.code == ErrorCode::MISSING_REQUIRED_CLIENT_CAPABILITY =>
        {
            // A server of this revision that finds fault with the request: no fallback.
            Err(error::from_jsonrpc(&data))
        }
        Ok(Answer::Error(_)) => {
            debug!(server = %server, "server/discover refused: an earlier revision");
            Ok(legacy)
        }
        Err(ExchangeError::Send(
            StreamableHttpError::UnexpectedServerResponse(_)
            | StreamableHttpError::UnexpectedContentType(_),
        )) => {
            debug!(server = %server, "server/discover refused over HTTP: an earlier revision");
            Ok(legacy)
        }
        Err(e) => Err(handshake_failed(e)),
    }
}

/// The newest of `supported` that has an `initialize` handshake and that Tether knows;
/// 2025-11-25 when none does (the server then answers with its own choice).
fn newest_with_initialize(supported: &[String]) -> ProtocolVersion {
    ProtocolVersion::KNOWN_VERSIONS
        .iter()
        .filter(|known| known.has_initialize())
        .filter(|known| supported.iter().any(|s| s == known.as_str()))
        .max_by(|a, b| a.as_str().cmp(b.as_str()))
        .cloned()
        .unwrap_or(ProtocolVersion::LATEST_WITH_INITIALIZE)
}

/// `initialize` proposing `version`, then `notifications/initialized`.
async fn initialize(
    server: ServerName,
    mut endpoint: Endpoint,
    settings: Settings,
    version: ProtocolVersion,
) -> Result<Handshake, ConnectError> {
    let id = RequestId::Number(0);
    // Never a version without `initialize` (rmcp's `LATEST` is 2026-07-28).
    let mut config = client_config();
    config.protocol_version = version;
    let initialize = ClientRequest::InitializeRequest(InitializeRequest::new(config));
    let response = endpoint
        .post(ClientJsonRpcMessage::request(initialize, id.clone()))
        .await
        .map_err(|e| error::from_handshake(&e))?;
    let session_id = match &response {
        StreamableHttpPostResponse::Json(_, session_id)
        | StreamableHttpPostResponse::Sse(_, session_id) => session_id.clone(),
        _ => None,
    };
    let answer = exchange::read_answer(&endpoint, &id, response.into(), Phase::Handshake)
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
