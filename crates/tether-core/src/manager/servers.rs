//! The configured servers, and replacing them while the manager runs (a configuration reload,
//! a catalog change).
//!
//! Readers take a snapshot ([`Inner::registry`]), so a request that started with a server keeps
//! its configuration to its end. A server that is removed or whose configuration changed has
//! its live sessions closed and its tool lists dropped (the cached ones included): the next
//! request connects with the new settings. Users with an open agent session are told that
//! their tool list changed. A server whose configuration is unchanged keeps its sessions.

use crate::FastMap;
use std::sync::{Arc, PoisonError};

use super::{Inner, ReconnectionManager};
use crate::config::{ConfigError, ServerConfig};
use crate::connector::ListKind;
use crate::ids::{PairKey, ServerName};
use crate::manager::list_changes::Change;

/// The configured servers, in configuration order (which is also the stagger order).
#[derive(Debug)]
pub(crate) struct ServerRegistry {
    servers: Arc<[Arc<ServerConfig>]>,
    by_name: FastMap<ServerName, usize>,
}

impl ServerRegistry {
    pub(crate) fn new(servers: Vec<ServerConfig>) -> Result<Self, ConfigError> {
        let mut by_name = FastMap::default();
        for (i, s) in servers.iter().enumerate() {
            if by_name.insert(s.name.clone(), i).is_some() {
                return Err(ConfigError::Invalid(format!(
                    "server name {} is configured twice",
                    s.name
                )));
            }
        }
        Ok(Self {
            servers: servers.into_iter().map(Arc::new).collect(),
            by_name,
        })
    }

    pub(crate) fn get(&self, name: &ServerName) -> Option<&Arc<ServerConfig>> {
        self.by_name.get(name).and_then(|&i| self.servers.get(i))
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Arc<ServerConfig>> {
        self.servers.iter()
    }

    /// The servers, shared (one reference count, no copy).
    pub(crate) fn list(&self) -> Arc<[Arc<ServerConfig>]> {
        self.servers.clone()
    }

    pub(crate) fn len(&self) -> usize {
        self.servers.len()
    }
}

/// What [`ReconnectionManager::replace_servers`] changed, by server name.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ServerChanges {
    pub added: Vec<ServerName>,
    pub changed: Vec<ServerName>,
    pub removed: Vec<ServerName>,
}

impl ServerChanges {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.changed.is_empty() && self.removed.is_empty()
    }
}

impl Inner {
    /// The servers now.
    pub(crate) fn registry(&self) -> Arc<ServerRegistry> {
        self.servers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Closes this replica's sessions of `server` and drops its tool lists, for every user.
    async fn forget_server(&self, server: &ServerName) {
        for (pair, session) in self.sessions.remove_server(server) {
            if let Some(session) = session {
                session.close().await;
            }
            self.log_store(self.tool_cache.remove(&pair).await, &pair);
        }
    }
}

impl ReconnectionManager {
    /// Replaces the configured servers with `servers` (validated as at build time), closing
    /// the sessions and dropping the tool lists of the servers removed or changed.
    pub async fn replace_servers(
        &self,
        servers: Vec<ServerConfig>,
    ) -> Result<ServerChanges, ConfigError> {
        let next = Arc::new(ServerRegistry::new(servers)?);
        let previous = std::mem::replace(
            &mut *self
                .inner
                .servers
                .write()
                .unwrap_or_else(PoisonError::into_inner),
            next.clone(),
        );
        let mut changes = ServerChanges::default();
        for server in next.iter() {
            match previous.get(&server.name) {
                None => changes.added.push(server.name.clone()),
                Some(old) if **old != **server => changes.changed.push(server.name.clone()),
                Some(_) => {}
            }
        }
        changes.removed = previous
            .iter()
            .filter(|old| next.get(&old.name).is_none())
            .map(|old| old.name.clone())
            .collect();
        for server in changes.changed.iter().chain(&changes.removed) {
            self.inner.forget_server(server).await;
        }
        if !changes.is_empty() {
            tracing::info!(
                added = ?changes.added, changed = ?changes.changed, removed = ?changes.removed,
                "servers replaced"
            );
            // Every open agent session lists its tools again.
            let users: Vec<_> = self.inner.present_users();
            for user in users {
                for server in changes
                    .added
                    .iter()
                    .chain(&changes.changed)
                    .chain(&changes.removed)
                {
                    let pair = PairKey::new(user.clone(), server.clone());
                    self.inner.publish(&pair, Change::List(ListKind::Tools));
                }
            }
        }
        Ok(changes)
    }
}
