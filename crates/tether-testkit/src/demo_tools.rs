//! Two small tools, and counters a test can read.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rmcp::ServerHandler;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ErrorData, InitializeRequestParams,
    InitializeResult, ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig,
};
use rmcp::service::{RequestContext, RoleServer};
use serde_json::{Value, json};

#[derive(Debug, Clone, Default)]
pub struct DemoTools {
    initialized: Arc<AtomicU64>,
    calls: Arc<AtomicU64>,
}

fn from_json<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, ErrorData> {
    serde_json::from_value(value).map_err(|e| ErrorData::internal_error(e.to_string(), None))
}

impl DemoTools {
    /// Sessions initialized so far (each `initialize` request).
    pub fn initialized(&self) -> u64 {
        self.initialized.load(Ordering::SeqCst)
    }

    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }
}

impl ServerHandler for DemoTools {
    fn get_info(&self) -> ServerConfig {
        InitializeResult::new(ServerCapabilities::builder().enable_tools().build())
    }

    async fn initialize(
        &self,
        _request: InitializeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<InitializeResult, ErrorData> {
        self.initialized.fetch_add(1, Ordering::SeqCst);
        Ok(self.get_info())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        from_json(json!({"tools": [
            {
                "name": "echo",
                "description": "Returns its text",
                "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}
            },
            {
                "name": "add",
                "description": "Adds two integers",
                "inputSchema": {
                    "type": "object",
                    "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                    "required": ["a", "b"]
                },
                "annotations": {"readOnlyHint": true}
            }
        ]}))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let args = request.arguments.unwrap_or_default();
        let result = match &*request.name {
            "echo" => {
                let text = args.get("text").and_then(Value::as_str).unwrap_or_default();
                json!({"content": [{"type": "text", "text": text}]})
            }
            "add" => match (
                args.get("a").and_then(Value::as_i64),
                args.get("b").and_then(Value::as_i64),
            ) {
                (Some(a), Some(b)) => json!({
                    "content": [{"type": "text", "text": a.saturating_add(b).to_string()}],
                    "structuredContent": {"sum": a.saturating_add(b)}
                }),
                _ => {
                    json!({"content": [{"type": "text", "text": "a and b must be integers"}], "isError": true})
                }
            },
            _ => return Err(ErrorData::invalid_params("unknown tool", None)),
        };
        Ok(CallToolResponse::Complete(from_json::<CallToolResult>(
            result,
        )?))
    }
}
