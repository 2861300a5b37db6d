//! How the configured servers appear on `/mcp`: their names' prefixes ([`ToolNaming`]) and
//! their tool filters ([`ToolPolicy`]), checked against the servers they describe. Built by
//! the gateway's builder and built again, then swapped in whole, when the servers are replaced
//! at run time (a configuration reload).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use tether_core::ServerName;

use super::mcp::{ToolFilter, ToolNaming, ToolPolicy, check_prefixes};
use super::server::GatewayError;

/// One consistent view: a request reads naming and policy of the same server list.
#[derive(Debug)]
pub struct ServersView {
    pub(crate) naming: Arc<ToolNaming>,
    pub(crate) policy: Arc<ToolPolicy>,
}

impl ServersView {
    /// The view of `servers`: no two names may collide under their prefixes, and every filter
    /// must name one of them.
    pub fn new(
        separator: &str,
        servers: &[ServerName],
        prefixes: HashMap<ServerName, String>,
        filters: BTreeMap<ServerName, ToolFilter>,
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
        Ok(Self {
            naming: Arc::new(naming),
            policy: Arc::new(ToolPolicy::new(filters)),
        })
    }
}
