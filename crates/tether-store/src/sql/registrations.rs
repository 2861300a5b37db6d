//! Client registrations per (server, issuer): tether-oauth's `RegistrationStore`. The client
//! secret is sealed; the rest is stored as JSON (it is read and written as a whole).

use async_trait::async_trait;
use tether_core::{ServerName, StoreError};
use tether_oauth::Secret;
use tether_oauth::store::{RegistrationRecord, RegistrationStore};

use super::{SqlStore, crypto_error, db_error};
use crate::crypto::{Binding, Sealed};

const KIND: &str = "client_secret";

/// The issuer joins the server in the binding: a secret moved to another issuer's row won't open.
fn scope(server: &ServerName, issuer: &str) -> String {
    format!("{server}\n{issuer}")
}

#[async_trait]
impl RegistrationStore for SqlStore {
    async fn get(
        &self,
        server: &ServerName,
        issuer: &str,
    ) -> Result<Option<RegistrationRecord>, StoreError> {
        let row: Option<(String, Option<String>, Option<Vec<u8>>)> = sqlx::query_as(
            &self.sql("SELECT record, secret_key_id, client_secret FROM registrations WHERE server = ? AND issuer = ?"),
        )
        .bind(server.as_str())
        .bind(issuer)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| db_error("read registration", &e))?;
        let Some((json, key_id, sealed)) = row else {
            return Ok(None);
        };
        let mut record: RegistrationRecord = serde_json::from_str(&json).map_err(|_| {
            StoreError::Corrupt(format!("registration of {server} is not valid JSON"))
        })?;
        record.client_secret = match (key_id, sealed) {
            (Some(key_id), Some(bytes)) => {
                let scope = scope(server, issuer);
                let binding = Binding {
                    kind: KIND,
                    user: "",
                    server: &scope,
                };
                let plain = self
                    .keys
                    .open(binding, &Sealed { key_id, bytes })
                    .map_err(|e| crypto_error(&format!("client secret of {server}"), &e))?;
                Some(Secret::new(String::from_utf8(plain).map_err(|_| {
                    StoreError::Corrupt(format!("client secret of {server} is not text"))
                })?))
            }
            _ => None,
        };
        Ok(Some(record))
    }

    async fn put(
        &self,
        server: &ServerName,
        issuer: &str,
        record: RegistrationRecord,
    ) -> Result<(), StoreError> {
        self.save_registration(server, issuer, record, true).await
    }

    async fn insert(
        &self,
        server: &ServerName,
        issuer: &str,
        record: RegistrationRecord,
    ) -> Result<RegistrationRecord, StoreError> {
        self.save_registration(server, issuer, record, false)
            .await?;
        self.get(server, issuer).await?.ok_or_else(|| {
            StoreError::Unavailable("the registration vanished right after it was saved".into())
        })
    }

    async fn delete(&self, server: &ServerName, issuer: &str) -> Result<(), StoreError> {
        sqlx::query(&self.sql("DELETE FROM registrations WHERE server = ? AND issuer = ?"))
            .bind(server.as_str())
            .bind(issuer)
            .execute(&self.pool)
            .await
            .map_err(|e| db_error("delete registration", &e))?;
        Ok(())
    }
}

impl SqlStore {
    /// Saves a registration; `replace`: over an existing one, else only where there is none.
    async fn save_registration(
        &self,
        server: &ServerName,
        issuer: &str,
        mut record: RegistrationRecord,
        replace: bool,
    ) -> Result<(), StoreError> {
        let scope = scope(server, issuer);
        let sealed = record
            .client_secret
            .take()
            .map(|secret| {
                let binding = Binding {
                    kind: KIND,
                    user: "",
                    server: &scope,
                };
                self.keys
                    .seal(binding, secret.expose().as_bytes())
                    .map_err(|e| crypto_error(&format!("seal client secret of {server}"), &e))
            })
            .transpose()?;
        let json = serde_json::to_string(&record)
            .map_err(|_| StoreError::Corrupt("registration does not serialize".to_owned()))?;
        sqlx::query(
            &self.sql(if replace {
                "INSERT INTO registrations (server, issuer, record, secret_key_id, client_secret) VALUES (?, ?, ?, ?, ?) \
                 ON CONFLICT (server, issuer) DO UPDATE SET record = excluded.record, \
                 secret_key_id = excluded.secret_key_id, client_secret = excluded.client_secret"
            } else {
                "INSERT INTO registrations (server, issuer, record, secret_key_id, client_secret) VALUES (?, ?, ?, ?, ?) \
                 ON CONFLICT (server, issuer) DO NOTHING"
            }),
        )
        .bind(server.as_str())
        .bind(issuer)
        .bind(json)
        .bind(sealed.as_ref().map(|s| s.key_id.clone()))
        .bind(sealed.map(|s| s.bytes))
        .execute(&self.pool)
        .await
        .map_err(|e| db_error("save registration", &e))?;
        Ok(())
    }
}
