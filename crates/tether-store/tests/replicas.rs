//! Two reconnection managers (two replicas' cores) sharing one Redis: they agree on who is
//! reconnecting, on failures and breakers, and on the per-origin admission limit as a whole.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::future::join_all;
use tether_core::{
    AccessTokenStatus, ConnectError, ConnectRequest, Connector, CoreConfig, Eligibility, PairKey,
    ReconnectionManager, ServerConfig, ServerName, Session, SharedState, StoreError, TokenStatus,
    TokenStore, Tool, ToolResult, TransportConfig, TransportFailure, UserId,
};
use tether_store::shared::{RedisState, RedisStateConfig};

/// Counts attempts in flight per origin across every replica that uses it.
#[derive(Debug, Default)]
struct CountingConnector {
    in_flight: Mutex<HashMap<String, (usize, usize)>>,
    calls: Mutex<usize>,
    /// Connections refused: a transport failure of the origin.
    refuse: Mutex<bool>,
    /// Sessions refused for the pair itself (a protocol error), which cools the pair down.
    reject: Mutex<bool>,
}

impl CountingConnector {
    fn peak(&self, origin: &str) -> usize {
        self.in_flight
            .lock()
            .expect("lock")
            .get(origin)
            .map_or(0, |(_, peak)| *peak)
    }
}

#[derive(Debug)]
struct Idle;

#[async_trait]
impl Session for Idle {
    async fn list_tools(&self) -> Result<Vec<Tool>, ConnectError> {
        Ok(vec![Tool::new("t", serde_json::json!({"type": "object"}))])
    }
    async fn call_tool(
        &self,
        _: &str,
        _: Option<serde_json::Map<String, serde_json::Value>>,
    ) -> Result<ToolResult, ConnectError> {
        Ok(ToolResult::default())
    }
    fn is_open(&self) -> bool {
        true
    }
    async fn close(&self) {}
}

#[async_trait]
impl Connector for CountingConnector {
    async fn connect(&self, request: ConnectRequest) -> Result<Arc<dyn Session>, ConnectError> {
        let origin = request.server.origin().to_string();
        {
            let mut map = self.in_flight.lock().expect("lock");
            let (now, peak) = map.entry(origin.clone()).or_default();
            *now += 1;
            *peak = (*peak).max(*now);
            *self.calls.lock().expect("lock") += 1;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        if let Some((now, _)) = self.in_flight.lock().expect("lock").get_mut(&origin) {
            *now -= 1;
        }
        if *self.reject.lock().expect("lock") {
            return Err(ConnectError::Protocol("refused for this user".to_owned()));
        }
        if *self.refuse.lock().expect("lock") {
            return Err(ConnectError::transport(
                TransportFailure::Refused,
                "refused",
            ));
        }
        Ok(Arc::new(Idle))
    }
}

#[derive(Debug)]
struct AllValid;

#[async_trait]
impl TokenStore for AllValid {
    async fn token_status(&self, _: &PairKey) -> Result<TokenStatus, StoreError> {
        Ok(TokenStatus {
            access_token: Some(AccessTokenStatus { expires_at: None }),
            has_refresh_token: true,
        })
    }
}

fn servers() -> Vec<ServerConfig> {
    ["a", "b"]
        .iter()
        .map(|name| ServerConfig {
            name: ServerName::new(*name),
            transport: TransportConfig::StreamableHttp {
                url: "https://shared.example/mcp".into(),
            },
            oauth: true,
            init_timeout: None,
        })
        .collect()
}

async fn replica(
    prefix: &str,
    connector: Arc<CountingConnector>,
    config: CoreConfig,
) -> ReconnectionManager {
    let shared: Arc<dyn SharedState> = Arc::new(
        RedisState::connect(RedisStateConfig::new("redis://127.0.0.1:6379", prefix))
            .await
            .expect("Redis must run on 127.0.0.1:6379"),
    );
    ReconnectionManager::builder(config, servers(), connector, Arc::new(AllValid))
        .shared_state(shared)
        .build()
        .expect("valid")
}

fn unique_prefix(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("tether-test:{test}:{nanos}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_storm_through_two_replicas_respects_the_origin_limit_as_a_whole() {
    let prefix = unique_prefix("storm");
    let connector = Arc::new(CountingConnector::default());
    let mut config = CoreConfig::default();
    config.limits.per_second = 0;
    let one = replica(&prefix, connector.clone(), config.clone()).await;
    let two = replica(&prefix, connector.clone(), config.clone()).await;
    let users: Vec<UserId> = (0..150).map(|i| UserId::new(format!("user{i}"))).collect();
    let scheduled = join_all(users.iter().enumerate().map(|(i, u)| {
        // Each user's login lands on one replica or the other.
        let m = if i % 2 == 0 { one.clone() } else { two.clone() };
        async move { m.reconnect_servers(u).await.len() }
    }))
    .await;
    assert_eq!(scheduled.iter().sum::<usize>(), 300);
    tokio::time::timeout(Duration::from_secs(60), async {
        one.wait_idle().await;
        two.wait_idle().await;
    })
    .await
    .expect("storm finishes");
    let peak = connector.peak("https://shared.example:443");
    assert!(
        peak <= 8,
        "{peak} attempts in flight to one origin across replicas"
    );
    assert_eq!(peak, 8, "the storm should have filled the shared limit");
    assert_eq!(*connector.calls.lock().expect("lock"), 300);
    let connected = one.stats().await.connected_sessions + two.stats().await.connected_sessions;
    assert_eq!(connected, 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracker_and_breaker_state_set_by_one_replica_is_seen_by_the_other() {
    let prefix = unique_prefix("visible");
    let connector = Arc::new(CountingConnector::default());
    let one = replica(&prefix, connector.clone(), CoreConfig::default()).await;
    let two = replica(&prefix, connector.clone(), CoreConfig::default()).await;
    let (u, a) = (UserId::new("alice"), ServerName::new("a"));

    // Replica one reconnects slowly: replica two sees the pair reconnecting and does not start it.
    let m = one.clone();
    let (u1, a1) = (u.clone(), a.clone());
    let running = tokio::spawn(async move { m.reconnect_server(&u1, &a1).await });
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert!(two.is_reconnecting(&u, &a).await);
    assert_eq!(
        two.eligibility(&u, &a).await,
        Ok(Eligibility::AlreadyReconnecting)
    );
    assert!(running.await.expect("join"));

    // A failure of the pair itself recorded on replica one puts the pair in cooldown on
    // replica two (an origin's transport failures charge no cooldown: its breaker owns them).
    *connector.reject.lock().expect("lock") = true;
    let bob = UserId::new("bob");
    assert!(!one.reconnect_server(&bob, &a).await);
    assert!(matches!(
        two.eligibility(&bob, &a).await,
        Ok(Eligibility::InCooldown { .. })
    ));
    *connector.reject.lock().expect("lock") = false;
    *connector.refuse.lock().expect("lock") = true;

    // Transport failures through replica one open the origin's breaker for replica two too.
    for i in 0..5 {
        one.reconnect_server(&UserId::new(format!("u{i}")), &a)
            .await;
    }
    let calls = *connector.calls.lock().expect("lock");
    let outcome = two
        .reconnect_server_outcome(&UserId::new("carol"), &ServerName::new("b"))
        .await;
    assert!(
        matches!(outcome, Ok(tether_core::AttemptOutcome::CircuitOpen { .. })),
        "{outcome:?}"
    );
    assert_eq!(
        *connector.calls.lock().expect("lock"),
        calls,
        "no call reached the origin"
    );
}
