//! The server catalog: servers added while Tether runs, each kept as its configuration entry in
//! JSON (the binary parses and validates it; this module stores text), and a version every
//! change bumps in the same transaction, so replicas notice a change with one small query.
//!
//! Also here: forgetting everything of a server that was deleted (its tokens and tool lists,
//! for every user).

use tether_core::StoreError;

use super::{SqlStore, db_error, ms};

/// One catalog entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogEntry {
    pub name: String,
    /// The server's entry as JSON, as the binary wrote it.
    pub definition: String,
    /// The user who added it for themselves; `None`: the operator's.
    pub owner: Option<String>,
}

/// How a write went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatalogWrite {
    Done,
    /// Create: the name is taken. Update or delete: there is no such entry.
    Conflict,
}

impl SqlStore {
    /// The catalog's version: it changes with every write.
    pub async fn catalog_version(&self) -> Result<i64, StoreError> {
        let (version,): (i64,) =
            sqlx::query_as(&self.sql("SELECT version FROM catalog_version WHERE id = 1"))
                .fetch_one(&self.pool)
                .await
                .map_err(|e| db_error("read catalog version", &e))?;
        Ok(version)
    }

    /// The version and every entry, by name. The version is read first: a write between the
    /// two reads shows as a newer version at the next poll.
    pub async fn catalog(&self) -> Result<(i64, Vec<CatalogEntry>), StoreError> {
        let version = self.catalog_version().await?;
        let rows: Vec<(String, String, Option<String>)> = sqlx::query_as(
            &self.sql("SELECT name, definition, owner FROM catalog_servers ORDER BY name"),
        )
        .fetch_all(&self.pool)
        .await
        .map_err(|e| db_error("read catalog", &e))?;
        Ok((
            version,
            rows.into_iter()
                .map(|(name, definition, owner)| CatalogEntry {
                    name,
                    definition,
                    owner,
                })
                .collect(),
        ))
    }

    /// Adds (`create`) or replaces an entry; `now` in milliseconds since the epoch.
    pub async fn catalog_put(
        &self,
        entry: &CatalogEntry,
        create: bool,
        now: tether_core::Timestamp,
    ) -> Result<CatalogWrite, StoreError> {
        let statement = if create {
            "INSERT INTO catalog_servers (name, definition, updated_at, owner) VALUES (?, ?, ?, ?) \
             ON CONFLICT (name) DO NOTHING"
        } else {
            "UPDATE catalog_servers SET definition = ?, updated_at = ? WHERE name = ?"
        };
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| db_error("write catalog", &e))?;
        let statement = self.sql(statement);
        let query = sqlx::query(&statement);
        let query = if create {
            query
                .bind(entry.name.as_str())
                .bind(entry.definition.as_str())
                .bind(ms(now))
                .bind(entry.owner.as_deref())
        } else {
            query
                .bind(entry.definition.as_str())
                .bind(ms(now))
                .bind(entry.name.as_str())
        };
        let written = query
            .execute(&mut *tx)
            .await
            .map_err(|e| db_error("write catalog", &e))?
            .rows_affected();
        if written == 0 {
            return Ok(CatalogWrite::Conflict);
        }
        self.bump_catalog(&mut tx).await?;
        tx.commit()
            .await
            .map_err(|e| db_error("write catalog", &e))?;
        Ok(CatalogWrite::Done)
    }

    /// Deletes an entry.
    pub async fn catalog_delete(&self, name: &str) -> Result<CatalogWrite, StoreError> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| db_error("delete catalog entry", &e))?;
        let deleted = sqlx::query(&self.sql("DELETE FROM catalog_servers WHERE name = ?"))
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(|e| db_error("delete catalog entry", &e))?
            .rows_affected();
        if deleted == 0 {
            return Ok(CatalogWrite::Conflict);
        }
        self.bump_catalog(&mut tx).await?;
        tx.commit()
            .await
            .map_err(|e| db_error("delete catalog entry", &e))?;
        Ok(CatalogWrite::Done)
    }

    async fn bump_catalog(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    ) -> Result<(), StoreError> {
        sqlx::query(&self.sql("UPDATE catalog_version SET version = version + 1 WHERE id = 1"))
            .execute(&mut **tx)
            .await
            .map_err(|e| db_error("bump catalog version", &e))?;
        Ok(())
    }

    /// The servers switched off.
    pub async fn disabled_servers(&self) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(String,)> =
            sqlx::query_as(&self.sql("SELECT name FROM disabled_servers ORDER BY name"))
                .fetch_all(&self.pool)
                .await
                .map_err(|e| db_error("read disabled servers", &e))?;
        Ok(rows.into_iter().map(|(name,)| name).collect())
    }

    /// Switches `name` off (`disabled`) or on again; bumps the catalog's version when it
    /// changed anything.
    pub async fn set_disabled(&self, name: &str, disabled: bool) -> Result<bool, StoreError> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| db_error("switch server", &e))?;
        let statement = if disabled {
            "INSERT INTO disabled_servers (name) VALUES (?) ON CONFLICT (name) DO NOTHING"
        } else {
            "DELETE FROM disabled_servers WHERE name = ?"
        };
        let changed = sqlx::query(&self.sql(statement))
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(|e| db_error("switch server", &e))?
            .rows_affected();
        if changed > 0 {
            self.bump_catalog(&mut tx).await?;
        }
        tx.commit()
            .await
            .map_err(|e| db_error("switch server", &e))?;
        Ok(changed > 0)
    }

    /// The users holding tokens of `server` (to revoke them before [`Self::forget_server`]).
    pub async fn token_users(&self, server: &str) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(String,)> =
            sqlx::query_as(&self.sql("SELECT user_id FROM tokens WHERE server = ?"))
                .bind(server)
                .fetch_all(&self.pool)
                .await
                .map_err(|e| db_error("list token holders", &e))?;
        Ok(rows.into_iter().map(|(user,)| user).collect())
    }

    /// Deletes every user's tokens and tool list of `server` (a server deleted from the
    /// catalog); returns how many token records went.
    pub async fn forget_server(&self, server: &str) -> Result<u64, StoreError> {
        let tokens = sqlx::query(&self.sql("DELETE FROM tokens WHERE server = ?"))
            .bind(server)
            .execute(&self.pool)
            .await
            .map_err(|e| db_error("delete server tokens", &e))?
            .rows_affected();
        sqlx::query(&self.sql("DELETE FROM tool_lists WHERE server = ?"))
            .bind(server)
            .execute(&self.pool)
            .await
            .map_err(|e| db_error("delete server tool lists", &e))?;
        Ok(tokens)
    }
}
