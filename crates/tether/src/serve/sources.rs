//! Where a running gateway's servers come from: the configuration file and the server catalog
//! (see [`super::catalog`]), merged and applied whole (the manager's servers, their names and
//! tool filters on `/mcp`, flows, the set of servers without OAuth) whenever either changes.
//! The file is read again on SIGHUP and on `POST /v1/admin/reload`.
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
use tether_store::sql::SqlStore;

use super::oauth::FlowStarter;
use crate::bearer::AuthorizerBearer;
use crate::config::{ServerEntry, TetherConfig};
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

/// The servers open to some groups only.
pub(crate) fn server_groups(entries: &[ServerEntry]) -> HashMap<ServerName, Vec<String>> {
    entries
        .iter()
        .filter(|entry| !entry.groups.is_empty())
        .map(|entry| (entry.server.name.clone(), entry.groups.clone()))
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
pub(crate) struct ServerSources {
    pub path: PathBuf,
    /// What the servers are applied to.
    pub wiring: Wiring,
    /// The configuration the gateway started with, to tell what a reload cannot apply.
    pub started: TetherConfig,
    /// The configuration file as last read (the catalog's changes are applied beside it).
    pub file: std::sync::Mutex<TetherConfig>,
    /// The catalog's entries as last applied, and their version.
    pub catalog: std::sync::Mutex<(i64, Vec<ServerEntry>)>,
    /// The servers an operator switched off (file or catalog), as last read from the store.
    pub disabled: std::sync::Mutex<std::collections::BTreeSet<String>>,
    /// One change at a time: two would interleave their swaps.
    pub applying: tokio::sync::Mutex<()>,
}

/// What the servers are applied to, and where their tokens and catalog live.
#[derive(Debug)]
pub(crate) struct Wiring {
    pub manager: ReconnectionManager,
    pub flows: Arc<FlowStarter>,
    pub bearer: AuthorizerBearer,
    pub app: AppState,
    pub store: SqlStore,
    /// Revokes a deleted catalog server's grants; forgets the tokens it remembered of servers
    /// removed or changed.
    pub authorizer: Arc<tether_oauth::McpAuthorizer>,
}

impl ServerSources {
    pub(crate) fn new(path: PathBuf, config: &TetherConfig, wiring: Wiring) -> Self {
        Self {
            path,
            wiring,
            started: config.clone(),
            file: std::sync::Mutex::new(config.clone()),
            catalog: std::sync::Mutex::new((i64::MIN, Vec::new())),
            disabled: std::sync::Mutex::default(),
            applying: tokio::sync::Mutex::new(()),
        }
    }

    pub(crate) fn file(&self) -> TetherConfig {
        self.file
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn catalog_entries(&self) -> (i64, Vec<ServerEntry>) {
        self.catalog
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The file's servers, then the catalog's (a catalog entry whose name the file took since
    /// is left out, with a warning).
    pub(crate) fn disabled(&self) -> std::collections::BTreeSet<String> {
        self.disabled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The file's servers, then the catalog's, without those switched off.
    pub(crate) fn merged(
        file: &TetherConfig,
        catalog: &[ServerEntry],
        disabled: &std::collections::BTreeSet<String>,
    ) -> Vec<ServerEntry> {
        let mut entries = Self::merged_all(file, catalog);
        entries.retain(|e| !disabled.contains(e.server.name.as_str()));
        entries
    }

    /// The file's servers, then the catalog's (switched off or not).
    pub(crate) fn merged_all(file: &TetherConfig, catalog: &[ServerEntry]) -> Vec<ServerEntry> {
        let mut entries = file.servers.clone();
        for entry in catalog {
            if entries.iter().any(|e| e.server.name == entry.server.name) {
                tracing::warn!(server = %entry.server.name, "a catalog server has the name of a configuration file server; the file's is used");
                continue;
            }
            entries.push(entry.clone());
        }
        entries
    }

    /// Whether `entries` can be applied with `file`'s settings: names on `/mcp` apart, every
    /// filter naming a server. Nothing is changed.
    pub(crate) fn check(
        &self,
        file: &TetherConfig,
        entries: &[ServerEntry],
    ) -> Result<ServersView, HookError> {
        let Some(gateway) = file.gateway.as_ref() else {
            return Err(HookError(
                "[gateway.host_auth] is required to serve".to_owned(),
            ));
        };
        let names: Vec<ServerName> = entries.iter().map(|e| e.server.name.clone()).collect();
        let mut prefixes = name_prefixes(file);
        let mut filters = tool_filters(file, gateway);
        for entry in entries {
            if let Some(prefix) = &entry.prefix {
                prefixes.insert(entry.server.name.clone(), prefix.clone());
            }
            if entry.tools != ToolFilter::default() {
                filters.insert(entry.server.name.clone(), entry.tools.clone());
            }
        }
        ServersView::new(
            &self.wiring.app.mcp_config().tool_separator,
            &names,
            prefixes,
            filters,
            server_groups(entries),
            entries
                .iter()
                .filter_map(|e| Some((e.server.name.clone(), e.owner.clone()?)))
                .collect(),
        )
        .map_err(|e| HookError(e.to_string()))
    }

    /// Applies the file's and the catalog's servers; the caller holds `applying`.
    pub(crate) async fn apply(
        &self,
        file: TetherConfig,
        catalog: (i64, Vec<ServerEntry>),
    ) -> Result<ServerChanges, HookError> {
        let entries = Self::merged(&file, &catalog.1, &self.disabled());
        let view = self.check(&file, &entries)?;
        // What connects must know first whether to look for tokens, and flows must know the
        // new servers before a stub links to them.
        self.wiring.bearer.replace_without_oauth(
            entries
                .iter()
                .filter(|entry| !entry.server.oauth)
                .map(|entry| entry.server.name.clone()),
        );
        self.wiring.flows.replace_servers(
            entries
                .iter()
                .map(|entry| (entry.server.name.clone(), entry.clone()))
                .collect(),
        );
        self.wiring.app.set_servers_view(view);
        let changes = self
            .wiring
            .manager
            .replace_servers(entries.iter().map(|e| e.server.clone()).collect())
            .await
            .map_err(|e| HookError(e.to_string()))?;
        // A server gone or changed (another URL, another authorization server) must not be
        // sent a token remembered for what it was; the store decides from here on.
        for server in changes.removed.iter().chain(&changes.changed) {
            self.wiring.authorizer.forget_remembered(server);
        }
        *self
            .file
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = file;
        *self
            .catalog
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = catalog;
        Ok(changes)
    }
}

#[async_trait]
impl Reloader for ServerSources {
    async fn reload(&self) -> Result<ServerChanges, HookError> {
        let _one_at_a_time = self.applying.lock().await;
        let config = TetherConfig::load(&self.path).map_err(|e| HookError(format!("{e:#}")))?;
        let needs_restart = needs_restart(&self.started, &config);
        let catalog = self.catalog_entries();
        let changes = self.apply(config, catalog).await?;
        if needs_restart {
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

/// SIGHUP reloads the servers from the configuration file (as `POST /v1/admin/reload` does);
/// a file with problems changes nothing and is logged.
pub(crate) async fn reload_on_hangup(sources: Arc<ServerSources>) {
    let Ok(mut hangups) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
    else {
        tracing::warn!("SIGHUP cannot be watched; reload with POST /v1/admin/reload");
        return;
    };
    while hangups.recv().await.is_some() {
        match sources.reload().await {
            Ok(changes) => tracing::info!(
                added = ?changes.added, changed = ?changes.changed, removed = ?changes.removed,
                "configuration reloaded (SIGHUP)"
            ),
            Err(error) => tracing::error!(%error, "configuration not reloaded (SIGHUP)"),
        }
    }
}
