//! One server's state as the API shows it: the core's [`ServerStatus`] with the state's fields
//! flattened and timestamps in RFC 3339.

use serde::Serialize;
use tether_core::{ConnectionState, ServerStatus};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ServerRow {
    pub name: String,
    /// `connected`, `connecting`, `reconnecting`, `needs_authorization`, `circuit_open`,
    /// `failed` or `disconnected`.
    pub state: &'static str,
    /// When the pair entered this state.
    pub since: String,
    /// When the next attempt may happen (reconnecting, failed) or the breaker closes.
    pub retry_at: Option<String>,
    pub last_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorization_url: Option<String>,
    /// With `needs_authorization` after the server refused a token as not wide enough: the
    /// scope it asked for (the authorization link asks for it too).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Tools known for the pair (live or cached).
    pub tools: usize,
}

impl From<&ServerStatus> for ServerRow {
    fn from(status: &ServerStatus) -> Self {
        let (retry_at, last_error, authorization_url) = match &status.state {
            ConnectionState::Reconnecting { retry_at } => (*retry_at, None, None),
            ConnectionState::Failed {
                retry_at,
                last_error,
            } => (Some(*retry_at), Some(last_error.clone()), None),
            ConnectionState::CircuitOpen { until } => (Some(*until), None, None),
            ConnectionState::NeedsAuthorization {
                authorization_url, ..
            } => (None, None, authorization_url.clone()),
            ConnectionState::Connected
            | ConnectionState::Connecting
            | ConnectionState::Disconnected => (None, None, None),
        };
        Self {
            name: status.name.to_string(),
            state: status.state.name(),
            since: status.since.rfc3339(),
            retry_at: retry_at.map(|t| t.rfc3339()),
            last_error,
            authorization_url,
            scope: match &status.state {
                ConnectionState::NeedsAuthorization { scope, .. } => scope.clone(),
                _ => None,
            },
            tools: status.tools,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use tether_core::{ServerName, Timestamp};

    use super::*;

    #[test]
    fn a_failed_row_flattens_its_state() {
        let status = ServerStatus {
            name: ServerName::new("github"),
            state: ConnectionState::Failed {
                retry_at: Timestamp::from_millis(1_700_000_300_000),
                last_error: "connection refused".into(),
            },
            since: Timestamp::from_millis(1_700_000_000_000),
            tools: 3,
        };
        let row = serde_json::to_value(ServerRow::from(&status)).expect("serializes");
        assert_eq!(
            row,
            json!({
                "name": "github",
                "state": "failed",
                "since": "2023-11-14T22:13:20Z",
                "retry_at": "2023-11-14T22:18:20Z",
                "last_error": "connection refused",
                "tools": 3
            })
        );
    }
}
