//! An agent session hears of its user's servers' changes: once the session is initialized, a
//! task passes each change of that user on, list changes as `notifications/*/list_changed`
//! updates of resources the session subscribed to as `notifications/resources/updated`, and
//! the servers' log messages outside any request as `notifications/message`
//! (the tool list itself was already read again by the core, so the agent's next `tools/list`
//! shows it). The task ends with the session; while it runs, the user's upstream sessions read
//! their servers' own event streams.

#![allow(
    deprecated,
    reason = "agents of the session revisions still receive servers' log messages (SEP-2577)"
)]

use std::time::Duration;

use rmcp::RoleServer;
use rmcp::model::{LoggingMessageNotificationParam, ResourceUpdatedNotificationParam};
use rmcp::service::{NotificationContext, Peer};
use tether_core::{Change, ListKind, ServerChange, UserId};
use tokio::sync::broadcast::error::RecvError;

use super::AggregatedServer;
use crate::gateway::mcp::log_threshold;

/// How often a quiet task checks that its session still exists.
const CHECK_ALIVE: Duration = Duration::from_secs(30);

impl AggregatedServer {
    pub(super) fn follow_list_changes(&self, context: &NotificationContext<RoleServer>) {
        let Some(user) = self.bound.get().cloned() else {
            return;
        };
        let manager = self.app.manager();
        let changes = manager.changes();
        // While the task lives, the user's upstream sessions read their servers' own messages.
        let presence = manager.agent_present(&user);
        let peer = context.peer.clone();
        let session = self.clone();
        tokio::spawn(async move {
            pass_on(user, changes, peer, &session).await;
            drop(presence);
        });
    }
}

async fn pass_on(
    user: UserId,
    mut changes: tokio::sync::broadcast::Receiver<ServerChange>,
    peer: Peer<RoleServer>,
    session: &AggregatedServer,
) {
    loop {
        let change = tokio::select! {
            change = changes.recv() => change,
            () = tokio::time::sleep(CHECK_ALIVE) => {
                if peer.is_transport_closed() {
                    return;
                }
                continue;
            }
        };
        let list = match change {
            Ok(ServerChange {
                user: of,
                server,
                change,
            }) if of == user => match change {
                Change::List(list) => list,
                Change::Connected => {
                    session.authorization_done(&server, &peer).await;
                    continue;
                }
                Change::Message(params) => {
                    let heard = log_threshold::passes(session.log_threshold(), Some(&params));
                    if heard && !pass_on_message(&peer, &server, params).await {
                        return;
                    }
                    continue;
                }
                Change::ResourceUpdated(uri) => {
                    let wrapped = session.wrap_uri(&server, &uri);
                    if session.subscribed(&wrapped)
                        && let Err(error) = peer
                            .notify_resource_updated(ResourceUpdatedNotificationParam::new(wrapped))
                            .await
                    {
                        tracing::debug!(%error, "resource update not passed on");
                        if peer.is_transport_closed() {
                            return;
                        }
                    }
                    continue;
                }
            },
            Ok(_) => continue,
            // Fell behind: tell the agent everything may have changed.
            Err(RecvError::Lagged(_)) => {
                for list in [ListKind::Tools, ListKind::Prompts, ListKind::Resources] {
                    if !notify(&peer, list).await {
                        return;
                    }
                }
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        if !notify(&peer, list).await {
            return;
        }
    }
}

/// A server's log message outside any request, its `logger` naming the server first
/// (`{server}` or `{server}/{logger}`) so the agent can tell whose it is. False once the
/// session is gone.
async fn pass_on_message(
    peer: &Peer<RoleServer>,
    server: &tether_core::ServerName,
    mut params: serde_json::Value,
) -> bool {
    if let Some(object) = params.as_object_mut() {
        let logger = match object.get("logger").and_then(serde_json::Value::as_str) {
            Some(logger) => format!("{server}/{logger}"),
            None => server.to_string(),
        };
        object.insert("logger".to_owned(), serde_json::Value::String(logger));
    }
    let Ok(message) = serde_json::from_value::<LoggingMessageNotificationParam>(params) else {
        tracing::debug!(%server, "a log message that is not one was not passed on");
        return true;
    };
    match peer.notify_logging_message(message).await {
        Ok(()) => true,
        Err(error) => {
            tracing::debug!(%error, "log message not passed on");
            !peer.is_transport_closed()
        }
    }
}

/// False once the session is gone.
async fn notify(peer: &Peer<RoleServer>, list: ListKind) -> bool {
    let sent = match list {
        ListKind::Tools => peer.notify_tool_list_changed().await,
        ListKind::Prompts => peer.notify_prompt_list_changed().await,
        ListKind::Resources => peer.notify_resource_list_changed().await,
    };
    match sent {
        Ok(()) => true,
        Err(error) => {
            tracing::debug!(%error, "list change not passed on; the agent session is gone");
            !peer.is_transport_closed()
        }
    }
}
