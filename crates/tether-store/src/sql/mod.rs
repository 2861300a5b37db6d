//! Tokens, client registrations, tool lists and the server catalog in SQL (SQLite by default, PostgreSQL for
//! several replicas), secrets sealed with [`crate::crypto::Keyring`].
//!
//! One [`SqlStore`] implements tether-oauth's `TokenVault` and `RegistrationStore` and
//! tether-core's `TokenStore` and `ToolCache`. Errors say which operation failed and why in
//! general terms; they never carry a value, a key or the database URL's credentials.

mod catalog;
mod registrations;
mod rekey;
mod tokens;
mod tool_lists;

use std::borrow::Cow;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Executor};
use tether_core::StoreError;

use crate::crypto::{CryptoError, Keyring};

pub use catalog::{CatalogEntry, CatalogWrite};
pub use rekey::RekeyReport;

/// Which database is behind the pool: the SQL is the same but for placeholders and the
/// migrations' column types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The store behind every record kind. Cheap to clone.
#[derive(Clone)]
pub struct SqlStore {
    pool: AnyPool,
    backend: Backend,
    keys: Arc<Keyring>,
}

impl std::fmt::Debug for SqlStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStore")
            .field("backend", &self.backend)
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
    /// Opens `sqlite://path` (creating file and folders) or `postgres://…`, and brings the
    /// schema up to date.
    pub async fn open(url: &str, keys: Keyring) -> Result<Self, StoreError> {
        install_default_drivers();
        let (backend, connect_url) = if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(StoreError::Unavailable(
                    "storage URL names no file".to_owned(),
                ));
            }
            let file = path.split('?').next().unwrap_or_default();
            if let Some(dir) = Path::new(file)
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
            {
                std::fs::create_dir_all(dir).map_err(|e| {
                    StoreError::Unavailable(format!(
                        "cannot create {}: {}",
                        dir.display(),
                        e.kind()
                    ))
                })?;
            }
            let separator = if url.contains('?') { '&' } else { '?' };
            (Backend::Sqlite, format!("{url}{separator}mode=rwc"))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, url.to_owned())
        } else {
            return Err(StoreError::Unavailable(
                "storage URL must start with sqlite:// or postgres://".to_owned(),
            ));
        };
        let pool = AnyPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(5))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL: readers never wait for the writer; NORMAL is durable across
                        // process crashes; writers wait for each other instead of failing.
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA synchronous = NORMAL").await?;
                        conn.execute("PRAGMA busy_timeout = 5000").await?;
                    }
                    Ok(())
                })
            })
            .connect(&connect_url)
            .await
            .map_err(|e| db_error("open", &e))?;
        let migrator = match backend {
            Backend::Sqlite => sqlx::migrate!("./migrations/sqlite"),
            Backend::Postgres => sqlx::migrate!("./migrations/postgres"),
        };
        migrator
            .run(&pool)
            .await
            .map_err(|e| StoreError::Unavailable(format!("schema migration failed: {e}")))?;
        Ok(Self {
            pool,
            backend,
            keys: Arc::new(keys),
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The statement in this backend's placeholders: `?` for SQLite, `$1, $2…` for PostgreSQL.
    /// Statements here contain no `?` other than placeholders.
    pub(crate) fn sql<'a>(&self, statement: &'a str) -> Cow<'a, str> {
        match self.backend {
            Backend::Sqlite => Cow::Borrowed(statement),
            Backend::Postgres => {
                let mut out = String::with_capacity(statement.len() + 8);
                let mut n = 0;
                for c in statement.chars() {
                    if c == '?' {
                        n += 1;
                        out.push('$');
                        out.push_str(&n.to_string());
                    } else {
                        out.push(c);
                    }
                }
                Cow::Owned(out)
            }
        }
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
