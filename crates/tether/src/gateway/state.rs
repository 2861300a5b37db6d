//! What every gateway handler shares: the manager, the authenticator, the registries, the
//! metrics and the hooks. Cheap to clone.

use crate::gateway::mcp::handler::questions::ParkedCalls;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use tether_core::ReconnectionManager;

use super::auth::{AdminCredentials, HostAuth};
use super::config::McpConfig;
use super::hooks::{MetricsSource, PairForgetter, ReadinessCheck, Reloader, ServerCatalog};
use super::mcp::{SessionOwners, ToolNaming, ToolPolicy};
use super::metrics::GatewayMetrics;
use super::servers_view::ServersView;
use super::users::UserRegistry;

/// The OpenAPI document (utoipa's type has no `Debug`).
struct ApiDocument(utoipa::openapi::OpenApi);

impl std::fmt::Debug for ApiDocument {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiDocument")
            .field("paths", &self.0.paths.paths.len())
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    manager: ReconnectionManager,
    host_auth: HostAuth,
    admin: AdminCredentials,
    users: UserRegistry,
    metrics: GatewayMetrics,
    mcp: McpConfig,
    /// Replaced whole when the servers are (see [`ServersView`]).
    view: RwLock<Arc<ServersView>>,
    session_owners: SessionOwners,
    forgetter: Option<Arc<dyn PairForgetter>>,
    /// Set once by the binary after assembly (the reloader needs the assembled gateway).
    reloader: std::sync::OnceLock<Arc<dyn Reloader>>,
    /// The OpenAPI document of the routes served.
    api_doc: RwLock<ApiDocument>,
    /// Set once by the binary, as the reloader.
    catalog: std::sync::OnceLock<Arc<dyn ServerCatalog>>,
    readiness: Vec<Arc<dyn ReadinessCheck>>,
    metrics_sources: Vec<Arc<dyn MetricsSource>>,
    shutting_down: AtomicBool,
    /// Calls of 2026-07-28 agents waiting for the answer to an upstream's question.
    parked_calls: ParkedCalls,
}

/// The parts an [`AppState`] is made of (see `GatewayBuilder`).
pub(crate) struct Parts {
    pub manager: ReconnectionManager,
    pub host_auth: HostAuth,
    pub admin: AdminCredentials,
    pub users: UserRegistry,
    pub mcp: McpConfig,
    pub view: ServersView,
    pub session_owners: SessionOwners,
    pub forgetter: Option<Arc<dyn PairForgetter>>,
    pub readiness: Vec<Arc<dyn ReadinessCheck>>,
    pub metrics_sources: Vec<Arc<dyn MetricsSource>>,
}

impl AppState {
    pub(crate) fn new(parts: Parts) -> Self {
        Self {
            inner: Arc::new(Inner {
                manager: parts.manager,
                host_auth: parts.host_auth,
                admin: parts.admin,
                users: parts.users,
                metrics: GatewayMetrics::new(),
                mcp: parts.mcp,
                view: RwLock::new(Arc::new(parts.view)),
                session_owners: parts.session_owners,
                forgetter: parts.forgetter,
                reloader: std::sync::OnceLock::new(),
                catalog: std::sync::OnceLock::new(),
                api_doc: RwLock::new(ApiDocument(utoipa::openapi::OpenApi::default())),
                readiness: parts.readiness,
                metrics_sources: parts.metrics_sources,
                shutting_down: AtomicBool::new(false),
                parked_calls: ParkedCalls::default(),
            }),
        }
    }

    pub(crate) fn parked_calls(&self) -> &ParkedCalls {
        &self.inner.parked_calls
    }

    pub fn manager(&self) -> &ReconnectionManager {
        &self.inner.manager
    }

    pub fn host_auth(&self) -> &HostAuth {
        &self.inner.host_auth
    }

    pub fn admin(&self) -> &AdminCredentials {
        &self.inner.admin
    }

    pub fn users(&self) -> &UserRegistry {
        &self.inner.users
    }

    pub fn metrics(&self) -> &GatewayMetrics {
        &self.inner.metrics
    }

    pub fn mcp_config(&self) -> &McpConfig {
        &self.inner.mcp
    }

    fn view(&self) -> Arc<ServersView> {
        self.inner
            .view
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn naming(&self) -> Arc<ToolNaming> {
        self.view().naming.clone()
    }

    pub fn policy(&self) -> Arc<ToolPolicy> {
        self.view().policy.clone()
    }

    /// Which servers a user with `groups` may see and use now.
    pub fn access(
        &self,
        user: &tether_core::UserId,
        groups: super::auth::UserGroups,
    ) -> super::servers_view::ServerAccess {
        super::servers_view::ServerAccess::new(&self.view(), user.clone(), groups)
    }

    /// Swaps in the view of a new server list (see `ServersView::new` for its checks).
    pub fn set_servers_view(&self, view: ServersView) {
        *self
            .inner
            .view
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(view);
    }

    pub fn session_owners(&self) -> &SessionOwners {
        &self.inner.session_owners
    }

    pub fn forgetter(&self) -> Option<&Arc<dyn PairForgetter>> {
        self.inner.forgetter.as_ref()
    }

    pub fn reloader(&self) -> Option<&Arc<dyn Reloader>> {
        self.inner.reloader.get()
    }

    /// Where `POST /v1/admin/reload` reloads from; the first one set stays.
    pub fn set_reloader(&self, reloader: Arc<dyn Reloader>) {
        let _ = self.inner.reloader.set(reloader);
    }

    pub fn catalog(&self) -> Option<&Arc<dyn ServerCatalog>> {
        self.inner.catalog.get()
    }

    /// What `/v1/admin/servers` manages; the first one set stays.
    pub fn set_catalog(&self, catalog: Arc<dyn ServerCatalog>) {
        let _ = self.inner.catalog.set(catalog);
    }

    /// The OpenAPI document of the routes served, as JSON.
    pub fn api_doc(&self) -> serde_json::Value {
        let doc = self
            .inner
            .api_doc
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        serde_json::to_value(&doc.0).unwrap_or_default()
    }

    /// The document of the gateway's own routes (its info, servers and security schemes).
    pub(crate) fn set_api_doc(&self, doc: utoipa::openapi::OpenApi) {
        self.inner
            .api_doc
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .0 = doc;
    }

    /// Adds the paths and components of routes merged into the gateway (the binary's).
    pub fn merge_api_doc(&self, other: utoipa::openapi::OpenApi) {
        self.inner
            .api_doc
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .0
            .merge(other);
    }

    pub fn metrics_sources(&self) -> &[Arc<dyn MetricsSource>] {
        &self.inner.metrics_sources
    }

    pub fn readiness_checks(&self) -> &[Arc<dyn ReadinessCheck>] {
        &self.inner.readiness
    }

    /// From now on `/readyz` says 503 so load balancers stop sending new work.
    pub fn begin_shutdown(&self) {
        self.inner.shutting_down.store(true, Ordering::Relaxed);
    }

    pub fn is_shutting_down(&self) -> bool {
        self.inner.shutting_down.load(Ordering::Relaxed)
    }
}
