//! Tether's MCP client: implements tether-core's [`Connector`](tether_core::Connector) and
//! [`Session`](tether_core::Session) on top of the rmcp SDK.
//!
//! It owns the transports (MCP Streamable HTTP through reqwest with rustls, the legacy
//! 2024-11-05 HTTP+SSE transport, and stdio child processes), attaching access tokens from a
//! [`BearerSource`] to every HTTP request, the per-request timeouts, the bounded `tools/list`
//! pagination, the conversion between rmcp's model types and the core's
//! [`Tool`](tether_core::Tool) / [`ToolResult`](tether_core::ToolResult) (through their common
//! MCP JSON), and the mapping of every failure to the core's typed
//! [`ConnectError`](tether_core::ConnectError).
//!
//! **One HTTP client per origin.** [`McpConnector`] keeps one `reqwest::Client` per upstream
//! [`Origin`](tether_core::Origin), so every session of every user to the same origin shares one
//! connection pool (and one TLS session cache), while two origins never share a pool. Tokens are
//! per request, not per client.
//!
//! **Transports.** Streamable HTTP sessions are Tether's own lean ones by default (`streamable`:
//! no task, channel or buffer per idle session; each request is one `POST` and its answer in
//! the caller's future, sent and parsed by rmcp's `StreamableHttpClient` and model types, with
//! bounded `Last-Event-ID` resumption). With the standalone event stream switched on
//! ([`McpConnectorConfig::standalone_stream`]) they are rmcp's client service and worker, with
//! our token-attaching `StreamableHttpClient` and the same bounded resumption policy. rmcp has
//! no legacy SSE client any more: ours implements rmcp's `Transport` trait directly, parsing
//! the event stream with the `sse-stream` crate that rmcp uses too.
//!
//! What it must not do:
//! - decide *when* to connect, retry, back off or give up: that is the core's job, so rmcp's
//!   transparent session re-initialisation is switched off and rmcp's response cache (which
//!   would serve stale tool lists instead of reporting an outage) is disabled;
//! - store, refresh or look at tokens beyond attaching them: that is the [`BearerSource`]'s job
//!   (one refresh request per rejected request, no more);
//! - put tokens, header values, URLs or response bodies into error texts (they reach users and
//!   models);
//! - loop or read without a bound on what a server sends: `tools/list` stops at
//!   [`MAX_TOOL_PAGES`] pages, [`MAX_TOOLS`] tools and [`MAX_TOOL_LIST_BYTES`] bytes, stderr lines are cut, and response bodies
//!   and SSE events stay within rmcp's limits (16 MiB per JSON answer or event) or ours (16 MiB
//!   per legacy SSE event);
//! - start a browser authorization flow (401/403 become `NeedsAuthorization` and nothing else).

mod authorized;
mod bearer;
mod connector;
mod convert;
mod error;
mod http_leg;
mod legacy_sse;
mod offers;
mod resume;
mod session;
mod sse_events;
mod stdio;
mod streamable;
mod tool_pages;
mod upstream_client;
mod wires;

pub use bearer::{Bearer, BearerSource};
pub use connector::{McpConfigError, McpConnector, McpConnectorConfig};
pub use convert::{MAX_TOOL_LIST_BYTES, MAX_TOOL_PAGES, MAX_TOOLS};
pub use http_leg::{PooledBody, RequestClient, SendError, SetupFailed};
pub use session::McpSession;
pub use streamable::Wire;
pub use wires::{LocalWires, WireMemory};
