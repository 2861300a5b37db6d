//! The last good tool list per pair (tether-core's `ToolCache`), kept across restarts so tools
//! stay listed as stubs after the gateway comes back while an upstream is still down.

use async_trait::async_trait;
use tether_core::{CachedTools, PairKey, StoreError, Tool, ToolCache};

use super::{SqlStore, db_error, ms, ts};

#[async_trait]
impl ToolCache for SqlStore {
    async fn load(&self, pair: &PairKey) -> Result<Option<CachedTools>, StoreError> {
        let row: Option<(String, i64)> = sqlx::query_as(
            &self.sql("SELECT tools, fetched_at FROM tool_lists WHERE user_id = ? AND server = ?"),
        )
        .bind(pair.user.as_str())
        .bind(pair.server.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| db_error("load tool list", &e))?;
        let Some((json, fetched_at)) = row else {
            return Ok(None);
        };
        let tools: Vec<Tool> = serde_json::from_str(&json)
            .map_err(|_| StoreError::Corrupt(format!("tool list of {pair} is not valid JSON")))?;
        Ok(Some(CachedTools {
            tools: tools.into(),
            fetched_at: ts(fetched_at),
        }))
    }

    async fn save(&self, pair: &PairKey, tools: &CachedTools) -> Result<(), StoreError> {
        let json = serde_json::to_string(&*tools.tools)
            .map_err(|_| StoreError::Corrupt("tool list does not serialize".to_owned()))?;
        sqlx::query(
            &self.sql("INSERT INTO tool_lists (user_id, server, tools, fetched_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT (user_id, server) DO UPDATE SET tools = excluded.tools, fetched_at = excluded.fetched_at"),
        )
        .bind(pair.user.as_str())
        .bind(pair.server.as_str())
        .bind(json)
        .bind(ms(tools.fetched_at))
        .execute(&self.pool)
        .await
        .map_err(|e| db_error("save tool list", &e))?;
        Ok(())
    }

    async fn remove(&self, pair: &PairKey) -> Result<(), StoreError> {
        sqlx::query(&self.sql("DELETE FROM tool_lists WHERE user_id = ? AND server = ?"))
            .bind(pair.user.as_str())
            .bind(pair.server.as_str())
            .execute(&self.pool)
            .await
            .map_err(|e| db_error("remove tool list", &e))?;
        Ok(())
    }
}
