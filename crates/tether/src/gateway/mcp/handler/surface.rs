//! What the resource, prompt, completion and logging methods share: the user's servers asked
//! through the core (so stubs' rules, breakers and limits apply), errors in JSON-RPC terms, and
//! the cursor of an aggregated list.
//!
//! An aggregated list serves one upstream page per request. Its cursor says which server comes
//! next (by name, so a configuration reload cannot shift it onto another server) and that
//! server's own cursor; servers that are down or do not offer the feature are skipped.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rmcp::ErrorData as McpError;
use rmcp::model::{ErrorCode, InputRequiredResult};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tether_core::{CallContext, RequestError, ServerName};

use super::AggregatedServer;
use crate::gateway::mcp::caller::Caller;

/// Where an aggregated list stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct ListCursor {
    /// The server whose page comes next.
    pub(super) server: String,
    /// That server's cursor; absent for its first page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) upstream: Option<String>,
}

impl ListCursor {
    pub(super) fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    pub(super) fn decode(text: &str) -> Result<Self, McpError> {
        URL_SAFE_NO_PAD
            .decode(text)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or_else(|| McpError::invalid_params("invalid cursor", None))
    }
}

/// One page of an aggregated list: the items as the server gave them, with their server.
pub(super) struct Page {
    pub(super) server: ServerName,
    pub(super) items: Vec<Value>,
    pub(super) next: Option<ListCursor>,
}

/// The core's answer in JSON-RPC terms: the upstream's own error passes through; a server that
/// cannot be asked is an internal error whose message names it and says when to retry.
pub(super) fn to_mcp_error(error: RequestError) -> McpError {
    match error {
        RequestError::Refused { code, message } => McpError::new(ErrorCode(code), message, None),
        RequestError::Unavailable { message } => McpError::internal_error(message, None),
    }
}

/// Whether a result asks the agent for input (SEP-2322); only agents of 2026-07-28 and later
/// get such results, the others are asked upstream of here.
pub(crate) fn is_input_required(result: &Map<String, Value>) -> bool {
    result.get("resultType").and_then(Value::as_str) == Some("input_required")
}

/// An upstream's input-required result as MCP's type, without the upstream leg's protocol
/// `_meta` (every road that hands questions to a 2026-07-28 agent reads them here).
pub(crate) fn questions(mut result: Map<String, Value>) -> Result<InputRequiredResult, McpError> {
    without_protocol_meta(&mut result);
    serde_json::from_value(Value::Object(result))
        .map_err(|_| McpError::internal_error("the server's questions could not be read", None))
}

/// Drops the protocol's own `_meta` entries (`io.modelcontextprotocol/…`: the upstream's
/// server info among them) from an upstream result: they describe that leg, and the gateway's
/// own are added for the agent's.
pub(crate) fn without_protocol_meta(result: &mut Map<String, Value>) {
    let Some(Value::Object(meta)) = result.get_mut("_meta") else {
        return;
    };
    meta.retain(|key, _| !key.starts_with("io.modelcontextprotocol/"));
    if meta.is_empty() {
        result.remove("_meta");
    }
}

/// An upstream's result as the gateway's own: complete (input was asked for and answered
/// upstream of here), and without the upstream's caching hints, which held for that server and
/// that token, not for this user's aggregated view (rmcp fills in "private, 0 ms" for agents of
/// 2026-07-28 and drops `resultType` for the others).
fn as_gateway_result(result: &mut Value) {
    if let Value::Object(result) = result {
        result.remove("ttlMs");
        result.remove("cacheScope");
        without_protocol_meta(result);
        // Questions for an agent that answers them itself go back to it as they are.
        if is_input_required(result) {
            return;
        }
        result.insert(
            "resultType".to_owned(),
            Value::String("complete".to_owned()),
        );
    }
}

impl AggregatedServer {
    /// One request to one of the user's servers.
    pub(super) async fn ask(
        &self,
        user: &Caller,
        server: &ServerName,
        method: &str,
        params: Map<String, Value>,
        call: &CallContext,
    ) -> Result<Value, McpError> {
        // A server the user may not use is as unknown as one that does not exist.
        if !user.access.permits(server) {
            return Err(McpError::invalid_params("unknown server", None));
        }
        let mut result = self
            .app
            .manager()
            .request(user, server, method, Some(Value::Object(params)), call)
            .await
            .map_err(|_| McpError::invalid_params("unknown server", None))?
            .map_err(to_mcp_error)?;
        as_gateway_result(&mut result);
        Ok(result)
    }

    /// The next non-empty page of `method`'s list (`items` its array member) over the user's
    /// servers that offer `capability`, from `cursor` on.
    pub(super) async fn list_page(
        &self,
        user: &Caller,
        method: &str,
        capability: &str,
        items: &str,
        cursor: Option<&str>,
    ) -> Result<Option<Page>, McpError> {
        let cursor = cursor.map(ListCursor::decode).transpose()?;
        if cursor.is_none() {
            // A first page: servers never connected for the user are connected first, as
            // for tools/list, or their resources and prompts would be missing.
            self.connect_never_connected(user).await;
        }
        let manager = self.app.manager();
        let servers: Vec<ServerName> = manager
            .servers()
            .map(|s| s.name.clone())
            .filter(|name| user.access.permits(name))
            .collect();
        let start = match &cursor {
            None => 0,
            Some(c) => servers
                .iter()
                .position(|s| s.as_str() == c.server)
                .ok_or_else(|| McpError::invalid_params("invalid cursor", None))?,
        };
        let mut position = (start, cursor.and_then(|c| c.upstream));
        let at = |(index, upstream): (usize, Option<String>)| {
            servers.get(index).map(|server| ListCursor {
                server: server.to_string(),
                upstream,
            })
        };
        // Each step asks one server for one page; empty pages are skipped, a bounded number of
        // them (a server that answers empty pages forever must not hold the request).
        for _ in 0..servers.len() + MAX_EMPTY_PAGES {
            let (index, upstream) = position.clone();
            let Some(server) = servers.get(index) else {
                return Ok(None);
            };
            if manager.offers(user, server, capability) != Some(true) {
                position = (index + 1, None);
                continue;
            }
            let mut params = Map::new();
            if let Some(c) = upstream {
                params.insert("cursor".to_owned(), Value::String(c));
            }
            let result = match self
                .ask(user, server, method, params, &CallContext::default())
                .await
            {
                Ok(result) => result,
                Err(error) => {
                    // One server down must not hide the others' lists.
                    tracing::debug!(%user, %server, method, error = %error.message, "list skipped");
                    position = (index + 1, None);
                    continue;
                }
            };
            position = match result.get("nextCursor").and_then(Value::as_str) {
                Some(next) => (index, Some(next.to_owned())),
                None => (index + 1, None),
            };
            let page_items = match result.get(items) {
                Some(Value::Array(list)) if !list.is_empty() => list.clone(),
                _ => continue,
            };
            return Ok(Some(Page {
                server: server.clone(),
                items: page_items,
                next: at(position),
            }));
        }
        // Out of steps: an empty page whose cursor lets the client go on.
        Ok(at(position.clone()).map(|next| Page {
            server: ServerName::new(next.server.as_str()),
            items: Vec::new(),
            next: Some(next),
        }))
    }
}

/// Empty upstream pages one list request skips before it answers an empty page with a cursor.
const MAX_EMPTY_PAGES: usize = 16;
