//! Re-sealing every stored secret under the current key, so that an old key can be removed from
//! `TETHER_ENCRYPTION_KEY`.
//!
//! Safe while replicas serve: each value is replaced only if it is still the ciphertext that was
//! read (compare-and-swap on the row), so a refresh that wrote a new token meanwhile wins and is
//! never overwritten with an older one. Idempotent and resumable: values already under the
//! current key are not touched, and a run stopped halfway leaves every value readable (each
//! update is one statement). Values that no configured key opens are counted and left alone:
//! deleting them is for the operator to decide.

use sqlx::Row;
use tether_core::StoreError;

use super::{SqlStore, db_error};
use crate::crypto::{Binding, Sealed};

/// Rows read per round.
const BATCH: i64 = 500;
/// Bound on rounds per column (a run over 5 M values, or writers that never stop using an old
/// key, ends instead of looping).
const MAX_ROUNDS: usize = 10_000;

/// What a run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RekeyReport {
    /// Values now sealed under the current key by this run.
    pub resealed: u64,
    /// Values that changed between read and write (a concurrent refresh): left to the writer.
    pub changed_meanwhile: u64,
    /// Values no configured key opens (key missing or value corrupt): left as they are.
    pub unreadable: u64,
    /// Values still under another key when the run ended (unreadable ones included).
    pub remaining_under_old_keys: u64,
}

/// One sealed column: its table, key columns and how its values are bound.
struct SealedColumn {
    table: &'static str,
    key_id: &'static str,
    value: &'static str,
    kind: &'static str,
    /// Selects the two parts of the binding (`user`, `server`) and the row's primary key.
    select_ids: &'static str,
    match_ids: &'static str,
}

const COLUMNS: [SealedColumn; 3] = [
    SealedColumn {
        table: "tokens",
        key_id: "access_key_id",
        value: "access_token",
        kind: "access_token",
        select_ids: "user_id AS a, server AS b",
        match_ids: "user_id = ? AND server = ?",
    },
    SealedColumn {
        table: "tokens",
        key_id: "refresh_key_id",
        value: "refresh_token",
        kind: "refresh_token",
        select_ids: "user_id AS a, server AS b",
        match_ids: "user_id = ? AND server = ?",
    },
    SealedColumn {
        table: "registrations",
        key_id: "secret_key_id",
        value: "client_secret",
        kind: "client_secret",
        select_ids: "server AS a, issuer AS b",
        match_ids: "server = ? AND issuer = ?",
    },
];

impl SealedColumn {
    /// (user, server) of the binding for a row whose ids are (a, b).
    fn binding_parts(&self, a: &str, b: &str) -> (String, String) {
        if self.table == "registrations" {
            // Per-server records: no user; the issuer joins the server (see registrations.rs).
            (String::new(), format!("{a}\n{b}"))
        } else {
            (a.to_owned(), b.to_owned())
        }
    }
}

impl SqlStore {
    /// Re-seals every stored secret under the current key. See the module documentation.
    pub async fn rekey(&self) -> Result<RekeyReport, StoreError> {
        let mut report = RekeyReport::default();
        for column in &COLUMNS {
            self.rekey_column(column, &mut report).await?;
        }
        for column in &COLUMNS {
            report.remaining_under_old_keys += self.count_old(column).await?;
        }
        Ok(report)
    }

    async fn rekey_column(
        &self,
        column: &SealedColumn,
        report: &mut RekeyReport,
    ) -> Result<(), StoreError> {
        let current = self.keys.current_key_id().to_owned();
        // Rows that did not open are skipped by the next round's cursor, not read forever.
        let mut after: (String, String) = (String::new(), String::new());
        for _ in 0..MAX_ROUNDS {
            let statement = format!(
                "SELECT {ids}, {key_id} AS key_id, {value} AS value FROM {table} \
                 WHERE {key_id} IS NOT NULL AND {key_id} <> ? AND ({ids_tuple}) > (?, ?) \
                 ORDER BY {ids_order} LIMIT {BATCH}",
                ids = column.select_ids,
                key_id = column.key_id,
                value = column.value,
                table = column.table,
                ids_tuple = ids_tuple(column),
                ids_order = ids_tuple(column),
            );
            let rows = sqlx::query(&self.sql(&statement))
                .bind(&current)
                .bind(&after.0)
                .bind(&after.1)
                .fetch_all(&self.pool)
                .await
                .map_err(|e| db_error("rekey: read", &e))?;
            if rows.is_empty() {
                return Ok(());
            }
            for row in rows {
                let (a, b, key_id, bytes) = decode_row(&row)?;
                after = (a.clone(), b.clone());
                let (user, server) = column.binding_parts(&a, &b);
                let binding = Binding {
                    kind: column.kind,
                    user: &user,
                    server: &server,
                };
                let old = Sealed { key_id, bytes };
                let Ok(plain) = self.keys.open(binding, &old) else {
                    report.unreadable += 1;
                    continue;
                };
                let new = self
                    .keys
                    .seal(binding, &plain)
                    .map_err(|e| super::crypto_error("rekey: seal", &e))?;
                let update = format!(
                    "UPDATE {table} SET {key_id} = ?, {value} = ? \
                     WHERE {ids} AND {key_id} = ? AND {value} = ?",
                    table = column.table,
                    key_id = column.key_id,
                    value = column.value,
                    ids = column.match_ids,
                );
                let written = sqlx::query(&self.sql(&update))
                    .bind(new.key_id)
                    .bind(new.bytes)
                    .bind(&a)
                    .bind(&b)
                    .bind(&old.key_id)
                    .bind(old.bytes)
                    .execute(&self.pool)
                    .await
                    .map_err(|e| db_error("rekey: write", &e))?;
                if written.rows_affected() == 1 {
                    report.resealed += 1;
                } else {
                    report.changed_meanwhile += 1;
                }
            }
        }
        Err(StoreError::Unavailable(format!(
            "rekey: {}.{} did not finish within {MAX_ROUNDS} rounds; run it again",
            column.table, column.value
        )))
    }

    async fn count_old(&self, column: &SealedColumn) -> Result<u64, StoreError> {
        let statement = format!(
            "SELECT COUNT(*) AS n FROM {table} WHERE {key_id} IS NOT NULL AND {key_id} <> ?",
            table = column.table,
            key_id = column.key_id,
        );
        let row = sqlx::query(&self.sql(&statement))
            .bind(self.keys.current_key_id())
            .fetch_one(&self.pool)
            .await
            .map_err(|e| db_error("rekey: count", &e))?;
        let n: i64 = row.try_get("n").map_err(|e| db_error("rekey: count", &e))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}

fn ids_tuple(column: &SealedColumn) -> &'static str {
    if column.table == "registrations" {
        "server, issuer"
    } else {
        "user_id, server"
    }
}

fn decode_row(row: &sqlx::any::AnyRow) -> Result<(String, String, String, Vec<u8>), StoreError> {
    let get = |name: &str| row.try_get::<String, _>(name);
    let (a, b, key_id) = match (get("a"), get("b"), get("key_id")) {
        (Ok(a), Ok(b), Ok(key_id)) => (a, b, key_id),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return Err(db_error("rekey: row", &e)),
    };
    let bytes: Vec<u8> = row
        .try_get("value")
        .map_err(|e| db_error("rekey: row", &e))?;
    Ok((a, b, key_id, bytes))
}
