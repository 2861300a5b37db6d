use std::time::Duration;

use futures::future::join_all;
use tether_core::{ConnectError, ConnectionState, CoreConfig, Eligibility, TransportFailure};
use tokio::time::Instant;

use crate::support::*;

const USERS: usize = 1000;
const ORIGIN: &str = "https://up.example";

fn unavailable() -> ConnectError {
    ConnectError::transport(TransportFailure::ServerError(503), "service unavailable")
}

/// One round: every user calls the tool once, concurrently; answers who succeeded.
async fn round(h: &Harness, users: &[String]) -> Vec<bool> {
    join_all(users.iter().map(|u| {
        let m = h.manager.clone();
        let u = user(u);
        async move {
            let result = m
                .call_tool(&u, &server("s"), "search", None)
                .await
                .expect("known server");
            !result.is_error
        }
    }))
    .await
}

#[tokio::test(start_paused = true)]
async fn after_an_origin_outage_every_pair_comes_back_through_the_limit_without_cooldowns() {
    let config = CoreConfig::default();
    let limit = config.limits.max_in_flight as usize;
    let per_second = config.limits.per_second as u64;
    let h = harness(config, vec![http_server("s", &format!("{ORIGIN}/mcp"))]);
    h.tokens.valid_for_everyone();
    h.connector.set_latency(Duration::from_millis(50));
    let users: Vec<String> = (0..USERS).map(|i| format!("user{i}")).collect();

    // The origin answers 503 for 20 s while every user calls every 2 s.
    h.connector.set_default("s", Err(unavailable()));
    let outage_start = Instant::now();
    while outage_start.elapsed() < Duration::from_secs(20) {
        let started = Instant::now();
        assert!(round(&h, &users).await.iter().all(|ok| !ok));
        tokio::time::sleep_until(started + Duration::from_secs(2)).await;
    }
    let while_down = h.connector.calls().len();
    for u in users.iter().take(50) {
        let n = h.connector.calls_for(u, "s").len();
        assert!(n <= 3, "{u}: {n} upstream requests while down");
    }
    assert_eq!(
        h.manager.stats().await.tracker.failed,
        0,
        "no pair is charged a cooldown for the origin's outage"
    );

    // The origin is back: each user keeps calling every 2 s until it succeeds.
    h.connector.set_default("s", Ok(()));
    let recovered_at = Instant::now();
    let mut back = vec![false; USERS];
    // The admission rate bounds how fast 1,000 pairs can come back; allow one breaker period
    // on top of it.
    let bound = Duration::from_secs(USERS as u64 / per_second + 40);
    while back.iter().any(|b| !b) && recovered_at.elapsed() < bound {
        let started = Instant::now();
        let pending: Vec<String> = users
            .iter()
            .zip(&back)
            .filter(|(_, b)| !**b)
            .map(|(u, _)| u.clone())
            .collect();
        let oks = round(&h, &pending).await;
        for (u, ok) in pending.iter().zip(oks) {
            if ok {
                let i: usize = u["user".len()..].parse().expect("index");
                back[i] = true;
            }
        }
        tokio::time::sleep_until(started + Duration::from_secs(2)).await;
    }
    let missing = back.iter().filter(|b| !**b).count();
    assert_eq!(
        missing,
        0,
        "{missing} users still failing {:?} after recovery",
        recovered_at.elapsed()
    );
    let max = h.connector.max_in_flight(ORIGIN);
    assert!(max <= limit, "{max} attempts in flight at the origin");
    assert!(
        h.connector.calls().len() - while_down <= USERS + limit,
        "recovery did not storm the origin"
    );
    assert_eq!(h.manager.stats().await.tracker.failed, 0);
}

#[tokio::test(start_paused = true)]
async fn a_pairs_own_authorization_failure_still_cools_down_while_the_origin_is_healthy() {
    let h = harness(
        CoreConfig::default(),
        vec![http_server("s", &format!("{ORIGIN}/mcp"))],
    );
    h.tokens.valid_for_everyone();
    h.connector.script(
        "alice",
        "s",
        vec![Err(ConnectError::NeedsAuthorization {
            authorization_url: None,
            scope: None,
        })],
    );
    assert!(
        !h.manager
            .reconnect_server(&user("alice"), &server("s"))
            .await
    );
    assert_eq!(
        h.manager.eligibility(&user("alice"), &server("s")).await,
        Ok(Eligibility::InCooldown {
            until: h.clock_now() + Duration::from_secs(300)
        })
    );
    assert!(h.manager.reconnect_server(&user("bob"), &server("s")).await);
}

#[tokio::test(start_paused = true)]
async fn pairs_held_back_by_the_origin_are_released_as_soon_as_its_probe_succeeds() {
    let mut config = CoreConfig::default();
    // Long enough that the background loops, not the users' calls, bring the pairs back.
    config.reconnect.in_session_attempts = 30;
    let limit = config.limits.max_in_flight as usize;
    let h = harness(config, vec![http_server("s", &format!("{ORIGIN}/mcp"))]);
    h.tokens.valid_for_everyone();
    h.connector.set_latency(Duration::from_millis(50));
    let users: Vec<String> = (0..40).map(|i| format!("user{i}")).collect();
    for u in &users {
        assert!(h.manager.reconnect_server(&user(u), &server("s")).await);
    }
    let connected_before = h.connector.calls().len();

    // The origin goes down and says to come back in a second; every live session breaks.
    let down = || unavailable().with_retry_after(Some(Duration::from_secs(1)));
    h.connector.set_default("s", Err(down()));
    for u in &users {
        h.connector.fail_calls(u, "s", vec![down()]);
    }
    assert!(round(&h, &users).await.iter().all(|ok| !ok));
    tokio::time::sleep(Duration::from_secs(10)).await;
    let while_down = h.connector.calls().len() - connected_before;

    // Back: nobody calls; the loops held back by the breaker must notice on their own.
    h.connector.set_default("s", Ok(()));
    let recovered_at = Instant::now();
    let mut back_after = None;
    for _ in 0..100 {
        let mut all = true;
        for u in &users {
            all &= h.manager.state(&user(u), &server("s")).await == ConnectionState::Connected;
        }
        if all {
            back_after = Some(recovered_at.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let Some(back_after) = back_after else {
        let mut states = Vec::new();
        for u in &users {
            let state = h.manager.state(&user(u), &server("s")).await;
            if state != ConnectionState::Connected {
                states.push((u.clone(), state));
            }
        }
        panic!(
            "not every pair reconnected within 10 s of recovery: {states:?}; {while_down} attempts while down"
        );
    };
    // One open period (the server's 1 s) until the probe, then one backoff base of stagger.
    assert!(
        back_after <= Duration::from_secs(3),
        "every pair back only {back_after:?} after recovery"
    );
    let max = h.connector.max_in_flight(ORIGIN);
    assert!(max <= limit, "{max} attempts in flight at the origin");
    // While down: the attempts that raced the breaker's opening, then one probe a second.
    assert!(
        while_down <= users.len(),
        "{while_down} connection attempts while down for 40 pairs"
    );
    assert_eq!(h.manager.stats().await.tracker.failed, 0);
    h.manager.shutdown().await;
}
