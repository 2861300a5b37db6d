//! rmcp's `CredentialStore` for one (user, server) over a [`TokenVault`] and a [`RefreshLock`].

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use oauth2::basic::BasicTokenType;
use oauth2::{AccessToken, RefreshToken, Scope, TokenResponse};
use rmcp::transport::auth::{
    AuthError, CredentialRefreshGuard, CredentialStore, OAuthTokenResponse, StoredCredentials,
    VendorExtraTokenFields,
};
use tether_core::{Clock, PairKey, StoreError, SystemClock, Timestamp};
use tokio::sync::Mutex;
use tracing::{info, warn};

use crate::lease::Lease;
use crate::secret::Secret;
use crate::store::{RefreshLock, TokenRecord, TokenVault};

/// Bound to one pair and to the registration and resource its tokens belong to.
///
/// When the caller already holds the pair's refresh lease (Tether's own refresh path, which
/// must re-read the vault under the lease before deciding to refresh), it is handed in with
/// [`PairCredentialStore::with_lease`]; rmcp's guard then is a marker and `save` checks that
/// the lease is still held. Otherwise `acquire_refresh_guard` takes the lease itself.
#[derive(Debug)]
pub struct PairCredentialStore {
    vault: Arc<dyn TokenVault>,
    lock: Arc<dyn RefreshLock>,
    pair: PairKey,
    issuer: String,
    resource: String,
    lease: Arc<Mutex<Option<Lease>>>,
    lease_ttl: Duration,
    lease_wait: Duration,
    /// `obtained_at` of the record being refreshed: the save replaces only that record.
    replacing: Option<Timestamp>,
    /// Dates the tokens saved (their `obtained_at`, and from it their expiry).
    clock: Arc<dyn Clock>,
}

/// A refreshed token response is kept and its write retried this many times, pausing from
/// [`SAVE_FIRST_PAUSE`] and doubling: the rotated refresh token in it is the only one left.
const SAVE_ATTEMPTS: u32 = 6;
const SAVE_FIRST_PAUSE: Duration = Duration::from_millis(100);

fn store_error(error: StoreError) -> AuthError {
    AuthError::CredentialStoreError(error.to_string())
}

impl PairCredentialStore {
    pub fn new(
        vault: Arc<dyn TokenVault>,
        lock: Arc<dyn RefreshLock>,
        pair: PairKey,
        issuer: String,
        resource: String,
    ) -> Self {
        Self {
            vault,
            lock,
            pair,
            issuer,
            resource,
            lease: Arc::new(Mutex::new(None)),
            lease_ttl: Duration::from_secs(30),
            lease_wait: Duration::from_secs(35),
            replacing: None,
            clock: Arc::new(SystemClock),
        }
    }

    /// The clock that dates saved tokens (the authorizer's).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Saves only over the record obtained at `obtained_at` ([`TokenVault::replace`]), so that
    /// a delete while the refresh was in flight wins.
    pub fn replacing(self, obtained_at: Timestamp) -> Self {
        Self {
            replacing: Some(obtained_at),
            ..self
        }
    }

    /// Uses a lease the caller acquired; it is released when the store is dropped (or by the
    /// caller through [`PairCredentialStore::release_lease`]).
    pub fn with_lease(self, lease: Lease) -> Self {
        Self {
            lease: Arc::new(Mutex::new(Some(lease))),
            ..self
        }
    }

    pub fn with_lease_timing(self, ttl: Duration, wait: Duration) -> Self {
        Self {
            lease_ttl: ttl,
            lease_wait: wait,
            ..self
        }
    }

    /// A second handle on the same lease slot (rmcp takes the store by value).
    pub fn lease_handle(&self) -> Arc<Mutex<Option<Lease>>> {
        self.lease.clone()
    }

    pub async fn release_lease(handle: &Mutex<Option<Lease>>) -> Result<(), StoreError> {
        match handle.lock().await.take() {
            Some(lease) => lease.release().await,
            None => Ok(()),
        }
    }
}

/// A vault record as rmcp's credentials.
pub fn to_stored_credentials(record: &TokenRecord) -> StoredCredentials {
    let mut response = OAuthTokenResponse::new(
        AccessToken::new(record.access_token.expose().to_owned()),
        BasicTokenType::Bearer,
        VendorExtraTokenFields::default(),
    );
    if let Some(expires_at) = record.expires_at {
        response.set_expires_in(Some(&record.obtained_at.until(expires_at)));
    }
    response.set_refresh_token(
        record
            .refresh_token
            .as_ref()
            .map(|token| RefreshToken::new(token.expose().to_owned())),
    );
    if !record.scopes.is_empty() {
        response.set_scopes(Some(
            record.scopes.iter().cloned().map(Scope::new).collect(),
        ));
    }
    StoredCredentials::new(
        record.client_id.clone(),
        Some(response),
        record.scopes.clone(),
        Some(record.obtained_at.as_millis() / 1000),
    )
    .with_issuer(Some(record.issuer.clone()))
}

/// Whether `token` is a token by RFC 6749's syntax (1*VSCHAR) and not blank; `spaces` allows
/// the space VSCHAR includes.
fn is_token(token: &str, spaces: bool) -> bool {
    !token.trim().is_empty()
        && token
            .bytes()
            .all(|b| b.is_ascii_graphic() || (spaces && b == b' '))
}

#[async_trait]
impl CredentialStore for PairCredentialStore {
    async fn load(&self) -> Result<Option<StoredCredentials>, AuthError> {
        let record = self.vault.get(&self.pair).await.map_err(store_error)?;
        Ok(record.as_ref().map(to_stored_credentials))
    }

