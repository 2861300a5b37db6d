//! The OAuth paths of the calls part (`--oauth`): the same upstream configured with
//! `oauth = true` in two more gateways, one remembering a pair's access token for a few seconds
//! and one reading the store (SQLite, decrypting the record) for every upstream request, each
//! user's tokens written into the gateway's store before its first call. The upstream ignores
//! the `Authorization` header: what is measured is the gateway's side of sending it.

use anyhow::Context;
use tether_core::{PairKey, Timestamp};
use tether_oauth::Secret;
use tether_oauth::store::{TokenRecord, TokenVault};
use tether_store::crypto::Keyring;
use tether_store::sql::SqlStore;

use super::procs::{ENCRYPTION_KEY, Gateway};

/// A gateway configuration with `server` at `url` behind OAuth, remembering tokens for
/// `remember_for` (humantime, `"0s"`: never).
pub fn config(server: &str, url: &str, remember_for: &str) -> String {
    format!(
        "[reconnect]\ninclude_non_oauth = true\n\n[limits]\nper_second = 0\n\n\
         [oauth]\nreturn_url = \"http://127.0.0.1:9/return\"\n\
         remember_tokens_for = \"{remember_for}\"\n\n\
         [[servers]]\nname = \"{server}\"\nurl = \"{url}\"\noauth = true\n"
    )
}

/// Stores an access token (no expiry, no refresh token) of `server` for each of `users` in the
/// gateway's SQLite store, sealed with the gateway's key.
pub async fn seed(
    gateway: &Gateway,
    server: &str,
    url: &str,
    users: impl IntoIterator<Item = String>,
) -> anyhow::Result<()> {
    let keys = Keyring::parse(ENCRYPTION_KEY).context("the bench's encryption key")?;
    let store = SqlStore::open(&gateway.sqlite_url(), keys)
        .await
        .context("opening the gateway's store")?;
    for user in users {
        let record = TokenRecord {
            access_token: Secret::new(format!("bench-access-{user}")),
            expires_at: None,
            scopes: vec![],
            refresh_token: None,
            obtained_at: Timestamp::from_millis(1),
            issuer: "http://127.0.0.1:9".into(),
            client_id: "bench".into(),
            resource: url.to_owned(),
        };
        TokenVault::put(&store, &PairKey::new(user.as_str(), server), record)
            .await
            .context("storing a user's tokens")?;
    }
    store.close().await;
    Ok(())
}
