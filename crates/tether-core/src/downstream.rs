//! The agent's side of one request while it runs upstream: where the upstream's progress and
//! log notifications for that request go, and who answers the upstream's own requests
//! (`sampling/createMessage`, `elicitation/create`, `roots/list`) made on its behalf.
//!
//! The core only carries it from the gateway to the session; what reaches the agent and how
//! (its event stream, refusal when it did not declare a capability) is the gateway's business.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Map, Value};

/// An agent's JSON-RPC error answer to an upstream's request, passed back as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerError {
    pub code: i32,
    pub message: String,
}

#[async_trait]
pub trait Downstream: Send + Sync + fmt::Debug {
    /// A notification of the upstream that belongs to this request.
    async fn notify(&self, method: &str, params: Option<Value>);

    /// A request of the upstream, answered by the agent.
    async fn request(&self, method: &str, params: Option<Value>) -> Result<Value, PeerError>;
}

/// What travels with one request besides its method and params.
#[derive(Debug, Clone, Default)]
pub struct CallContext {
    /// The agent's `_meta` (its `progressToken` among others), sent upstream unchanged.
    pub meta: Option<Map<String, Value>>,
    /// The way back to the agent; `None`: notifications are dropped and the upstream's requests
    /// refused.
    pub downstream: Option<Arc<dyn Downstream>>,
}

impl CallContext {
    pub fn progress_token(&self) -> Option<&Value> {
        self.meta.as_ref()?.get("progressToken")
    }
}
