//! The [`Connector`]: opens MCP sessions over Streamable HTTP (lean sessions, or rmcp's client
//! with the standalone stream), legacy HTTP+SSE or stdio (rmcp client sessions), with access
//! tokens from a [`BearerSource`] on the HTTP transports.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use rmcp::model::{ClientCapabilities, ClientConfig, Implementation, ProtocolVersion};
use rmcp::service::{ClientInitializeError, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{
    ClientCacheConfig, ClientLifecycleMode, RoleClient, serve_client, serve_client_with_lifecycle,
};
use tether_core::{
    ConnectError, ConnectRequest, Connector, Origin, ServerConfig, ServerName, Session,
    TransportConfig, TransportFailure,
};
use tracing::{debug, info};

use crate::authorized::{AuthorizedClient, Credentials};
use crate::bearer::BearerSource;
use crate::error;
use crate::http_leg::{self, RequestClient};
use crate::legacy_sse::LegacySseTransport;
use crate::resume::ResumePolicy;
use crate::session::{McpSession, TransportKind};
use crate::stdio;
use crate::streamable::{self, Handshake, Wire};
use crate::upstream_client::UpstreamClient;
use crate::wires::{LocalWires, WireMemory};

/// Knobs of the connector; [`Default`] gives the documented defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpConnectorConfig {
    /// Limit for each request on an open session: one `tools/list` page, one `tools/call`.
    /// Default 60 s. (The connect itself, MCP `initialize` included, is limited by
    /// [`ConnectRequest::timeout`].)
    pub call_timeout: Duration,
    /// Limit for opening a TCP connection (+ TLS) inside the shared HTTP clients; also bounded by
    /// the connect timeout, this one protects the pooled reconnects later requests make.
    /// Default 10 s.
    pub tcp_connect_timeout: Duration,
    /// How long [`Session::close`] waits for the transport to shut down (HTTP session delete,
    /// child exit) before it leaves the rest to the background. Default 5 s.
    pub close_timeout: Duration,
    /// How often a Streamable HTTP event stream that broke off is reconnected (with
    /// `Last-Event-ID`) before it is given up; `0` never resumes. Default 3.
    pub sse_resume_attempts: usize,
    /// The wait before reconnecting a broken stream, doubling after each failed reconnect (up
    /// to 30 s); a server's `retry` field takes precedence. Default 1 s.
    pub sse_resume_delay: Duration,
    /// Whether each Streamable HTTP session keeps the server's standalone event stream open: a
    /// `GET` that stays open for the session's lifetime, the only way the server can send
    /// messages outside a request (`notifications/tools/list_changed`, other list-changed and
    /// resource notifications, server pings and requests). Default `false`.
    ///
    /// The trade-off: over HTTP/1.1 that stream holds one TCP connection (a file descriptor on
    /// each side, plus the server's per-stream state) for every idle session, which is most of
    /// what an idle session costs at 10,000 sessions. Tether gains nothing from it today: it
    /// advertises no client capabilities and its client handler ignores server notifications
    /// (the core refreshes tools itself). Turn it on once something consumes them. Without it,
    /// answers still stream on each request's own response (and resume with `Last-Event-ID`).
    ///
    /// It also picks the client: off, sessions are Tether's lean ones (no task, channel or
    /// buffer per session, a few hundred bytes each while idle; see `src/streamable/`); on,
    /// they are rmcp's client service and transport worker (two tasks per session), which
    /// keep the stream read and answer server requests that arrive on it.
    pub standalone_stream: bool,
}

impl Default for McpConnectorConfig {
    fn default() -> Self {
        Self {
            call_timeout: Duration::from_secs(60),
            tcp_connect_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(5),
            sse_resume_attempts: 3,
            sse_resume_delay: Duration::from_secs(1),
            standalone_stream: false,
        }
    }
}

/// A connector configuration that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum McpConfigError {
    #[error("invalid MCP connector configuration: {0} must be positive")]
    ZeroDuration(&'static str),
    #[error("invalid HTTP header {0:?}: expected `Name: value` with a valid name and value")]
    BadHeader(String),
}

