//! The gateway's configuration (`[gateway]` in the TOML file): host authentication, the `/mcp`
//! endpoint, per-server tool filters and the operator credential.
//!
//! Secrets are never written in the file: the file names the environment variables that hold
//! them, so that `tether check` can print the effective settings without leaking anything.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tether_core::ServerName;

use super::auth::HostAuthConfig;
use super::mcp::ToolFilter;

/// Everything the gateway needs besides the [`tether_core::ReconnectionManager`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    pub host_auth: HostAuthConfig,
    #[serde(default)]
    pub mcp: McpConfig,
    /// Tool allow/deny lists by server name (`[gateway.tools.github] deny = ["delete_repo"]`).
    #[serde(default)]
    pub tools: BTreeMap<ServerName, ToolFilter>,
    #[serde(default)]
    pub admin: AdminConfig,
    /// How many distinct users the operator page and metrics remember (least recently seen are
    /// forgotten first). Bounds memory whatever the number of users.
    #[serde(default = "default_max_tracked_users")]
    pub max_tracked_users: usize,
    #[serde(default)]
    pub http: HttpConfig,
}

/// The listener (`[gateway.http]`): what one slow or idle client may hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// A request's headers must arrive within this, or the connection is closed (slowloris).
    /// Keep-alive connections idle for this long are closed too.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// A request body must arrive within this after its headers, or the answer is 408 and the
    /// connection is closed.
    #[serde(with = "humantime_serde")]
    pub body_read_timeout: Duration,
    /// Connections served at once; further ones wait in the listen backlog until one closes.
    pub max_connections: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(30),
            body_read_timeout: Duration::from_secs(30),
            max_connections: 4096,
        }
    }
}

fn default_max_tracked_users() -> usize {
    100_000
}

/// The aggregated MCP endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct McpConfig {
    /// Between server and tool name in the aggregated tool names (`github__search`).
    pub tool_separator: String,
    /// The largest accepted POST body; larger ones get 413.
    pub max_body_bytes: usize,
    /// `Host` values accepted on `/mcp` (DNS-rebinding protection): names, or `name:port`.
    /// Empty: the public URL's host and the loopback names.
    pub allowed_hosts: Vec<String>,
    /// `Origin` values accepted on `/mcp` (`https://app.example.com`); requests without one
    /// pass. Empty: the public URL's origin and loopback origins.
    pub allowed_origins: Vec<String>,
    /// An MCP session without traffic for this long is closed.
    #[serde(with = "humantime_serde")]
    pub session_idle_timeout: Duration,
    /// Open MCP sessions one user may hold; past it a new one gets 429 with `Retry-After`.
    pub max_sessions_per_user: usize,
}

impl Default for McpConfig {
    fn default() -> Self {
        Self {
            tool_separator: "__".to_owned(),
            max_body_bytes: 4 * 1024 * 1024,
            allowed_hosts: Vec::new(),
            allowed_origins: Vec::new(),
            session_idle_timeout: Duration::from_secs(300),
            max_sessions_per_user: 32,
        }
    }
}

/// Who may read the operator page (`/status`). With nothing configured the page is off (404).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Environment variable holding a bearer token for `/status`.
    pub token_env: Option<String>,
    /// HTTP Basic user name for `/status` (with `password_env`).
    pub basic_user: Option<String>,
    /// Environment variable holding the HTTP Basic password.
    pub password_env: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minimal_table_gets_the_documented_defaults() {
        let config: GatewayConfig = toml::from_str(
            r#"
            [host_auth]
            issuer = "https://host.example"
            audience = "tether"
            hs256_secret_env = "TETHER_HOST_SECRET"
            [tools.github]
            deny = ["delete_repo"]
            "#,
        )
        .expect("valid");
        assert_eq!(config.mcp, McpConfig::default());
        assert_eq!(config.mcp.tool_separator, "__");
        assert_eq!(config.mcp.max_body_bytes, 4 * 1024 * 1024);
        assert_eq!(config.admin, AdminConfig::default());
        assert_eq!(config.max_tracked_users, 100_000);
        assert_eq!(config.http, HttpConfig::default());
        assert_eq!(config.mcp.max_sessions_per_user, 32);
        let github = &config.tools[&ServerName::new("github")];
        assert_eq!(github.deny, ["delete_repo"]);
        assert!(github.allow.is_none());
    }

    #[test]
    fn typos_are_refused() {
        let err = toml::from_str::<GatewayConfig>(
            "[host_auth]\nissuer = \"i\"\naudience = \"a\"\n[mcp]\nseparator = \"::\"",
        )
        .expect_err("unknown key");
        assert!(err.to_string().contains("separator"), "{err}");
    }
}
