//! `tether serve`: assembles the gateway from the configuration file — storage (SQLite, tokens
//! sealed), shared state (in-process or Redis), the OAuth client, the MCP connector, the
//! reconnection manager and the HTTP gateway — and serves until Ctrl-C or SIGTERM.

mod catalog;
mod dev;
mod forgotten;
mod hooks;
mod oauth;
mod sources;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use tether::gateway::auth::{AdminCredentials, HostAuth};
use tether::gateway::{Gateway, GatewayConfig, shutdown_signal};
use tether_core::{InProcessState, ReconnectionManager, SharedState, SystemClock};
use tether_mcp::{LocalWires, McpConnector, WireMemory};
use tether_oauth::store::{FlowStore, MemoryFlowStore, MemoryRefreshLock, RefreshLock};
use tether_oauth::{AuthorizerConfig, McpAuthorizer, NetworkPolicy, OAuthStores};
use tether_store::crypto::Keyring;
use tether_store::shared::{FallbackState, RedisState, RedisStateConfig};
use tether_store::sql::SqlStore;

use crate::bearer::AuthorizerBearer;
use crate::config::TetherConfig;
use oauth::{CallbackPolicy, FlowStarter, OAuthRoutes};

pub use dev::{JWT_SECRET_FILE, data_dir, kept_secret};

/// The environment variable holding the storage encryption key(s): `id:BASE64[,id:BASE64…]`.
pub const ENCRYPTION_KEY_ENV: &str = "TETHER_ENCRYPTION_KEY";

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The TOML configuration file.
    #[arg(long)]
    config: PathBuf,
    /// Development mode: make up and keep the encryption key and the host-token secret in
    /// files next to the database when they are not set. Never in production.
    #[arg(long)]
    dev: bool,
    /// Where to listen (overrides `listen` in the file).
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// `text` or `json` (overrides `log.format` in the file).
    #[arg(long, value_enum, value_name = "FORMAT")]
    log_format: Option<crate::config::LogFormat>,
}

impl ServeArgs {
    /// The log format: the flag, else the file's `log.format` (a file that cannot be read
    /// falls back to text; `run` then reports why).
    pub(crate) fn log_format(&self) -> crate::config::LogFormat {
        self.log_format.unwrap_or_else(|| {
            std::fs::read_to_string(&self.config)
                .ok()
                .and_then(|text| TetherConfig::parse_unchecked(&text).ok())
                .map(|config| config.log.format)
                .unwrap_or_default()
        })
    }
}

pub(crate) fn keyring(config: &TetherConfig, dev: bool) -> anyhow::Result<Keyring> {
    let setting = match std::env::var(ENCRYPTION_KEY_ENV) {
        Ok(value) if !value.trim().is_empty() => value,
        _ if dev => {
            let dir = data_dir(&config.storage.url);
            let key = kept_secret(&dir, dev::ENCRYPTION_KEY_FILE, Keyring::generate_setting)?;
            tracing::warn!(
                "--dev: tokens are encrypted with a key kept in {}; set {ENCRYPTION_KEY_ENV} in production",
                dir.join(dev::ENCRYPTION_KEY_FILE).display()
            );
            key
        }
        _ => bail!(
            "{ENCRYPTION_KEY_ENV} is not set: tokens are stored encrypted and need a key \
             (create one with `openssl rand -base64 32`), or run with --dev for a throwaway key file"
        ),
    };
    Keyring::parse(&setting).with_context(|| format!("{ENCRYPTION_KEY_ENV} is not usable"))
}

fn host_auth(
    config: &TetherConfig,
    gateway: &GatewayConfig,
    dev: bool,
) -> anyhow::Result<HostAuth> {
    let auth = &gateway.host_auth;
    if let Some(var) = &auth.hs256_secret_env {
        let set = std::env::var(var).is_ok_and(|v| !v.is_empty());
        if !set && dev {
            let dir = data_dir(&config.storage.url);
            let secret = kept_secret(&dir, JWT_SECRET_FILE, dev::new_jwt_secret)?;
            tracing::warn!(
                "--dev: {var} is not set; host tokens are checked with the secret kept in {} (`tether token` uses it too)",
                dir.join(JWT_SECRET_FILE).display()
            );
            return HostAuth::with_hs256_secret(auth, secret.as_bytes())
                .context("host authentication is not usable");
        }
    }
    HostAuth::from_config(auth).context("host authentication is not usable")
}

