//! Assembly of the gateway's router from its parts, and serving it with graceful shutdown.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;

use axum::Router;
use tether_core::{ReconnectionManager, ServerName};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::auth::{AdminCredentials, AuthConfigError, HostAuth};
use super::config::{GatewayConfig, HttpConfig, McpConfig};
use super::dispatch::Dispatch;
use super::hooks::{MetricsSource, PairForgetter, ReadinessCheck};
use super::mcp::McpEndpoint;
use super::mcp::{HostGuard, SessionOwners, ToolFilter};
use super::servers_view::ServersView;
use super::state::{AppState, Parts};
use super::users::UserRegistry;
use super::{api, listener, mcp};

/// The gateway cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    #[error(transparent)]
    Auth(#[from] AuthConfigError),
    #[error("invalid gateway configuration: {0}")]
    Invalid(String),
}

/// Collects the parts of a [`Gateway`]; see [`Gateway::builder`].
#[derive(Debug)]
pub struct GatewayBuilder {
    manager: ReconnectionManager,
    host_auth: HostAuth,
    mcp: McpConfig,
    http: HttpConfig,
    tools: BTreeMap<ServerName, ToolFilter>,
    prefixes: HashMap<ServerName, String>,
    groups: HashMap<ServerName, Vec<String>>,
    public_url: Option<String>,
    admin: AdminCredentials,
    max_tracked_users: usize,
    forgetter: Option<Arc<dyn PairForgetter>>,
    readiness: Vec<Arc<dyn ReadinessCheck>>,
    metrics_sources: Vec<Arc<dyn MetricsSource>>,
}

impl GatewayBuilder {
    pub fn mcp(mut self, config: McpConfig) -> Self {
        self.mcp = config;
        self
    }

    /// The listener's bounds (`[gateway.http]`).
    pub fn http(mut self, config: HttpConfig) -> Self {
        self.http = config;
        self
    }

    /// How browsers and agents reach the gateway: its host and origin are accepted on `/mcp`
    /// unless `gateway.mcp.allowed_hosts`/`allowed_origins` say otherwise.
    pub fn public_url(mut self, url: impl Into<String>) -> Self {
        self.public_url = Some(url.into());
        self
    }

    /// Servers whose names on `/mcp` do not start with `{server}{separator}` (`prefix` in
    /// `[[servers]]`; empty: the server's own names).
    pub fn name_prefixes(mut self, prefixes: HashMap<ServerName, String>) -> Self {
        self.prefixes = prefixes;
        self
    }

    /// Servers open to members of some groups only (`groups` in `[[servers]]`).
    pub fn server_groups(mut self, groups: HashMap<ServerName, Vec<String>>) -> Self {
        self.groups = groups;
        self
    }

    pub fn tool_filters(mut self, filters: BTreeMap<ServerName, ToolFilter>) -> Self {
        self.tools = filters;
        self
    }

    pub fn admin(mut self, admin: AdminCredentials) -> Self {
        self.admin = admin;
        self
    }

    pub fn max_tracked_users(mut self, max: usize) -> Self {
        self.max_tracked_users = max;
        self
    }

    /// Deletes a pair's tokens when the user removes a server.
    pub fn pair_forgetter(mut self, forgetter: Arc<dyn PairForgetter>) -> Self {
        self.forgetter = Some(forgetter);
        self
    }

    /// One more dependency `/readyz` checks.
    pub fn readiness_check(mut self, check: Arc<dyn ReadinessCheck>) -> Self {
        self.readiness.push(check);
        self
    }

    /// More Prometheus text appended to `/metrics` (the binary's OAuth and storage numbers).
    pub fn metrics_source(mut self, source: Arc<dyn MetricsSource>) -> Self {
        self.metrics_sources.push(source);
        self
    }

