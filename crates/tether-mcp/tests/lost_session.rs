//! End to end with tether-core's `ReconnectionManager` over this connector and a real rmcp
//! Streamable HTTP server on 127.0.0.1: a server restart (its sessions are process-local, so the
//! old session id gets 404) is recovered within the call; a dead server leaves stubs that say
//! "reconnecting"; once it is back, an explicit reconnect succeeds.

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Map, Value, json};
use tether_core::{
    AccessTokenStatus, CoreConfig, PairKey, ReconnectionManager, ServerConfig, ServerName,
    StoreError, TokenStatus, TokenStore, TransportConfig, UserId,
};
use tether_mcp::McpConnector;

use support::server::{start_mcp, start_mcp_at};
use support::tools::{PagedTools, TOOL_NAMES};

/// Every pair has a non-expiring access token (the server here needs none; the manager only
/// asks whether one exists).
#[derive(Debug)]
struct Tokens;

#[async_trait]
impl TokenStore for Tokens {
    async fn token_status(&self, _pair: &PairKey) -> Result<TokenStatus, StoreError> {
        Ok(TokenStatus {
            access_token: Some(AccessTokenStatus { expires_at: None }),
            has_refresh_token: true,
        })
    }
}

/// Short backoff and a patient breaker, so the test runs in about a second and the breaker
/// never opens on the few refused attempts while the server is down.
fn core_config() -> CoreConfig {
    let mut config = CoreConfig::default();
    config.backoff.base = Duration::from_millis(100);
    config.backoff.cap = Duration::from_millis(200);
    config.breaker.failure_threshold = 50;
    config.reconnect.in_session_attempts = 2;
    config.reconnect.default_init_timeout = Duration::from_secs(5);
    config
}

fn add_args() -> Option<Map<String, Value>> {
    json!({"a": 40, "b": 2}).as_object().cloned()
}

#[tokio::test]
async fn lost_sessions_and_dead_servers_through_the_manager() {
    let server = start_mcp(PagedTools).await;
    let addr = server.addr.to_string();
    let name = ServerName::from("upstream");
    let user = UserId::from("alice");
    let servers = vec![ServerConfig {
        name: name.clone(),
        transport: TransportConfig::StreamableHttp {
            url: server.url.clone(),
        },
        oauth: true,
        init_timeout: Some(Duration::from_secs(5)),
    }];
    let manager = ReconnectionManager::builder(
        core_config(),
        servers,
        Arc::new(McpConnector::default()),
        Arc::new(Tokens),
    )
    .build()
    .expect("valid manager");

    // Connect and call.
    assert!(manager.reconnect_server(&user, &name).await, "connects");
    let result = manager
        .call_tool(&user, &name, "add", add_args())
        .await
        .expect("known server");
    assert!(!result.is_error, "{}", result.text());
    assert_eq!(result.text(), "42");

    // Restart on the same port: the new process-local session manager does not know the old
    // session id, so the next call gets 404 → SessionLost → the manager initializes a new
    // session and the call succeeds.
    server.stop().await;
    let server = start_mcp_at(PagedTools, &addr).await;
    let result = manager
        .call_tool(&user, &name, "add", add_args())
        .await
        .expect("known server");
    assert!(!result.is_error, "{}", result.text());
    assert_eq!(result.text(), "42");
    assert!(
        server.not_found.load(Ordering::SeqCst) >= 1,
        "the old session id was refused by the restarted server"
    );
    let stats = manager.stats().await;
    assert_eq!(stats.attempts_connected, 2, "one re-initialization");

    // Kill the server: the call fails over to a stub that says so, and the tools stay listed.
    server.stop().await;
    let result = manager
        .call_tool(&user, &name, "add", add_args())
        .await
        .expect("known server");
    assert!(result.is_error);
    assert!(
        result.text().contains("reconnecting"),
        "stub text: {}",
        result.text()
    );
    let listed = manager.list_tools(&user).await;
    let names: Vec<&str> = listed.iter().map(|t| t.tool.name.as_str()).collect();
    assert_eq!(names, TOOL_NAMES, "the last good list, as stubs");
    assert!(listed.iter().all(|t| !t.available));

    // Back again: an explicit reconnect succeeds, and so do calls.
    let server = start_mcp_at(PagedTools, &addr).await;
    manager.wait_idle().await;
    assert!(manager.reconnect_server(&user, &name).await, "reconnects");
    let result = manager
        .call_tool(&user, &name, "add", add_args())
        .await
        .expect("known server");
    assert_eq!(result.text(), "42");
    assert!(manager.list_tools(&user).await.iter().all(|t| t.available));

    manager.shutdown().await;
    server.stop().await;
}
