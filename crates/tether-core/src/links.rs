//! Where a user goes to authorize a server again, for the "needs authorization" stub.
//!
//! The connector usually cannot know the URL (a 401 says only that a token is missing or
//! rejected); the embedding application can, by starting an authorization flow for the pair.
//! The manager asks only when it is about to tell the model, so flows are not started for
//! pairs nobody is using.

use async_trait::async_trait;

use crate::ids::PairKey;

#[async_trait]
pub trait AuthorizationLinks: Send + Sync + std::fmt::Debug + 'static {
    /// A URL the user can open to authorize the pair, if one can be had now.
    async fn authorization_url(&self, pair: &PairKey) -> Option<String>;
}
