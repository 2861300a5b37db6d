//! The way back to the agent while an upstream request runs: the upstream's progress and log
//! notifications for it, and its sampling, elicitation and roots requests, relayed on the
//! agent's request (rmcp puts them on that request's event stream).
//!
//! The core and the upstream session may run the request in other tasks, and rmcp ties a
//! server request to the agent's request through a task-local of the handler's task, so
//! every message goes back to the handler's task over a channel and is sent from there
//! ([`relay`]).
//!
//! A request the agent did not declare the capability for is refused here with a JSON-RPC
//! error saying so; progress is relayed only under the agent's own progress token.

#![allow(
    deprecated,
    reason = "sampling, roots and logging (SEP-2577) are still used by earlier revisions"
)]

use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use rmcp::RoleServer;
use rmcp::model::{
    CancelledNotification, CancelledNotificationParam, ClientCapabilities, CustomRequest,
    LoggingLevel, LoggingMessageNotification, LoggingMessageNotificationParam,
    ProgressNotificationParam, ServerNotification, ServerRequest,
};
use rmcp::service::{PeerRequestOptions, RequestContext};
use serde_json::{Map, Value};
use tether_core::{AgentInput, CallContext, Downstream, METHOD_NOT_FOUND, PeerError};
use tokio::sync::{mpsc, oneshot};

use crate::gateway::mcp::log_threshold;

/// Messages queued for the agent before the handler's task relays them.
const QUEUE: usize = 64;

pub(super) enum ToAgent {
    Notify {
        method: String,
        params: Option<Value>,
    },
    Ask {
        method: String,
        params: Option<Value>,
        reply: oneshot::Sender<Result<Value, PeerError>>,
    },
}

#[derive(Debug)]
struct ChannelDownstream {
    queue: mpsc::Sender<ToAgent>,
    /// The session's log level: messages below it are not the agent's to hear.
    threshold: Option<LoggingLevel>,
}

impl std::fmt::Debug for ToAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Notify { method, .. } | Self::Ask { method, .. } => f.write_str(method),
        }
    }
}

#[async_trait]
impl Downstream for ChannelDownstream {
    async fn notify(&self, method: &str, params: Option<Value>) {
        if method == "notifications/message"
            && !log_threshold::passes(self.threshold, params.as_ref())
        {
            return;
        }
        // A slow agent loses notifications rather than stalling the upstream request.
        let _ = self.queue.try_send(ToAgent::Notify {
            method: method.to_owned(),
            params,
        });
    }

    async fn request(&self, method: &str, params: Option<Value>) -> Result<Value, PeerError> {
        let (reply, answer) = oneshot::channel();
        let gone = || PeerError {
            code: -32603,
            message: "the agent's request ended".to_owned(),
        };
        self.queue
            .send(ToAgent::Ask {
                method: method.to_owned(),
                params,
                reply,
            })
            .await
            .map_err(|_| gone())?;
        answer.await.unwrap_or_else(|_| Err(gone()))
    }
}

/// A call context for the agent's request, and the receiving end [`relay`] drains.
pub(super) fn call_context(
    context: &RequestContext<RoleServer>,
    threshold: Option<LoggingLevel>,
) -> (CallContext, mpsc::Receiver<ToAgent>) {
    let (sender, receiver) = mpsc::channel(QUEUE);
    let meta = context.meta.get_progress_token().and_then(|token| {
        let token = serde_json::to_value(token).ok()?;
        Some(Map::from_iter([("progressToken".to_owned(), token)]))
    });
    let call = CallContext {
        meta,
        downstream: Some(Arc::new(ChannelDownstream {
            queue: sender,
            threshold,
        })),
        // Requests that carry their own protocol metadata are of 2026-07-28 or later.
        input: context
            .meta
            .protocol_version()
            .map(|_| AgentInput::default()),
    };
    (call, receiver)
}

/// Runs `work` while relaying what the upstream sends the agent meanwhile. The agent's answers
/// are awaited beside `work`, which keeps running: the upstream's stream is still read, so it
/// can withdraw a question the agent is answering.
pub(super) async fn relay<T>(
    work: impl Future<Output = T>,
    mut messages: mpsc::Receiver<ToAgent>,
    context: &RequestContext<RoleServer>,
) -> T {
    tokio::pin!(work);
    let mut open = true;
    let mut asking = futures::stream::FuturesUnordered::new();
    loop {
        tokio::select! {
            // Messages first: a notification queued just before the answer goes out before it.
            biased;
            Some(()) = asking.next(), if !asking.is_empty() => {}
            message = messages.recv(), if open => match message {
                Some(ask @ ToAgent::Ask { .. }) => asking.push(deliver(ask, context)),
                Some(notify) => deliver(notify, context).await,
                None => open = false,
            },
            result = &mut work => {
                // What was queued while the answer arrived still belongs before it.
                while let Ok(message) = messages.try_recv() {
                    deliver(message, context).await;
                }
                return result;
            }
        }
    }
}

async fn deliver(message: ToAgent, context: &RequestContext<RoleServer>) {
    match message {
        ToAgent::Notify { method, params } => notify(&method, params, context).await,
        ToAgent::Ask {
            method,
            params,
            mut reply,
        } => {
            // The upstream may withdraw its request (it drops the reply's receiver).
            let withdrawn = async { reply.closed().await };
            if let Some(answer) = ask(&method, params, context, withdrawn).await {
                let _ = reply.send(answer);
            }
        }
    }
}

