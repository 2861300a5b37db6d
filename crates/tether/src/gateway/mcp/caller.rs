//! Who a request is for: the user of its host token and the servers that user may see and use
//! (the token's groups against the servers' `groups`), taken once per request.

use tether_core::UserId;

use crate::gateway::ServerAccess;

/// The user of one request and the servers they may see and use.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub(crate) user: UserId,
    pub(crate) access: ServerAccess,
}

impl Caller {
    /// The names of those of `servers` this caller may see, for reading aggregated names
    /// (another user's server must not claim a name this user means).
    pub(crate) fn sees<'a>(
        &'a self,
        servers: &'a [std::sync::Arc<tether_core::ServerConfig>],
    ) -> impl Iterator<Item = &'a tether_core::ServerName> {
        servers
            .iter()
            .filter(|s| self.access.permits(&s.name))
            .map(|s| &s.name)
    }
}

impl std::ops::Deref for Caller {
    type Target = UserId;

    fn deref(&self) -> &UserId {
        &self.user
    }
}

impl std::fmt::Display for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.user.fmt(f)
    }
}
