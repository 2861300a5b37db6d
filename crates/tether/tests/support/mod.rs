//! Shared by the gateway integration tests: a gateway on 127.0.0.1 with real upstreams (the
//! reference `server-everything` over stdio, an in-process rmcp server), host JWTs and an MCP
//! client. Each test file uses a subset, so unused items are expected.
#![allow(dead_code)]

pub mod everything_http;
pub mod faulty;
pub mod gateway_process;
pub mod redis_stats;
pub mod replicas;
pub mod upstream;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rmcp::model::ClientConfig;
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{RoleClient, serve_client};
use serde_json::{Value, json};
use tether::gateway::auth::{HostAuth, HostAuthConfig};
use tether::gateway::{Gateway, GatewayBuilder};
use tether_core::{
    CoreConfig, PairKey, ReconnectionManager, ServerConfig, StoreError, TokenStatus, TokenStore,
    TransportConfig,
};
use tether_mcp::McpConnector;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub const ISSUER: &str = "https://host.test";
pub const AUDIENCE: &str = "tether";
pub const SECRET: &[u8] = b"test-secret-test-secret-test-secret!";

/// How long any single test step may take before the test fails instead of hanging.
pub const STEP: Duration = Duration::from_secs(60);

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

pub fn jwt_with(claims: Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET),
    )
    .expect("signs a test token")
}

/// A valid host token for `sub`.
pub fn jwt(sub: &str) -> String {
    jwt_with(json!({"sub": sub, "iss": ISSUER, "aud": AUDIENCE, "exp": now() + 600}))
}

/// A valid host token for `sub` in `groups` (the default `groups` claim).
pub fn jwt_in_groups(sub: &str, groups: &[&str]) -> String {
    jwt_with(
        json!({"sub": sub, "iss": ISSUER, "aud": AUDIENCE, "exp": now() + 600, "groups": groups}),
    )
}

/// A host token for `sub` that expired an hour ago.
pub fn expired_jwt(sub: &str) -> String {
    jwt_with(json!({"sub": sub, "iss": ISSUER, "aud": AUDIENCE, "exp": now() - 3600}))
}

pub fn host_auth() -> HostAuth {
    HostAuth::with_hs256_secret(&HostAuthConfig::new(ISSUER, AUDIENCE), SECRET)
        .expect("valid host auth")
}

/// The pinned `server-everything` entry point (installed by `npm ci` for tether-mcp's tests).
pub fn everything_entry() -> PathBuf {
    let peers = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("tether-mcp")
        .join("tests")
        .join("peers");
    let entry = peers
        .join("node_modules")
        .join("@modelcontextprotocol")
        .join("server-everything")
        .join("dist")
        .join("index.js");
    assert!(
        entry.exists(),
        "{} is missing: run `npm ci` in {} before these tests",
        entry.display(),
        peers.display()
    );
    entry
}

pub fn everything_server() -> ServerConfig {
    ServerConfig {
        name: "everything".into(),
        transport: TransportConfig::Stdio {
            command: "node".to_owned(),
            args: vec![
                everything_entry().to_string_lossy().into_owned(),
                "stdio".to_owned(),
            ],
        },
        oauth: false,
        init_timeout: Some(Duration::from_secs(30)),
    }
}

pub fn http_server(name: &str, url: &str, init_timeout: Duration) -> ServerConfig {
    ServerConfig {
        name: name.into(),
        transport: TransportConfig::StreamableHttp {
            url: url.to_owned(),
        },
        oauth: false,
        init_timeout: Some(init_timeout),
    }
}

/// No upstream here needs tokens.
#[derive(Debug)]
pub struct NoTokens;

#[async_trait]
impl TokenStore for NoTokens {
    async fn token_status(&self, _pair: &PairKey) -> Result<TokenStatus, StoreError> {
        Ok(TokenStatus::default())
    }
}

pub fn manager(servers: Vec<ServerConfig>) -> ReconnectionManager {
    let mut config = CoreConfig::default();
    // Login reconnects every server (none of the test upstreams uses OAuth), quickly.
    config.reconnect.include_non_oauth = true;
    config.reconnect.stagger = Duration::from_millis(10);
    ReconnectionManager::builder(
        config,
        servers,
        Arc::new(McpConnector::default()),
        Arc::new(NoTokens),
    )
    .build()
    .expect("valid manager")
}