impl McpConnectorConfig {
    /// Refuses zero durations, which would make every request fail at once.
    pub fn validate(&self) -> Result<(), McpConfigError> {
        for (name, value) in [
            ("call_timeout", self.call_timeout),
            ("tcp_connect_timeout", self.tcp_connect_timeout),
            ("close_timeout", self.close_timeout),
            ("sse_resume_delay", self.sse_resume_delay),
        ] {
            if value.is_zero() {
                return Err(McpConfigError::ZeroDuration(name));
            }
        }
        Ok(())
    }
}

/// Opens MCP sessions with rmcp. Share one instance (in an `Arc`) for every user, so the
/// per-origin HTTP clients are shared too. [`Default`] uses [`McpConnectorConfig::default`]
/// and sends no access tokens.
pub struct McpConnector {
    config: McpConnectorConfig,
    clients: HttpClients,
    bearer_source: Option<Arc<dyn BearerSource>>,
    /// The wire each Streamable HTTP server was last found to speak.
    wires: Arc<dyn WireMemory>,
    /// Sent with every HTTP request (operator-given, e.g. `tether connect --header`). Values
    /// are marked sensitive, so `Debug` never prints them.
    headers: reqwest::header::HeaderMap,
}

impl Default for McpConnector {
    fn default() -> Self {
        Self {
            config: McpConnectorConfig::default(),
            clients: HttpClients::default(),
            bearer_source: None,
            wires: Arc::new(LocalWires::default()),
            headers: reqwest::header::HeaderMap::new(),
        }
    }
}

impl fmt::Debug for McpConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("McpConnector")
            .field("config", &self.config)
            .field("origins", &self.clients.len())
            .field("bearer_source", &self.bearer_source)
            .finish()
    }
}

impl McpConnector {
    pub fn new(config: McpConnectorConfig) -> Result<Self, McpConfigError> {
        config.validate()?;
        Ok(Self {
            config,
            clients: HttpClients::default(),
            bearer_source: None,
            wires: Arc::new(LocalWires::default()),
            headers: reqwest::header::HeaderMap::new(),
        })
    }

    /// Sends every HTTP request (Streamable HTTP and legacy SSE; not stdio) with the access
    /// token `source` gives for the session's (user, server), asked anew for each request.
    /// Adds `name: value` headers to every HTTP request (not to stdio servers). Call before the
    /// first connect: the per-origin clients are built with them.
    pub fn with_headers<'a>(
        mut self,
        headers: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, McpConfigError> {
        for (name, value) in headers {
            let header_name = reqwest::header::HeaderName::from_bytes(name.trim().as_bytes())
                .map_err(|_| McpConfigError::BadHeader(name.to_owned()))?;
            let mut header_value = reqwest::header::HeaderValue::from_str(value.trim())
                .map_err(|_| McpConfigError::BadHeader(name.to_owned()))?;
            header_value.set_sensitive(true);
            self.headers.append(header_name, header_value);
        }
        Ok(self)
    }

    /// Keeps what is learnt of servers' wires in `memory` (shared by replicas) instead of
    /// this process.
    pub fn with_wire_memory(mut self, memory: Arc<dyn WireMemory>) -> Self {
        self.wires = memory;
        self
    }

    pub fn with_bearer_source(mut self, source: Arc<dyn BearerSource>) -> Self {
        self.bearer_source = Some(source);
        self
    }

    /// The shared reqwest client of the server's origin (built on first use).
    fn origin_client(&self, server: &ServerConfig) -> Result<reqwest::Client, ConnectError> {
        self.origin_clients(server).map(|clients| clients.http)
    }

    /// Both shared clients of the server's origin (built on first use).
    fn origin_clients(&self, server: &ServerConfig) -> Result<OriginClients, ConnectError> {
        self.clients.get_or_build(
            &server.origin(),
            self.config.tcp_connect_timeout,
            &self.headers,
        )
    }

