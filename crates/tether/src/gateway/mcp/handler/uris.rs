//! Resource URIs of several servers on one endpoint. A server with a name prefix (the default)
//! has its URIs wrapped as `tether://{server}/{its own URI}`, verbatim, so two servers' `file:///a`
//! stay apart and the original comes back by cutting the head off; templates are wrapped the
//! same way, which keeps them valid RFC 6570 templates. A server listed without prefix
//! (`prefix = ""`) keeps its URIs unchanged and receives every URI that is not wrapped.

use tether_core::ServerName;

use super::AggregatedServer;

const SCHEME: &str = "tether://";

impl AggregatedServer {
    fn wraps_uris(&self, server: &ServerName) -> bool {
        !self.app.naming().prefix(server).is_empty()
    }

    pub(super) fn wrap_uri(&self, server: &ServerName, uri: &str) -> String {
        if self.wraps_uris(server) {
            format!("{SCHEME}{server}/{uri}")
        } else {
            uri.to_owned()
        }
    }

    /// The server a URI of the aggregated view belongs to, and the URI it knows.
    pub(super) fn route_uri(&self, uri: &str) -> Option<(ServerName, String)> {
        let manager = self.app.manager();
        if let Some((server, original)) = uri
            .strip_prefix(SCHEME)
            .and_then(|rest| rest.split_once('/'))
            && let Some(config) = manager.servers().find(|s| s.name.as_str() == server)
            && self.wraps_uris(&config.name)
        {
            return Some((config.name.clone(), original.to_owned()));
        }
        manager
            .servers()
            .find(|s| !self.wraps_uris(&s.name))
            .map(|s| (s.name.clone(), uri.to_owned()))
    }
}
