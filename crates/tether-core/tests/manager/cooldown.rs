use std::time::Duration;

use tether_core::{ConnectError, ConnectionState, CoreConfig, Eligibility};

use crate::support::*;

const MIN: Duration = Duration::from_secs(60);

#[tokio::test(start_paused = true)]
async fn failures_cool_down_5_10_20_30_30_minutes_and_a_success_resets() {
    let h = harness(
        CoreConfig::default(),
        vec![http_server("s", "https://up.example/mcp")],
    );
    h.tokens.valid_for_everyone();
    // A protocol failure blames the pair; thresholds of the breaker are not what this test is
    // about, so give it a high one.
    let protocol = || ConnectError::Protocol("initialize failed".into());
    h.connector.set_default("s", Err(protocol()));
    let (u, s) = (user("u"), server("s"));
    let mut cooldowns = Vec::new();
    for _ in 0..5 {
        assert_eq!(h.manager.reconnect_servers(&u).await, vec![s.clone()]);
        h.manager.wait_idle().await;
        let now = h.clock_now();
        match h.manager.eligibility(&u, &s).await {
            Ok(Eligibility::InCooldown { until }) => cooldowns.push(now.until(until)),
            other => panic!("expected a cooldown, got {other:?}"),
        }
        // Nothing is scheduled while cooling down.
        assert!(h.manager.reconnect_servers(&u).await.is_empty());
        let wait = *cooldowns.last().expect("pushed");
        tokio::time::advance(wait).await;
    }
    let minutes: Vec<u64> = cooldowns.iter().map(|d| d.as_secs() / 60).collect();
    assert_eq!(minutes, [5, 10, 20, 30, 30]);
    assert!(matches!(
        h.manager.state(&u, &s).await,
        ConnectionState::Failed { .. } | ConnectionState::CircuitOpen { .. }
    ));

    // The upstream recovers; the pair breaker may be open after five failures, so wait it out.
    h.connector.set_default("s", Ok(()));
    tokio::time::advance(10 * MIN).await;
    assert_eq!(h.manager.reconnect_servers(&u).await, vec![s.clone()]);
    h.manager.wait_idle().await;
    assert_eq!(h.manager.state(&u, &s).await, ConnectionState::Connected);
    assert_eq!(h.manager.stats().await.tracker.failed, 0);

    // After a success the count starts over: the next failure cools down 5 minutes again.
    h.manager.disconnect(&u, &s).await;
    h.connector.set_default("s", Err(protocol()));
    assert_eq!(h.manager.reconnect_servers(&u).await, vec![s.clone()]);
    h.manager.wait_idle().await;
    let now = h.clock_now();
    assert_eq!(
        h.manager.eligibility(&u, &s).await,
        Ok(Eligibility::InCooldown {
            until: now + 5 * MIN
        })
    );
}

#[tokio::test(start_paused = true)]
async fn authorizing_again_lifts_the_cooldown() {
    let h = harness(
        CoreConfig::default(),
        vec![http_server("s", "https://up.example/mcp")],
    );
    h.tokens.valid_for_everyone();
    h.connector.script(
        "u",
        "s",
        vec![Err(ConnectError::NeedsAuthorization {
            authorization_url: None,
            scope: None,
        })],
    );
    let (u, s) = (user("u"), server("s"));
    assert!(!h.manager.reconnect_server(&u, &s).await);
    assert!(matches!(
        h.manager.eligibility(&u, &s).await,
        Ok(Eligibility::InCooldown { .. })
    ));
    h.manager.authorized(&u, &s).await;
    assert_eq!(
        h.manager.eligibility(&u, &s).await,
        Ok(Eligibility::Eligible)
    );
}

impl Harness {
    pub fn clock_now(&self) -> tether_core::Timestamp {
        use tether_core::Clock;
        self.clock.now()
    }
}

/// A stdio server's first start may download its package (the quick start's `npx`): its
/// connect gets a minute by default where an HTTP server's gets 10 s; and a first attempt that
/// timed out is tried again at the next call, not after the failed cooldown.
#[tokio::test(start_paused = true)]
async fn a_stdio_server_gets_a_minute_to_start_and_a_timeout_is_retried_at_the_next_call() {
    let stdio = tether_core::ServerConfig {
        name: tether_core::ServerName::new("everything"),
        transport: tether_core::TransportConfig::Stdio {
            command: "npx".into(),
            args: vec![
                "-y".into(),
                "@modelcontextprotocol/server-everything".into(),
            ],
        },
        oauth: false,
        init_timeout: None,
    };
    let h = harness(
        CoreConfig::default(),
        vec![stdio, http_server("web", "https://up.example/mcp")],
    );
    h.tokens.valid_for_everyone();
    let (u, everything, web) = (user("u"), server("everything"), server("web"));
    let timed_out = || ConnectError::transport(tether_core::TransportFailure::Timeout, "");
    h.connector
        .script("u", "everything", vec![Err(timed_out()), Ok(())]);

    let first = h
        .manager
        .call_tool(&u, &everything, "search", None)
        .await
        .expect("a known server");
    assert!(first.is_error, "the first start timed out: a stub");
    assert!(
        !matches!(
            h.manager.eligibility(&u, &everything).await,
            Ok(Eligibility::InCooldown { .. })
        ),
        "no failed cooldown after a timeout"
    );
    let second = h
        .manager
        .call_tool(&u, &everything, "search", None)
        .await
        .expect("a known server");
    assert!(!second.is_error, "connected at the next call: {second:?}");
    let calls = h.connector.calls_for("u", "everything");
    assert_eq!(calls.len(), 2);
    assert!(calls.iter().all(|c| c.timeout == Duration::from_secs(60)));

    let _ = h.manager.call_tool(&u, &web, "search", None).await;
    let web_calls = h.connector.calls_for("u", "web");
    assert_eq!(web_calls[0].timeout, Duration::from_secs(10));
}
