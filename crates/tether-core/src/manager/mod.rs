//! The reconnection manager: reconnect on login (staggered, eligibility-checked), explicit
//! reconnects, in-session recovery, and the tools view with stubs — all of it through the
//! breakers, the per-origin admission limit and coalescing.

mod attempt;
mod calls;
mod eligibility;
mod idle;
mod list_changes;
mod recovery;
mod requests;
mod servers;
mod sessions;
mod tool_lists;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use attempt::AttemptOutcome;
pub use calls::ListedTool;
pub use eligibility::Eligibility;
pub use list_changes::{AgentPresence, Change, ServerChange};
pub use requests::RequestError;

use self::attempt::AttemptKind;
use self::sessions::SessionTable;
use self::tool_lists::ToolLists;
use crate::backoff::Backoff;
use crate::breaker::CircuitBreakers;
use crate::coalesce::Coalescer;
use crate::config::{ConfigError, CoreConfig, ServerConfig};
use crate::connector::{Connector, ListKind};
use crate::downstream::CallContext;
use crate::error::StoreError;
use crate::ids::{PairKey, ServerName, UserId};
use crate::limiter::OriginLimiter;
use crate::links::AuthorizationLinks;
use crate::shared::{InProcessState, SharedState, TrackerStats};
use crate::state::{ConnectionState, ServerStatus};
use crate::time::{Clock, SystemClock, Timestamp};
use crate::token::TokenStore;
use crate::tool::ToolResult;
use crate::tool_cache::{MemoryToolCache, ToolCache};
use crate::tracker::ReconnectionTracker;

pub use servers::ServerChanges;
use servers::ServerRegistry;

/// Attempts by outcome, since start.
#[derive(Debug, Default)]
struct AttemptCounters {
    started: AtomicU64,
    connected: AtomicU64,
    failed: AtomicU64,
    needs_authorization: AtomicU64,
    circuit_open: AtomicU64,
    rate_limited: AtomicU64,
}

/// A snapshot for the status API and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ManagerStats {
    pub tracker: TrackerStats,
    pub connected_sessions: usize,
    pub attempts_started: u64,
    pub attempts_connected: u64,
    pub attempts_failed: u64,
    pub attempts_needs_authorization: u64,
    pub attempts_circuit_open: u64,
    pub rate_limited_waits: u64,
    pub breaker_opens: u64,
    pub admissions: u64,
    pub admission_waits: u64,
    pub admission_timeouts: u64,
}

/// A call for a server that is not configured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no server named {0:?} is configured")]
pub struct UnknownServer(pub String);

pub(crate) struct Inner {
    config: CoreConfig,
    /// Swapped whole by [`ReconnectionManager::replace_servers`]; readers take a snapshot.
    servers: std::sync::RwLock<Arc<ServerRegistry>>,
    connector: Arc<dyn Connector>,
    tokens: Arc<dyn TokenStore>,
    tool_cache: Arc<dyn ToolCache>,
    links: Option<Arc<dyn AuthorizationLinks>>,
    clock: Arc<dyn Clock>,
    tracker: ReconnectionTracker,
    breakers: CircuitBreakers,
    limiter: OriginLimiter,
    backoff: Backoff,
    attempts: Coalescer<PairKey, AttemptOutcome>,
    recoveries: Coalescer<PairKey, ()>,
    sessions: SessionTable,
    tool_lists: ToolLists,
    tasks: TaskTracker,
    shutdown: CancellationToken,
    counters: AttemptCounters,
    idle_sweeper: std::sync::atomic::AtomicBool,
    /// List changes of the users' servers, for their open agent sessions.
    changes: tokio::sync::broadcast::Sender<ServerChange>,
    /// Itself, for the events its sessions report (which must not keep it alive).
    me: std::sync::Weak<Inner>,
    /// Open agent sessions per user.
    agents: std::sync::Mutex<HashMap<UserId, usize>>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReconnectionManager")
            .field("servers", &self.registry().len())
            .field("connector", &self.connector)
            .finish_non_exhaustive()
    }
}

impl Inner {
    fn log_store<T>(&self, result: Result<T, StoreError>, pair: &PairKey) {
        if let Err(error) = result {
            tracing::warn!(%pair, %error, "shared state unavailable");
        }
    }

