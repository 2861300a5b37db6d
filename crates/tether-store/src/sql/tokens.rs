//! Tokens per (user, server): tether-oauth's `TokenVault`, and tether-core's `TokenStore`
//! answered from the plain columns alone (presence and expiry), without opening any secret.

use async_trait::async_trait;
use tether_core::{AccessTokenStatus, PairKey, StoreError, Timestamp, TokenStatus, TokenStore};
use tether_oauth::Secret;
use tether_oauth::store::{TokenRecord, TokenVault};

use super::{SqlStore, crypto_error, db_error, ms, ts};
use crate::crypto::{Binding, Sealed};

const ACCESS: &str = "access_token";
const REFRESH: &str = "refresh_token";

fn binding<'a>(pair: &'a PairKey, kind: &'a str) -> Binding<'a> {
    Binding {
        kind,
        user: pair.user.as_str(),
        server: pair.server.as_str(),
    }
}

type Row = (
    String,
    Vec<u8>,
    Option<i64>,
    String,
    Option<String>,
    Option<Vec<u8>>,
    i64,
    String,
    String,
    String,
);

/// A record's columns that are sealed or encoded before they are written.
struct SealedRow {
    access: Sealed,
    refresh: Option<Sealed>,
    scopes: String,
}

const SELECT: &str = "SELECT access_key_id, access_token, expires_at, scopes, refresh_key_id, \
     refresh_token, obtained_at, issuer, client_id, resource FROM tokens WHERE user_id = ? AND server = ?";

impl SqlStore {
    fn open_secret(
        &self,
        pair: &PairKey,
        kind: &str,
        key_id: String,
        bytes: Vec<u8>,
    ) -> Result<Secret, StoreError> {
        let plain = self
            .keys
            .open(binding(pair, kind), &Sealed { key_id, bytes })
            .map_err(|e| crypto_error(&format!("{kind} of {pair}"), &e))?;
        String::from_utf8(plain)
            .map(Secret::new)
            .map_err(|_| StoreError::Corrupt(format!("{kind} of {pair} is not text")))
    }

    fn decode(&self, pair: &PairKey, row: Row) -> Result<TokenRecord, StoreError> {
        let (
            access_key_id,
            access,
            expires_at,
            scopes,
            refresh_key_id,
            refresh,
            obtained_at,
            issuer,
            client_id,
            resource,
        ) = row;
        let refresh_token = match (refresh_key_id, refresh) {
            (Some(key_id), Some(bytes)) => Some(self.open_secret(pair, REFRESH, key_id, bytes)?),
            _ => None,
        };
        Ok(TokenRecord {
            access_token: self.open_secret(pair, ACCESS, access_key_id, access)?,
            expires_at: expires_at.map(ts),
            scopes: serde_json::from_str(&scopes)
                .map_err(|_| StoreError::Corrupt(format!("scopes of {pair}")))?,
            refresh_token,
            obtained_at: ts(obtained_at),
            issuer,
            client_id,
            resource,
        })
    }

    fn seal_record(&self, pair: &PairKey, record: &TokenRecord) -> Result<SealedRow, StoreError> {
        let seal = |kind: &str, secret: &Secret| {
            self.keys
                .seal(binding(pair, kind), secret.expose().as_bytes())
                .map_err(|e| crypto_error(&format!("seal {kind} of {pair}"), &e))
        };
        Ok(SealedRow {
            access: seal(ACCESS, &record.access_token)?,
            refresh: record
                .refresh_token
                .as_ref()
                .map(|r| seal(REFRESH, r))
                .transpose()?,
            scopes: serde_json::to_string(&record.scopes)
                .map_err(|_| StoreError::Corrupt("scopes do not serialize".to_owned()))?,
        })
    }

    async fn fetch(
        &self,
        pair: &PairKey,
        conn: impl sqlx::Executor<'_, Database = sqlx::Any>,
    ) -> Result<Option<Row>, StoreError> {
        sqlx::query_as(&self.sql(SELECT))
            .bind(pair.user.as_str())
            .bind(pair.server.as_str())
            .fetch_optional(conn)
            .await
            .map_err(|e| db_error("read tokens", &e))
    }
}

#[async_trait]
impl TokenVault for SqlStore {
    async fn get(&self, pair: &PairKey) -> Result<Option<TokenRecord>, StoreError> {
        self.fetch(pair, &self.pool)
            .await?
            .map(|row| self.decode(pair, row))
            .transpose()
    }

