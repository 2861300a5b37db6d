//! Tokens per (user, server): the access token with its expiry and scopes, and the refresh token.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tether_core::{AccessTokenStatus, PairKey, StoreError, Timestamp, TokenStatus, TokenStore};
use tokio::sync::Mutex;

use crate::secret::Secret;

/// One pair's tokens and what is needed to refresh them without another discovery round.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub access_token: Secret,
    /// `None`: the authorization server did not say (treated as not expiring).
    pub expires_at: Option<Timestamp>,
    pub scopes: Vec<String>,
    pub refresh_token: Option<Secret>,
    pub obtained_at: Timestamp,
    /// The issuer key of the registration the tokens were issued to (see
    /// [`crate::store::RegistrationStore`]).
    pub issuer: String,
    pub client_id: String,
    /// The RFC 8707 resource indicator the tokens were issued for; sent again on refresh.
    pub resource: String,
}

impl fmt::Debug for TokenRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenRecord")
            .field("access_token", &self.access_token)
            .field("expires_at", &self.expires_at)
            .field("scopes", &self.scopes)
            .field("refresh_token", &self.refresh_token)
            .field("obtained_at", &self.obtained_at)
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("resource", &self.resource)
            .finish()
    }
}

#[async_trait]
pub trait TokenVault: Send + Sync + fmt::Debug + 'static {
    async fn get(&self, pair: &PairKey) -> Result<Option<TokenRecord>, StoreError>;
    async fn put(&self, pair: &PairKey, record: TokenRecord) -> Result<(), StoreError>;
    async fn delete(&self, pair: &PairKey) -> Result<(), StoreError>;

    /// Saves `record` only if the pair's stored record is still the one obtained at
    /// `replaced`: a refresh's result must not resurrect tokens deleted (user disconnected) or
    /// overwrite newer ones while its request was in flight. Returns whether it was saved.
    /// Backends should make this atomic; the default is not.
    async fn replace(
        &self,
        pair: &PairKey,
        replaced: Timestamp,
        record: TokenRecord,
    ) -> Result<bool, StoreError> {
        match self.get(pair).await? {
            Some(current) if current.obtained_at == replaced => {
                self.put(pair, record).await?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Drops the refresh token if it is still `rejected`: the authorization server refused it,
    /// but a concurrent refresh may already have stored its successor, which must survive.
    /// Returns whether it was removed. Backends should make this atomic; the default is not.
    async fn remove_refresh_token(
        &self,
        pair: &PairKey,
        rejected: &Secret,
    ) -> Result<bool, StoreError> {
        let Some(mut record) = self.get(pair).await? else {
            return Ok(false);
        };
        if record.refresh_token.as_ref() != Some(rejected) {
            return Ok(false);
        }
        record.refresh_token = None;
        self.put(pair, record).await?;
        Ok(true)
    }
}

/// Tokens in process memory: lost on restart, not shared between replicas.
#[derive(Debug, Default, Clone)]
pub struct MemoryTokenVault {
    records: Arc<Mutex<HashMap<PairKey, TokenRecord>>>,
}

impl MemoryTokenVault {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl TokenVault for MemoryTokenVault {
    async fn get(&self, pair: &PairKey) -> Result<Option<TokenRecord>, StoreError> {
        Ok(self.records.lock().await.get(pair).cloned())
    }

    async fn put(&self, pair: &PairKey, record: TokenRecord) -> Result<(), StoreError> {
        self.records.lock().await.insert(pair.clone(), record);
        Ok(())
    }

    async fn delete(&self, pair: &PairKey) -> Result<(), StoreError> {
        self.records.lock().await.remove(pair);
        Ok(())
    }

    async fn replace(
        &self,
        pair: &PairKey,
        replaced: Timestamp,
        record: TokenRecord,
    ) -> Result<bool, StoreError> {
        let mut records = self.records.lock().await;
        match records.get_mut(pair) {
            Some(current) if current.obtained_at == replaced => {
                *current = record;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn remove_refresh_token(
        &self,
        pair: &PairKey,
        rejected: &Secret,
    ) -> Result<bool, StoreError> {
        let mut records = self.records.lock().await;
        match records.get_mut(pair) {
            Some(record) if record.refresh_token.as_ref() == Some(rejected) => {
                record.refresh_token = None;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

/// The core's view of a vault: presence and expiry, never the values.
#[derive(Debug, Clone)]
pub struct VaultTokenStatus<V>(pub Arc<V>);

#[async_trait]
impl<V: TokenVault> TokenStore for VaultTokenStatus<V> {
    async fn token_status(&self, pair: &PairKey) -> Result<TokenStatus, StoreError> {
        Ok(match self.0.get(pair).await? {
            None => TokenStatus::default(),
            Some(record) => TokenStatus {
                access_token: Some(AccessTokenStatus {
                    expires_at: record.expires_at,
                }),
                has_refresh_token: record.refresh_token.is_some(),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(refresh: &str) -> TokenRecord {
        TokenRecord {
            access_token: Secret::new("at-value"),
            expires_at: None,
            scopes: vec!["mcp".into()],
            refresh_token: Some(Secret::new(refresh)),
            obtained_at: Timestamp::from_millis(1),
            issuer: "https://as".into(),
            client_id: "c".into(),
            resource: "https://mcp/".into(),
        }
    }

    #[tokio::test]
    async fn a_rejected_refresh_token_is_removed_only_if_still_current() {
        let vault = MemoryTokenVault::new();
        let pair = PairKey::new("u", "s");
        vault.put(&pair, record("rt-2")).await.expect("put");
        assert!(
            !vault
                .remove_refresh_token(&pair, &Secret::new("rt-1"))
                .await
                .expect("remove")
        );
        assert!(
            vault
                .remove_refresh_token(&pair, &Secret::new("rt-2"))
                .await
                .expect("remove")
        );
        let left = vault.get(&pair).await.expect("get").expect("record kept");
        assert!(left.refresh_token.is_none());
        let shown = format!("{left:?}");
        assert!(
            !shown.contains("at-value") && !shown.contains("rt-"),
            "{shown}"
        );
    }
}
