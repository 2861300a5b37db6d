//! The state of one user's connection to one server, as reported to the host and the model.

use serde::Serialize;

use crate::ids::ServerName;
use crate::time::Timestamp;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ConnectionState {
    Connected,
    /// A first connection attempt is running.
    Connecting,
    /// The pair was connected or scheduled and is being brought back; `retry_at` when the next
    /// attempt waits (backoff, `Retry-After`, stagger).
    Reconnecting {
        retry_at: Option<Timestamp>,
    },
    NeedsAuthorization {
        authorization_url: Option<String>,
        /// The scope the server said it needs, when it refused a token for lacking it (a 403
        /// `insufficient_scope`): the authorization asked of the user is for this wider scope.
        #[serde(skip_serializing_if = "Option::is_none")]
        scope: Option<String>,
    },
    CircuitOpen {
        until: Timestamp,
    },
    Failed {
        retry_at: Timestamp,
        last_error: String,
    },
    Disconnected,
}

impl ConnectionState {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Connected => "connected",
            Self::Connecting => "connecting",
            Self::Reconnecting { .. } => "reconnecting",
            Self::NeedsAuthorization { .. } => "needs_authorization",
            Self::CircuitOpen { .. } => "circuit_open",
            Self::Failed { .. } => "failed",
            Self::Disconnected => "disconnected",
        }
    }

    pub fn is_connected(&self) -> bool {
        matches!(self, Self::Connected)
    }
}

/// One row of "my servers".
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServerStatus {
    pub name: ServerName,
    #[serde(flatten)]
    pub state: ConnectionState,
    /// When the pair entered this state.
    pub since: Timestamp,
    /// Tools known for the pair (live or from the cache).
    pub tools: usize,
}
