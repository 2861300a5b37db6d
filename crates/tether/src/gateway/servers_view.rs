//! How the configured servers appear on `/mcp`: their names' prefixes ([`ToolNaming`]), their
//! tool filters ([`ToolPolicy`]) and who may use them (their `groups`), checked against the
//! servers they describe. Built by
//! the gateway's builder and built again, then swapped in whole, when the servers are replaced
//! at run time (a configuration reload).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use tether_core::ServerName;

use super::auth::UserGroups;
use super::mcp::{ToolFilter, ToolNaming, ToolPolicy, check_prefixes};
use super::server::GatewayError;

/// One consistent view: a request reads naming and policy of the same server list.
#[derive(Debug)]
pub struct ServersView {
    pub(crate) naming: Arc<ToolNaming>,
    pub(crate) policy: Arc<ToolPolicy>,
    /// Servers open to some groups only; the others are open to every user.
    pub(crate) groups: Arc<HashMap<ServerName, Vec<String>>>,
}

impl ServersView {
    /// The view of `servers`: no two names may collide under their prefixes, and every filter
    /// must name one of them.
    pub fn new(
        separator: &str,
        servers: &[ServerName],
        prefixes: HashMap<ServerName, String>,
        filters: BTreeMap<ServerName, ToolFilter>,
        groups: HashMap<ServerName, Vec<String>>,
    ) -> Result<Self, GatewayError> {
        let naming = ToolNaming::new(separator.to_owned())
            .ok_or_else(|| {
                GatewayError::Invalid("mcp.tool_separator must not be empty".to_owned())
            })?
            .with_prefixes(prefixes);
        let effective: Vec<(ServerName, String)> = servers
            .iter()
            .map(|server| (server.clone(), naming.prefix(server)))
            .collect();
        check_prefixes(&effective).map_err(GatewayError::Invalid)?;
        for server in filters.keys() {
            if !servers.contains(server) {
                return Err(GatewayError::Invalid(format!(
                    "tools.{server}: no such server is configured"
                )));
            }
        }
        let groups = groups
            .into_iter()
            .filter(|(server, groups)| !groups.is_empty() && servers.contains(server))
            .collect();
        Ok(Self {
            naming: Arc::new(naming),
            policy: Arc::new(ToolPolicy::new(filters)),
            groups: Arc::new(groups),
        })
    }
}

/// Which of the servers one user may see and use: taken once per request from the view and
/// the user's groups.
#[derive(Debug, Clone)]
pub struct ServerAccess {
    groups: Arc<HashMap<ServerName, Vec<String>>>,
    user: UserGroups,
}

impl ServerAccess {
    pub fn new(view: &ServersView, user: UserGroups) -> Self {
        Self {
            groups: view.groups.clone(),
            user,
        }
    }

    /// Everything, for callers that are not a user (the operator page).
    pub fn everyone_allowed() -> Self {
        Self {
            groups: Arc::default(),
            user: UserGroups::default(),
        }
    }

    /// The servers open to some groups only that this user may not use.
    pub fn denied(&self) -> impl Iterator<Item = &ServerName> {
        self.groups
            .iter()
            .filter(|(_, allowed)| !self.user.may_use(allowed))
            .map(|(server, _)| server)
    }

    pub fn permits(&self, server: &ServerName) -> bool {
        self.groups
            .get(server)
            .is_none_or(|allowed| self.user.may_use(allowed))
    }
}
