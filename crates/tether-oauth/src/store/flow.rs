//! Authorization flows in progress, keyed by their `state`.
//!
//! Lives in the shared store so that the callback may land on any replica (SPEC §6, LibreChat
//! #14534), and is taken atomically so that a replayed callback finds nothing.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tether_core::{ServerName, StoreError, Timestamp, UserId};
use tokio::sync::Mutex;

use crate::secret::Secret;

/// How long a started flow may wait for its callback: longer than any handling timeout of the
/// host (LibreChat #13615 expired flows while users were still consenting).
pub const FLOW_TTL: Duration = Duration::from_secs(10 * 60);

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowRecord {
    pub user: UserId,
    pub server: ServerName,
    /// The MCP server URL the flow was started for.
    pub server_url: String,
    /// The RFC 8707 resource indicator sent on the authorization request.
    pub resource: String,
    /// Key of the registration used (see [`crate::store::RegistrationStore`]).
    pub issuer: String,
    pub client_id: String,
    pub pkce_verifier: Secret,
    pub redirect_uri: String,
    pub requested_scopes: Vec<String>,
    pub created_at: Timestamp,
}

impl FlowRecord {
    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.created_at + FLOW_TTL <= now
    }
}

impl fmt::Debug for FlowRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlowRecord")
            .field("user", &self.user)
            .field("server", &self.server)
            .field("server_url", &self.server_url)
            .field("resource", &self.resource)
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("pkce_verifier", &self.pkce_verifier)
            .field("redirect_uri", &self.redirect_uri)
            .field("requested_scopes", &self.requested_scopes)
            .field("created_at", &self.created_at)
            .finish()
    }
}

#[async_trait]
pub trait FlowStore: Send + Sync + fmt::Debug + 'static {
    async fn put(&self, state: &str, record: FlowRecord) -> Result<(), StoreError>;

    /// Removes and returns the flow, atomically: of two concurrent takes at most one gets it.
    /// An expired flow is removed and reported as absent.
    async fn take(&self, state: &str) -> Result<Option<FlowRecord>, StoreError>;
}

#[derive(Debug, Default, Clone)]
pub struct MemoryFlowStore {
    flows: Arc<Mutex<HashMap<String, FlowRecord>>>,
}

impl MemoryFlowStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Flows currently held (expired ones included until the next `put`), for tests.
    pub async fn len(&self) -> usize {
        self.flows.lock().await.len()
    }

    pub async fn is_empty(&self) -> bool {
        self.len().await == 0
    }
}

fn now() -> Timestamp {
    Timestamp::from_system_time(SystemTime::now())
}

#[async_trait]
impl FlowStore for MemoryFlowStore {
    async fn put(&self, state: &str, record: FlowRecord) -> Result<(), StoreError> {
        let now = now();
        let mut flows = self.flows.lock().await;
        // Abandoned flows would otherwise accumulate forever.
        flows.retain(|_, flow| !flow.is_expired(now));
        flows.insert(state.to_owned(), record);
        Ok(())
    }

    async fn take(&self, state: &str) -> Result<Option<FlowRecord>, StoreError> {
        let taken = self.flows.lock().await.remove(state);
        Ok(taken.filter(|flow| !flow.is_expired(now())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(created_at: Timestamp) -> FlowRecord {
        FlowRecord {
            user: "u".into(),
            server: "s".into(),
            server_url: "https://mcp/".into(),
            resource: "https://mcp/".into(),
            issuer: "https://as".into(),
            client_id: "c".into(),
            pkce_verifier: Secret::new("verifier-value"),
            redirect_uri: "http://127.0.0.1/cb".into(),
            requested_scopes: vec![],
            created_at,
        }
    }

    #[tokio::test]
    async fn a_flow_is_taken_once_and_expires() {
        let store = MemoryFlowStore::new();
        store.put("st", flow(now())).await.expect("put");
        assert!(store.take("st").await.expect("take").is_some());
        assert!(
            store.take("st").await.expect("take").is_none(),
            "single use"
        );
        store
            .put("old", flow(now() - FLOW_TTL - Duration::from_secs(1)))
            .await
            .expect("put");
        assert!(store.take("old").await.expect("take").is_none(), "expired");
        assert!(!format!("{:?}", flow(now())).contains("verifier-value"));
    }
}
