//! One open rmcp client session, as a tether-core [`Session`].

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use rmcp::model::{CallToolRequestParams, ClientRequest, CustomRequest, PaginatedRequestParams};
use rmcp::service::RunningService;
use rmcp::{Peer, RoleClient, ServiceError};
use serde_json::{Map, Value};
use tether_core::{
    CallContext, ConnectError, Protocol, ServerName, Session, Tool, ToolResult, TransportFailure,
};
use tracing::debug;

use crate::connector::with_timeout;
use crate::convert::via_json;
use crate::error;
use crate::offers::Offers;
use crate::upstream_client::{UpstreamClient, Waiting};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TransportKind {
    StreamableHttp,
    LegacySse,
    Stdio,
}

impl TransportKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::StreamableHttp => "streamable-http",
            Self::LegacySse => "sse",
            Self::Stdio => "stdio",
        }
    }
}

/// Scheduler turns given to rmcp's notification handlers before a call's answer is returned.
const YIELDS_FOR_NOTIFICATIONS: usize = 4;

/// A live MCP session of one user with one server, carried by an rmcp client service.
pub struct McpSession {
    server: ServerName,
    kind: TransportKind,
    peer: Peer<RoleClient>,
    offers: Offers,
    /// Taken by [`Session::close`]; dropping it instead also cancels the service.
    running: Mutex<Option<RunningService<RoleClient, UpstreamClient>>>,
    waiting: Arc<Waiting>,
    closed: AtomicBool,
    call_timeout: Duration,
    close_timeout: Duration,
}

impl fmt::Debug for McpSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("McpSession")
            .field("server", &self.server)
            .field("transport", &self.kind.as_str())
            .field("open", &self.is_open())
            .finish_non_exhaustive()
    }
}

impl McpSession {
    pub(crate) fn new(
        server: ServerName,
        kind: TransportKind,
        running: RunningService<RoleClient, UpstreamClient>,
        call_timeout: Duration,
        close_timeout: Duration,
    ) -> Self {
        let offers = running
            .peer()
            .peer_info()
            .map(|info| Offers::from_capabilities(&info.capabilities))
            .unwrap_or_default();
        let waiting = running.service().waiting.clone();
        Self {
            server,
            kind,
            offers,
            waiting,
            peer: running.peer().clone(),
            running: Mutex::new(Some(running)),
            closed: AtomicBool::new(false),
            call_timeout,
            close_timeout,
        }
    }

    /// rmcp reports "transport closed" both when the whole transport ended (the session is
    /// lost) and when only one request's event stream broke off and could not be resumed while
    /// the session goes on. The second is a network failure of that request, not a lost
    /// session: reporting it as lost would make the core re-run the call on a new session,
    /// although the server may already have run it.
    fn request_failed(&self, e: &ServiceError) -> ConnectError {
        match e {
            ServiceError::TransportClosed if !self.peer.is_transport_closed() => {
                ConnectError::transport(
                    TransportFailure::Network,
                    "the server's event stream broke off and could not be resumed",
                )
            }
            _ => error::from_service(e),
        }
    }

    /// One request by method name, its result as JSON.
    async fn send_custom(
        &self,
        method: &str,
        params: Option<Value>,
    ) -> Result<Value, ConnectError> {
        self.check_open()?;
        let request = ClientRequest::CustomRequest(CustomRequest::new(method, params));
        let result = with_timeout(
            self.call_timeout,
            "the request timed out",
            self.peer.send_request(request),
            |e| self.request_failed(&e),
        )
        .await?;
        serde_json::to_value(&result)
            .map_err(|_| ConnectError::Protocol(format!("the {method} result could not be read")))
    }

    fn check_open(&self) -> Result<(), ConnectError> {
        if self.closed.load(Ordering::Acquire) {
            // Closed by us: not the server's doing, but the session cannot be used.
            return Err(ConnectError::SessionLost);
        }
        Ok(())
    }
}

#[async_trait]
impl Session for McpSession {
    async fn list_tools(&self) -> Result<Vec<Tool>, ConnectError> {
        self.check_open()?;
        crate::tool_pages::list_all(&self.server, |cursor| {
            let params = cursor.map(|c| PaginatedRequestParams::default().with_cursor(Some(c)));
            with_timeout(
                self.call_timeout,
                "tools/list timed out",
                self.peer.list_tools(params),
                |e| self.request_failed(&e),
            )
        })
        .await
    }

    async fn call_tool(
        &self,
        name: &str,
        arguments: Option<Map<String, Value>>,
    ) -> Result<ToolResult, ConnectError> {
        self.check_open()?;
        let mut params = CallToolRequestParams::new(name.to_owned());
        if let Some(arguments) = arguments {
            params = params.with_arguments(arguments);
        }
        let result = with_timeout(
            self.call_timeout,
            "tools/call timed out",
            self.peer.call_tool(params),
            |e| self.request_failed(&e),
        )
        .await?;
        via_json(&result, "tool result")
    }

    async fn call_tool_in(
        &self,
        name: &str,
        arguments: Option<Map<String, Value>>,
        context: &CallContext,
    ) -> Result<ToolResult, ConnectError> {
        let Some(downstream) = &context.downstream else {
            return self.call_tool(name, arguments).await;
        };
        let params = context.tool_call_params(name, arguments);
        let _waiting = self
            .waiting
            .register(context.progress_token().cloned(), downstream.clone());
        let result = self.send_custom("tools/call", Some(params)).await;
        // rmcp hands notifications to the client handler in tasks of their own: let those read
        // before the answer so that the request's last progress is not left behind.
        for _ in 0..YIELDS_FOR_NOTIFICATIONS {
            tokio::task::yield_now().await;
        }
        via_json(&result?, "tool result")
    }

    async fn request(
        &self,
        method: &str,
        params: Option<Value>,
        context: &CallContext,
    ) -> Result<Value, ConnectError> {
        let params = context.with_meta(params);
        let _waiting = context.downstream.as_ref().map(|downstream| {
            self.waiting
                .register(context.progress_token().cloned(), downstream.clone())
        });
        self.send_custom(method, params).await
    }

    fn offers(&self, capability: &str) -> bool {
        self.offers.has(capability)
    }

    fn protocol(&self) -> Option<Protocol> {
        let version = self.peer.peer_info()?.protocol_version.clone();
        Some(Protocol {
            wire: if version.has_initialize() {
                "session"
            } else {
                "stateless"
            },
            version: version.as_str().to_owned(),
        })
    }

    fn is_open(&self) -> bool {
        // `is_transport_closed` turns true once rmcp's service loop has ended (transport worker
        // quit, child exited, cancelled).
        !self.closed.load(Ordering::Acquire) && !self.peer.is_transport_closed()
    }

    async fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let running = self
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(mut running) = running else { return };
        // Cancels the service; its loop then closes the transport (HTTP session DELETE, or the
        // stdio shutdown sequence). Bounded: whatever remains finishes in the background.
        match running.close_with_timeout(self.close_timeout).await {
            Ok(Some(_)) => debug!(server = %self.server, "MCP session closed"),
            Ok(None) => debug!(server = %self.server, "MCP session close still running"),
            Err(e) => debug!(server = %self.server, error = %e, "MCP session task failed"),
        }
    }
}
