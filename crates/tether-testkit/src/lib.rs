//! Real peers for Tether's tests and benchmarks, so that no test has to fake the other side.
//!
//! - [`DemoTools`]: an rmcp server handler with `echo` and `add` (and a count of the sessions
//!   initialized, to see how often a gateway connected);
//! - [`serve_streamable_http`]: serves it over MCP Streamable HTTP on a loopback address;
//! - [`serve_protected`]: the same behind OAuth: bearer tokens checked by RFC 7662
//!   introspection at the authorization server, 401 challenges pointing at RFC 9728 metadata;
//! - [`OidcPeer`]: the `oidc-provider` authorization server (node, from
//!   `crates/tether-oauth/tests/peers`), to put in front of [`serve_protected`];
//! - the `tether-testkit-mcp` binary: the same as a process of its own, which tests can kill
//!   and restart (a real outage) and benchmarks can keep out of their own memory figures; it
//!   serves the counters at `GET /stats` ([`serve_demo_with_stats`]);
//! - [`services`]: a fresh database on the machine's PostgreSQL, and private `redis-server` and
//!   PostgreSQL instances a test may stop and start (an outage, a restart).
//!
//! It must stay a test peer: loopback only, nothing persistent, no knowledge of Tether's rules.

mod demo_tools;
mod http_server;
pub mod json_strategies;
pub mod oidc;
mod protected;
pub mod services;

pub use demo_tools::{DemoTools, blob_bytes};
pub use http_server::{
    Outage, RunningServer, serve_demo_with_outage, serve_demo_with_stats, serve_streamable_http,
};
pub use oidc::{OidcOptions, OidcPeer};
pub use protected::{ProtectedServer, ProtectionConfig, WELL_KNOWN_METADATA_PATH, serve_protected};
