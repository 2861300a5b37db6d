//! A scripted connector and token store for the manager's deterministic tests.
//!
//! Acceptable as evidence here only because the core has no I/O of its own; the connector
//! implementations are tested against real MCP and OAuth peers in their own crates.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Map, Value, json};
use tether_core::{
    AccessTokenStatus, CallContext, ConnectError, ConnectRequest, Connector, CoreConfig, Origin,
    PairKey, ReconnectionManager, ServerConfig, ServerName, Session, StoreError, Timestamp,
    TokenStatus, TokenStore, TokioClock, Tool, ToolResult, TransportConfig, TransportFailure,
    UserId,
};
use tokio::time::Instant;

pub const T0: Timestamp = Timestamp::from_millis(1_800_000_000_000);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().expect("test mutex")
}

pub fn http_server(name: &str, url: &str) -> ServerConfig {
    ServerConfig {
        name: ServerName::new(name),
        transport: TransportConfig::StreamableHttp { url: url.into() },
        oauth: true,
        init_timeout: None,
    }
}

pub fn refused() -> ConnectError {
    ConnectError::transport(TransportFailure::Refused, "connection refused")
}

pub fn rich_tool(name: &str) -> Tool {
    serde_json::from_value(json!({
        "name": name,
        "title": format!("{name} title"),
        "description": format!("{name} does things"),
        "inputSchema": {
            "type": "object",
            "properties": {"query": {"type": "string"}, "limit": {"type": "integer", "minimum": 1}},
            "required": ["query"]
        },
        "annotations": {"readOnlyHint": true}
    }))
    .expect("valid tool")
}

/// One recorded `connect` call.
#[derive(Debug, Clone)]
pub struct ConnectCall {
    pub pair: PairKey,
    pub origin: Origin,
    pub at: Instant,
    /// The connect timeout the manager gave.
    pub timeout: Duration,
}

#[derive(Debug, Default)]
struct Recorder {
    calls: Vec<ConnectCall>,
    in_flight: HashMap<Origin, usize>,
    max_in_flight: HashMap<Origin, usize>,
}

/// Answers `connect` after a virtual latency, from a per-pair script first, then a per-server
/// default; counts calls and the concurrency it sees per origin.
#[derive(Debug, Default)]
pub struct ScriptedConnector {
    latency: Mutex<Duration>,
    defaults: Mutex<HashMap<ServerName, Result<(), ConnectError>>>,
    scripts: Mutex<HashMap<PairKey, VecDeque<Result<(), ConnectError>>>>,
    call_failures: Arc<Mutex<HashMap<PairKey, VecDeque<ConnectError>>>>,
    tools: Mutex<HashMap<ServerName, Vec<Tool>>>,
    recorder: Mutex<Recorder>,
    sessions: Mutex<Vec<Arc<ScriptedSession>>>,
}

impl ScriptedConnector {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn set_latency(&self, latency: Duration) {
        *lock(&self.latency) = latency;
    }

    /// What every connect to `server` answers when the pair has no script.
    pub fn set_default(&self, server: &str, outcome: Result<(), ConnectError>) {
        lock(&self.defaults).insert(ServerName::new(server), outcome);
    }

    /// Answers for the pair's next connects, in order.
    pub fn script(&self, user: &str, server: &str, outcomes: Vec<Result<(), ConnectError>>) {
        lock(&self.scripts)
            .entry(PairKey::new(user, server))
            .or_default()
            .extend(outcomes);
    }

    /// The pair's next `tools/call`s fail with these.
    pub fn fail_calls(&self, user: &str, server: &str, errors: Vec<ConnectError>) {
        lock(&self.call_failures)
            .entry(PairKey::new(user, server))
            .or_default()
            .extend(errors);
    }

    pub fn set_tools(&self, server: &str, tools: Vec<Tool>) {
        lock(&self.tools).insert(ServerName::new(server), tools);
    }

    pub fn calls(&self) -> Vec<ConnectCall> {
        lock(&self.recorder).calls.clone()
    }

    pub fn calls_for(&self, user: &str, server: &str) -> Vec<ConnectCall> {
        let pair = PairKey::new(user, server);
        self.calls()
            .into_iter()
            .filter(|c| c.pair == pair)
            .collect()
    }

    pub fn max_in_flight(&self, origin: &str) -> usize {
        let origin = Origin::from_url(origin).expect("origin");
        lock(&self.recorder)
            .max_in_flight
            .get(&origin)
            .copied()
            .unwrap_or(0)
    }

    pub fn open_sessions(&self) -> usize {
        lock(&self.sessions)
            .iter()
            .filter(|s| s.open.load(Ordering::SeqCst))
            .count()
    }
}