    pub fn build(self) -> Result<Gateway, GatewayError> {
        let servers: Vec<ServerName> = self.manager.servers().map(|s| s.name.clone()).collect();
        let view = ServersView::new(
            &self.mcp.tool_separator,
            &servers,
            self.prefixes,
            self.tools,
            self.groups,
            HashMap::new(),
        )?;
        if self.mcp.max_body_bytes == 0 {
            return Err(GatewayError::Invalid(
                "mcp.max_body_bytes must be positive".to_owned(),
            ));
        }
        let sessions = mcp::session_manager(&self.mcp);
        let hosts = Arc::new(HostGuard::new(
            &self.mcp.allowed_hosts,
            &self.mcp.allowed_origins,
            self.public_url.as_deref(),
        ));
        let app = AppState::new(Parts {
            manager: self.manager,
            host_auth: self.host_auth,
            admin: self.admin,
            users: UserRegistry::new(self.max_tracked_users),
            mcp: self.mcp,
            view,
            session_owners: SessionOwners::new(sessions.clone()),
            forgetter: self.forgetter,
            readiness: self.readiness,
            metrics_sources: self.metrics_sources,
        });
        let mcp_cancel = CancellationToken::new();
        let (api_router, doc) = api::router(app.clone());
        app.set_api_doc(doc);
        let (mcp_router, mcp_endpoint) =
            mcp::router(app.clone(), sessions, mcp_cancel.clone(), hosts);
        let router = api_router.merge(mcp_router);
        Ok(Gateway {
            app,
            router,
            mcp_endpoint,
            mcp_cancel,
            http: self.http,
        })
    }
}

/// The assembled gateway: its router and what graceful shutdown needs.
#[derive(Debug)]
pub struct Gateway {
    app: AppState,
    router: Router,
    /// `/mcp`, also routed by `router`: the listener serves it directly ([`Dispatch`]).
    mcp_endpoint: Arc<McpEndpoint>,
    mcp_cancel: CancellationToken,
    http: HttpConfig,
}

impl Gateway {
    pub fn builder(manager: ReconnectionManager, host_auth: HostAuth) -> GatewayBuilder {
        GatewayBuilder {
            manager,
            host_auth,
            mcp: McpConfig::default(),
            http: HttpConfig::default(),
            tools: BTreeMap::new(),
            prefixes: HashMap::new(),
            groups: HashMap::new(),
            public_url: None,
            admin: AdminCredentials::default(),
            max_tracked_users: 100_000,
            forgetter: None,
            readiness: Vec::new(),
            metrics_sources: Vec::new(),
        }
    }

    /// From the `[gateway]` table; secrets are read from the environment variables it names.
    /// Hooks can be added afterwards only through [`Self::builder`]; use
    /// [`Self::builder_from_config`] to add them.
    pub fn from_config(
        manager: ReconnectionManager,
        config: &GatewayConfig,
    ) -> Result<Self, GatewayError> {
        Self::builder_from_config(manager, config)?.build()
    }

    /// A builder preset from the `[gateway]` table, for adding hooks before building.
    pub fn builder_from_config(
        manager: ReconnectionManager,
        config: &GatewayConfig,
    ) -> Result<GatewayBuilder, GatewayError> {
        let host_auth = HostAuth::from_config(&config.host_auth)?;
        let admin = AdminCredentials::from_config(&config.admin)?;
        Ok(Self::builder(manager, host_auth)
            .mcp(config.mcp.clone())
            .http(config.http.clone())
            .tool_filters(config.tools.clone())
            .admin(admin)
            .max_tracked_users(config.max_tracked_users))
    }

    /// Adds routes the binary owns (the OAuth start and callback), served beside the gateway's.
    pub fn merge_routes(mut self, routes: Router) -> Self {
        self.router = self.router.merge(routes);
        self
    }

    /// Every route: `/mcp`, `/v1/me/…`, `/healthz`, `/readyz`, `/metrics`, `/status`.
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    pub fn state(&self) -> &AppState {
        &self.app
    }

    /// Serves until `shutdown` resolves, then: `/readyz` turns 503, MCP sessions and their
    /// streams are ended, in-flight requests finish, and the manager closes every upstream
    /// session.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let app = self.app.clone();
        let cancel = self.mcp_cancel.clone();
        let signal = async move {
            shutdown.await;
            tracing::info!("gateway shutting down");
            app.begin_shutdown();
            cancel.cancel();
        };
        // The deadline counts from the headers, whatever route reads the body.
        let service = Dispatch::new(self.router, self.mcp_endpoint, self.http.body_read_timeout);
        listener::serve(listener, service, &self.http, signal).await;
        self.app.manager().shutdown().await;
        Ok(())
    }
}

/// Resolves on Ctrl-C or (on Unix) SIGTERM: the usual `shutdown` argument of
/// [`Gateway::serve`].
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::warn!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