    async fn put(&self, pair: &PairKey, record: TokenRecord) -> Result<(), StoreError> {
        let row = self.seal_record(pair, &record)?;
        // One statement: the access and refresh tokens are replaced together or not at all, so
        // a rotated refresh token is never lost while its access token is kept (or vice versa).
        sqlx::query(
            &self.sql("INSERT INTO tokens (user_id, server, access_key_id, access_token, expires_at, scopes, \
             refresh_key_id, refresh_token, obtained_at, issuer, client_id, resource) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (user_id, server) DO UPDATE SET access_key_id = excluded.access_key_id, \
             access_token = excluded.access_token, expires_at = excluded.expires_at, \
             scopes = excluded.scopes, refresh_key_id = excluded.refresh_key_id, \
             refresh_token = excluded.refresh_token, obtained_at = excluded.obtained_at, \
             issuer = excluded.issuer, client_id = excluded.client_id, resource = excluded.resource"),
        )
        .bind(pair.user.as_str())
        .bind(pair.server.as_str())
        .bind(row.access.key_id)
        .bind(row.access.bytes)
        .bind(record.expires_at.map(ms))
        .bind(row.scopes)
        .bind(row.refresh.as_ref().map(|r| r.key_id.clone()))
        .bind(row.refresh.map(|r| r.bytes))
        .bind(ms(record.obtained_at))
        .bind(record.issuer)
        .bind(record.client_id)
        .bind(record.resource)
        .execute(&self.pool)
        .await
        .map_err(|e| db_error("save tokens", &e))?;
        Ok(())
    }

    async fn replace(
        &self,
        pair: &PairKey,
        replaced: Timestamp,
        record: TokenRecord,
    ) -> Result<bool, StoreError> {
        let row = self.seal_record(pair, &record)?;
        // The condition and the write in one statement: a delete or another save in between
        // makes it match nothing.
        let done = sqlx::query(&self.sql(
            "UPDATE tokens SET access_key_id = ?, access_token = ?, expires_at = ?, \
             scopes = ?, refresh_key_id = ?, refresh_token = ?, obtained_at = ?, issuer = ?, \
             client_id = ?, resource = ? WHERE user_id = ? AND server = ? AND obtained_at = ?",
        ))
        .bind(row.access.key_id)
        .bind(row.access.bytes)
        .bind(record.expires_at.map(ms))
        .bind(row.scopes)
        .bind(row.refresh.as_ref().map(|r| r.key_id.clone()))
        .bind(row.refresh.map(|r| r.bytes))
        .bind(ms(record.obtained_at))
        .bind(record.issuer)
        .bind(record.client_id)
        .bind(record.resource)
        .bind(pair.user.as_str())
        .bind(pair.server.as_str())
        .bind(ms(replaced))
        .execute(&self.pool)
        .await
        .map_err(|e| db_error("replace tokens", &e))?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete(&self, pair: &PairKey) -> Result<(), StoreError> {
        sqlx::query(&self.sql("DELETE FROM tokens WHERE user_id = ? AND server = ?"))
            .bind(pair.user.as_str())
            .bind(pair.server.as_str())
            .execute(&self.pool)
            .await
            .map_err(|e| db_error("delete tokens", &e))?;
        Ok(())
    }

    async fn remove_refresh_token(
        &self,
        pair: &PairKey,
        rejected: &Secret,
    ) -> Result<bool, StoreError> {
        // No transaction: the update below is its own compare-and-swap (and on SQLite, a read
        // transaction upgraded to a write fails while another connection writes).
        let Some(row) = self.fetch(pair, &self.pool).await? else {
            return Ok(false);
        };
        let sealed_refresh = row.5.clone();
        let record = self.decode(pair, row)?;
        if record.refresh_token.as_ref() != Some(rejected) {
            return Ok(false);
        }
        // Compared on the sealed bytes read above (fresh randomness per seal): a successor
        // saved since, by another connection, does not match and survives.
        let done = sqlx::query(
            &self.sql("UPDATE tokens SET refresh_key_id = NULL, refresh_token = NULL WHERE user_id = ? AND server = ? AND refresh_token = ?"),
        )
        .bind(pair.user.as_str())
        .bind(pair.server.as_str())
        .bind(sealed_refresh)
        .execute(&self.pool)
        .await
        .map_err(|e| db_error("remove refresh token", &e))?;
        Ok(done.rows_affected() == 1)
    }
}

#[async_trait]
impl TokenStore for SqlStore {
    async fn token_status(&self, pair: &PairKey) -> Result<TokenStatus, StoreError> {
        let row: Option<(Option<i64>, i64)> = sqlx::query_as(
            &self.sql("SELECT expires_at, CAST(CASE WHEN refresh_token IS NULL THEN 0 ELSE 1 END AS BIGINT) FROM tokens WHERE user_id = ? AND server = ?"),
        )
        .bind(pair.user.as_str())
        .bind(pair.server.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| db_error("read token status", &e))?;
        Ok(match row {
            None => TokenStatus::default(),
            Some((expires_at, has_refresh)) => TokenStatus {
                access_token: Some(AccessTokenStatus {
                    expires_at: expires_at.map(ts),
                }),
                has_refresh_token: has_refresh != 0,
            },
        })
    }
}
