use std::time::Duration;

use tether_core::{ConnectError, ConnectionState, CoreConfig};
use tokio::time::Instant;

use crate::support::*;

fn limited(secs: u64) -> ConnectError {
    ConnectError::RateLimited {
        retry_after: Some(Duration::from_secs(secs)),
    }
}

#[tokio::test(start_paused = true)]
async fn a_429_with_retry_after_delays_the_attempt_then_it_succeeds() {
    let h = harness(
        CoreConfig::default(),
        vec![http_server("s", "https://up.example/mcp")],
    );
    h.tokens.valid_for_everyone();
    h.connector.script("u", "s", vec![Err(limited(7)), Ok(())]);
    let start = Instant::now();
    let m = h.manager.clone();
    let task = tokio::spawn(async move { m.reconnect_server(&user("u"), &server("s")).await });
    tokio::time::sleep(Duration::from_secs(1)).await;
    match h.manager.state(&user("u"), &server("s")).await {
        ConnectionState::Reconnecting { retry_at: Some(at) } => {
            let wait = T0.until(at);
            assert!(
                wait >= Duration::from_secs(7) && wait <= Duration::from_secs(8),
                "{wait:?}"
            );
        }
        other => panic!("expected reconnecting with a retry time, got {other:?}"),
    }
    assert!(task.await.expect("join"));
    let calls = h.connector.calls_for("u", "s");
    assert_eq!(calls.len(), 2);
    let gap = calls[1].at - calls[0].at;
    assert!(
        gap >= Duration::from_secs(7) && gap <= Duration::from_secs(8),
        "{gap:?}"
    );
    assert!(start.elapsed() >= Duration::from_secs(7));
    // Rate limiting is no failure: no cooldown, no breaker.
    assert_eq!(h.manager.stats().await.tracker.failed, 0);
    assert_eq!(h.manager.stats().await.rate_limited_waits, 1);
}

#[tokio::test(start_paused = true)]
async fn persistent_429s_delay_but_never_stop_reconnection_for_good() {
    let h = harness(
        CoreConfig::default(),
        vec![http_server("s", "https://up.example/mcp")],
    );
    h.tokens.valid_for_everyone();
    // One more 429 than an attempt waits out, and an absurd Retry-After that gets clamped.
    h.connector.script(
        "u",
        "s",
        vec![
            Err(limited(86_400)),
            Err(limited(5)),
            Err(limited(5)),
            Err(limited(5)),
        ],
    );
    let start = Instant::now();
    assert!(!h.manager.reconnect_server(&user("u"), &server("s")).await);
    assert!(
        start.elapsed() < Duration::from_secs(330),
        "clamped to max_retry_after"
    );
    assert!(matches!(
        h.manager.state(&user("u"), &server("s")).await,
        ConnectionState::Failed { .. }
    ));
    // After the cooldown the login reconnect tries again, and this time the server lets it in.
    tokio::time::advance(Duration::from_secs(300)).await;
    assert_eq!(h.manager.reconnect_servers(&user("u")).await.len(), 1);
    h.manager.wait_idle().await;
    assert_eq!(
        h.manager.state(&user("u"), &server("s")).await,
        ConnectionState::Connected
    );
}
