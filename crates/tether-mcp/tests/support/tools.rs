//! An rmcp server handler for tests: five tools served two per `tools/list` page (so listing
//! takes three pages), of which `add` and `echo` do something. Shared by the in-process HTTP
//! server and the stdio example binary.

use rmcp::ServerHandler;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ErrorData, InitializeResult,
    ListToolsResult, PaginatedRequestParams, ProtocolVersion, ServerCapabilities, ServerConfig,
};
use rmcp::service::{RequestContext, RoleServer};
use serde_json::{Value, json};

/// Tools per `tools/list` page.
pub const PAGE_SIZE: usize = 2;

/// The tool names, in listing order.
pub const TOOL_NAMES: [&str; 5] = ["add", "echo", "noop-1", "noop-2", "noop-3"];

fn tool_json(name: &str) -> Value {
    match name {
        "add" => json!({
            "name": "add",
            "title": "Add",
            "description": "Adds two integers",
            "inputSchema": {
                "type": "object",
                "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                "required": ["a", "b"]
            },
            "annotations": {"readOnlyHint": true}
        }),
        "echo" => json!({
            "name": "echo",
            "description": "Returns its text",
            "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}}
        }),
        other => json!({"name": other, "inputSchema": {"type": "object"}}),
    }
}

fn from_json<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, ErrorData> {
    serde_json::from_value(value).map_err(|e| ErrorData::internal_error(e.to_string(), None))
}

/// Lists [`TOOL_NAMES`] in pages of [`PAGE_SIZE`]; the cursor is the next index.
#[derive(Debug, Clone, Default)]
pub struct PagedTools;

impl ServerHandler for PagedTools {
    /// The session revisions only: the tests that use it are about sessions (their loss, their
    /// resumption, the tasks they hold).
    fn supported_protocol_versions(&self) -> std::borrow::Cow<'static, [ProtocolVersion]> {
        std::borrow::Cow::Borrowed(ProtocolVersion::known_up_to(
            &ProtocolVersion::LATEST_WITH_INITIALIZE,
        ))
    }

    fn get_info(&self) -> ServerConfig {
        InitializeResult::new(ServerCapabilities::builder().enable_tools().build())
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let start = match request.and_then(|r| r.cursor) {
            None => 0,
            Some(c) => c
                .parse::<usize>()
                .map_err(|_| ErrorData::invalid_params("bad cursor", None))?,
        };
        let end = (start + PAGE_SIZE).min(TOOL_NAMES.len());
        let tools: Vec<Value> = TOOL_NAMES
            .get(start..end)
            .unwrap_or_default()
            .iter()
            .map(|n| tool_json(n))
            .collect();
        let mut page = json!({"tools": tools});
        if end < TOOL_NAMES.len() {
            page["nextCursor"] = json!(end.to_string());
        }
        from_json(page)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let args = request.arguments.unwrap_or_default();
        let result = match &*request.name {
            "add" => {
                let a = args.get("a").and_then(Value::as_i64);
                let b = args.get("b").and_then(Value::as_i64);
                match (a, b) {
                    (Some(a), Some(b)) => json!({
                        "content": [{"type": "text", "text": (a + b).to_string()}],
                        "structuredContent": {"sum": a + b}
                    }),
                    _ => json!({
                        "content": [{"type": "text", "text": "a and b must be integers"}],
                        "isError": true
                    }),
                }
            }
            "echo" => {
                let text = args.get("text").and_then(Value::as_str).unwrap_or_default();
                json!({"content": [{"type": "text", "text": text}]})
            }
            name if TOOL_NAMES.contains(&name) => json!({"content": []}),
            _ => return Err(ErrorData::invalid_params("unknown tool", None)),
        };
        Ok(CallToolResponse::Complete(from_json::<CallToolResult>(
            result,
        )?))
    }
}

/// A hostile server: every `tools/list` page holds one tool and a cursor to yet another page.
#[derive(Debug, Clone, Default)]
pub struct EndlessPages;

impl ServerHandler for EndlessPages {
    fn get_info(&self) -> ServerConfig {
        InitializeResult::new(ServerCapabilities::builder().enable_tools().build())
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let n = request
            .and_then(|r| r.cursor)
            .and_then(|c| c.parse::<u64>().ok())
            .unwrap_or(0);
        from_json(json!({
            "tools": [{"name": format!("tool-{n}"), "inputSchema": {"type": "object"}}],
            "nextCursor": (n + 1).to_string()
        }))
    }
}

/// A hostile server: one `tools/list` page with one tool more than the connector accepts.
#[derive(Debug, Clone, Default)]
pub struct TooManyTools;

impl ServerHandler for TooManyTools {
    fn get_info(&self) -> ServerConfig {
        InitializeResult::new(ServerCapabilities::builder().enable_tools().build())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let tools: Vec<Value> = (0..=tether_mcp::MAX_TOOLS)
            .map(|n| json!({"name": format!("t{n}"), "inputSchema": {"type": "object"}}))
            .collect();
        from_json(json!({"tools": tools}))
    }
}

/// A hostile server: 10,000 tools over 100 pages, each with a 2 KB description (about 20 MB in
/// all; every page alone is well within rmcp's per-answer limit).
#[derive(Debug, Clone, Default)]
pub struct HugeTools;

impl ServerHandler for HugeTools {
    fn get_info(&self) -> ServerConfig {
        InitializeResult::new(ServerCapabilities::builder().enable_tools().build())
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        const PAGES: u64 = 100;
        const PER_PAGE: u64 = 100;
        let page = request
            .and_then(|r| r.cursor)
            .and_then(|c| c.parse::<u64>().ok())
            .unwrap_or(0);
        let description = "x".repeat(2048);
        let tools: Vec<Value> = (0..PER_PAGE)
            .map(|n| {
                json!({
                    "name": format!("t{page}-{n}"),
                    "description": description,
                    "inputSchema": {"type": "object"},
                })
            })
            .collect();
        let next = (page + 1 < PAGES).then(|| (page + 1).to_string());
        from_json(json!({"tools": tools, "nextCursor": next}))
    }
}
