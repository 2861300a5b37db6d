//! The gateway: the HTTP face of Tether towards the host platform.
//!
//! A host's agents connect to one MCP endpoint per user (`/mcp`), authenticated by the host's
//! JWT; the gateway lists the tools of all of that user's upstream servers under one roof and
//! routes calls through tether-core's [`ReconnectionManager`](tether_core::ReconnectionManager).
//! Beside it: the user's server API (`/v1/me/…`), probes, metrics and an operator page.
//!
//! Owns host authentication ([`auth`]), the aggregated MCP server ([`mcp`]), the API
//! ([`api`]), metrics, the registry of users seen, and assembly plus graceful shutdown
//! ([`Gateway`]). It owns no tokens of upstream servers (that is tether-oauth) and no
//! reconnection rules (that is tether-core).

pub mod api;
pub mod auth;
mod body_deadline;
mod config;
mod dispatch;
mod hooks;
pub mod html;
mod listener;
pub mod mcp;
mod metrics;
mod server;
mod servers_view;
mod state;
mod users;

pub use config::{AdminConfig, GatewayConfig, HttpConfig, McpConfig};
pub use hooks::{
    CatalogError, CatalogServer, HookError, MetricsSource, PairForgetter, ReadinessCheck, Reloader,
    ServerCatalog,
};
pub use metrics::{CallOutcome, GatewayMetrics};
pub use server::{Gateway, GatewayBuilder, GatewayError, shutdown_signal};
pub use servers_view::{ServerAccess, ServersView};
pub use state::AppState;
pub use users::UserRegistry;
