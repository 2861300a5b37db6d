use std::time::Duration;

use serde_json::json;
use tether_core::{ConnectError, ConnectionState, CoreConfig, Eligibility, TransportFailure};

use crate::support::*;

#[tokio::test(start_paused = true)]
async fn tools_stay_listed_with_real_schemas_while_the_server_is_down() {
    let h = harness(
        CoreConfig::default(),
        vec![
            http_server("github", "https://gh.example/mcp"),
            http_server("linear", "https://linear.example/mcp"),
        ],
    );
    h.tokens.valid_for_everyone();
    h.connector.set_tools(
        "github",
        vec![rich_tool("search_issues"), rich_tool("create_issue")],
    );
    h.connector
        .set_tools("linear", vec![rich_tool("list_tasks")]);
    let u = user("u");
    assert!(h.manager.reconnect_server(&u, &server("github")).await);
    assert!(h.manager.reconnect_server(&u, &server("linear")).await);
    let live = h.manager.list_tools(&u).await;
    assert_eq!(live.len(), 3);
    assert!(live.iter().all(|t| t.available));

    let ok = h
        .manager
        .call_tool(
            &u,
            &server("github"),
            "search_issues",
            Some(
                json!({"query": "bug"})
                    .as_object()
                    .cloned()
                    .expect("object"),
            ),
        )
        .await
        .expect("known server");
    assert!(!ok.is_error);
    assert!(ok.text().contains("search_issues") && ok.text().contains("bug"));

    // The upstream goes away mid-session.
    h.connector.set_default("github", Err(refused()));
    h.connector.fail_calls(
        "u",
        "github",
        vec![ConnectError::transport(
            TransportFailure::ServerError(502),
            "bad gateway",
        )],
    );
    let stub = h
        .manager
        .call_tool(&u, &server("github"), "create_issue", None)
        .await
        .expect("known server");
    assert!(stub.is_error);
    assert!(stub.text().contains("reconnecting"), "{}", stub.text());
    assert!(stub.text().contains("create_issue"));

    let listed = h.manager.list_tools(&u).await;
    let github: Vec<_> = listed
        .iter()
        .filter(|t| t.server.as_str() == "github")
        .collect();
    assert_eq!(github.len(), 2, "the tools do not vanish");
    assert!(github.iter().all(|t| !t.available));
    assert_eq!(
        github[0].tool,
        rich_tool("search_issues"),
        "names and schemas kept"
    );
    assert_eq!(github[1].tool, rich_tool("create_issue"));
    assert!(
        listed
            .iter()
            .any(|t| t.server.as_str() == "linear" && t.available)
    );
    h.manager.wait_idle().await;
}

#[tokio::test(start_paused = true)]
async fn each_unavailable_state_gives_the_model_its_reason() {
    let h = harness(
        CoreConfig::default(),
        vec![
            http_server("auth", "https://auth.example/mcp"),
            http_server("broken", "https://broken.example/mcp"),
            http_server("tripped", "https://tripped.example/mcp"),
        ],
    );
    h.tokens.valid_for_everyone();
    let u = user("u");
    for s in ["auth", "broken", "tripped"] {
        assert!(h.manager.reconnect_server(&u, &server(s)).await);
        h.manager.disconnect(&u, &server(s)).await;
    }
    h.connector.set_default(
        "auth",
        Err(ConnectError::NeedsAuthorization {
            authorization_url: Some("https://tether.example/v1/authorize/abc".into()),
            scope: None,
        }),
    );
    h.connector.set_default(
        "broken",
        Err(ConnectError::Protocol(
            "initialize failed: access_token=leaked-value rejected".into(),
        )),
    );
    h.connector.set_default("tripped", Err(refused()));
    for s in ["auth", "broken"] {
        assert!(!h.manager.reconnect_server(&u, &server(s)).await);
    }
    // Five users' transport failures trip the origin for "tripped".
    for i in 0..5 {
        h.manager
            .reconnect_server(&user(&format!("other{i}")), &server("tripped"))
            .await;
    }

    let text = |s: &'static str| {
        let m = h.manager.clone();
        let u = u.clone();
        async move {
            let r = m
                .call_tool(&u, &server(s), "search", None)
                .await
                .expect("known");
            assert!(r.is_error);
            r.text()
        }
    };
    let auth = text("auth").await;
    assert!(
        auth.contains("authorize") && auth.contains("https://tether.example/v1/authorize/abc"),
        "{auth}"
    );
    let broken = text("broken").await;
    assert!(
        broken.contains("failed") && broken.contains("initialize failed"),
        "{broken}"
    );
    assert!(
        !broken.contains("leaked-value"),
        "secrets never reach the model: {broken}"
    );
    let tripped = text("tripped").await;
    assert!(
        tripped.contains("paused") && tripped.contains("until"),
        "{tripped}"
    );
    assert!(matches!(
        h.manager.state(&u, &server("tripped")).await,
        ConnectionState::CircuitOpen { .. }
    ));
    // Still listed: the cache from the first connection.
    assert_eq!(h.manager.list_tools(&u).await.len(), 3);
    tokio::time::advance(Duration::from_secs(1)).await;
}

