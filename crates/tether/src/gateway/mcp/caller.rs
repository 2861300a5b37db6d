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
