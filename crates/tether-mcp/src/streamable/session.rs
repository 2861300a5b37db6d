//! An open Streamable HTTP session as a tether-core [`Session`]: a few hundred bytes of state
//! (endpoint, session id, protocol version, request counter, flags) and nothing running.
//! Each request is one [exchange](super::exchange) inside the caller's future.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use rmcp::model::{
    ClientRequest, CustomRequest, ListToolsRequest, ListToolsResult, PaginatedRequestParams,
    RequestId,
};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use tether_core::{
    CallContext, ConnectError, Downstream, ListKind, Protocol, ServerName, Session, SessionEvents,
    Tool, ToolResult,
};
use tracing::{debug, info, warn};

use super::encode::Outbound;
use super::endpoint::Endpoint;
use super::exchange::{self, AnswerError, ExchangeError, Listeners};
use super::input;
use super::param_headers::{ParamHeaders, ToolParamHeaders};
use super::questions::OpenQuestions;
use crate::connector::with_timeout;
use crate::error;
use crate::offers::Offers;

/// A live MCP session of one user with one Streamable HTTP server.
pub(crate) struct StreamableSession {
    server: ServerName,
    endpoint: Endpoint,
    offers: Offers,
    /// Where list changes seen on a request's stream go.
    events: Option<Arc<dyn SessionEvents>>,
    /// The server's requests the agent is answering, which the server may withdraw.
    questions: Arc<OpenQuestions>,
    /// Stops the reader of the session's own event stream, while one runs.
    listening: std::sync::Mutex<Option<tokio_util::sync::CancellationToken>>,
    /// Stops the timer of the tool list's freshness (its `ttlMs`), while one runs.
    tools_fresh: std::sync::Mutex<Option<tokio_util::sync::CancellationToken>>,
    /// The next JSON-RPC request id (`initialize` had 0).
    next_id: AtomicI64,
    /// Set by [`Session::close`].
    closed: AtomicBool,
    /// Set once the server answered 404 for our session id: it forgot the session.
    lost: AtomicBool,
    call_timeout: Duration,
    close_timeout: Duration,
}

// Neither the session id nor the URL (its query may hold a credential) is printed.
impl fmt::Debug for StreamableSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamableSession")
            .field("server", &self.server)
            .field("transport", &"streamable-http")
            .field("open", &self.is_open())
            .finish_non_exhaustive()
    }
}

impl StreamableSession {
    pub(super) fn new(
        server: ServerName,
        endpoint: Endpoint,
        offers: Offers,
        call_timeout: Duration,
        close_timeout: Duration,
    ) -> Self {
        Self {
            server,
            endpoint,
            offers,
            events: None,
            questions: Arc::default(),
            listening: std::sync::Mutex::new(None),
            tools_fresh: std::sync::Mutex::new(None),
            next_id: AtomicI64::new(1),
            closed: AtomicBool::new(false),
            lost: AtomicBool::new(false),
            call_timeout,
            close_timeout,
        }
    }

    /// The wire this session speaks.
    pub(crate) fn wire(&self) -> super::Wire {
        if self.endpoint.modern {
            super::Wire::Modern
        } else {
            super::Wire::Legacy
        }
    }

    pub(crate) fn with_events(mut self, events: Option<Arc<dyn SessionEvents>>) -> Self {
        self.events = events;
        self
    }

    fn check_open(&self) -> Result<(), ConnectError> {
        if self.closed.load(Ordering::Acquire) || self.lost.load(Ordering::Acquire) {
            // Closed by us, or already found gone: the caller has to connect again.
            return Err(ConnectError::SessionLost);
        }
        Ok(())
    }

    fn failed(&self, error: ExchangeError) -> ConnectError {
        if error.session_gone() && !self.lost.swap(true, Ordering::AcqRel) {
            info!(server = %self.server, "the server no longer knows the MCP session");
        }
        error.into_connect_error()
    }

    /// One request within the per-request timeout, its result decoded as `T` (`what` names it
    /// in errors); a JSON-RPC error answer becomes a protocol error (the session goes on).
    async fn send<T: DeserializeOwned>(
        &self,
        request: Outbound<'_>,
        timed_out: &'static str,
        what: &str,
        downstream: Option<&dyn Downstream>,
    ) -> Result<T, ConnectError> {
        self.check_open()?;
        let id = RequestId::Number(self.next_id.fetch_add(1, Ordering::Relaxed));
        // Boxed once here: the exchange's future is several KiB (event streams, resumption,
        // server requests), and each move by value (into the timeout, into every caller's
        // future up to the boxed trait method) copied all of it on every request.
        let exchange = Box::pin(exchange::request(
            &self.endpoint,
            id,
            request,
            Listeners {
                downstream,
                events: self.events.as_deref(),
                questions: Some(&self.questions),
            },
        ));
        let answer =
            with_timeout(self.call_timeout, timed_out, exchange, |e| self.failed(e)).await?;
        answer.decode(what).map_err(|e| match e {
            AnswerError::Refused(data) => error::from_jsonrpc(&data),
            AnswerError::Invalid(text) => ConnectError::Protocol(text),
        })
    }
}

