//! Two small tools, a few resources (text, a binary blob of any size, a template), one prompt
//! with completion, logging, and counters a test can read.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine;
use rmcp::ServerHandler;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, CompleteRequestParams, CompleteResult,
    CustomRequest, ErrorData, GetPromptRequestParams, GetPromptResponse, GetPromptResult,
    InitializeRequestParams, InitializeResult, ListPromptsResult, ListResourceTemplatesResult,
    ListResourcesResult, ListToolsResult, PaginatedRequestParams, ProgressNotificationParam,
    ProtocolVersion, ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult,
    Reference, ServerCapabilities, ServerConfig, ServerRequest,
};
#[allow(
    deprecated,
    reason = "agents of earlier revisions still set a log level"
)]
use rmcp::model::{
    ResourceUpdatedNotificationParam, SetLevelRequestParams, SubscribeRequestParams,
    UnsubscribeRequestParams,
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
    /// The last level `logging/setLevel` asked for.
    log_level: Arc<std::sync::Mutex<Option<String>>>,
    /// Whether `progress`, `ask`, `roots` and `slow` are listed (they talk back to the client).
    interactive: bool,
    /// `slow` calls that were cancelled by the client.
    cancelled: Arc<AtomicU64>,
    /// Set by `grow`: the tool `extra` is listed too.
    grown: Arc<std::sync::atomic::AtomicBool>,
    /// URIs a client subscribed to.
    subscribed: Arc<std::sync::Mutex<Vec<String>>>,
    /// Whether the 2026-07-28 wire is offered besides the session revisions.
    speaks_2026: bool,
    /// The `ttlMs` caching hint of `tools/list` results (2026-07-28), when set.
    tools_ttl_ms: Option<u64>,
}

/// The largest blob `blob://bytes/{n}` serves.
const MAX_BLOB: usize = 8 * 1024 * 1024;