    /// `url`: the server's URL this session is opened with, which its tokens must be for.
    fn credentials(&self, request: &ConnectRequest, url: &str) -> Option<Credentials> {
        self.bearer_source.as_ref().map(|source| {
            Credentials::new(
                source.clone(),
                request.user.clone(),
                request.server.name.clone(),
                Arc::from(url),
            )
        })
    }

    pub fn config(&self) -> &McpConnectorConfig {
        &self.config
    }

    /// How many origins have a shared HTTP client (for tests and diagnostics).
    pub fn http_origins(&self) -> usize {
        self.clients.len()
    }

    /// Streamable HTTP: the lean session of [`crate::streamable`] (no task per session), or
    /// rmcp's client when the standalone event stream is wanted (it needs a reader per session)
    /// or the server speaks only the per-request-metadata lifecycle.
    async fn connect_http(
        &self,
        request: &ConnectRequest,
        url: &str,
    ) -> Result<Arc<dyn Session>, ConnectError> {
        if self.config.standalone_stream {
            return self.connect_http_rmcp(request, url).await;
        }
        let server = &request.server;
        let clients = self.origin_clients(server)?;
        let started = tokio::time::Instant::now();
        let settings = streamable::Settings {
            call_timeout: self.config.call_timeout,
            close_timeout: self.config.close_timeout,
            resume: self.resume_policy(),
        };
        let known = self.wires.get(url).await;
        let handshake = streamable::open(
            server.name.clone(),
            AuthorizedClient::new(clients.http, self.credentials(request, url))
                .with_direct(clients.direct),
            Arc::from(url),
            settings,
            known,
        );
        let opened = with_timeout(request.timeout, "connecting timed out", handshake, |e| e).await;
        let opened = match opened {
            Ok(opened) => opened,
            Err(e) => {
                // The server may have changed: discover it again next time.
                if known.is_some() {
                    self.wires.forget(url).await;
                }
                return Err(e);
            }
        };
        match opened {
            Handshake::Open(session) => {
                let wire = session.wire();
                if known != Some(wire) {
                    self.wires.remember(url, wire).await;
                }
                info!(server = %server.name, transport = TransportKind::StreamableHttp.as_str(), wire = ?wire, "MCP session opened");
                Ok(Arc::new(session.with_events(request.events.clone())))
            }
            Handshake::NeedsPerRequestMetadata => {
                // The rest of the connect timeout, not a new one.
                let mut rest = request.clone();
                rest.timeout = request.timeout.saturating_sub(started.elapsed());
                self.connect_http_rmcp(&rest, url).await
            }
        }
    }

    fn resume_policy(&self) -> ResumePolicy {
        ResumePolicy {
            attempts: self.config.sse_resume_attempts,
            delay: self.config.sse_resume_delay,
        }
    }

    /// Streamable HTTP through rmcp's client service and transport worker.
    async fn connect_http_rmcp(
        &self,
        request: &ConnectRequest,
        url: &str,
    ) -> Result<Arc<dyn Session>, ConnectError> {
        let server = &request.server;
        let client = self.origin_client(server)?;
        // No transparent re-initialisation on HTTP 404: a lost session is reported as
        // `SessionLost` so the core reconnects under its admission limits and breakers.
        let mut transport_config =
            StreamableHttpClientTransportConfig::with_uri(url).reinit_on_expired_session(false);
        // rmcp's default retries a broken event stream forever; ours gives up (see `resume`).
        transport_config.retry_config = Arc::new(self.resume_policy());
        let client = AuthorizedClient::new(client, self.credentials(request, url))
            .refusing_standalone_stream(!self.config.standalone_stream);
        let transport = StreamableHttpClientTransport::with_client(client, transport_config);
        self.initialize(request, TransportKind::StreamableHttp, transport)
            .await
    }

