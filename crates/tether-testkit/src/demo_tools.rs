//! Two small tools, and counters a test can read.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

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
    /// `initialize` requests being answered right now, and the most there ever were at once.
    initializing: Arc<AtomicU64>,
    peak_initializing: Arc<AtomicU64>,
    /// How long each `initialize` takes (a slow upstream handshake); zero by default.
    init_delay: Duration,
}

/// Counts one `initialize` in flight until dropped (also when the request is cancelled).
struct InFlight<'a>(&'a AtomicU64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
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

    /// Every `initialize` takes `delay` before it answers, so that concurrent handshakes overlap
    /// and a client's concurrency limit becomes visible in [`DemoTools::peak_initializing`].
    pub fn with_init_delay(mut self, delay: Duration) -> Self {
        self.init_delay = delay;
        self
    }

    /// `initialize` requests in progress right now.
    pub fn initializing(&self) -> u64 {
        self.initializing.load(Ordering::SeqCst)
    }

    /// The most `initialize` requests that were ever in progress at once.
    pub fn peak_initializing(&self) -> u64 {
        self.peak_initializing.load(Ordering::SeqCst)
    }

    /// The counters as JSON (the `tether-testkit-mcp` binary serves this at `GET /stats`).
    pub fn stats(&self) -> Value {
        json!({
            "initialized": self.initialized(),
            "calls": self.calls(),
            "initializing": self.initializing(),
            "peak_initializing": self.peak_initializing(),
            "init_delay_ms": u64::try_from(self.init_delay.as_millis()).unwrap_or(u64::MAX),
        })
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
        let now = self.initializing.fetch_add(1, Ordering::SeqCst) + 1;
        let _in_flight = InFlight(&self.initializing);
        self.peak_initializing.fetch_max(now, Ordering::SeqCst);
        if !self.init_delay.is_zero() {
            tokio::time::sleep(self.init_delay).await;
        }
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
