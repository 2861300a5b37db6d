//! Real peers for Tether's tests and benchmarks, so that no test has to fake the other side.
//!
//! - [`DemoTools`]: an rmcp server handler with `echo` and `add` (and a count of the sessions
//!   initialized, to see how often a gateway connected);
//! - [`serve_streamable_http`]: serves it over MCP Streamable HTTP on a loopback address;
//! - [`serve_protected`]: the same behind OAuth: bearer tokens checked by RFC 7662
//!   introspection at the authorization server, 401 challenges pointing at RFC 9728 metadata;
//! - [`AuthServer`]: a small authorization server for what `oidc-provider` cannot express (a
//!   strict `resource` comparison, post-only client authentication, RFC 9207 `iss` right, wrong
//!   or missing, a mismatching `issuer`, no metadata at all, client ID metadata documents), and
//!   [`DocumentHost`] for the protected resource metadata those tests publish;
//! - [`OidcPeer`]: the `oidc-provider` authorization server (node, from
//!   `crates/tether-oauth/tests/peers`), to put in front of [`serve_protected`];
//! - the `tether-testkit-mcp` binary: the same as a process of its own, which tests can kill
//!   and restart (a real outage) and benchmarks can keep out of their own memory figures; it
//!   serves the counters at `GET /stats` ([`serve_demo_with_stats`]);
//! - [`services`]: a fresh database on the machine's PostgreSQL, and private `redis-server` and
//!   PostgreSQL instances a test may stop and start (an outage, a restart).
//!
//! It must stay a test peer: loopback only, nothing persistent, no knowledge of Tether's rules.

pub mod auth_server;
mod demo_tools;
mod document_host;
mod http_server;
pub mod json_strategies;
pub mod modern_peer;
pub mod oidc;
mod protected;
pub mod services;
mod serving;

pub use auth_server::{AuthServer, AuthServerConfig, IssResponse, serve_auth_server};
pub use demo_tools::{DemoTools, blob_bytes};
pub use document_host::{DocumentHost, serve_documents};
pub use http_server::{
    Outage, RunningServer, serve_demo_with_outage, serve_demo_with_stats, serve_streamable_http,
};
pub use modern_peer::ModernPeer;
pub use oidc::{OidcOptions, OidcPeer};
pub use protected::{ProtectedServer, ProtectionConfig, WELL_KNOWN_METADATA_PATH, serve_protected};