/// A gateway serving on a free loopback port.
pub struct TestGateway {
    pub base: String,
    pub manager: ReconnectionManager,
    pub http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl TestGateway {
    pub async fn start(
        servers: Vec<ServerConfig>,
        configure: impl FnOnce(GatewayBuilder) -> GatewayBuilder,
    ) -> Self {
        let manager = manager(servers);
        let gateway = configure(Gateway::builder(manager.clone(), host_auth()))
            .build()
            .expect("gateway builds");
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind gateway");
        let addr = listener.local_addr().expect("gateway address");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(gateway.serve(listener, async move {
            let _ = stopped.await;
        }));
        Self {
            base: format!("http://{addr}"),
            manager,
            http: reqwest::Client::new(),
            stop: Some(stop),
            task,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics(&self) -> String {
        self.http
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("/metrics answers")
            .text()
            .await
            .expect("/metrics text")
    }

    /// Graceful shutdown, bounded.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let served = tokio::time::timeout(STEP, &mut self.task)
            .await
            .expect("the gateway stops in time")
            .expect("the gateway task does not panic");
        served.expect("the gateway served without I/O errors");
    }
}

/// An rmcp client on the gateway's `/mcp`, initialized, with `token` as bearer.
pub async fn mcp_client(base: &str, token: &str) -> RunningService<RoleClient, ClientConfig> {
    mcp_agent(base, token, ClientConfig::default()).await
}

/// An rmcp client with `handler` (what it declares and how it answers the server's requests)
/// on `{base}/mcp` as `token`, initialized.
pub async fn mcp_agent<H: rmcp::ClientHandler>(
    base: &str,
    token: &str,
    handler: H,
) -> RunningService<RoleClient, H> {
    let config =
        StreamableHttpClientTransportConfig::with_uri(format!("{base}/mcp")).auth_header(token);
    let transport = StreamableHttpClientTransport::from_config(config);
    tokio::time::timeout(STEP, serve_client(handler, transport))
        .await
        .expect("initialize in time")
        .expect("the MCP client initializes")
}

/// A gateway in this process in front of the testkit's rmcp server with `tools`, listed as
/// `demo` (Streamable HTTP).
pub async fn demo_gateway(
    tools: &tether_testkit::DemoTools,
) -> (TestGateway, tether_testkit::RunningServer) {
    let server = tether_testkit::serve_streamable_http(tools.clone(), "127.0.0.1:0")
        .await
        .expect("demo server");
    let gateway = TestGateway::start(
        vec![http_server("demo", &server.url, Duration::from_secs(10))],
        |builder| builder,
    )
    .await;
    (gateway, server)
}

/// The headers a Streamable HTTP POST needs.
pub fn mcp_post(http: &reqwest::Client, url: &str, token: &str) -> reqwest::RequestBuilder {
    http.post(url)
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
}

/// The first JSON-RPC message of a response, whether sent as JSON or as an SSE stream.
pub async fn first_message(response: reqwest::Response) -> Value {
    let is_sse = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if !is_sse {
        return response.json().await.expect("a JSON body");
    }
    // Read the stream until one `data:` line holds a JSON-RPC message (priming events have an
    // empty data field).
    let mut response = response;
    let mut buffer = String::new();
    loop {
        let chunk = tokio::time::timeout(STEP, response.chunk())
            .await
            .expect("SSE data in time")
            .expect("SSE stream readable")
            .expect("an SSE message before the stream ends");
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        for line in buffer.lines() {
            if let Some(data) = line.strip_prefix("data:")
                && let Ok(value) = serde_json::from_str::<Value>(data.trim())
                && value.get("jsonrpc").is_some()
            {
                return value;
            }
        }
    }
}

/// Opens an MCP session by hand (initialize + initialized) and returns its id.
pub async fn open_session(gateway: &TestGateway, token: &str) -> String {
    let response = mcp_post(&gateway.http, &gateway.url("/mcp"), token)
        .json(&initialize_body())
        .send()
        .await
        .expect("initialize answers");
    assert_eq!(response.status(), 200);
    let session = response
        .headers()
        .get(tether::gateway::mcp::SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .expect("a session id")
        .to_owned();
    let init = first_message(response).await;
    assert!(init.get("result").is_some(), "{init}");
    let notified = mcp_post(&gateway.http, &gateway.url("/mcp"), token)
        .header(tether::gateway::mcp::SESSION_HEADER, &session)
        .header("mcp-protocol-version", "2025-06-18")
        .json(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .send()
        .await
        .expect("initialized answers");
    assert!(notified.status().is_success(), "{}", notified.status());
    session
}

pub fn initialize_body() -> Value {
    json!({
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "raw-test", "version": "0"}
        }
    })
}
