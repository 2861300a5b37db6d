//! `completion/complete`, routed by its reference: a prompt by its aggregated name, a resource
//! template by its (wrapped) URI template.

use rmcp::ErrorData as McpError;
use rmcp::model::{CompleteRequestParams, CompleteResult, Reference};
use serde_json::Value;
use tether_core::CallContext;

use super::AggregatedServer;
use super::resources::{from_json, to_params};
use crate::gateway::mcp::caller::Caller;

impl AggregatedServer {
    pub(super) async fn completion(
        &self,
        user: &Caller,
        request: CompleteRequestParams,
    ) -> Result<CompleteResult, McpError> {
        let mut params = to_params(&request)?;
        let server = match &request.r#ref {
            Reference::Prompt(prompt) => {
                let (server, name) = self.split_prompt(user, &prompt.name)?;
                if let Some(Value::Object(reference)) = params.get_mut("ref") {
                    reference.insert("name".to_owned(), Value::String(name));
                }
                server
            }
            Reference::Resource(template) => {
                let (server, uri) = self.route_uri(&template.uri).ok_or_else(|| {
                    McpError::invalid_params("no server has that resource template", None)
                })?;
                if let Some(Value::Object(reference)) = params.get_mut("ref") {
                    reference.insert("uri".to_owned(), Value::String(uri));
                }
                server
            }
            _ => {
                return Err(McpError::invalid_params(
                    "completion for this kind of reference is not supported",
                    None,
                ));
            }
        };
        from_json(
            self.ask(
                user,
                &server,
                "completion/complete",
                params,
                &CallContext::default(),
            )
            .await?,
        )
    }
}
