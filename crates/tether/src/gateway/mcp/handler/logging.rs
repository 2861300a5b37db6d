//! `logging/setLevel`: passed to the user's open upstream sessions that offer logging. Upstream
//! sessions belong to the (user, server) pair, so they are given the most verbose level of the
//! user's agent sessions and each agent session filters what it hears
//! ([`log_threshold`](crate::gateway::mcp::log_threshold)); Tether's own log level is its
//! operator's, never an agent's.
//!
//! SEP-2577 deprecates logging in the 2026-07-28 revision; agents and servers of the earlier
//! revisions still use it, so it is federated (rmcp marks its types deprecated).
#![allow(deprecated)]

use futures::future::join_all;
use rmcp::ErrorData as McpError;
use rmcp::model::{LoggingLevel, SetLevelRequestParams};
use tether_core::CallContext;

use super::AggregatedServer;
use super::resources::to_params;
use crate::gateway::mcp::caller::Caller;

impl AggregatedServer {
    pub(super) async fn set_upstream_level(
        &self,
        user: &Caller,
        level: LoggingLevel,
    ) -> Result<(), McpError> {
        let params = to_params(&SetLevelRequestParams::new(level))?;
        let manager = self.app.manager();
        let servers: Vec<_> = manager
            .servers()
            .filter(|s| user.access.permits(&s.name))
            .filter(|s| manager.offers(user, &s.name, "logging") == Some(true))
            .map(|s| s.name.clone())
            .collect();
        let call = CallContext::default();
        let answers = join_all(
            servers
                .iter()
                .map(|server| self.ask(user, server, "logging/setLevel", params.clone(), &call)),
        )
        .await;
        for (server, answer) in servers.iter().zip(answers) {
            if let Err(error) = answer {
                // One server's refusal does not undo the others'.
                tracing::debug!(%user, %server, error = %error.message, "setLevel not applied");
            }
        }
        Ok(())
    }
}