    /// The pair's state: this replica's view when it has one, else what the shared state says.
    async fn state_of(&self, pair: &PairKey) -> (ConnectionState, Option<Timestamp>) {
        if let Some(view) = self.sessions.view(pair)
            && view.state != ConnectionState::Disconnected
        {
            return (view.state, Some(view.since));
        }
        let now = self.clock.now();
        if matches!(self.tracker.is_active(pair).await, Ok(true)) {
            return (ConnectionState::Reconnecting { retry_at: None }, None);
        }
        if let Ok(Some(entry)) = self.tracker.failure(pair).await {
            let retry_at = self.tracker.retry_at(&entry);
            if retry_at > now {
                return (
                    ConnectionState::Failed {
                        retry_at,
                        last_error: entry.last_error,
                    },
                    Some(entry.last_failure),
                );
            }
        }
        if let Some(server) = self.registry().get(&pair.server)
            && let Some(until) = self.breakers.open_until(&server.origin(), pair).await
        {
            return (ConnectionState::CircuitOpen { until }, None);
        }
        (ConnectionState::Disconnected, None)
    }
}

/// Cheap to clone; every clone drives the same state.
#[derive(Debug, Clone)]
pub struct ReconnectionManager {
    inner: Arc<Inner>,
}

/// Assembles a [`ReconnectionManager`]; the embedded defaults are in-process shared state, an
/// in-memory tool cache and the system clock.
#[derive(Debug)]
pub struct ManagerBuilder {
    config: CoreConfig,
    servers: Vec<ServerConfig>,
    connector: Arc<dyn Connector>,
    tokens: Arc<dyn TokenStore>,
    tool_cache: Option<Arc<dyn ToolCache>>,
    links: Option<Arc<dyn AuthorizationLinks>>,
    shared: Option<Arc<dyn SharedState>>,
    clock: Option<Arc<dyn Clock>>,
}

impl ManagerBuilder {
    pub fn tool_cache(mut self, cache: Arc<dyn ToolCache>) -> Self {
        self.tool_cache = Some(cache);
        self
    }

    /// Where "needs authorization" stubs send the user (see [`AuthorizationLinks`]).
    pub fn authorization_links(mut self, links: Arc<dyn AuthorizationLinks>) -> Self {
        self.links = Some(links);
        self
    }

    pub fn shared_state(mut self, shared: Arc<dyn SharedState>) -> Self {
        self.shared = Some(shared);
        self
    }

    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    pub fn build(self) -> Result<ReconnectionManager, ConfigError> {
        self.config.validate()?;
        let servers = ServerRegistry::new(self.servers)?;
        let shared = self
            .shared
            .unwrap_or_else(|| Arc::new(InProcessState::new()));
        let clock = self.clock.unwrap_or_else(|| Arc::new(SystemClock));
        let config = self.config;
        let inner = Arc::new_cyclic(|me| Inner {
            me: me.clone(),
            agents: std::sync::Mutex::default(),
            tracker: ReconnectionTracker::new(
                shared.clone(),
                clock.clone(),
                config.reconnect.clone(),
            ),
            breakers: CircuitBreakers::new(shared.clone(), clock.clone(), config.breaker.clone()),
            limiter: OriginLimiter::new(shared, clock.clone(), config.limits.clone()),
            backoff: Backoff::new(config.backoff.clone()),
            servers: std::sync::RwLock::new(Arc::new(servers)),
            connector: self.connector,
            tokens: self.tokens,
            tool_cache: self
                .tool_cache
                .unwrap_or_else(|| Arc::new(MemoryToolCache::default())),
            links: self.links,
            clock,
            attempts: Coalescer::default(),
            recoveries: Coalescer::default(),
            sessions: SessionTable::default(),
            tool_lists: ToolLists::default(),
            tasks: TaskTracker::new(),
            shutdown: CancellationToken::new(),
            counters: AttemptCounters::default(),
            idle_sweeper: std::sync::atomic::AtomicBool::new(false),
            changes: tokio::sync::broadcast::channel(list_changes::CHANGES_BUFFER).0,
            config,
        });
        Ok(ReconnectionManager { inner })
    }
}

impl ReconnectionManager {
    pub fn builder(
        config: CoreConfig,
        servers: Vec<ServerConfig>,
        connector: Arc<dyn Connector>,
        tokens: Arc<dyn TokenStore>,
    ) -> ManagerBuilder {
        ManagerBuilder {
            config,
            servers,
            connector,
            tokens,
            tool_cache: None,
            links: None,
            shared: None,
            clock: None,
        }
    }

    /// The configured servers now, in configuration order (a snapshot: a concurrent
    /// [`Self::replace_servers`] does not change what it yields).
    pub fn servers(&self) -> impl Iterator<Item = Arc<ServerConfig>> + use<> {
        let list = self.server_list();
        (0..list.len()).map(move |i| list[i].clone())
    }

