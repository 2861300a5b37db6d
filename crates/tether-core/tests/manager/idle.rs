use std::time::Duration;

use tether_core::{ConnectionState, CoreConfig};

use crate::support::*;

#[tokio::test(start_paused = true)]
async fn an_idle_session_is_closed_after_the_timeout_and_a_later_call_reconnects() {
    let mut config = CoreConfig::default();
    let idle = Duration::from_secs(600);
    config.reconnect.idle_session_timeout = idle;
    let h = harness(config, vec![http_server("s", "https://up.example/mcp")]);
    h.tokens.valid_for_everyone();
    let (u, s) = (user("u"), server("s"));
    assert!(h.manager.reconnect_server(&u, &s).await);

    // Used every half timeout: stays open.
    for _ in 0..4 {
        tokio::time::sleep(idle / 2).await;
        let r = h
            .manager
            .call_tool(&u, &s, "search", None)
            .await
            .expect("known");
        assert!(!r.is_error, "{}", r.text());
    }
    assert_eq!(h.connector.open_sessions(), 1);
    assert_eq!(h.connector.calls().len(), 1);

    // Left alone past the timeout: closed.
    tokio::time::sleep(idle + idle / 2).await;
    assert_eq!(
        h.connector.open_sessions(),
        0,
        "the idle session was closed"
    );
    assert_eq!(h.manager.state(&u, &s).await, ConnectionState::Disconnected);

    let r = h
        .manager
        .call_tool(&u, &s, "search", None)
        .await
        .expect("known");
    assert!(!r.is_error, "{}", r.text());
    assert_eq!(h.connector.calls().len(), 2, "reconnected on demand");
    assert_eq!(h.connector.open_sessions(), 1);
}