    async fn save(&self, credentials: StoredCredentials) -> Result<(), AuthError> {
        let Some(response) = credentials.token_response.as_ref() else {
            return self.clear().await;
        };
        // An empty token is no token, and one outside RFC 6749's syntax (1*VSCHAR, printable
        // ASCII) cannot be sent: storing either would replace usable credentials with ones
        // that fail at the next request (and a broken refresh token loses the grant). An
        // access token also goes into an `Authorization` header, so it may not hold a space.
        if !is_token(response.access_token().secret(), false)
            || response
                .refresh_token()
                .is_some_and(|token| !is_token(token.secret(), true))
        {
            warn!(pair = %self.pair, "the authorization server answered with an empty or malformed token; nothing saved");
            return Err(AuthError::InternalError(
                "the authorization server answered with an empty or malformed token".into(),
            ));
        }
        if let Some(lease) = self.lease.lock().await.as_ref()
            && !lease.still_held().await.unwrap_or(true)
        {
            if self.replacing.is_none() {
                // Someone may have refreshed after our lease ran out; their tokens win.
                warn!(pair = %self.pair, "refresh lease expired before saving; result discarded");
                return Err(AuthError::CredentialStoreError(
                    "refresh lease expired before the refreshed tokens could be saved".into(),
                ));
            }
            // The conditional save below still refuses to overwrite a newer refresh; otherwise
            // this response holds the only valid refresh token and must not be thrown away.
            warn!(pair = %self.pair, "refresh lease expired before saving; saving conditionally");
        }
        let obtained_at = self.clock.now();
        let record = TokenRecord {
            access_token: Secret::new(response.access_token().secret().clone()),
            expires_at: response.expires_in().map(|lifetime| obtained_at + lifetime),
            // An empty `scope` ("") comes through as one empty scope: none was granted.
            scopes: credentials
                .granted_scopes
                .iter()
                .filter(|scope| !scope.trim().is_empty())
                .cloned()
                .collect(),
            refresh_token: response
                .refresh_token()
                .map(|token| Secret::new(token.secret().clone())),
            obtained_at,
            issuer: self.issuer.clone(),
            client_id: credentials.client_id.clone(),
            resource: self.resource.clone(),
        };
        let mut pause = SAVE_FIRST_PAUSE;
        for attempt in 1..=SAVE_ATTEMPTS {
            let saved = match self.replacing {
                Some(replaced) => {
                    self.vault
                        .replace(&self.pair, replaced, record.clone())
                        .await
                }
                None => self
                    .vault
                    .put(&self.pair, record.clone())
                    .await
                    .map(|()| true),
            };
            match saved {
                Ok(true) => return Ok(()),
                Ok(false) => {
                    info!(pair = %self.pair, "tokens deleted or replaced during the refresh; its result is dropped");
                    return Err(AuthError::CredentialStoreError(
                        "the tokens were deleted or replaced while the refresh was in flight"
                            .into(),
                    ));
                }
                Err(error) if attempt < SAVE_ATTEMPTS => {
                    warn!(pair = %self.pair, attempt, %error, "saving tokens failed; retrying");
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
                Err(error) => {
                    warn!(pair = %self.pair, %error, "saving tokens failed; giving up");
                    return Err(store_error(error));
                }
            }
        }
        Err(AuthError::CredentialStoreError("tokens not saved".into()))
    }

    async fn clear(&self) -> Result<(), AuthError> {
        self.vault.delete(&self.pair).await.map_err(store_error)
    }

    async fn on_refresh_token_rejected(
        &self,
        credentials: &StoredCredentials,
    ) -> Result<(), AuthError> {
        let Some(rejected) = credentials
            .token_response
            .as_ref()
            .and_then(|response| response.refresh_token())
        else {
            return Ok(());
        };
        let removed = self
            .vault
            .remove_refresh_token(&self.pair, &Secret::new(rejected.secret().clone()))
            .await
            .map_err(store_error)?;
        info!(pair = %self.pair, removed, "refresh token rejected by the authorization server");
        Ok(())
    }

    async fn acquire_refresh_guard(&self) -> Result<Option<CredentialRefreshGuard>, AuthError> {
        let mut slot = self.lease.lock().await;
        if slot.is_some() {
            // The caller holds the lease across this whole refresh already.
            return Ok(Some(CredentialRefreshGuard::new(())));
        }
        let lease = Lease::acquire(
            self.lock.clone(),
            &self.pair,
            self.lease_ttl,
            self.lease_wait,
        )
        .await
        .map_err(store_error)?
        .ok_or_else(|| {
            AuthError::CredentialStoreError("refresh lock busy: another refresh is running".into())
        })?;
        // Kept in the slot so that `save` checks it; dropping the store releases it.
        *slot = Some(lease);
        Ok(Some(CredentialRefreshGuard::new(())))
    }
}

#[cfg(test)]
mod tests {
    use super::is_token;

    #[test]
    fn tokens_are_printable_ascii_and_access_tokens_hold_no_space() {
        for good in ["at-1", "eyJhbGciOi.J9.x_-~+/=", "a"] {
            assert!(is_token(good, false), "{good}");
            assert!(is_token(good, true), "{good}");
        }
        for bad in ["", "   ", "¡", "tab\there", "new\nline", "nul\0"] {
            assert!(!is_token(bad, false), "{bad:?}");
            assert!(!is_token(bad, true), "{bad:?}");
        }
        assert!(!is_token("two words", false));
        assert!(is_token("two words", true), "VSCHAR includes the space");
    }
}
