//! How the configured servers appear on `/mcp`: their names' prefixes ([`ToolNaming`]), their
//! tool filters ([`ToolPolicy`]) and who may use them (their `groups`), checked against the
//! servers they describe. Built by
//! the gateway's builder and built again, then swapped in whole, when the servers are replaced
//! at run time (a configuration reload).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use tether_core::{ServerName, UserId};

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
    /// Servers a user added for themselves: that user's only.
    pub(crate) owners: Arc<HashMap<ServerName, UserId>>,
}

impl ServersView {
    /// The view of `servers`: no two names one user sees may collide under their prefixes (the
    /// shared servers together, and each user's own servers with the shared ones), and every
    /// filter must name one of them.
    pub fn new(
        separator: &str,
        servers: &[ServerName],
        prefixes: HashMap<ServerName, String>,
        filters: BTreeMap<ServerName, ToolFilter>,
        groups: HashMap<ServerName, Vec<String>>,
        owners: HashMap<ServerName, UserId>,
    ) -> Result<Self, GatewayError> {
        let naming = ToolNaming::new(separator.to_owned())
            .ok_or_else(|| {
                GatewayError::Invalid("mcp.tool_separator must not be empty".to_owned())
            })?
            .with_prefixes(prefixes);
        let effective = |server: &ServerName| (server.clone(), naming.prefix(server));
        let shared: Vec<(ServerName, String)> = servers
            .iter()
            .filter(|server| !owners.contains_key(*server))
            .map(effective)
            .collect();
        check_prefixes(&shared).map_err(GatewayError::Invalid)?;
        let mut by_owner: HashMap<&UserId, Vec<(ServerName, String)>> = HashMap::new();
        for server in servers {
            if let Some(owner) = owners.get(server) {
                by_owner.entry(owner).or_default().push(effective(server));
            }
        }
        for own in by_owner.into_values() {
            let seen: Vec<_> = shared.iter().cloned().chain(own).collect();
            check_prefixes(&seen).map_err(GatewayError::Invalid)?;
        }
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
            owners: Arc::new(owners),
        })
    }
}

/// Which of the servers one user may see and use: taken once per request from the view and
/// the user's groups.
#[derive(Debug, Clone)]
pub struct ServerAccess {
    groups: Arc<HashMap<ServerName, Vec<String>>>,
    owners: Arc<HashMap<ServerName, UserId>>,
    user: UserGroups,
    who: UserId,
}

impl ServerAccess {
    pub fn new(view: &ServersView, who: UserId, user: UserGroups) -> Self {
        Self {
            groups: view.groups.clone(),
            owners: view.owners.clone(),
            user,
            who,
        }
    }

    /// The servers open to some groups only that this user may not use (other users' own
    /// servers are never theirs: no session to close).
    pub fn denied(&self) -> impl Iterator<Item = &ServerName> {
        self.groups
            .iter()
            .filter(|(_, allowed)| !self.user.may_use(allowed))
            .map(|(server, _)| server)
    }

    pub fn permits(&self, server: &ServerName) -> bool {
        self.owners
            .get(server)
            .is_none_or(|owner| owner == &self.who)
            && self
                .groups
                .get(server)
                .is_none_or(|allowed| self.user.may_use(allowed))
    }

    /// Whether `server` is one this user added for themselves.
    pub fn owns(&self, server: &ServerName) -> bool {
        self.owners.get(server) == Some(&self.who)
    }
}
