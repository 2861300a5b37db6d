//! Extension points the binary fills in: forgetting a pair's tokens when the user removes a
//! server, and extra readiness checks (database, Redis, …).

use async_trait::async_trait;
use tether_core::{ServerChanges, ServerName, UserId};

/// A hook failed; the text is shown to the caller, so it must hold no secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct HookError(pub String);

/// Called by `DELETE /v1/me/servers/{name}` after the manager has forgotten the pair (its
/// session and tool lists): deletes what the gateway does not own (the pair's tokens).
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

/// One server of the catalog API: where it comes from and its `[[servers]]` entry as JSON.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct CatalogServer {
    pub name: String,
    /// `config` (the configuration file: read-only here), `catalog` (the admin API) or `user`
    /// (a user's own).
    pub source: &'static str,
    pub definition: serde_json::Value,
    /// Switched off by an operator: kept, not served.
    pub disabled: bool,
}

/// Why a catalog request was refused. The texts are shown to the operator; no secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    /// The definition is not a valid server (400).
    #[error("{0}")]
    Invalid(String),
    /// No such server in the catalog (404).
    #[error("no such server in the catalog")]
    NotFound,
    /// The name is taken, or belongs to the configuration file (409).
    #[error("{0}")]
    Conflict(String),
    /// The catalog is switched off (`catalog.enabled = false`) (404).
    #[error("the server catalog is not enabled")]
    Disabled,
    /// The storage could not be reached (503).
    #[error("{0}")]
    Unavailable(String),
}

/// The servers added while Tether runs: `/v1/admin/servers`. Every change is effective on
/// this replica when the call returns and on the others within their poll interval.
#[async_trait]
pub trait ServerCatalog: Send + Sync + std::fmt::Debug + 'static {
    /// The configuration file's servers, then the catalog's.
    async fn list(&self) -> Result<Vec<CatalogServer>, CatalogError>;
    async fn create(&self, definition: serde_json::Value) -> Result<CatalogServer, CatalogError>;
    async fn update(
        &self,
        name: &str,
        definition: serde_json::Value,
    ) -> Result<CatalogServer, CatalogError>;
    /// Deletes the server, its live sessions, and every user's tokens and tool lists of it.
    async fn delete(&self, name: &str) -> Result<(), CatalogError>;

    /// Switches a server (the file's or the catalog's) off or on again, on every replica.
    async fn set_enabled(&self, name: &str, enabled: bool) -> Result<(), CatalogError>;

    /// A server `owner` adds for themselves (`{name, url, transport?, oauth?, scopes?}`): seen
    /// and used by them only, listed to them as `{name}{separator}{tool}`.
    async fn create_owned(
        &self,
        owner: &tether_core::UserId,
        definition: serde_json::Value,
    ) -> Result<CatalogServer, CatalogError>;

    /// Deletes one of `owner`'s own servers (by its name in the catalog).
    async fn delete_owned(
        &self,
        owner: &tether_core::UserId,
        name: &str,
    ) -> Result<(), CatalogError>;
}
