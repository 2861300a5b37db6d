//! Authorization flows in progress, keyed by their `state`.
//!
//! Lives in the shared store so that the callback may land on any replica (SPEC §6, LibreChat
//! #14534), and is taken atomically so that a replayed callback finds nothing.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tether_core::{Clock, ServerName, StoreError, SystemClock, Timestamp, UserId};
use tokio::sync::Mutex;

use crate::secret::Secret;

/// How long a started flow may wait for its callback: longer than any handling timeout of the
/// host (LibreChat #13615 expired flows while users were still consenting).
pub const FLOW_TTL: Duration = Duration::from_secs(10 * 60);

/// Flows one user may have open in the in-process store; starting one more forgets their
/// oldest. One person rarely has more than a few tabs of consent pages open.
pub const MAX_FLOWS_PER_USER: usize = 16;
/// Flows the in-process store holds in all; past it the oldest is forgotten.
pub const MAX_FLOWS: usize = 100_000;

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
    /// The authorization server URL the user is sent to (through the gateway's
    /// `/oauth/begin`, which answers it only to the browser the flow is bound to).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_url: Option<String>,
    /// SHA-256 (hex) of the secret in the cookie of the browser that opened the flow first: the
    /// callback is accepted only from that browser.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub browser_binding: Option<String>,
    /// What the callback brought, kept (sealed, single use) until the host shows that the
    /// person who finished the flow is the flow's user; the code is exchanged only then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback: Option<CallbackParams>,
}

/// The parameters of an authorization response (RFC 6749 §4.1.2, RFC 9207 `iss`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallbackParams {
    pub state: String,
    pub code: Secret,
    pub issuer: Option<String>,
}

impl fmt::Debug for CallbackParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallbackParams")
            .field("code", &self.code)
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
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
            .field("browser_bound", &self.browser_binding.is_some())
            .field("callback", &self.callback)
            .finish_non_exhaustive()
    }
}

#[async_trait]
pub trait FlowStore: Send + Sync + fmt::Debug + 'static {
    async fn put(&self, state: &str, record: FlowRecord) -> Result<(), StoreError>;

    /// Removes and returns the flow, atomically: of two concurrent takes at most one gets it.
    /// An expired flow is removed and reported as absent.
    async fn take(&self, state: &str) -> Result<Option<FlowRecord>, StoreError>;
}

#[derive(Debug, Clone)]
pub struct MemoryFlowStore {
    flows: Arc<Mutex<HashMap<String, FlowRecord>>>,
    /// Decides which flows expired.
    clock: Arc<dyn Clock>,
}

impl Default for MemoryFlowStore {
    fn default() -> Self {
        Self {
            flows: Arc::default(),
            clock: Arc::new(SystemClock),
        }
    }
}

impl MemoryFlowStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Expires flows by `clock` (tests: `TokioClock`, on paused time).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Flows currently held (expired ones included until the next `put`), for tests.
    pub async fn len(&self) -> usize {
        self.flows.lock().await.len()
    }

    pub async fn is_empty(&self) -> bool {
        self.len().await == 0
    }
}

fn forget_oldest(flows: &mut HashMap<String, FlowRecord>, of: impl Fn(&FlowRecord) -> bool) {
    let oldest = flows
        .iter()
        .filter(|(_, flow)| of(flow))
        .min_by_key(|(_, flow)| flow.created_at)
        .map(|(state, _)| state.clone());
    if let Some(state) = oldest {
        flows.remove(&state);
    }
}

#[async_trait]
impl FlowStore for MemoryFlowStore {
    async fn put(&self, state: &str, record: FlowRecord) -> Result<(), StoreError> {
        let now = self.clock.now();
        let mut flows = self.flows.lock().await;
        // Abandoned flows would otherwise accumulate forever.
        flows.retain(|_, flow| !flow.is_expired(now));
        flows.remove(state);
        let user = record.user.clone();
        while flows.values().filter(|f| f.user == user).count() >= MAX_FLOWS_PER_USER {
            forget_oldest(&mut flows, |f| f.user == user);
        }
        while flows.len() >= MAX_FLOWS {
            forget_oldest(&mut flows, |_| true);
        }
        flows.insert(state.to_owned(), record);
        Ok(())
    }

    async fn take(&self, state: &str) -> Result<Option<FlowRecord>, StoreError> {
        let taken = self.flows.lock().await.remove(state);
        Ok(taken.filter(|flow| !flow.is_expired(self.clock.now())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(created_at: Timestamp) -> FlowRecord {
        flow_of("u", created_at)
    }

    fn flow_of(user: &str, created_at: Timestamp) -> FlowRecord {
        FlowRecord {
            user: user.into(),
            server: "s".into(),
            server_url: "https://mcp/".into(),
            resource: "https://mcp/".into(),
            issuer: "https://as".into(),
            client_id: "c".into(),
            pkce_verifier: Secret::new("verifier-value"),
            redirect_uri: "http://127.0.0.1/cb".into(),
            requested_scopes: vec![],
            created_at,
            authorization_url: None,
            browser_binding: None,
            callback: None,
        }
    }

    fn now() -> Timestamp {
        SystemClock.now()
    }

    #[tokio::test(start_paused = true)]
    async fn flows_expire_by_the_stores_clock() {
        let clock = Arc::new(tether_core::TokioClock::new());
        let store = MemoryFlowStore::new().with_clock(clock.clone());
        store.put("a", flow(clock.now())).await.expect("put");
        store.put("b", flow(clock.now())).await.expect("put");
        tokio::time::advance(FLOW_TTL - Duration::from_secs(1)).await;
        assert!(store.take("a").await.expect("take").is_some());
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(store.take("b").await.expect("take").is_none(), "expired");
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

    #[tokio::test]
    async fn one_user_cannot_fill_the_store() {
        let store = MemoryFlowStore::new();
        let start = now();
        store.put("other", flow_of("v", start)).await.expect("put");
        for i in 0..(MAX_FLOWS_PER_USER as u64 * 4) {
            let at = start + Duration::from_millis(i);
            store
                .put(&format!("s{i}"), flow_of("u", at))
                .await
                .expect("put");
        }
        assert_eq!(store.len().await, MAX_FLOWS_PER_USER + 1);
        assert!(
            store.take("s0").await.expect("take").is_none(),
            "oldest forgotten"
        );
        let newest = format!("s{}", MAX_FLOWS_PER_USER as u64 * 4 - 1);
        assert!(store.take(&newest).await.expect("take").is_some());
        assert!(
            store.take("other").await.expect("take").is_some(),
            "another user's flow is kept"
        );
    }
}
