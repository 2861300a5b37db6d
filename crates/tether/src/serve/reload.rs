//! Reloading the servers from the configuration file while the gateway runs: on SIGHUP and on
//! `POST /v1/admin/reload`.
//!
//! What a reload applies: `[[servers]]` (added, changed, removed; with their prefixes, tool
//! filters and OAuth client settings) and `[gateway.tools]`. The file is checked as at start
//! (every problem named) and nothing changes unless all of it is valid. Everything else in the
//! file (listen address, storage, state, host authentication, limits, timeouts) is read at start
//! only: a reload that finds such a change applies the servers and logs that the rest needs a
//! restart. The tool separator is the running one, so names on `/mcp` keep their shape.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use tether_core::{ReconnectionManager, ServerChanges, ServerName};

use super::oauth::FlowStarter;
use crate::bearer::AuthorizerBearer;
use crate::config::TetherConfig;
use tether::gateway::mcp::ToolFilter;
use tether::gateway::{AppState, GatewayConfig, HookError, Reloader, ServersView};

/// `[[servers]]`'s name prefixes, for the servers that set one.
pub(crate) fn name_prefixes(config: &TetherConfig) -> HashMap<ServerName, String> {
    config
        .servers
        .iter()
        .filter_map(|entry| Some((entry.server.name.clone(), entry.prefix.clone()?)))
        .collect()
}

/// `[gateway.tools]` with each `[[servers]]`' own `allow`/`deny` over it.
pub(crate) fn tool_filters(
    config: &TetherConfig,
    gateway: &GatewayConfig,
) -> BTreeMap<ServerName, ToolFilter> {
    let mut filters = gateway.tools.clone();
    for entry in &config.servers {
        if entry.tools != ToolFilter::default() {
            filters.insert(entry.server.name.clone(), entry.tools.clone());
        }
    }
    filters
}

/// The servers of a running gateway and where they come from.
#[derive(Debug)]
pub(crate) struct ConfigReloader {
    pub path: PathBuf,
    pub manager: ReconnectionManager,
    pub flows: Arc<FlowStarter>,
    pub bearer: AuthorizerBearer,
    pub app: AppState,
    /// The configuration the gateway started with, to tell what a reload cannot apply.
    pub started: TetherConfig,
    /// One reload at a time: two would interleave their swaps.
    pub running: tokio::sync::Mutex<()>,
}

#[async_trait]
impl Reloader for ConfigReloader {
    async fn reload(&self) -> Result<ServerChanges, HookError> {
        let _one_at_a_time = self.running.lock().await;
        let config = TetherConfig::load(&self.path).map_err(|e| HookError(format!("{e:#}")))?;
        let Some(gateway) = config.gateway.as_ref() else {
            return Err(HookError(
                "[gateway.host_auth] is required to serve".to_owned(),
            ));
        };
        let names: Vec<ServerName> = config
            .servers
            .iter()
            .map(|entry| entry.server.name.clone())
            .collect();
        let view = ServersView::new(
            &self.app.mcp_config().tool_separator,
            &names,
            name_prefixes(&config),
            tool_filters(&config, gateway),
        )
        .map_err(|e| HookError(e.to_string()))?;
        // What connects must know first whether to look for tokens, and flows must know the
        // new servers before a stub links to them.
        self.bearer.replace_without_oauth(
            config
                .servers
                .iter()
                .filter(|entry| !entry.server.oauth)
                .map(|entry| entry.server.name.clone()),
        );
        self.flows.replace_servers(
            config
                .servers
                .iter()
                .map(|entry| (entry.server.name.clone(), entry.clone()))
                .collect(),
        );
        self.app.set_servers_view(view);
        let changes = self
            .manager
            .replace_servers(config.servers())
            .await
            .map_err(|e| HookError(e.to_string()))?;
        if needs_restart(&self.started, &config) {
            tracing::warn!(
                "the configuration file changed beyond [[servers]] and [gateway.tools]; \
                 those changes take effect at the next start"
            );
        }
        Ok(changes)
    }
}

/// Whether `now` differs from `started` in what only a start reads.
fn needs_restart(started: &TetherConfig, now: &TetherConfig) -> bool {
    let mut a = started.clone();
    let mut b = now.clone();
    for config in [&mut a, &mut b] {
        config.servers.clear();
        if let Some(gateway) = config.gateway.as_mut() {
            gateway.tools.clear();
        }
    }
    toml::to_string(&a).ok() != toml::to_string(&b).ok()
}
