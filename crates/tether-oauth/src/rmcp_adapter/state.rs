//! rmcp's `StateStore` over Tether's [`FlowStore`].
//!
//! rmcp saves its PKCE state from inside `get_authorization_url`, before Tether knows the
//! resource indicator it put on the URL, so the adapter holds the saved state until the
//! authorizer completes the [`FlowRecord`] and puts it ([`FlowStateStore::captured`]). On the
//! way back the flow has already been taken atomically from the store (single use), and the
//! adapter serves exactly that one state to rmcp's code exchange.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use oauth2::{CsrfToken, PkceCodeVerifier};
use rmcp::transport::auth::{AuthError, StateStore, StoredAuthorizationState};

use crate::store::FlowRecord;

#[derive(Debug, Clone, Default)]
pub struct FlowStateStore {
    inner: Arc<Mutex<Slot>>,
}

#[derive(Debug, Default)]
struct Slot {
    /// Saved by rmcp while starting a flow.
    captured: Option<(String, StoredAuthorizationState)>,
    /// Taken from the flow store for the callback, with what rmcp validates the callback with.
    taken: Option<(String, StoredAuthorizationState)>,
}

fn poisoned() -> AuthError {
    AuthError::InternalError("flow state slot poisoned".into())
}

impl FlowStateStore {
    /// For starting a flow.
    pub fn capturing() -> Self {
        Self::default()
    }

    /// For completing the flow `record`, taken from the store under `state`.
    pub fn serving(
        state: &str,
        record: &FlowRecord,
        expected_issuer: Option<String>,
        require_issuer: bool,
    ) -> Self {
        let stored = StoredAuthorizationState::new_with_expected_issuer(
            &PkceCodeVerifier::new(record.pkce_verifier.expose().to_owned()),
            &CsrfToken::new(state.to_owned()),
            expected_issuer,
            require_issuer,
        )
        .with_requested_scopes(record.requested_scopes.clone());
        Self {
            inner: Arc::new(Mutex::new(Slot {
                captured: None,
                taken: Some((state.to_owned(), stored)),
            })),
        }
    }

    /// The state rmcp saved while building the authorization URL.
    pub fn captured(&self) -> Option<(String, StoredAuthorizationState)> {
        self.inner.lock().ok()?.captured.take()
    }
}

#[async_trait]
impl StateStore for FlowStateStore {
    async fn save(
        &self,
        csrf_token: &str,
        state: StoredAuthorizationState,
    ) -> Result<(), AuthError> {
        self.inner.lock().map_err(|_| poisoned())?.captured = Some((csrf_token.to_owned(), state));
        Ok(())
    }

    async fn load(&self, csrf_token: &str) -> Result<Option<StoredAuthorizationState>, AuthError> {
        let slot = self.inner.lock().map_err(|_| poisoned())?;
        Ok(slot
            .taken
            .as_ref()
            .filter(|(state, _)| state == csrf_token)
            .map(|(_, stored)| stored.clone()))
    }

    async fn delete(&self, csrf_token: &str) -> Result<(), AuthError> {
        // The flow left the shared store when it was taken; only the local copy remains.
        let mut slot = self.inner.lock().map_err(|_| poisoned())?;
        if slot
            .taken
            .as_ref()
            .is_some_and(|(state, _)| state == csrf_token)
        {
            slot.taken = None;
        }
        Ok(())
    }
}