#[derive(Debug, Default)]
struct Links {
    asked: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl tether_core::AuthorizationLinks for Links {
    async fn authorization_url(&self, pair: &tether_core::PairKey) -> Option<String> {
        self.asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Some(format!("https://as.example/authorize?for={}", pair.server))
    }
}

#[tokio::test(start_paused = true)]
async fn the_needs_authorization_stub_carries_the_applications_link() {
    let connector = ScriptedConnector::new();
    let tokens = FakeTokens::new();
    tokens.valid_for_everyone();
    let links = std::sync::Arc::new(Links::default());
    let manager = tether_core::ReconnectionManager::builder(
        CoreConfig::default(),
        vec![http_server("github", "https://gh.example/mcp")],
        connector.clone(),
        tokens,
    )
    .authorization_links(links.clone())
    .build()
    .expect("valid");
    let u = user("u");
    assert!(manager.reconnect_server(&u, &server("github")).await);
    manager.disconnect(&u, &server("github")).await;
    connector.set_default(
        "github",
        Err(ConnectError::NeedsAuthorization {
            authorization_url: None,
            scope: None,
        }),
    );
    assert!(!manager.reconnect_server(&u, &server("github")).await);
    assert_eq!(
        links.asked.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "asked only for a stub"
    );
    let stub = manager
        .call_tool(&u, &server("github"), "search", None)
        .await
        .expect("known");
    assert!(stub.is_error);
    assert!(
        stub.text()
            .contains("https://as.example/authorize?for=github"),
        "{}",
        stub.text()
    );
}

/// Tether's own outage (its token store down) is nobody's fault upstream: the live session and
/// its tools stay, the call says why it failed, no breaker counts it, and a failed connect
/// leaves no cooldown behind (so the next login reconnects as soon as the store is back).
#[tokio::test(start_paused = true)]
async fn an_own_outage_keeps_the_session_opens_no_breaker_and_leaves_no_cooldown() {
    let mut config = CoreConfig::default();
    config.breaker.failure_threshold = 1;
    let h = harness(
        config,
        vec![
            http_server("github", "https://gh.example/mcp"),
            http_server("linear", "https://linear.example/mcp"),
        ],
    );
    h.tokens.valid_for_everyone();
    h.connector.set_tools("github", vec![rich_tool("search")]);
    let u = user("u");
    assert!(h.manager.reconnect_server(&u, &server("github")).await);
    let outage = || ConnectError::Unavailable("store unavailable: read tokens".into());

    h.connector.fail_calls("u", "github", vec![outage()]);
    let failed = h
        .manager
        .call_tool(&u, &server("github"), "search", None)
        .await
        .expect("known server");
    assert!(failed.is_error);
    assert!(
        failed.text().contains("store unavailable") && failed.text().contains("Retry"),
        "{}",
        failed.text()
    );
    assert!(h.manager.state(&u, &server("github")).await.is_connected());
    let ok = h
        .manager
        .call_tool(&u, &server("github"), "search", None)
        .await
        .expect("known server");
    assert!(!ok.is_error, "the same session answers: {}", ok.text());
    assert_eq!(
        h.connector.calls_for("u", "github").len(),
        1,
        "no reconnect"
    );

    // A connect failing the same way: failed now, but no cooldown and no breaker.
    h.connector
        .script("u", "linear", vec![Err(outage()), Ok(())]);
    assert!(!h.manager.reconnect_server(&u, &server("linear")).await);
    let state = h.manager.state(&u, &server("linear")).await;
    assert!(
        !matches!(state, ConnectionState::CircuitOpen { .. }),
        "{state:?}"
    );
    let eligibility = h
        .manager
        .eligibility(&u, &server("linear"))
        .await
        .expect("known server");
    assert_eq!(eligibility, Eligibility::Eligible);
    assert!(h.manager.reconnect_server(&u, &server("linear")).await);
}

#[tokio::test(start_paused = true)]
async fn a_tool_name_is_checked_against_the_live_list_then_the_cached_one() {
    let h = harness(
        CoreConfig::default(),
        vec![http_server("github", "https://gh.example/mcp")],
    );
    h.tokens.valid_for_everyone();
    h.connector
        .set_tools("github", vec![rich_tool("search_issues")]);
    let (u, github) = (user("u"), server("github"));
    assert_eq!(
        h.manager.lists_tool(&u, &github, "search_issues").await,
        None,
        "never connected: nothing is known"
    );
    assert!(h.manager.reconnect_server(&u, &github).await);
    assert_eq!(
        h.manager.lists_tool(&u, &github, "search_issues").await,
        Some(true)
    );
    assert_eq!(h.manager.lists_tool(&u, &github, "nope").await, Some(false));

    h.manager.disconnect(&u, &github).await;
    assert_eq!(
        h.manager.lists_tool(&u, &github, "search_issues").await,
        Some(true),
        "the last good list answers while disconnected"
    );
    assert_eq!(h.manager.lists_tool(&u, &github, "nope").await, Some(false));
}
