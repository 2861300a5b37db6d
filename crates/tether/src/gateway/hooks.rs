//! Extension points the binary fills in: forgetting a pair's tokens when the user removes a
//! server, and extra readiness checks (database, Redis, …).

use async_trait::async_trait;
use tether_core::{ServerChanges, ServerName, UserId};

/// A hook failed; the text is shown to the caller, so it must hold no secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct HookError(pub String);

/// Called by `DELETE /v1/me/servers/{name}` after the session is closed: deletes what the
/// gateway does not own (the pair's tokens).
#[async_trait]
pub trait PairForgetter: Send + Sync + std::fmt::Debug + 'static {
    async fn forget(&self, user: &UserId, server: &ServerName) -> Result<(), HookError>;
}

/// Adds lines to `/metrics`: Prometheus text exposition, ending with a newline. Labels must
/// never carry user ids or secrets.
pub trait MetricsSource: Send + Sync + std::fmt::Debug + 'static {
    fn render(&self) -> String;
}

/// One dependency `/readyz` checks.
#[async_trait]
pub trait ReadinessCheck: Send + Sync + std::fmt::Debug + 'static {
    /// Shown in `/readyz`'s JSON.
    fn name(&self) -> &str;
    /// `Err` makes the replica not ready; the text is shown, so it must hold no secret.
    async fn check(&self) -> Result<(), HookError>;

    /// A note shown beside a passing check (a degraded mode that still serves).
    fn detail(&self) -> Option<String> {
        None
    }
}

/// Reads the servers again from where they come (the binary: its configuration file) and
/// applies them; `POST /v1/admin/reload` calls it. `Err` names every problem found, and then
/// nothing was changed.
#[async_trait]
pub trait Reloader: Send + Sync + std::fmt::Debug + 'static {
    async fn reload(&self) -> Result<ServerChanges, HookError>;
}