    async fn connect_sse(
        &self,
        request: &ConnectRequest,
        url: &str,
    ) -> Result<Arc<dyn Session>, ConnectError> {
        let server = &request.server;
        let client = self.origin_client(server)?;
        let credentials = self.credentials(request, url);
        // Opening the stream, waiting for the endpoint and `initialize`: one connect timeout.
        let connect = async {
            let transport = LegacySseTransport::connect(
                client,
                credentials,
                url,
                self.config.call_timeout,
                &server.name,
            )
            .await?;
            serve_client(UpstreamClient::new(request.events.clone()), transport)
                .await
                .map_err(|e| error::from_initialize(&e))
        };
        let running = with_timeout(request.timeout, "connecting timed out", connect, |e| e).await?;
        Ok(self
            .open_session(server.name.clone(), TransportKind::LegacySse, running)
            .await)
    }

    async fn connect_stdio(
        &self,
        request: &ConnectRequest,
        command: &str,
        args: &[String],
    ) -> Result<Arc<dyn Session>, ConnectError> {
        let server = &request.server;
        // What was learnt of this command's wire, under a key no URL can take.
        let key = format!("stdio:{command} {}", args.join(" "));
        let known = self.wires.get(&key).await;
        let lifecycle = match known {
            Some(Wire::Legacy) => ClientLifecycleMode::Initialize,
            _ => discover_first(),
        };
        let transport = stdio::spawn(&server.name, command, args)?;
        // On timeout or error the transport is dropped, which kills the child.
        let started = tokio::time::Instant::now();
        let opened = self.start_lifecycle(request, transport, lifecycle).await;
        let (running, wire) = match opened {
            Ok(running) => {
                let wire = match running.peer().peer_info() {
                    Some(info) if !info.protocol_version.has_initialize() => Wire::Modern,
                    _ => Wire::Legacy,
                };
                (running, wire)
            }
            // An earlier revision's server that knows `server/discover` answers it with the
            // versions it supports, none of them 2026-07-28; rmcp then gives up instead of
            // falling back, so the server is started again and initialized. The same when the
            // probe went unanswered for rmcp's 10 s (a first `npx` start downloading its
            // package) and its late answer then came where `initialize`'s was awaited: rmcp
            // took the server for an earlier revision's, and a fresh process gets `initialize`
            // with no stale answer in its way.
            Err(NoCommonVersion) if known.is_none() => {
                self.initialize_again(request, started, command, args)
                    .await?
            }
            Err(LateProbeAnswer) => {
                debug!(server = %server.name, "server/discover went unanswered in time: started again and initialized");
                self.initialize_again(request, started, command, args)
                    .await?
            }
            Err(failure) => {
                if known.is_some() {
                    self.wires.forget(&key).await;
                }
                return Err(failure.into_connect_error());
            }
        };
        if known != Some(wire) {
            self.wires.remember(&key, wire).await;
        }
        Ok(self
            .open_session(server.name.clone(), TransportKind::Stdio, running)
            .await)
    }

    /// The stdio server started again and reached with `initialize`, within what is left of
    /// the connect timeout.
    async fn initialize_again(
        &self,
        request: &ConnectRequest,
        started: tokio::time::Instant,
        command: &str,
        args: &[String],
    ) -> Result<(RunningService<RoleClient, UpstreamClient>, Wire), ConnectError> {
        let mut rest = request.clone();
        rest.timeout = request.timeout.saturating_sub(started.elapsed());
        let transport = stdio::spawn(&request.server.name, command, args)?;
        let running = self
            .start_lifecycle(&rest, transport, ClientLifecycleMode::Initialize)
            .await
            .map_err(StartFailure::into_connect_error)?;
        Ok((running, Wire::Legacy))
    }