/// `n` bytes of a fixed pattern, so a reader can check every byte.
pub fn blob_bytes(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
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

    /// Also offers `progress` (progress notifications, then a result), `ask` (asks the client
    /// for a sampling and a form elicitation), `roots` (asks for the client's roots), `slow`
    /// (waits until cancelled, counting [`DemoTools::cancelled`]), `withdraw` (asks a form
    /// elicitation, then withdraws it with `notifications/cancelled`) and `grow` (adds the tool
    /// `extra` and sends `notifications/tools/list_changed`).
    /// Offers the 2026-07-28 wire too (stateless requests, `server/discover`), beside the
    /// session revisions.
    pub fn with_2026_wire(mut self) -> Self {
        self.speaks_2026 = true;
        self
    }

    /// `tools/list` results say they stay fresh for `ttl` (`ttlMs`, 2026-07-28).
    pub fn with_tools_ttl(mut self, ttl: Duration) -> Self {
        self.tools_ttl_ms = Some(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX));
        self
    }

    /// Adds the tool `extra` (with [`DemoTools::with_interaction`]) without telling anyone: a
    /// client learns of it only by listing the tools again.
    pub fn grow_quietly(&self) {
        self.grown.store(true, Ordering::SeqCst);
    }

    pub fn with_interaction(mut self) -> Self {
        self.interactive = true;
        self
    }

    /// The URIs clients are subscribed to now.
    pub fn subscriptions(&self) -> Vec<String> {
        self.subscribed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// `slow` calls the client cancelled.
    pub fn cancelled(&self) -> u64 {
        self.cancelled.load(Ordering::SeqCst)
    }

    /// The last level an agent set with `logging/setLevel`.
    pub fn log_level(&self) -> Option<String> {
        self.log_level
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The counters as JSON (the `tether-testkit-mcp` binary serves this at `GET /stats`).
    pub fn stats(&self) -> Value {
        json!({
            "initialized": self.initialized(),
            "calls": self.calls(),
            "initializing": self.initializing(),
            "peak_initializing": self.peak_initializing(),
            "init_delay_ms": u64::try_from(self.init_delay.as_millis()).unwrap_or(u64::MAX),
            "log_level": self.log_level(),
        })
    }
}

impl DemoTools {
    /// The tools of [`DemoTools::with_interaction`]; `None` for the others.
    async fn interact(
        &self,
        name: &str,
        args: &serde_json::Map<String, Value>,
        context: &RequestContext<RoleServer>,
    ) -> Result<Option<Value>, ErrorData> {
        let text = |text: String| json!({"content": [{"type": "text", "text": text}]});
        let ask = |method: &str, params: Value| {
            let request = ServerRequest::CustomRequest(CustomRequest::new(method, Some(params)));
            let peer = context.peer.clone();
            async move {
                match peer.send_request(request).await {
                    Ok(answer) => serde_json::to_value(answer).unwrap_or_default(),
                    Err(error) => json!({"refused": error.to_string()}),
                }
            }
        };
        Ok(Some(match name {
            "progress" => {
                let steps = args.get("steps").and_then(Value::as_u64).unwrap_or(3);
                if let Some(token) = context.meta.get_progress_token() {
                    for step in 1..=steps {
                        let mut progress =
                            ProgressNotificationParam::new(token.clone(), step as f64);
                        progress.total = Some(steps as f64);
                        let _ = context.peer.notify_progress(progress).await;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
                text(format!("done after {steps} steps"))
            }
            "ask" => {
                let sampled = ask(
                    "sampling/createMessage",
                    json!({"messages": [{"role": "user", "content": {"type": "text", "text": "What is six times seven?"}}],
                           "maxTokens": 10}),
                )
                .await;
                let elicited = ask(
                    "elicitation/create",
                    json!({"mode": "form", "message": "Your name?", "requestedSchema": {
                        "type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}}),
                )
                .await;
                text(json!({"sampled": sampled, "elicited": elicited}).to_string())
            }
            "roots" => text(ask("roots/list", json!({})).await.to_string()),
            "withdraw" => {
                // Asks the user a question, then withdraws it before any answer.
                let question = ServerRequest::CustomRequest(CustomRequest::new(
                    "elicitation/create",
                    Some(
                        json!({"mode": "form", "message": "Never mind?", "requestedSchema": {
                        "type": "object", "properties": {}}}),
                    ),
                ));
                let asked = context
                    .peer
                    .send_cancellable_request(
                        question,
                        rmcp::service::PeerRequestOptions::no_options(),
                    )
                    .await;
                match asked {
                    Ok(handle) => {
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        let cancelled = handle.cancel(Some("no longer needed".into())).await;
                        text(format!("withdrawn (cancel sent: {})", cancelled.is_ok()))
                    }
                    Err(error) => text(format!("not asked: {error}")),
                }
            }
            "grow" => {
                self.grown.store(true, Ordering::SeqCst);
                let sent = context.peer.notify_tool_list_changed().await;
                text(format!("grown (notification sent: {})", sent.is_ok()))
            }
            "extra" if self.grown.load(Ordering::SeqCst) => text("extra".to_owned()),
            "announce" => {
                // Outside the request: sent after the answer, on the session's own stream.
                let peer = context.peer.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    #[allow(deprecated, reason = "logging is what the tool exercises")]
                    let message = rmcp::model::LoggingMessageNotificationParam::new(
                        rmcp::model::LoggingLevel::Warning,
                        json!("the index was rebuilt"),
                    )
                    .with_logger("indexer");
                    #[allow(deprecated, reason = "logging is what the tool exercises")]
                    let _ = peer.notify_logging_message(message).await;
                });
                text("announced".to_owned())
            }
            "touch" => {
                let update = ResourceUpdatedNotificationParam::new("notes://readme");
                let sent = context.peer.notify_resource_updated(update).await;
                text(format!("touched (notification sent: {})", sent.is_ok()))
            }
            "slow" => {
                tokio::select! {
                    () = context.ct.cancelled() => {
                        self.cancelled.fetch_add(1, Ordering::SeqCst);
                        text("cancelled".to_owned())
                    }
                    () = tokio::time::sleep(Duration::from_secs(30)) => text("finished".to_owned()),
                }
            }
            _ => return Ok(None),
        }))
    }
}

impl ServerHandler for DemoTools {
    /// The session revisions only, unless [`DemoTools::with_2026_wire`]: the interactive tools
    /// send requests back to the client, which 2026-07-28 replaced with input-required results,
    /// so by default this is a server of the earlier revisions, as most deployed servers are.
    fn supported_protocol_versions(&self) -> std::borrow::Cow<'static, [ProtocolVersion]> {
        if self.speaks_2026 {
            std::borrow::Cow::Borrowed(ProtocolVersion::KNOWN_VERSIONS)
        } else {
            std::borrow::Cow::Borrowed(ProtocolVersion::known_up_to(
                &ProtocolVersion::LATEST_WITH_INITIALIZE,
            ))
        }
    }

    fn get_info(&self) -> ServerConfig {
        #[allow(
            deprecated,
            reason = "agents of earlier revisions still set a log level"
        )]
        let capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_resources()
            .enable_resources_subscribe()
            .enable_prompts()
            .enable_completions()
            .enable_logging()
            .build();
        InitializeResult::new(capabilities)
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
        let mut listed: ListToolsResult = from_json(json!({"tools": [
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
        ]}))?;
        if self.interactive {
            let object = json!({"type": "object"});
            let extra: ListToolsResult = from_json(json!({"tools": [
                {"name": "progress", "description": "Reports progress, then answers", "inputSchema": {
                    "type": "object", "properties": {"steps": {"type": "integer"}}}},
                {"name": "ask", "description": "Asks the client's model and user", "inputSchema": object},
                {"name": "roots", "description": "Lists the client's roots", "inputSchema": object},
                {"name": "withdraw", "description": "Asks the user, then withdraws the question", "inputSchema": object},
                {"name": "slow", "description": "Waits until cancelled", "inputSchema": object},
                {"name": "grow", "description": "Adds the tool extra", "inputSchema": object},
                {"name": "touch", "description": "Updates notes://readme", "inputSchema": object},
                {"name": "announce", "description": "Logs a message a moment after it answered", "inputSchema": object}
            ]}))?;
            listed.tools.extend(extra.tools);
            if self.grown.load(Ordering::SeqCst) {
                let grown: ListToolsResult = from_json(json!({"tools": [
                    {"name": "extra", "description": "Appeared later", "inputSchema": object}
                ]}))?;
                listed.tools.extend(grown.tools);
            }
        }
        listed.ttl_ms = self.tools_ttl_ms;
        Ok(listed)
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        from_json(json!({"resources": [
            {"uri": "notes://readme", "name": "readme", "mimeType": "text/plain"},
            {"uri": "blob://bytes/1048576", "name": "one-mebibyte", "mimeType": "application/octet-stream"}
        ]}))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        from_json(json!({"resourceTemplates": [
            {"uriTemplate": "notes://{name}", "name": "note", "mimeType": "text/plain"},
            {"uriTemplate": "blob://bytes/{n}", "name": "bytes", "mimeType": "application/octet-stream"}
        ]}))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let uri = request.uri;
        let contents = if let Some(name) = uri.strip_prefix("notes://") {
            json!([{"uri": uri, "mimeType": "text/plain", "text": format!("the note called {name}")}])
        } else if let Some(n) = uri.strip_prefix("blob://bytes/") {
            let n: usize = n
                .parse()
                .ok()
                .filter(|n| *n <= MAX_BLOB)
                .ok_or_else(|| ErrorData::invalid_params("bad size", None))?;
            let blob = base64::engine::general_purpose::STANDARD.encode(blob_bytes(n));
            json!([{"uri": uri, "mimeType": "application/octet-stream", "blob": blob}])
        } else {
            return Err(ErrorData::resource_not_found("no such resource", None));
        };
        Ok(from_json::<ReadResourceResult>(json!({ "contents": contents }))?.into())
    }

    #[allow(
        deprecated,
        reason = "subscriptions of the revisions before 2026-07-28"
    )]
    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.subscribed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(request.uri);
        Ok(())
    }

    #[allow(
        deprecated,
        reason = "subscriptions of the revisions before 2026-07-28"
    )]
    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.subscribed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|uri| *uri != request.uri);
        Ok(())
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        from_json(json!({"prompts": [{
            "name": "greet",
            "description": "Greets someone, with the readme attached",
            "arguments": [{"name": "name", "required": true}]
        }]}))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        if request.name != "greet" {
            return Err(ErrorData::invalid_params("unknown prompt", None));
        }
        let name = request
            .arguments
            .as_ref()
            .and_then(|a| a.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("nobody");
        Ok(from_json::<GetPromptResult>(json!({
            "description": "A greeting",
            "messages": [
                {"role": "user", "content": {"type": "text", "text": format!("Say hello to {name}.")}},
                {"role": "user", "content": {"type": "resource", "resource": {
                    "uri": "notes://readme", "mimeType": "text/plain", "text": "the note called readme"
                }}}
            ]
        }))?
        .into())
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        let candidates: &[&str] = match &request.r#ref {
            Reference::Prompt(prompt) if prompt.name == "greet" => &["alice", "alex", "bob"],
            Reference::Resource(template) if template.uri == "notes://{name}" => {
                &["readme", "roadmap"]
            }
            _ => &[],
        };
        let prefix = request.argument.value.as_str();
        let values: Vec<&str> = candidates
            .iter()
            .copied()
            .filter(|c| c.starts_with(prefix))
            .collect();
        from_json(
            json!({"completion": {"values": values, "total": values.len(), "hasMore": false}}),
        )
    }

    #[allow(
        deprecated,
        reason = "agents of earlier revisions still set a log level"
    )]
    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let level = serde_json::to_value(request.level)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned));
        *self
            .log_level
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = level;
        Ok(())
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let args = request.arguments.unwrap_or_default();
        if self.interactive
            && let Some(result) = self.interact(&request.name, &args, &context).await?
        {
            return Ok(CallToolResponse::Complete(from_json::<CallToolResult>(
                result,
            )?));
        }
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