impl StreamableSession {
    /// Records the tools' `Mcp-Param-*` annotations for their calls, leaving out a tool whose
    /// annotations break the revision's rules ([`ParamHeaders`]).
    fn with_param_headers(&self, mut tools: Vec<Tool>, table: &ToolParamHeaders) -> Vec<Tool> {
        let mut by_tool = HashMap::new();
        tools.retain(|tool| match ParamHeaders::of_schema(&tool.input_schema) {
            Ok(None) => true,
            Ok(Some(declared)) => {
                by_tool.insert(tool.name.to_string(), Arc::new(declared));
                true
            }
            Err(reason) => {
                warn!(server = %self.server, tool = %tool.name, %reason, "tool left out: its x-mcp-header annotations are invalid");
                false
            }
        });
        table.replace(by_tool);
        tools
    }
}

/// The shortest freshness honoured: a server asking for less is read again this often at most.
const MIN_TOOLS_FRESHNESS: Duration = Duration::from_secs(1);

impl StreamableSession {
    /// Honours a tool list's caching hint (2026-07-28 `ttlMs`): once it is stale, the list is
    /// read again as after a `list_changed`, for a server that changed its tools without
    /// saying so. `ttlMs` 0 (the default: "no promise") and no hint leave it to the server's
    /// change notifications.
    fn expire_tools_after(&self, ttl_ms: Option<u64>) {
        let Ok(mut timer) = self.tools_fresh.lock() else {
            return;
        };
        if let Some(previous) = timer.take() {
            previous.cancel();
        }
        let (Some(ttl), Some(events)) = (ttl_ms.filter(|t| *t > 0), self.events.clone()) else {
            return;
        };
        let after = Duration::from_millis(ttl).max(MIN_TOOLS_FRESHNESS);
        let stop = tokio_util::sync::CancellationToken::new();
        *timer = Some(stop.clone());
        tokio::spawn(async move {
            tokio::select! {
                () = stop.cancelled() => {}
                () = tokio::time::sleep(after) => events.list_changed(ListKind::Tools),
            }
        });
    }

    /// A request whose result may ask for input (2026-07-28): the agent's answers are sent
    /// back with the request until the result is complete, at most [`input::MAX_ROUNDS`] times.
    /// An agent that answers by itself (2026-07-28 too) gets the input-required result as it
    /// is, and its retry comes back as a new request.
    async fn send_answering_input(
        &self,
        method: &str,
        mut params: Value,
        context: &CallContext,
    ) -> Result<Value, ConnectError> {
        let downstream = context.downstream.as_deref();
        if context.input.is_some() {
            let request = ClientRequest::CustomRequest(CustomRequest::new(method, Some(params)));
            return self
                .send(request.into(), "the request timed out", method, downstream)
                .await;
        }
        for _ in 0..input::MAX_ROUNDS {
            let request =
                ClientRequest::CustomRequest(CustomRequest::new(method, Some(params.clone())));
            let result: Value = self
                .send(request.into(), "the request timed out", method, downstream)
                .await?;
            match input::retry_params(&result, &params, downstream).await? {
                None => return Ok(result),
                Some(retry) => params = retry,
            }
        }
        Err(ConnectError::Protocol(format!(
            "the server asked for input more than {} times",
            input::MAX_ROUNDS
        )))
    }
}

/// A `tools/call` result, decoded straight into the core's type (the MCP shape; a result
/// without `content` is a result too, as rmcp accepts). An input-required result is kept (its
/// `resultType`, `inputRequests` and `requestState` in `extra`) only for an agent that answers
/// by itself (`passes_input`); other results of later protocol features (tasks) are not answers
/// Tether can use: rmcp's `CallToolResult` accepts only `resultType: "complete"`, and a task
/// comes as `{"task": …}`.
fn tool_result(mut result: ToolResult, passes_input: bool) -> Result<ToolResult, ConnectError> {
    let result_type = result.extra.get("resultType").and_then(Value::as_str);
    if passes_input && result_type == Some("input_required") {
        return Ok(result);
    }
    let complete = result_type.is_none_or(|t| t == "complete");
    if !complete || result.extra.contains_key("task") {
        return Err(ConnectError::Protocol(
            "the server answered with an unexpected result".to_owned(),
        ));
    }
    // The wire's business, not the result's: agents of every revision get the same result.
    result.extra.remove("resultType");
    Ok(result)
}

