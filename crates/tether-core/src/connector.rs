//! How the core reaches upstream MCP servers: the [`Connector`] opens a [`Session`].
//!
//! Implemented by `tether-mcp` (Streamable HTTP, SSE, stdio); tests use scripted connectors.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Map, Value};

use crate::config::ServerConfig;
use crate::downstream::CallContext;
use crate::ids::UserId;
use crate::tool::{Tool, ToolResult};

/// What to do when the upstream asks for authorization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthorizationMode {
    /// Fail with [`ConnectError::NeedsAuthorization`]: background reconnects must never start a
    /// browser flow (SPEC §2.4).
    NeverInteractive,
    /// The caller can present an authorization URL to the user.
    Interactive,
}

/// Which of a server's lists changed (`notifications/{tools,prompts,resources}/list_changed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListKind {
    Tools,
    Prompts,
    Resources,
}

/// What an open session reports about itself while it lives.
pub trait SessionEvents: Send + Sync + fmt::Debug {
    /// The server said one of its lists changed.
    fn list_changed(&self, list: ListKind);

    /// The server said a resource changed (`notifications/resources/updated`, after a
    /// subscription); `uri` as the server knows it.
    fn resource_updated(&self, uri: &str) {
        let _ = uri;
    }

    /// The server logged a message outside any request (`notifications/message`, its params).
    fn message(&self, params: serde_json::Value) {
        let _ = params;
    }
}

/// One request to open a session for (user, server).
#[derive(Debug, Clone)]
pub struct ConnectRequest {
    pub user: UserId,
    pub server: Arc<ServerConfig>,
    /// The whole connect (including a token refresh and MCP initialize) must end within this.
    pub timeout: Duration,
    pub authorization: AuthorizationMode,
    /// Where the session reports the server's list changes; `None`: nobody listens.
    pub events: Option<Arc<dyn SessionEvents>>,
}

/// Why a transport-level attempt failed; all of these count against the upstream's origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportFailure {
    Refused,
    Timeout,
    /// An HTTP 5xx status.
    ServerError(u16),
    /// DNS, TLS, reset connections and other failures below HTTP.
    Network,
}

impl fmt::Display for TransportFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Refused => f.write_str("connection refused"),
            Self::Timeout => f.write_str("timed out"),
            Self::ServerError(status) => write!(f, "server error (HTTP {status})"),
            Self::Network => f.write_str("network error"),
        }
    }
}

/// Why a connect or a call failed.
///
/// Texts are shown to users and models (in tool stubs and the status API), so implementations
/// must build them from safe parts only: never a token, code, verifier or secret.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConnectError {
    #[error("authorization is needed")]
    NeedsAuthorization {
        /// Where the user can authorize, when the connector already knows it.
        authorization_url: Option<String>,
        /// The scope the server asked for when it refused the token as not wide enough (403
        /// `insufficient_scope`); `None` for a plain 401.
        scope: Option<String>,
    },
    #[error("{kind}{}{}", detail_suffix(.detail), retry_suffix(.retry_after))]
    Transport {
        kind: TransportFailure,
        detail: String,
        /// The server's `Retry-After` with a 5xx: the origin breaker waits that long (not its
        /// own open period) before its half-open probe.
        retry_after: Option<Duration>,
    },
    #[error("rate limited by the server{}", retry_suffix(.retry_after))]
    RateLimited { retry_after: Option<Duration> },
    #[error("the server lost the session")]
    SessionLost,
    /// The server answered the request with a JSON-RPC error: the session is fine, this one
    /// request was refused. The code and (clipped) message go back to the agent as they are.
    #[error("the server answered with error {code}: {message}")]
    Refused { code: i32, message: String },
    #[error("protocol error: {0}")]
    Protocol(String),
    /// Something of Tether's own failed before the upstream was asked (its token store is
    /// unreachable): nobody upstream is to blame, and retrying soon may work.
    #[error("Tether's own dependency failed: {0}")]
    Unavailable(String),
}

fn detail_suffix(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(": {detail}")
    }
}

fn retry_suffix(retry_after: &Option<Duration>) -> String {
    retry_after.map_or_else(String::new, |d| {
        format!(" (retry after {})", humantime::format_duration(d))
    })
}