pub(super) async fn notify(
    method: &str,
    params: Option<Value>,
    context: &RequestContext<RoleServer>,
) {
    let Some(params) = params else { return };
    let notification = match method {
        "notifications/progress" => {
            // The agent's token, whatever the upstream session put on its own request.
            let Some(token) = context.meta.get_progress_token() else {
                return;
            };
            let Ok(mut progress) = serde_json::from_value::<ProgressNotificationParam>(params)
            else {
                return;
            };
            progress.progress_token = token;
            if let Err(error) = context.peer.notify_progress(progress).await {
                tracing::debug!(%error, "progress not relayed");
            }
            return;
        }
        "notifications/message" => {
            let Ok(message) = serde_json::from_value::<LoggingMessageNotificationParam>(params)
            else {
                return;
            };
            ServerNotification::LoggingMessageNotification(LoggingMessageNotification::new(message))
        }
        _ => return,
    };
    if let Err(error) = context.peer.send_notification(notification).await {
        tracing::debug!(%error, method, "notification not relayed");
    }
}

/// The refusal of an upstream's request the agent did not declare the capability for.
pub(super) fn undeclared(
    method: &str,
    params: Option<&Value>,
    context: &RequestContext<RoleServer>,
) -> Option<PeerError> {
    let capabilities = context.client_capabilities().unwrap_or_default();
    (!declared(&capabilities, method, params)).then(|| PeerError {
        code: METHOD_NOT_FOUND,
        message: format!("the agent did not declare the capability for {method}"),
    })
}

/// The agent's answer to an upstream's request, or `None` when the upstream withdrew it
/// first (the agent is then sent `notifications/cancelled` for it, as when the call ends
/// before the answer).
async fn ask(
    method: &str,
    params: Option<Value>,
    context: &RequestContext<RoleServer>,
    withdrawn: impl Future<Output = ()>,
) -> Option<Result<Value, PeerError>> {
    if let Some(refusal) = undeclared(method, params.as_ref(), context) {
        return Some(Err(refusal));
    }
    let request = ServerRequest::CustomRequest(CustomRequest::new(method, params));
    let handle = match context
        .peer
        .send_cancellable_request(request, PeerRequestOptions::no_options())
        .await
    {
        Ok(handle) => handle,
        Err(error) => {
            return Some(Err(PeerError {
                code: -32603,
                message: format!("the agent could not be asked {method}: {error}"),
            }));
        }
    };
    let mut withdrawal = Withdrawal {
        peer: handle.peer.clone(),
        id: Some(handle.id.clone()),
    };
    let answered = tokio::select! {
        answered = handle.await_response() => answered,
        // The guard tells the agent as it goes.
        () = withdrawn => return None,
    };
    withdrawal.id = None;
    Some(answer_of(method, answered))
}

/// Armed while the agent is asked: if the wait ends without its answer (the upstream withdrew
/// the question, or the call it belongs to ended), the agent is sent `notifications/cancelled`
/// for it, so it stops asking its user.
struct Withdrawal {
    peer: rmcp::Peer<RoleServer>,
    /// `None` once answered.
    id: Option<rmcp::model::RequestId>,
}

impl Drop for Withdrawal {
    fn drop(&mut self) {
        let Some(id) = self.id.take() else {
            return;
        };
        let params = serde_json::from_value::<CancelledNotificationParam>(serde_json::json!({
            "requestId": id, "reason": "withdrawn by the server",
        }));
        let Ok(params) = params else {
            return;
        };
        let peer = self.peer.clone();
        let cancel = ServerNotification::CancelledNotification(CancelledNotification::new(params));
        // Drop cannot wait; the notification goes out from a task of its own.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(error) = peer.send_notification(cancel).await {
                    tracing::debug!(%error, "the agent was not told of the withdrawal");
                }
            });
        }
    }
}

fn answer_of(
    method: &str,
    answered: Result<rmcp::model::ClientResult, rmcp::ServiceError>,
) -> Result<Value, PeerError> {
    match answered {
        Ok(result) => serde_json::to_value(result).map_err(|_| PeerError {
            code: -32603,
            message: format!("the agent's {method} answer could not be read"),
        }),
        Err(rmcp::ServiceError::McpError(error)) => Err(PeerError {
            code: error.code.0,
            message: error.message.into_owned(),
        }),
        Err(error) => Err(PeerError {
            code: -32603,
            message: format!("the agent did not answer {method}: {error}"),
        }),
    }
}

/// Whether the agent declared what `method` needs (for an elicitation, its mode).
fn declared(capabilities: &ClientCapabilities, method: &str, params: Option<&Value>) -> bool {
    match method {
        "sampling/createMessage" => capabilities.sampling.is_some(),
        "roots/list" => capabilities.roots.is_some(),
        "elicitation/create" => {
            let Some(elicitation) = &capabilities.elicitation else {
                return false;
            };
            match params.and_then(|p| p.get("mode")).and_then(Value::as_str) {
                Some("url") => elicitation.url.is_some(),
                // An empty elicitation capability means form mode (2025-11-25).
                _ => elicitation.form.is_some() || elicitation.url.is_none(),
            }
        }
        _ => false,
    }
}
