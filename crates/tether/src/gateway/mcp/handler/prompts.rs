//! `prompts/list` and `prompts/get`: prompts named like tools (the server's prefix and the
//! prompt's own name); arguments, embedded resources and images pass through unchanged.

use rmcp::ErrorData as McpError;
use rmcp::model::{GetPromptRequestParams, GetPromptResponse, ListPromptsResult};
use serde_json::{Map, Value};
use tether_core::CallContext;

use super::AggregatedServer;
use super::resources::{from_json, to_params};
use super::surface::is_input_required;
use crate::gateway::mcp::caller::Caller;

impl AggregatedServer {
    pub(super) async fn prompts(
        &self,
        user: &Caller,
        cursor: Option<&str>,
    ) -> Result<ListPromptsResult, McpError> {
        let page = self
            .list_page(user, "prompts/list", "prompts", "prompts", cursor)
            .await?;
        let naming = self.app.naming();
        let servers = self.app.manager().server_list();
        let mut object = Map::new();
        let mut list = Vec::new();
        if let Some(page) = page {
            for mut prompt in page.items {
                let Some(name) = prompt.get("name").and_then(Value::as_str) else {
                    continue;
                };
                let seen = user.sees(&servers);
                if !naming.round_trips(&page.server, name, seen) {
                    tracing::debug!(server = %page.server, name, "prompt name claimed by another server's prefix; not listed");
                    continue;
                }
                let joined = naming.join(&page.server, name);
                prompt["name"] = Value::String(joined);
                list.push(prompt);
            }
            if let Some(next) = page.next {
                object.insert("nextCursor".to_owned(), Value::String(next.encode()));
            }
        }
        object.insert("prompts".to_owned(), Value::Array(list));
        from_json(Value::Object(object))
    }

    pub(super) async fn prompt(
        &self,
        user: &Caller,
        request: GetPromptRequestParams,
        call: &CallContext,
    ) -> Result<GetPromptResponse, McpError> {
        let (server, name) = self.split_prompt(user, &request.name)?;
        // A 2026-07-28 agent's retry carries its `inputResponses` and `requestState` here.
        let mut params = to_params(&request)?;
        params.insert("name".to_owned(), Value::String(name));
        let result = self.ask(user, &server, "prompts/get", params, call).await?;
        if result.as_object().is_some_and(is_input_required) {
            return Ok(GetPromptResponse::InputRequired(from_json(result)?));
        }
        Ok(GetPromptResponse::Complete(from_json(result)?))
    }

    /// The server and upstream name of an aggregated prompt name.
    pub(super) fn split_prompt(
        &self,
        user: &Caller,
        name: &str,
    ) -> Result<(tether_core::ServerName, String), McpError> {
        let servers = self.app.manager().server_list();
        self.app
            .naming()
            .split(name, user.sees(&servers))
            .map(|(server, prompt)| (server, prompt.to_owned()))
            .ok_or_else(|| {
                let quoted: String = name.chars().take(128).collect();
                McpError::invalid_params(format!("unknown prompt {quoted:?}"), None)
            })
    }
}
