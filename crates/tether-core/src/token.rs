//! What the core may know about a pair's tokens: whether they exist and when they expire.
//!
//! Never the secrets: deciding who to reconnect needs no token value, and keeping values out of
//! the core keeps them out of its logs and errors by construction.

use async_trait::async_trait;

use crate::error::StoreError;
use crate::ids::PairKey;
use crate::time::Timestamp;

/// The access token's presence and expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessTokenStatus {
    /// `None`: the token does not expire (or the server did not say).
    pub expires_at: Option<Timestamp>,
}

/// A pair's token records, without their values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TokenStatus {
    pub access_token: Option<AccessTokenStatus>,
    pub has_refresh_token: bool,
}

impl TokenStatus {
    /// SPEC §2: an access token that has no expiry or has not expired, or else a refresh token.
    pub fn can_reconnect(&self, now: Timestamp) -> bool {
        let access_usable = self
            .access_token
            .is_some_and(|t| t.expires_at.is_none_or(|at| at >= now));
        access_usable || self.has_refresh_token
    }
}

#[async_trait]
pub trait TokenStore: Send + Sync + std::fmt::Debug + 'static {
    async fn token_status(&self, pair: &PairKey) -> Result<TokenStatus, StoreError>;
}