#[async_trait]
impl Session for StreamableSession {
    async fn list_tools(&self) -> Result<Vec<Tool>, ConnectError> {
        let fresh_for = std::sync::Mutex::new(None::<u64>);
        let tools = crate::tool_pages::list_all(&self.server, |cursor| async {
            let params = cursor.map(|c| PaginatedRequestParams::default().with_cursor(Some(c)));
            let request = ClientRequest::ListToolsRequest(ListToolsRequest {
                method: Default::default(),
                params,
                extensions: Default::default(),
            });
            let page = self
                .send::<ListToolsResult>(
                    request.into(),
                    "tools/list timed out",
                    "tools/list result",
                    None,
                )
                .await?;
            if let Some(ttl) = page.ttl_ms
                && let Ok(mut shortest) = fresh_for.lock()
            {
                *shortest = Some(shortest.map_or(ttl, |s| s.min(ttl)));
            }
            Ok(page)
        })
        .await?;
        let fresh_for = fresh_for.into_inner().ok().flatten();
        self.expire_tools_after(fresh_for);
        Ok(match &self.endpoint.tool_headers {
            Some(table) => self.with_param_headers(tools, table),
            None => tools,
        })
    }

    async fn call_tool(
        &self,
        name: &str,
        arguments: Option<Map<String, Value>>,
    ) -> Result<ToolResult, ConnectError> {
        // Nothing to carry: an empty context (on 2026-07-28 its result may ask for input,
        // refused: no agent waits on this call).
        self.call_tool_in(name, arguments, &CallContext::default())
            .await
    }

    async fn call_tool_in(
        &self,
        name: &str,
        arguments: Option<Map<String, Value>>,
        context: &CallContext,
    ) -> Result<ToolResult, ConnectError> {
        if self.endpoint.modern {
            let params = context.tool_call_params(name, arguments);
            let result = self
                .send_answering_input("tools/call", params, context)
                .await?;
            return tool_result(
                serde_json::from_value(result)
                    .map_err(|_| ConnectError::Protocol("invalid tool result".to_owned()))?,
                context.input.is_some(),
            );
        }
        // Written from its parts, with whatever the context carries ([`Outbound::ToolCall`]).
        let request = Outbound::ToolCall(context.tool_call(name, arguments.as_ref()));
        tool_result(
            self.send(
                request,
                "tools/call timed out",
                "tool result",
                context.downstream.as_deref(),
            )
            .await?,
            false,
        )
    }

    async fn request(
        &self,
        method: &str,
        params: Option<Value>,
        context: &CallContext,
    ) -> Result<Value, ConnectError> {
        if self.endpoint.modern && input::may_ask(method) {
            let params = context.with_meta(params).unwrap_or_default();
            return self.send_answering_input(method, params, context).await;
        }
        let request =
            ClientRequest::CustomRequest(CustomRequest::new(method, context.with_meta(params)));
        self.send(
            request.into(),
            "the request timed out",
            method,
            context.downstream.as_deref(),
        )
        .await
    }

    fn offers(&self, capability: &str) -> bool {
        self.offers.has(capability)
    }

    fn protocol(&self) -> Option<Protocol> {
        let version = self.endpoint.protocol_version.as_ref()?.to_str().ok()?;
        Some(Protocol {
            version: version.to_owned(),
            wire: if self.endpoint.modern {
                "stateless"
            } else {
                "session"
            },
        })
    }

    fn listen(&self, on: bool) {
        let mut listening = self
            .listening
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match (on, listening.as_ref(), &self.events) {
            (true, None, Some(events)) if self.is_open() => {
                *listening = Some(super::listener::spawn(
                    self.server.clone(),
                    self.endpoint.clone(),
                    events.clone(),
                    self.questions.clone(),
                ));
            }
            (false, Some(_), _) => {
                if let Some(stop) = listening.take() {
                    stop.cancel();
                }
            }
            _ => {}
        }
    }

    fn is_open(&self) -> bool {
        !self.closed.load(Ordering::Acquire) && !self.lost.load(Ordering::Acquire)
    }

    async fn close(&self) {
        self.listen(false);
        if let Some(timer) = self.tools_fresh.lock().ok().and_then(|mut t| t.take()) {
            timer.cancel();
        }
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        if self.lost.load(Ordering::Acquire) {
            // The server forgot it already; a DELETE would get 404.
            return;
        }
        // Best effort and bounded: a server that does not answer keeps its session until it
        // expires it.
        match tokio::time::timeout(self.close_timeout, self.endpoint.delete()).await {
            Ok(Ok(())) => debug!(server = %self.server, "MCP session closed"),
            Ok(Err(e)) => {
                debug!(server = %self.server, error = %error::from_http(&e), "MCP session delete failed");
            }
            Err(_) => debug!(server = %self.server, "MCP session delete timed out"),
        }
    }
}

impl Drop for StreamableSession {
    fn drop(&mut self) {
        // The reader holds the endpoint, not the session: stop it with the session.
        if let Some(stop) = self
            .listening
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
        {
            stop.cancel();
        }
    }
}
