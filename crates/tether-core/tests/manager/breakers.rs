use std::time::Duration;

use tether_core::{AttemptOutcome, ConnectError, ConnectionState, CoreConfig};

use crate::support::*;

fn needs_auth() -> ConnectError {
    ConnectError::NeedsAuthorization {
        authorization_url: None,
        scope: None,
    }
}

#[tokio::test(start_paused = true)]
async fn pair_breaker_opens_probes_once_doubles_and_resets_on_authorization() {
    let h = harness(
        CoreConfig::default(),
        vec![http_server("s", "https://up.example/mcp")],
    );
    h.tokens.valid_for_everyone();
    let (u, s) = (user("alice"), server("s"));
    h.connector.script("alice", "s", vec![Err(needs_auth()); 7]);

    for _ in 0..4 {
        assert!(matches!(
            h.manager.reconnect_server_outcome(&u, &s).await,
            Ok(AttemptOutcome::NeedsAuthorization { .. })
        ));
    }
    // The fifth consecutive failure opens it for 30 s.
    h.manager.reconnect_server(&u, &s).await;
    assert_eq!(h.connector.calls_for("alice", "s").len(), 5);
    let opened_at = h.clock_now();
    assert_eq!(
        h.manager.reconnect_server_outcome(&u, &s).await,
        Ok(AttemptOutcome::CircuitOpen {
            until: opened_at + Duration::from_secs(30)
        })
    );
    assert_eq!(
        h.connector.calls_for("alice", "s").len(),
        5,
        "refused without a call"
    );

    // Half-open after 30 s: one probe goes through, fails, re-opens for 60 s.
    tokio::time::advance(Duration::from_secs(30)).await;
    h.manager.reconnect_server(&u, &s).await;
    assert_eq!(h.connector.calls_for("alice", "s").len(), 6);
    let reopened_at = h.clock_now();
    assert_eq!(
        h.manager.reconnect_server_outcome(&u, &s).await,
        Ok(AttemptOutcome::CircuitOpen {
            until: reopened_at + Duration::from_secs(60)
        })
    );
    tokio::time::advance(Duration::from_secs(60)).await;
    h.manager.reconnect_server(&u, &s).await;
    assert_eq!(h.connector.calls_for("alice", "s").len(), 7);
    assert_eq!(
        h.manager.reconnect_server_outcome(&u, &s).await,
        Ok(AttemptOutcome::CircuitOpen {
            until: h.clock_now() + Duration::from_secs(120)
        })
    );

    // The user authorizes again: the pair's breaker is gone and the next attempt connects.
    h.manager.authorized(&u, &s).await;
    assert!(h.manager.reconnect_server(&u, &s).await);
    assert_eq!(h.manager.state(&u, &s).await, ConnectionState::Connected);
    assert_eq!(h.manager.stats().await.breaker_opens, 3);
}

#[tokio::test(start_paused = true)]
async fn one_users_auth_failures_leave_other_users_untouched() {
    let h = harness(
        CoreConfig::default(),
        vec![http_server("s", "https://up.example/mcp")],
    );
    h.tokens.valid_for_everyone();
    h.connector
        .script("alice", "s", vec![Err(needs_auth()); 20]);
    for _ in 0..20 {
        h.manager
            .reconnect_server(&user("alice"), &server("s"))
            .await;
    }
    assert!(matches!(
        h.manager.state(&user("alice"), &server("s")).await,
        ConnectionState::CircuitOpen { .. }
    ));
    for other in ["bob", "carol", "dave"] {
        assert!(
            h.manager.reconnect_server(&user(other), &server("s")).await,
            "{other} must not be blocked by alice's failures"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn an_origins_transport_failures_protect_it_for_everyone() {
    let h = harness(
        CoreConfig::default(),
        vec![
            http_server("a", "https://down.example/mcp"),
            http_server("b", "https://down.example/other"),
            http_server("healthy", "https://up.example/mcp"),
        ],
    );
    h.tokens.valid_for_everyone();
    h.connector.set_default("a", Err(refused()));
    h.connector.set_default("b", Err(refused()));
    // Five different users each fail once against the same origin (two server names on it).
    for (i, name) in ["u1", "u2", "u3", "u4", "u5"].iter().enumerate() {
        let s = if i % 2 == 0 { "a" } else { "b" };
        assert!(!h.manager.reconnect_server(&user(name), &server(s)).await);
    }
    let calls = h.connector.calls().len();
    let outcome = h
        .manager
        .reconnect_server_outcome(&user("u6"), &server("b"))
        .await;
    assert!(
        matches!(outcome, Ok(AttemptOutcome::CircuitOpen { .. })),
        "{outcome:?}"
    );
    assert_eq!(
        h.connector.calls().len(),
        calls,
        "no call reached the failing origin"
    );
    // Another origin is unaffected, for the same user.
    assert!(
        h.manager
            .reconnect_server(&user("u6"), &server("healthy"))
            .await
    );
    // Login does not even schedule what the breaker would refuse.
    let scheduled = h.manager.reconnect_servers(&user("u7")).await;
    let names: Vec<&str> = scheduled.iter().map(|s| s.as_str()).collect();
    assert_eq!(names, ["healthy"]);
}
