//! A server that needs the user's authorization, told the way MCP says it (2025-11-25, URL
//! mode elicitation): to an agent that declared URL elicitations, a call to such a server is
//! answered with the `-32042` "URL elicitation required" error carrying Tether's safe link
//! (`/oauth/begin/…` or the host's page, never the authorization server's URL), and
//! `notifications/elicitation/complete` follows once the server is connected. Agents without
//! the capability keep the stub text, which carries the same link.

use std::sync::PoisonError;

use rmcp::ErrorData as McpError;
use rmcp::RoleServer;
use rmcp::model::{CustomNotification, ErrorCode, ServerNotification};
use rmcp::service::{Peer, RequestContext};
use serde_json::json;
use tether_core::ServerName;

use super::AggregatedServer;
use crate::gateway::mcp::caller::Caller;

/// The specification's "URL elicitation required" error code.
const URL_ELICITATION_REQUIRED: i32 = -32042;

impl AggregatedServer {
    /// The error to answer a failed call with, when its server needs an authorization and the
    /// agent can open a URL for its user.
    pub(super) async fn authorization_elicitation(
        &self,
        user: &Caller,
        tool: &str,
        context: &RequestContext<RoleServer>,
    ) -> Option<McpError> {
        let declared = context
            .client_capabilities()
            .and_then(|c| c.elicitation)
            .is_some_and(|e| e.url.is_some());
        if !declared {
            return None;
        }
        let manager = self.app.manager();
        let servers = manager.server_list();
        let (server, _) = self.app.naming().split(tool, user.sees(&servers))?;
        let url = manager.authorization_link(user, &server).await?;
        let nonce: u64 = rand::random();
        let id = format!("tether-authorize-{server}-{nonce:016x}");
        self.authorizations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(server.clone(), id.clone());
        let message = format!(
            "The user must authorize access to \"{server}\": open the link, approve, then retry."
        );
        Some(McpError::new(
            ErrorCode(URL_ELICITATION_REQUIRED),
            message.clone(),
            Some(json!({"elicitations": [{
                "mode": "url",
                "elicitationId": id,
                "url": url,
                "message": message,
            }]})),
        ))
    }

    /// `server` connected: completes the URL elicitation handed out for it, if any.
    pub(super) async fn authorization_done(&self, server: &ServerName, peer: &Peer<RoleServer>) {
        let Some(id) = self
            .authorizations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(server)
        else {
            return;
        };
        let notification = ServerNotification::CustomNotification(CustomNotification::new(
            "notifications/elicitation/complete",
            Some(json!({"elicitationId": id})),
        ));
        if let Err(error) = peer.send_notification(notification).await {
            tracing::debug!(%error, %server, "elicitation completion not passed on");
        }
    }
}
