//! Lean Streamable HTTP sessions: no rmcp service, worker, task or channel per session.
//!
//! rmcp's client runs two tasks and their channels for every session (the service loop and the
//! transport worker), about 90 KB per idle session, although an idle Tether session has nothing
//! to do. Here a session is only its state (endpoint, session id, negotiated protocol version,
//! request counter); each request runs inside the caller's future as one `POST` and its answer.
//! The wire stays rmcp's: its [`StreamableHttpClient`](rmcp::transport::streamable_http_client::StreamableHttpClient)
//! implementation sends (through our token-attaching client) and parses, and its model types
//! are the messages.
//!
//! The standalone `GET` event stream (server messages outside a request: list changes) needs a
//! reader per session, so it is read only while the user has an agent session open
//! (`listener`). With
//! [`McpConnectorConfig::standalone_stream`](crate::McpConnectorConfig::standalone_stream) on,
//! the connector uses rmcp's client instead, which reads it always. Also rmcp's, still: legacy HTTP+SSE and stdio
//! (they need a reader anyway), and servers that answer `initialize` with a protocol version
//! that has no handshake (see [`Handshake::NeedsPerRequestMetadata`]).
//!
//! - `encode`: a request's body (Tether's own requests written in one pass);
//! - `endpoint`: where requests go and the headers each carries;
//! - `handshake`: `server/discover`, or `initialize` + `notifications/initialized`;
//! - `modern`: what every request carries on the 2026-07-28 wire (`_meta`, standard headers);
//! - `post`: a request's `POST` sent with reqwest directly (URL parsed once, body serialized
//!   once, JSON answers left as bytes);
//! - `exchange`: one request and its answer (event streams, resumption, server requests,
//!   cancellation of abandoned requests);
//! - `input`: input-required results (2026-07-28) answered by the agent;
//! - `listener`: the session's own event stream, while an agent listens;
//! - `session`: the core's `Session` on top.

mod encode;
mod endpoint;
mod exchange;
mod handshake;
mod input;
mod listener;
mod modern;
mod param_headers;
mod post;
mod questions;
mod session;

pub use handshake::Wire;
pub(crate) use handshake::{Handshake, Settings, open};
pub(crate) use post::Leg;
