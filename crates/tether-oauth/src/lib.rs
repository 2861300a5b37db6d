//! Tether's MCP authorization client (MCP authorization 2025-11-25, with the 2025-03-26
//! fallbacks), built on rmcp's `auth` module.
//!
//! It owns: discovery and client identity per server (through rmcp), Tether's stores for
//! tokens, client registrations, flows in progress and refresh leases ([`store`]) and their
//! adapters to rmcp's store traits ([`rmcp_adapter`]), single-flight refresh with rotation, the
//! sorting of failures into "authorize again", "retry later", "refused" and "protocol error"
//! ([`OAuthError`]), the network policy every OAuth request obeys ([`ssrf`], [`http`]) and a
//! browserless authorization for tests and headless connects ([`headless`]).
//!
//! It must not: put a token, code, verifier or secret into a log line, an error message or a
//! `Debug` output (values travel as [`Secret`]); send a request to a URL learned from the
//! network before [`ssrf::NetworkPolicy::check_url`] allowed it; refresh a pair's tokens outside
//! its refresh lease; or speak MCP (that is `tether-mcp`'s job — this crate only hands out access
//! tokens and authorization URLs).

/// rmcp's auth module logs the authorization code at `debug` (`start exchange code for
/// token: …`); binaries must cap that target at `info` so that no code reaches a log line.
/// Add this directive to the tracing filter.
pub const RMCP_AUTH_LOG_DIRECTIVE: &str = "rmcp::transport::auth=info";

pub mod authorizer;
mod classify;
pub mod error;
pub mod headless;
pub mod http;
pub mod lease;
pub mod refresh_policy;
pub mod resource;
pub mod rmcp_adapter;
pub mod secret;
pub mod ssrf;
pub mod store;

pub use authorizer::{
    AuthorizationStart, AuthorizerConfig, McpAuthorizer, OAuthStores, PreregisteredClient,
    Revocation, StartOptions,
};
pub use error::OAuthError;
pub use secret::Secret;
pub use ssrf::{NetworkPolicy, SsrfReason};
pub use store::{
    CallbackParams, FlowRecord, FlowStore, RefreshLock, RegistrationRecord, RegistrationStore,
    TokenEndpointAuthMethod, TokenRecord, TokenVault,
};