    /// The MCP lifecycle over `transport` (`initialize`, or `server/discover` first) within
    /// the connect timeout; a refusal for want of a common version is told apart.
    async fn start_lifecycle<T, E, A>(
        &self,
        request: &ConnectRequest,
        transport: T,
        lifecycle: ClientLifecycleMode,
    ) -> Result<RunningService<RoleClient, UpstreamClient>, StartFailure>
    where
        T: rmcp::transport::IntoTransport<RoleClient, E, A>,
        E: std::error::Error + Send + Sync + 'static,
    {
        let probing = matches!(lifecycle, ClientLifecycleMode::Auto { .. });
        let started = serve_client_with_lifecycle(
            UpstreamClient::new(request.events.clone()),
            transport,
            lifecycle,
        );
        match tokio::time::timeout(request.timeout, started).await {
            Err(_) => Err(StartFailure::Other(ConnectError::transport(
                TransportFailure::Timeout,
                "connecting timed out",
            ))),
            Ok(Ok(running)) => Ok(running),
            Ok(Err(ClientInitializeError::NoCompatibleProtocolVersion { .. })) => {
                Err(NoCommonVersion)
            }
            // The answer to the probe rmcp stopped waiting for, read as `initialize`'s (only
            // the probe's fallback sends a second request before any answer).
            Ok(Err(
                ClientInitializeError::UncorrelatedErrorResponse { .. }
                | ClientInitializeError::ConflictInitResponseId(..),
            )) if probing => Err(LateProbeAnswer),
            Ok(Err(e)) => Err(StartFailure::Other(error::from_initialize(&e))),
        }
    }

    /// MCP `initialize` over `transport` within the connect timeout, then the session.
    async fn initialize<T, E, A>(
        &self,
        request: &ConnectRequest,
        kind: TransportKind,
        transport: T,
    ) -> Result<Arc<dyn Session>, ConnectError>
    where
        T: rmcp::transport::IntoTransport<RoleClient, E, A>,
        E: std::error::Error + Send + Sync + 'static,
    {
        let running = with_timeout(
            request.timeout,
            "connecting timed out",
            serve_client(UpstreamClient::new(request.events.clone()), transport),
            |e| error::from_initialize(&e),
        )
        .await?;
        Ok(self
            .open_session(request.server.name.clone(), kind, running)
            .await)
    }

    async fn open_session(
        &self,
        server: ServerName,
        kind: TransportKind,
        running: RunningService<RoleClient, UpstreamClient>,
    ) -> Arc<dyn Session> {
        // The core keeps its own tool cache and must see every upstream failure; rmcp's cache
        // would answer `tools/list` from a stale copy when the server is down.
        running
            .peer()
            .set_response_cache_config(ClientCacheConfig::disabled())
            .await;
        info!(server = %server, transport = kind.as_str(), "MCP session opened");
        Arc::new(McpSession::new(
            server,
            kind,
            running,
            self.config.call_timeout,
            self.config.close_timeout,
        ))
    }
}

#[async_trait]
impl Connector for McpConnector {
    async fn connect(&self, request: ConnectRequest) -> Result<Arc<dyn Session>, ConnectError> {
        let result = match &request.server.transport {
            TransportConfig::StreamableHttp { url } => self.connect_http(&request, url).await,
            TransportConfig::Stdio { command, args } => {
                self.connect_stdio(&request, command, args).await
            }
            TransportConfig::Sse { url } => self.connect_sse(&request, url).await,
        };
        if let Err(e) = &result {
            debug!(user = %request.user, server = %request.server.name, error = %e, "MCP connect failed");
        }
        result
    }
}

/// `server/discover` first (2026-07-28); an earlier revision's server that refuses it as an
/// unknown method gets `initialize` on the same connection.
fn discover_first() -> ClientLifecycleMode {
    ClientLifecycleMode::Auto {
        preferred_versions: vec![ProtocolVersion::V_2026_07_28],
        legacy_version: Some(ProtocolVersion::LATEST_WITH_INITIALIZE),
    }
}

/// Why a lifecycle did not start.
enum StartFailure {
    /// The server named only versions Tether does not discover with.
    NoCommonVersion,
    /// `server/discover` went unanswered for rmcp's probe timeout, rmcp sent `initialize`, and
    /// the probe's answer then arrived first.
    LateProbeAnswer,
    Other(ConnectError),
}
use StartFailure::{LateProbeAnswer, NoCommonVersion};

