//! Tokens, client registrations and tool lists in SQL (SQLite by default), secrets sealed with
//! [`crate::crypto::Keyring`].
//!
//! One [`SqlStore`] implements tether-oauth's `TokenVault` and `RegistrationStore` and
//! tether-core's `TokenStore` and `ToolCache`. Errors say which operation failed and why in
//! general terms; they never carry a value, a key or the database URL's credentials.

mod registrations;
mod tokens;
mod tool_lists;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use tether_core::StoreError;

use crate::crypto::{CryptoError, Keyring};

/// The store behind every record kind. Cheap to clone.
#[derive(Clone)]
pub struct SqlStore {
    pool: SqlitePool,
    keys: Arc<Keyring>,
}

impl std::fmt::Debug for SqlStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStore")
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

pub(crate) fn db_error(op: &str, error: &sqlx::Error) -> StoreError {
    // sqlx errors can quote bound values in some paths; keep only the category.
    let what = match error {
        sqlx::Error::Database(_) => "database error",
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => "unavailable",
        sqlx::Error::RowNotFound => "row not found",
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => "undecodable row",
        _ => "failed",
    };
    StoreError::Unavailable(format!("{op}: {what}"))
}

pub(crate) fn crypto_error(op: &str, error: &CryptoError) -> StoreError {
    StoreError::Corrupt(format!("{op}: {error}"))
}

pub(crate) fn ms(t: tether_core::Timestamp) -> i64 {
    i64::try_from(t.as_millis()).unwrap_or(i64::MAX)
}

pub(crate) fn ts(ms: i64) -> tether_core::Timestamp {
    tether_core::Timestamp::from_millis(u64::try_from(ms).unwrap_or(0))
}

impl SqlStore {
    /// Opens (creating file and folders) `sqlite://path` and brings the schema up to date.
    pub async fn open(url: &str, keys: Keyring) -> Result<Self, StoreError> {
        let path = url.strip_prefix("sqlite://").ok_or_else(|| {
            StoreError::Unavailable("storage URL must start with sqlite://".to_owned())
        })?;
        if path.is_empty() {
            return Err(StoreError::Unavailable(
                "storage URL names no file".to_owned(),
            ));
        }
        if let Some(dir) = Path::new(path)
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Unavailable(format!("cannot create {}: {}", dir.display(), e.kind()))
            })?;
        }
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|_| {
                StoreError::Unavailable("storage URL is not a valid SQLite URL".to_owned())
            })?
            .create_if_missing(true)
            // WAL: readers never wait for the writer; NORMAL is durable across process crashes.
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .map_err(|e| db_error("open", &e))?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&pool)
            .await
            .map_err(|e| StoreError::Unavailable(format!("schema migration failed: {e}")))?;
        Ok(Self {
            pool,
            keys: Arc::new(keys),
        })
    }

    /// One round trip to the database (for readiness probes).
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(|e| db_error("ping", &e))?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}
