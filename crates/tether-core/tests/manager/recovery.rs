use std::time::Duration;

use tether_core::{ConnectError, ConnectionState, CoreConfig, TransportFailure};

use crate::support::*;

#[tokio::test(start_paused = true)]
async fn a_lost_session_is_reinitialized_and_the_call_retried_once() {
    let h = harness(
        CoreConfig::default(),
        vec![http_server("s", "https://up.example/mcp")],
    );
    h.tokens.valid_for_everyone();
    let (u, s) = (user("u"), server("s"));
    assert!(h.manager.reconnect_server(&u, &s).await);
    h.connector
        .fail_calls("u", "s", vec![ConnectError::SessionLost]);
    let result = h
        .manager
        .call_tool(&u, &s, "search", None)
        .await
        .expect("known");
    assert!(!result.is_error, "{}", result.text());
    assert_eq!(h.connector.calls().len(), 2, "one new initialize");
    assert_eq!(h.connector.open_sessions(), 1, "the old session was closed");

    // Lost again right after re-initializing: no loop, one answer.
    h.connector.fail_calls(
        "u",
        "s",
        vec![ConnectError::SessionLost, ConnectError::SessionLost],
    );
    let result = h
        .manager
        .call_tool(&u, &s, "search", None)
        .await
        .expect("known");
    assert!(result.is_error);
    assert_eq!(h.connector.calls().len(), 3);
    h.manager.wait_idle().await;
}

#[tokio::test(start_paused = true)]
async fn a_broken_session_reconnects_in_the_background_with_jittered_backoff() {
    let h = harness(
        CoreConfig::default(),
        vec![http_server("s", "https://up.example/mcp")],
    );
    h.tokens.valid_for_everyone();
    let (u, s) = (user("u"), server("s"));
    assert!(h.manager.reconnect_server(&u, &s).await);
    h.connector.fail_calls(
        "u",
        "s",
        vec![ConnectError::transport(TransportFailure::Network, "reset")],
    );
    h.connector.script("u", "s", vec![Err(refused()), Ok(())]);
    let stub = h
        .manager
        .call_tool(&u, &s, "search", None)
        .await
        .expect("known");
    assert!(stub.is_error && stub.text().contains("reconnecting"));
    assert!(h.manager.is_reconnecting(&u, &s).await);
    let broke_at = tokio::time::Instant::now();
    h.manager.wait_idle().await;
    assert_eq!(h.manager.state(&u, &s).await, ConnectionState::Connected);
    let calls = h.connector.calls();
    assert_eq!(calls.len(), 3, "initial, one failed retry, one success");
    // Full jitter: retry n waits at most base × 2^n (1 s, then 2 s).
    assert!(calls[1].at - broke_at <= Duration::from_secs(1));
    assert!(calls[2].at - calls[1].at <= Duration::from_secs(2));
    // A single outage does not escalate the cooldown once per retry.
    assert_eq!(h.manager.stats().await.tracker.failed, 0);
}

#[tokio::test(start_paused = true)]
async fn the_background_loop_gives_up_after_its_attempts_and_leaves_it_to_the_cooldown() {
    let h = harness(
        CoreConfig::default(),
        vec![http_server("s", "https://up.example/mcp")],
    );
    h.tokens.valid_for_everyone();
    let (u, s) = (user("u"), server("s"));
    assert!(h.manager.reconnect_server(&u, &s).await);
    // The pair's own failure on every retry: the cooldown is the pair's to carry (an origin's
    // transport failures are left to the origin breaker instead).
    h.connector
        .set_default("s", Err(ConnectError::Protocol("initialize failed".into())));
    h.connector.fail_calls(
        "u",
        "s",
        vec![ConnectError::transport(TransportFailure::Timeout, "")],
    );
    h.manager
        .call_tool(&u, &s, "search", None)
        .await
        .expect("known");
    h.manager.wait_idle().await;
    assert_eq!(h.connector.calls().len(), 4, "initial + 3 bounded retries");
    assert!(matches!(
        h.manager.state(&u, &s).await,
        ConnectionState::Failed { .. }
    ));
    assert_eq!(h.manager.stats().await.tracker.failed, 1);
}

#[tokio::test(start_paused = true)]
async fn shutdown_cancels_scheduled_work_and_closes_sessions() {
    let servers = (0..3)
        .map(|i| http_server(&format!("s{i}"), &format!("https://up{i}.example/mcp")))
        .collect();
    let h = harness(CoreConfig::default(), servers);
    h.tokens.valid_for_everyone();
    assert!(h.manager.reconnect_server(&user("a"), &server("s0")).await);
    assert_eq!(h.manager.reconnect_servers(&user("b")).await.len(), 3);
    h.manager.shutdown().await;
    assert_eq!(h.connector.open_sessions(), 0);
    assert!(
        h.connector.calls().len() <= 2,
        "staggered starts were cancelled"
    );
    assert!(!h.manager.is_reconnecting(&user("b"), &server("s2")).await);
}
