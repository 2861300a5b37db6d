//! The client side of an rmcp upstream session (stdio, legacy SSE, 2026-07-28 Streamable
//! HTTP): Tether's client info and capabilities, and the routing of the server's progress and
//! log notifications and of its sampling, elicitation and roots requests to the agent request
//! they belong to.
//!
//! These transports do not say which of our requests a server message is about, except a
//! progress notification by its token. So: progress goes to the request that sent that token
//! (else to the one request waiting); anything else goes to the one request waiting, and is refused (requests) or dropped
//! (notifications) while none or several are waiting, since guessing could hand one agent's
//! question to another agent of the same user.

#![allow(
    deprecated,
    reason = "sampling and roots (SEP-2577) are still used by earlier revisions"
)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use rmcp::model::{
    ClientConfig, CreateMessageRequestParams, CreateMessageResult, ElicitRequestParams,
    ElicitResult, ErrorCode, ListRootsResult, ProgressNotificationParam,
    ResourceUpdatedNotificationParam,
};
use rmcp::service::{NotificationContext, RequestContext};
use rmcp::{ClientHandler, ErrorData as McpError, RoleClient};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tether_core::{Downstream, ListKind, PeerError, SessionEvents};

use crate::connector::client_config;

/// Requests of one session that an agent waits on.
#[derive(Debug, Default)]
pub(crate) struct Waiting {
    entries: Mutex<Vec<Entry>>,
    next: AtomicU64,
}

#[derive(Debug)]
struct Entry {
    key: u64,
    progress_token: Option<Value>,
    downstream: Arc<dyn Downstream>,
}

/// Removes its entry when the request ends, however it ends.
pub(crate) struct WaitGuard {
    waiting: Arc<Waiting>,
    key: u64,
}

impl Drop for WaitGuard {
    fn drop(&mut self) {
        self.waiting.lock().retain(|entry| entry.key != self.key);
    }
}

impl Waiting {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn register(
        self: &Arc<Self>,
        progress_token: Option<Value>,
        downstream: Arc<dyn Downstream>,
    ) -> WaitGuard {
        let key = self.next.fetch_add(1, Ordering::Relaxed);
        self.lock().push(Entry {
            key,
            progress_token,
            downstream,
        });
        WaitGuard {
            waiting: self.clone(),
            key,
        }
    }

    fn by_token(&self, token: &Value) -> Option<Arc<dyn Downstream>> {
        self.lock()
            .iter()
            .find(|entry| entry.progress_token.as_ref() == Some(token))
            .map(|entry| entry.downstream.clone())
    }

    fn sole(&self) -> Option<Arc<dyn Downstream>> {
        match self.lock().as_slice() {
            [only] => Some(only.downstream.clone()),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct UpstreamClient {
    info: ClientConfig,
    pub(crate) waiting: Arc<Waiting>,
    /// Where the server's list changes go.
    events: Option<Arc<dyn SessionEvents>>,
}

impl UpstreamClient {
    pub(crate) fn new(events: Option<Arc<dyn SessionEvents>>) -> Self {
        Self {
            info: client_config(),
            waiting: Arc::default(),
            events,
        }
    }

    fn changed(&self, list: ListKind) {
        if let Some(events) = &self.events {
            events.list_changed(list);
        }
    }

    /// Puts the server's request to the agent; when the server withdraws it
    /// (`notifications/cancelled`, which rmcp turns into `cancelled`), the question to the agent
    /// is dropped, which tells the agent it was withdrawn.
    async fn ask<P: Serialize, R: DeserializeOwned>(
        &self,
        method: &str,
        params: P,
        cancelled: &tokio_util::sync::CancellationToken,
    ) -> Result<R, McpError> {
        tokio::select! {
            answer = self.ask_agent(method, params) => answer,
            () = cancelled.cancelled() => Err(McpError::new(
                ErrorCode::INTERNAL_ERROR,
                format!("{method}: withdrawn by the server"),
                None,
            )),
        }
    }

    async fn ask_agent<P: Serialize, R: DeserializeOwned>(
        &self,
        method: &str,
        params: P,
    ) -> Result<R, McpError> {
        let Some(downstream) = self.waiting.sole() else {
            return Err(McpError::new(
                ErrorCode::METHOD_NOT_FOUND,
                format!("{method}: no single agent request is waiting to answer it"),
                None,
            ));
        };
        let params = serde_json::to_value(params).ok();
        match downstream.request(method, params).await {
            Ok(result) => serde_json::from_value(result).map_err(|_| {
                McpError::internal_error(format!("the agent's {method} answer is not valid"), None)
            }),
            Err(PeerError { code, message }) => Err(McpError::new(ErrorCode(code), message, None)),
        }
    }
}

impl ClientHandler for UpstreamClient {
    fn get_info(&self) -> ClientConfig {
        self.info.clone()
    }

    async fn create_message(
        &self,
        params: CreateMessageRequestParams,
        context: RequestContext<RoleClient>,
    ) -> Result<CreateMessageResult, McpError> {
        self.ask("sampling/createMessage", params, &context.ct)
            .await
    }

    async fn create_elicitation(
        &self,
        request: ElicitRequestParams,
        context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, McpError> {
        self.ask("elicitation/create", request, &context.ct).await
    }

    async fn list_roots(
        &self,
        context: RequestContext<RoleClient>,
    ) -> Result<ListRootsResult, McpError> {
        self.ask("roots/list", serde_json::Map::new(), &context.ct)
            .await
    }

    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        // rmcp puts a token of its own on each request it sends; the agent's token is put back
        // by the gateway, and a token we do not know goes to the one request waiting.
        let known = serde_json::to_value(&params.progress_token)
            .ok()
            .and_then(|token| self.waiting.by_token(&token));
        if let Some(downstream) = known.or_else(|| self.waiting.sole()) {
            downstream
                .notify("notifications/progress", serde_json::to_value(params).ok())
                .await;
        }
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.changed(ListKind::Tools);
    }

    async fn on_prompt_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.changed(ListKind::Prompts);
    }

    async fn on_resource_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.changed(ListKind::Resources);
    }

    async fn on_resource_updated(
        &self,
        params: ResourceUpdatedNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        if let Some(events) = &self.events {
            events.resource_updated(&params.uri);
        }
    }

    async fn on_logging_message(
        &self,
        params: rmcp::model::LoggingMessageNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        // Nothing in the message says which request it belongs to: the one waiting, if there is
        // one; else it belongs to none and goes to the user's agent sessions.
        if let Some(downstream) = self.waiting.sole() {
            downstream
                .notify("notifications/message", serde_json::to_value(params).ok())
                .await;
        } else if let (Some(events), Ok(params)) = (&self.events, serde_json::to_value(params)) {
            events.message(params);
        }
    }
}
