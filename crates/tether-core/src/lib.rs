//! Tether's core: the rules that decide when and how a user's upstream MCP servers are
//! (re)connected, and that keep a crowd of users or one broken upstream from becoming a
//! reconnection storm.
//!
//! It owns reconnect-on-login with eligibility and stagger, the reconnection tracker, circuit
//! breakers per (user, server) and per origin, per-origin admission limits, backoff with full
//! jitter, coalescing of concurrent attempts and tool stubs. It does no network or disk I/O of
//! its own: it reaches the world through [`Connector`], [`TokenStore`], [`ToolCache`],
//! [`SharedState`] and [`Clock`], implemented by the other Tether crates (and by tests).

pub mod backoff;
pub mod breaker;
pub mod coalesce;
pub mod config;
pub mod connector;
pub mod downstream;
pub mod error;
pub mod fast_map;
pub mod ids;
pub mod json_text;
pub mod limiter;
pub mod links;
pub mod manager;
pub mod rate;
pub mod redact;
pub mod shared;
pub mod state;
pub mod stub;
mod sync;
pub mod time;
pub mod token;
pub mod tool;
pub mod tool_cache;
pub mod tool_call;
mod tool_result_serde;
pub mod tracker;

pub use config::{CoreConfig, ServerConfig, TransportConfig};
pub use connector::{
    AuthorizationMode, Blame, ConnectError, ConnectRequest, Connector, ListKind, METHOD_NOT_FOUND,
    Protocol, Session, SessionEvents, TransportFailure,
};
pub use downstream::{AgentInput, CallContext, Downstream, PeerError};
pub use error::StoreError;
pub use fast_map::{FastMap, FastSet};
pub use ids::{Origin, PairKey, ServerName, UserId};
pub use links::AuthorizationLinks;
pub use manager::{
    AgentPresence, AttemptOutcome, Change, Eligibility, ListedTool, ManagerBuilder, ManagerStats,
    ReconnectionManager, RequestError, ServerChange, ServerChanges, UnknownServer,
};
pub use shared::{InProcessState, SharedState};
pub use state::{ConnectionState, ServerStatus};
pub use time::{Clock, SystemClock, Timestamp, TokioClock};
pub use token::{AccessTokenStatus, TokenStatus, TokenStore};
pub use tool::{Tool, ToolResult};
pub use tool_cache::{CachedTools, MemoryToolCache, ToolCache};
pub use tool_call::ToolCallParams;