impl StartFailure {
    fn into_connect_error(self) -> ConnectError {
        match self {
            NoCommonVersion => ConnectError::Protocol(
                "no MCP protocol version in common with the server".to_owned(),
            ),
            LateProbeAnswer => {
                ConnectError::Protocol("the server's initialize answer was not valid".to_owned())
            }
            Self::Other(error) => error,
        }
    }
}

/// What Tether tells servers about itself in `initialize`. No client capabilities: Tether does
/// not offer sampling, roots or elicitation to upstreams.
/// Tether as a client: sampling, elicitation (form and URL) and roots are declared because
/// Tether passes them to the agent waiting on the request (which refuses what it did not
/// declare itself).
pub(crate) fn client_config() -> ClientConfig {
    let capabilities: ClientCapabilities = serde_json::from_value(serde_json::json!({
        "sampling": {},
        "elicitation": {"form": {}, "url": {}},
        "roots": {}
    }))
    .unwrap_or_default();
    let mut config = ClientConfig::new(
        capabilities,
        Implementation::new("tether", env!("CARGO_PKG_VERSION")),
    );
    // `initialize` never proposes a version that has no `initialize` (rmcp's `LATEST`,
    // 2026-07-28); that revision is reached by `server/discover` instead.
    config.protocol_version = ProtocolVersion::LATEST_WITH_INITIALIZE;
    config
}

/// Runs `fut` within `limit`; a timeout becomes `Transport{Timeout}`, another error goes
/// through `map`.
pub(crate) async fn with_timeout<T, E>(
    limit: Duration,
    what: &'static str,
    fut: impl Future<Output = Result<T, E>>,
    map: impl FnOnce(E) -> ConnectError,
) -> Result<T, ConnectError> {
    match tokio::time::timeout(limit, fut).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(map(e)),
        Err(_) => Err(ConnectError::transport(TransportFailure::Timeout, what)),
    }
}

/// One origin's clients: reqwest's (rmcp's client, the legacy transport, the environment's
/// proxies) and hyper's for the requests a lean session sends itself ([`crate::http_leg`]).
#[derive(Debug, Clone)]
struct OriginClients {
    http: reqwest::Client,
    direct: Option<RequestClient>,
}

/// The clients of each origin: sessions to one origin share its connection pools, sessions to
/// different origins never do. The map only grows with the configured servers' origins.
#[derive(Default)]
struct HttpClients {
    by_origin: Mutex<HashMap<Origin, OriginClients>>,
}

impl HttpClients {
    fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Origin, OriginClients>> {
        // The map stays consistent even if a holder panicked (inserts are single calls).
        self.by_origin
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn get_or_build(
        &self,
        origin: &Origin,
        tcp_connect_timeout: Duration,
        headers: &reqwest::header::HeaderMap,
    ) -> Result<OriginClients, ConnectError> {
        if let Some(clients) = self.lock().get(origin) {
            return Ok(clients.clone());
        }
        let setup_failed = || ConnectError::Protocol("could not set up the HTTP client".to_owned());
        // Built outside the lock (it loads the platform's root certificates); if two tasks race,
        // the first insert wins and the other client is dropped unused.
        let http = reqwest::Client::builder()
            .connect_timeout(tcp_connect_timeout)
            // No overall request timeout here: Streamable HTTP keeps SSE responses open for as
            // long as a call runs. Requests are bounded by the session's per-request timeout.
            //
            // Redirects are not followed: a redirect could lead to another origin, escaping
            // that origin's limits and breakers (and would carry requests there).
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(http_leg::AGENT)
            .default_headers(headers.clone())
            .build()
            .map_err(|_| setup_failed())?;
        // A stdio pseudo-origin never parses: no hyper client, as for a proxied origin.
        let direct = match origin.as_str().parse::<http::Uri>() {
            Ok(uri) => RequestClient::for_origin(&uri, tcp_connect_timeout, headers)
                .map_err(|_| setup_failed())?,
            Err(_) => None,
        };
        let built = OriginClients { http, direct };
        Ok(self.lock().entry(origin.clone()).or_insert(built).clone())
    }
}