    /// The configured servers now, in configuration order, as one shared list (cheap: for
    /// lookups on every call).
    pub fn server_list(&self) -> Arc<[Arc<ServerConfig>]> {
        self.inner.registry().list()
    }

    pub fn server(&self, name: &ServerName) -> Option<Arc<ServerConfig>> {
        self.inner.registry().get(name).cloned()
    }

    /// Reconnect on login (SPEC §2): checks every candidate, marks the eligible ones active and
    /// starts them staggered (the i-th after i × stagger). Returns the scheduled servers at once;
    /// the attempts run in the background.
    pub async fn reconnect_servers(&self, user: &UserId) -> Vec<ServerName> {
        self.reconnect_servers_among(user, |_| true).await
    }

    /// [`Self::reconnect_servers`] over the servers `allowed` keeps (those the user may use).
    pub async fn reconnect_servers_among(
        &self,
        user: &UserId,
        allowed: impl Fn(&ServerConfig) -> bool,
    ) -> Vec<ServerName> {
        let inner = &self.inner;
        let mut scheduled = Vec::new();
        let registry = inner.registry();
        for server in registry.iter().filter(|s| allowed(s)) {
            let pair = PairKey::new(user.clone(), server.name.clone());
            let eligibility = inner.eligibility(&pair, server).await;
            tracing::debug!(%pair, ?eligibility, "reconnect on login");
            if eligibility != Eligibility::Eligible {
                continue;
            }
            // The claim is atomic: of two replicas (or two logins) racing, one schedules.
            match inner.tracker.try_mark_active(&pair).await {
                Ok(true) => scheduled.push((pair, server.clone())),
                Ok(false) => {}
                Err(error) => tracing::warn!(%pair, %error, "tracker unavailable"),
            }
        }
        let now = inner.clock.now();
        let mut names = Vec::with_capacity(scheduled.len());
        for (i, (pair, server)) in scheduled.into_iter().enumerate() {
            let delay = inner
                .config
                .reconnect
                .stagger
                .saturating_mul(u32::try_from(i).unwrap_or(u32::MAX));
            inner.sessions.set_state(
                &pair,
                ConnectionState::Reconnecting {
                    retry_at: Some(now + delay),
                },
                now,
            );
            names.push(server.name.clone());
            let task_inner = inner.clone();
            inner.tasks.spawn(async move {
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = task_inner.shutdown.cancelled() => {
                        let _ = task_inner.tracker.clear_active(&pair).await;
                        return;
                    }
                }
                // Boxed so that the thousands of tasks waiting out their stagger hold a small
                // sleeping state, not the whole attempt's state machine.
                Box::pin(task_inner.attempt(&pair, &server, AttemptKind::Scheduled)).await;
            });
        }
        names
    }

    /// Reconnects one pair now and answers whether it ended connected (SPEC §2.6). An explicit
    /// request skips the failed cooldown but not the breakers: those protect the upstream.
    pub async fn reconnect_server(&self, user: &UserId, server: &ServerName) -> bool {
        self.reconnect_server_outcome(user, server).await == Ok(AttemptOutcome::Connected)
    }

    /// [`Self::reconnect_server`] with the whole outcome.
    pub async fn reconnect_server_outcome(
        &self,
        user: &UserId,
        server: &ServerName,
    ) -> Result<AttemptOutcome, UnknownServer> {
        let config = self.lookup(server)?;
        let pair = PairKey::new(user.clone(), server.clone());
        self.inner
            .log_store(self.inner.tracker.mark_active(&pair).await, &pair);
        Ok(self
            .inner
            .attempt(&pair, &config, AttemptKind::Scheduled)
            .await)
    }

    /// Why the server would or would not be reconnected on the user's next login.
    pub async fn eligibility(
        &self,
        user: &UserId,
        server: &ServerName,
    ) -> Result<Eligibility, UnknownServer> {
        let config = self.lookup(server)?;
        let pair = PairKey::new(user.clone(), server.clone());
        Ok(self.inner.eligibility(&pair, &config).await)
    }

    pub async fn is_reconnecting(&self, user: &UserId, server: &ServerName) -> bool {
        let pair = PairKey::new(user.clone(), server.clone());
        matches!(self.inner.tracker.is_active(&pair).await, Ok(true))
    }

    /// Forgets the pair's active and failed entries.
    pub async fn clear_reconnection(&self, user: &UserId, server: &ServerName) {
        let pair = PairKey::new(user.clone(), server.clone());
        self.inner
            .log_store(self.inner.tracker.clear(&pair).await, &pair);
    }

    /// The user authorized the server again: the pair starts afresh (failure count, cooldown
    /// and the pair's breaker), and a "needs authorization" state is lifted.
    pub async fn authorized(&self, user: &UserId, server: &ServerName) {
        let pair = PairKey::new(user.clone(), server.clone());
        self.inner
            .log_store(self.inner.tracker.clear(&pair).await, &pair);
        self.inner
            .log_store(self.inner.breakers.reset_pair(&pair).await, &pair);
        if let Some(view) = self.inner.sessions.view(&pair)
            && !view.state.is_connected()
        {
            self.inner.sessions.set_state(
                &pair,
                ConnectionState::Disconnected,
                self.inner.clock.now(),
            );
        }
    }

    /// Closes the pair's session on this replica.
    pub async fn disconnect(&self, user: &UserId, server: &ServerName) {
        let pair = PairKey::new(user.clone(), server.clone());
        let now = self.inner.clock.now();
        if let Some(session) = self
            .inner
            .sessions
            .detach(&pair, ConnectionState::Disconnected, now)
        {
            session.close().await;
        }
    }

    /// Forgets the pair on this replica, as when its user removes the server: its session is
    /// closed and its tool lists (the session's and the cached one) are dropped, so that the
    /// agent is offered no stubs of it and the status shows no tools. The pair's tokens are the
    /// host's to delete. `Err` when the cached list could not be deleted (the session is
    /// closed either way).
    pub async fn forget(&self, user: &UserId, server: &ServerName) -> Result<(), StoreError> {
        let pair = PairKey::new(user.clone(), server.clone());
        let removed = self.inner.tool_cache.remove(&pair).await;
        self.forget_here(&pair).await;
        removed
    }

    /// [`forget`](Self::forget) for a pair another replica forgot: only what this replica
    /// holds (its session, the session's tool list). The stores are shared and that replica
    /// cleared them; clearing the cached list again could delete one a new connection has
    /// saved since.
    pub async fn forgotten_elsewhere(&self, user: &UserId, server: &ServerName) {
        self.forget_here(&PairKey::new(user.clone(), server.clone()))
            .await;
    }

    async fn forget_here(&self, pair: &PairKey) {
        if let Some(session) = self.inner.sessions.remove(pair) {
            session.close().await;
        }
        self.inner.publish(pair, Change::List(ListKind::Tools));
    }

    /// The state of one pair.
    pub async fn state(&self, user: &UserId, server: &ServerName) -> ConnectionState {
        let pair = PairKey::new(user.clone(), server.clone());
        self.inner.state_of(&pair).await.0
    }

    /// Every configured server with the user's state of it.
    pub async fn server_states(&self, user: &UserId) -> Vec<ServerStatus> {
        let now = self.inner.clock.now();
        let mut out = Vec::new();
        let registry = self.inner.registry();
        for server in registry.iter() {
            let pair = PairKey::new(user.clone(), server.name.clone());
            let (state, since) = self.inner.state_of(&pair).await;
            let tools = match self.inner.sessions.view(&pair) {
                Some(view) if !view.tools.is_empty() => view.tools.len(),
                _ => match self.inner.tool_cache.load(&pair).await {
                    Ok(Some(cached)) => cached.tools.len(),
                    _ => 0,
                },
            };
            out.push(ServerStatus {
                name: server.name.clone(),
                state,
                since: since.unwrap_or(now),
                tools,
            });
        }
        out
    }

    /// The user's tools: live where connected, the last good list (stubs) elsewhere.
    pub async fn list_tools(&self, user: &UserId) -> Vec<ListedTool> {
        self.inner.list_tools(user).await
    }

    /// Whether `tool` is in the server's known list for the user (live where connected, the
    /// last good list elsewhere), without copying the list: `None` when no list is known yet
    /// (never connected) or it is empty, so only the upstream can say.
    pub async fn lists_tool(&self, user: &UserId, server: &ServerName, tool: &str) -> Option<bool> {
        let pair = PairKey::new(user.clone(), server.clone());
        self.inner.lists_tool(&pair, tool).await
    }

    /// Calls a tool: upstream when possible, else a stub result saying why and when.
    pub async fn call_tool(
        &self,
        user: &UserId,
        server: &ServerName,
        tool: &str,
        arguments: Option<Map<String, Value>>,
    ) -> Result<ToolResult, UnknownServer> {
        self.call_tool_in(user, server, tool, arguments, &CallContext::default())
            .await
    }

    /// [`Self::call_tool`] with the agent's `_meta` and its way back for the upstream's
    /// notifications and requests while the call runs.
    pub async fn call_tool_in(
        &self,
        user: &UserId,
        server: &ServerName,
        tool: &str,
        arguments: Option<Map<String, Value>>,
        context: &CallContext,
    ) -> Result<ToolResult, UnknownServer> {
        let config = self.lookup(server)?;
        let pair = PairKey::new(user.clone(), server.clone());
        Ok(self
            .inner
            .call_tool(&pair, &config, tool, arguments, context)
            .await)
    }

    /// Any other request of the MCP surface (resources, prompts, completion, logging) to one of
    /// the user's servers, under the same rules as [`Self::call_tool`].
    pub async fn request(
        &self,
        user: &UserId,
        server: &ServerName,
        method: &str,
        params: Option<Value>,
        context: &CallContext,
    ) -> Result<Result<Value, RequestError>, UnknownServer> {
        let config = self.lookup(server)?;
        let pair = PairKey::new(user.clone(), server.clone());
        Ok(self
            .inner
            .request(&pair, &config, method, params, context)
            .await)
    }

    /// The link where the user authorizes `server`, when the pair needs an authorization and a
    /// link can be had.
    pub async fn authorization_link(&self, user: &UserId, server: &ServerName) -> Option<String> {
        let pair = PairKey::new(user.clone(), server.clone());
        match self.inner.state_for_user(&pair).await {
            ConnectionState::NeedsAuthorization {
                authorization_url, ..
            } => authorization_url,
            _ => None,
        }
    }

    /// Marks an open agent session of `user` until the guard is dropped: meanwhile the user's
    /// upstream sessions read their servers' own messages (list changes).
    pub fn agent_present(&self, user: &UserId) -> AgentPresence {
        self.inner.agent_arrived(user);
        AgentPresence {
            inner: Arc::downgrade(&self.inner),
            user: user.clone(),
        }
    }

    /// The users' servers' changes from now on: lists (a tool list that changed has already
    /// been read again when its change is seen here) and subscribed resources.
    pub fn changes(&self) -> tokio::sync::broadcast::Receiver<ServerChange> {
        self.inner.subscribe_changes()
    }

    /// Whether the user's open session with `server` declared `capability` (`resources`,
    /// `prompts`, `completions`, `logging`); `None` when no session is open.
    pub fn offers(&self, user: &UserId, server: &ServerName, capability: &str) -> Option<bool> {
        let pair = PairKey::new(user.clone(), server.clone());
        self.inner.offers(&pair, capability)
    }

    pub async fn stats(&self) -> ManagerStats {
        let inner = &self.inner;
        let tracker = match inner.tracker.stats().await {
            Ok(stats) => stats,
            Err(error) => {
                tracing::warn!(%error, "tracker statistics unavailable");
                TrackerStats::default()
            }
        };
        let c = &inner.counters;
        let a = inner.limiter.counters();
        let load = |x: &AtomicU64| x.load(Ordering::Relaxed);
        ManagerStats {
            tracker,
            connected_sessions: inner.sessions.connected_count(),
            attempts_started: load(&c.started),
            attempts_connected: load(&c.connected),
            attempts_failed: load(&c.failed),
            attempts_needs_authorization: load(&c.needs_authorization),
            attempts_circuit_open: load(&c.circuit_open),
            rate_limited_waits: load(&c.rate_limited),
            breaker_opens: inner.breakers.opens(),
            admissions: load(&a.admitted),
            admission_waits: load(&a.waited),
            admission_timeouts: load(&a.timed_out),
        }
    }

    /// Waits until no scheduled attempt, attempt or reconnect loop is running.
    pub async fn wait_idle(&self) {
        let tasks = &self.inner.tasks;
        loop {
            tasks.close();
            tasks.wait().await;
            tasks.reopen();
            // A task finishing may have spawned another between `wait` and `reopen`.
            if tasks.is_empty() {
                return;
            }
        }
    }

    /// Stops scheduled work, waits for running attempts to end and closes every session.
    pub async fn shutdown(&self) {
        self.inner.shutdown.cancel();
        self.wait_idle().await;
        for session in self.inner.sessions.drain_sessions() {
            session.close().await;
        }
    }

    fn lookup(&self, server: &ServerName) -> Result<Arc<ServerConfig>, UnknownServer> {
        self.inner
            .registry()
            .get(server)
            .cloned()
            .ok_or_else(|| UnknownServer(server.to_string()))
    }
}