/// What replicas share: the core's state, flows in progress and refresh leases. In-process
/// for one replica; Redis for several (a callback may then land on any replica, and a pair is
/// refreshed by one replica at a time).
struct Shared {
    state: Arc<dyn SharedState>,
    /// Set with Redis: the core's state degrades to in-process state while Redis is down.
    fallback: Option<Arc<FallbackState>>,
    /// Set with Redis, for readiness probes.
    redis: Option<Arc<RedisState>>,
    flows: Arc<dyn FlowStore>,
    locks: Arc<dyn RefreshLock>,
    /// Which wire each upstream speaks, learnt once for the deployment.
    wires: Arc<dyn WireMemory>,
}

async fn shared(config: &TetherConfig, keyring: Arc<Keyring>) -> anyhow::Result<Shared> {
    let url = config.state.url.as_str();
    if url == "memory" {
        return Ok(Shared {
            state: Arc::new(InProcessState::new()),
            fallback: None,
            redis: None,
            flows: Arc::new(MemoryFlowStore::new()),
            locks: Arc::new(MemoryRefreshLock::new()),
            wires: Arc::new(LocalWires::default()),
        });
    }
    if url.starts_with("redis://") || url.starts_with("rediss://") {
        let redis = RedisState::connect(RedisStateConfig::new(url, &config.state.prefix))
            .await
            .context("cannot reach the shared state")?;
        // Flows and refresh leases have no local fallback on purpose: a flow started here
        // could not complete elsewhere, and a local lease could double-spend a refresh token.
        let flows = Arc::new(redis.flow_store(keyring));
        let locks = Arc::new(redis.refresh_lock());
        let wires = Arc::new(redis.wire_memory());
        let redis = Arc::new(redis);
        let fallback = Arc::new(FallbackState::new(redis.clone()));
        return Ok(Shared {
            state: fallback.clone(),
            fallback: Some(fallback),
            redis: Some(redis),
            flows,
            locks,
            wires,
        });
    }
    bail!("state.url must be \"memory\" or a redis:// URL")
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let config = TetherConfig::load(&args.config)?;
    tether_core::ids::print_users_as_pseudonyms(config.log.hash_users);
    let Some(gateway_config) = config.gateway.clone() else {
        bail!(
            "{}: [gateway.host_auth] is required to serve",
            args.config.display()
        );
    };
    let listen = args.listen.unwrap_or(config.listen);
    // Bound before anything else: with port 0 (`--listen 127.0.0.1:0`), the default public URL,
    // hence the OAuth redirect URI, must name the port actually bound, not port 0.
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let bound = listener.local_addr()?;
    let public_url = config.public_url(bound);
    if args.dev {
        tracing::warn!("running with --dev: development secrets, not for production");
    }

    let keys = keyring(&config, args.dev)?;
    let flow_keys = Arc::new(keys.clone());
    let store = SqlStore::open(&config.storage.url, keys)
        .await
        .context("cannot open the storage")?;
    let Shared {
        state: shared,
        fallback,
        redis,
        flows: flow_store,
        locks,
        wires,
    } = shared(&config, flow_keys).await?;

    let network = NetworkPolicy {
        allow_private_addresses: config.oauth.allow_private_addresses,
        ..NetworkPolicy::default()
    };
    let authorizer = Arc::new(McpAuthorizer::new(
        AuthorizerConfig {
            network,
            client_name: config.oauth.client_name.clone(),
            client_metadata_url: config.oauth.client_metadata_url.clone(),
            refresh_ahead: config.oauth.refresh_ahead,
            remember_tokens_for: config.oauth.remember_tokens_for,
            ..AuthorizerConfig::default()
        },
        OAuthStores {
            vault: Arc::new(store.clone()),
            registrations: Arc::new(store.clone()),
            flows: flow_store,
            locks,
        },
    )?);
    let bearer = AuthorizerBearer::new(authorizer.clone()).without_oauth(
        config
            .servers
            .iter()
            .filter(|entry| !entry.server.oauth)
            .map(|entry| entry.server.name.clone()),
    );
    let connector = McpConnector::default()
        .with_bearer_source(Arc::new(bearer.clone()))
        .with_wire_memory(wires);
    let servers: BTreeMap<_, _> = config
        .servers
        .iter()
        .map(|e| (e.server.name.clone(), e.clone()))
        .collect();
    let flows = Arc::new(FlowStarter::new(
        authorizer.clone(),
        servers,
        public_url.clone(),
        config.oauth.client_metadata_url.clone(),
        config.oauth.start_url.clone(),
    ));
    let manager = ReconnectionManager::builder(
        config.core(),
        config.servers(),
        Arc::new(connector),
        Arc::new(store.clone()),
    )
    .tool_cache(Arc::new(store.clone()))
    .shared_state(shared)
    .authorization_links(flows.clone())
    .clock(Arc::new(SystemClock))
    .build()?;

    let forgotten = redis.as_ref().map(|redis| redis.forgotten_pairs());
    if let Some(forgotten) = &forgotten {
        forgotten::follow(forgotten, manager.clone());
    }
    let gateway = Gateway::builder(
        manager.clone(),
        host_auth(&config, &gateway_config, args.dev)?,
    )
    .mcp(gateway_config.mcp.clone())
    .public_url(public_url.clone())
    .http(gateway_config.http.clone())
    .tool_filters(sources::tool_filters(&config, &gateway_config))
    .name_prefixes(sources::name_prefixes(&config))
    .server_groups(sources::server_groups(&config.servers))
    .admin(AdminCredentials::from_config(&gateway_config.admin)?)
    .max_tracked_users(gateway_config.max_tracked_users)
    .pair_forgetter(Arc::new(hooks::ForgetTokens {
        authorizer: authorizer.clone(),
        others: forgotten,
    }))
    .readiness_check(Arc::new(hooks::StorageReady(store.clone())))
    .readiness_check(Arc::new(hooks::SharedStateReady::new(
        redis,
        fallback.clone(),
    )))
    .metrics_source(Arc::new(hooks::OAuthAndStateMetrics {
        authorizer: authorizer.clone(),
        fallback,
    }))
    .build()?;

    if config.oauth.unverified_callback {
        tracing::warn!(
            "oauth.unverified_callback = true: the OAuth callback stores tokens for the user who \
             started a flow whoever finishes it; anyone given an authorization link can attach \
             their account to another user. Use oauth.return_url and POST /v1/me/oauth/complete"
        );
    }
    let sources = Arc::new(sources::ServerSources::new(
        args.config.clone(),
        &config,
        sources::Wiring {
            manager: manager.clone(),
            flows: flows.clone(),
            bearer,
            app: gateway.state().clone(),
            store: store.clone(),
            authorizer: authorizer.clone(),
        },
    ));
    gateway.state().set_reloader(sources.clone());
    tokio::spawn(sources::reload_on_hangup(sources.clone()));
    if config.catalog.enabled {
        catalog::start(&sources, &config.catalog, network_for_catalog(&config)).await?;
    }
    let oauth = Arc::new(OAuthRoutes::new(
        flows,
        manager,
        CallbackPolicy {
            return_url: config.oauth.return_url.clone(),
            unverified: config.oauth.unverified_callback,
            secure_cookies: public_url.starts_with("https://"),
            authorize_per_minute: config.oauth.authorize_per_minute,
        },
    ));
    let (oauth_router, oauth_doc) = oauth.router(gateway.state().clone());
    gateway.state().merge_api_doc(oauth_doc);
    let gateway = gateway.merge_routes(oauth_router);

    tracing::info!(listen = %bound, public_url = %public_url, "tether is serving");
    // One line on stdout for scripts and tests that start Tether on port 0.
    println!("tether listening on http://{bound}");
    gateway.serve(listener, shutdown_signal()).await?;
    // A refresh cut off here would lose its rotated refresh token: let those in flight finish.
    authorizer
        .drain(authorizer.config().refresh_drain_timeout)
        .await;
    store.close().await;
    Ok(())
}

/// What catalog servers' URLs may name: public https hosts, and the hosts `catalog.allowed_hosts`
/// exempts.
fn network_for_catalog(config: &TetherConfig) -> NetworkPolicy {
    NetworkPolicy {
        allow_private_addresses: config.oauth.allow_private_addresses,
        allowed_hosts: config.catalog.allowed_hosts.clone(),
    }
}