#[async_trait]
impl Connector for ScriptedConnector {
    async fn connect(&self, request: ConnectRequest) -> Result<Arc<dyn Session>, ConnectError> {
        let pair = PairKey::new(request.user.clone(), request.server.name.clone());
        let origin = request.server.origin();
        {
            let mut rec = lock(&self.recorder);
            rec.calls.push(ConnectCall {
                pair: pair.clone(),
                origin: origin.clone(),
                at: Instant::now(),
                timeout: request.timeout,
            });
            let n = rec.in_flight.entry(origin.clone()).or_default();
            *n += 1;
            let now = *n;
            let max = rec.max_in_flight.entry(origin.clone()).or_default();
            *max = (*max).max(now);
        }
        let latency = *lock(&self.latency);
        tokio::time::sleep(latency).await;
        {
            let mut rec = lock(&self.recorder);
            if let Some(n) = rec.in_flight.get_mut(&origin) {
                *n -= 1;
            }
        }
        let scripted = lock(&self.scripts)
            .get_mut(&pair)
            .and_then(VecDeque::pop_front);
        let outcome = scripted.unwrap_or_else(|| {
            lock(&self.defaults)
                .get(&request.server.name)
                .cloned()
                .unwrap_or(Ok(()))
        });
        outcome?;
        let tools = lock(&self.tools)
            .get(&request.server.name)
            .cloned()
            .unwrap_or_else(|| vec![rich_tool("search")]);
        let session = Arc::new(ScriptedSession {
            pair,
            tools,
            open: AtomicBool::new(true),
            call_failures: self.call_failures.clone(),
        });
        lock(&self.sessions).push(session.clone());
        Ok(session)
    }
}

#[derive(Debug)]
pub struct ScriptedSession {
    pair: PairKey,
    tools: Vec<Tool>,
    open: AtomicBool,
    call_failures: Arc<Mutex<HashMap<PairKey, VecDeque<ConnectError>>>>,
}

#[async_trait]
impl Session for ScriptedSession {
    async fn list_tools(&self) -> Result<Vec<Tool>, ConnectError> {
        Ok(self.tools.clone())
    }

    async fn call_tool(
        &self,
        name: &str,
        arguments: Option<Map<String, Value>>,
    ) -> Result<ToolResult, ConnectError> {
        if let Some(error) = lock(&self.call_failures)
            .get_mut(&self.pair)
            .and_then(VecDeque::pop_front)
        {
            return Err(error);
        }
        let args = Value::Object(arguments.unwrap_or_default());
        Ok(ToolResult {
            content: vec![json!({"type": "text", "text": format!("{}:{name}:{args}", self.pair)})],
            ..ToolResult::default()
        })
    }

    /// Answers with what it was asked, or fails with the pair's next scripted call failure.
    async fn request(
        &self,
        method: &str,
        params: Option<Value>,
        _context: &CallContext,
    ) -> Result<Value, ConnectError> {
        if let Some(error) = lock(&self.call_failures)
            .get_mut(&self.pair)
            .and_then(VecDeque::pop_front)
        {
            return Err(error);
        }
        Ok(json!({"method": method, "params": params}))
    }

    fn is_open(&self) -> bool {
        self.open.load(Ordering::SeqCst)
    }

    async fn close(&self) {
        self.open.store(false, Ordering::SeqCst);
    }
}

/// Token statuses set by the test; pairs without one have none.
#[derive(Debug, Default)]
pub struct FakeTokens {
    statuses: Mutex<HashMap<PairKey, TokenStatus>>,
    /// Every pair not set explicitly gets this (for storms).
    pub everyone: Mutex<Option<TokenStatus>>,
}

impl FakeTokens {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn set(&self, user: &str, server: &str, status: TokenStatus) {
        lock(&self.statuses).insert(PairKey::new(user, server), status);
    }

    pub fn valid_for_everyone(&self) {
        *lock(&self.everyone) = Some(valid_until(None));
    }
}

pub fn valid_until(expires_at: Option<Timestamp>) -> TokenStatus {
    TokenStatus {
        access_token: Some(AccessTokenStatus { expires_at }),
        has_refresh_token: false,
    }
}

#[async_trait]
impl TokenStore for FakeTokens {
    async fn token_status(&self, pair: &PairKey) -> Result<TokenStatus, StoreError> {
        if let Some(s) = lock(&self.statuses).get(pair) {
            return Ok(*s);
        }
        Ok(lock(&self.everyone).unwrap_or_default())
    }
}

pub struct Harness {
    pub manager: ReconnectionManager,
    pub connector: Arc<ScriptedConnector>,
    pub tokens: Arc<FakeTokens>,
    pub clock: Arc<TokioClock>,
}

pub fn harness(config: CoreConfig, servers: Vec<ServerConfig>) -> Harness {
    let connector = ScriptedConnector::new();
    let tokens = FakeTokens::new();
    let clock = Arc::new(TokioClock::starting_at(T0));
    let manager = ReconnectionManager::builder(config, servers, connector.clone(), tokens.clone())
        .clock(clock.clone())
        .build()
        .expect("valid manager");
    Harness {
        manager,
        connector,
        tokens,
        clock,
    }
}

pub fn user(name: &str) -> UserId {
    UserId::new(name)
}

pub fn server(name: &str) -> ServerName {
    ServerName::new(name)
}