/// JSON-RPC's "method not found".
pub const METHOD_NOT_FOUND: i32 = -32601;

/// Whose breaker a failure is counted against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blame {
    /// The upstream as a whole (refused, timeout, 5xx): protects it for every user.
    Origin,
    /// Only this user's relation to it (auth, session, protocol).
    Pair,
    /// Not a failure of anyone (rate limiting is a request to wait).
    Nobody,
}

impl ConnectError {
    pub fn transport(kind: TransportFailure, detail: impl Into<String>) -> Self {
        Self::Transport {
            kind,
            detail: detail.into(),
            retry_after: None,
        }
    }

    /// The same error, carrying the server's `Retry-After` when it is a transport failure or
    /// a rate limit.
    #[must_use]
    pub fn with_retry_after(mut self, value: Option<Duration>) -> Self {
        if let Self::Transport { retry_after, .. } | Self::RateLimited { retry_after } = &mut self {
            *retry_after = value;
        }
        self
    }

    /// How long the server asked to be left alone, when it said so.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Transport { retry_after, .. } | Self::RateLimited { retry_after } => *retry_after,
            _ => None,
        }
    }

    pub fn blame(&self) -> Blame {
        match self {
            Self::Transport { .. } => Blame::Origin,
            Self::NeedsAuthorization { .. }
            | Self::SessionLost
            | Self::Protocol(_)
            | Self::Refused { .. } => Blame::Pair,
            Self::RateLimited { .. } | Self::Unavailable(_) => Blame::Nobody,
        }
    }
}

/// What a session negotiated with its server.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Protocol {
    /// The revision, e.g. `2026-07-28` or `2025-11-25`.
    pub version: String,
    /// `stateless` (2026-07-28: no `initialize`, no session on the server) or `session`.
    pub wire: &'static str,
}

/// A live MCP session of one user with one server.
#[async_trait]
pub trait Session: Send + Sync + fmt::Debug + 'static {
    /// Every tool of the server (the implementation follows pagination within its limits).
    async fn list_tools(&self) -> Result<Vec<Tool>, ConnectError>;

    async fn call_tool(
        &self,
        name: &str,
        arguments: Option<Map<String, Value>>,
    ) -> Result<ToolResult, ConnectError>;

    /// A `tools/call` that may need the agent while it runs: the context's `_meta` goes
    /// upstream and the upstream's notifications and requests for it go to its downstream.
    /// Sessions that cannot carry them make a plain call.
    async fn call_tool_in(
        &self,
        name: &str,
        arguments: Option<Map<String, Value>>,
        context: &CallContext,
    ) -> Result<ToolResult, ConnectError> {
        let _ = context;
        self.call_tool(name, arguments).await
    }

    /// Another request of the MCP surface (resources, prompts, completion, logging), as JSON:
    /// the method and its params go upstream unchanged and the result comes back unchanged;
    /// the context as for [`Session::call_tool_in`].
    async fn request(
        &self,
        method: &str,
        params: Option<Value>,
        context: &CallContext,
    ) -> Result<Value, ConnectError> {
        let _ = (params, context);
        Err(ConnectError::Refused {
            code: METHOD_NOT_FOUND,
            message: format!("{method} is not supported by this session"),
        })
    }

    /// Whether the server declared `capability` (`resources`, `prompts`, `completions`,
    /// `logging`) when the session was opened.
    fn offers(&self, capability: &str) -> bool {
        let _ = capability;
        false
    }

    /// The protocol revision the session speaks and on which wire; `None` when the transport
    /// does not tell.
    fn protocol(&self) -> Option<Protocol> {
        None
    }

    /// Reads (or stops reading) the server's messages that belong to no request, such as list
    /// changes: on while the user has an agent session open to hear of them. Sessions that
    /// always read them ignore it.
    fn listen(&self, on: bool) {
        let _ = on;
    }

    /// Whether the session can still carry requests, as far as the transport knows.
    fn is_open(&self) -> bool;

    /// Ends the session (best effort; errors are the upstream's business).
    async fn close(&self);
}

/// Opens sessions.
#[async_trait]
pub trait Connector: Send + Sync + fmt::Debug + 'static {
    async fn connect(&self, request: ConnectRequest) -> Result<Arc<dyn Session>, ConnectError>;
}
