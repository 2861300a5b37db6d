use std::time::Duration;

use tether_core::{
    AccessTokenStatus, ConnectError, CoreConfig, Eligibility, ServerConfig, TokenStatus,
};

use crate::support::*;

fn token(expires_in: Option<i64>, refresh: bool) -> TokenStatus {
    let expires_at = expires_in.map(|secs| {
        if secs >= 0 {
            T0 + Duration::from_secs(secs.unsigned_abs())
        } else {
            T0 - Duration::from_secs(secs.unsigned_abs())
        }
    });
    TokenStatus {
        access_token: Some(AccessTokenStatus { expires_at }),
        has_refresh_token: refresh,
    }
}

#[tokio::test(start_paused = true)]
async fn token_rules_cover_both_branches() {
    let servers: Vec<ServerConfig> = (0..6)
        .map(|i| http_server(&format!("s{i}"), "https://up.example/mcp"))
        .collect();
    let h = harness(CoreConfig::default(), servers);
    // s0: valid access token; s1: access token without expiry; s2: expired, no refresh token;
    // s3: expired, with refresh token; s4: only a refresh token; s5: nothing at all.
    h.tokens.set("u", "s0", token(Some(60), false));
    h.tokens.set("u", "s1", token(None, false));
    h.tokens.set("u", "s2", token(Some(-1), false));
    h.tokens.set("u", "s3", token(Some(-1), true));
    h.tokens.set(
        "u",
        "s4",
        TokenStatus {
            access_token: None,
            has_refresh_token: true,
        },
    );
    let expected = [
        Eligibility::Eligible,
        Eligibility::Eligible,
        Eligibility::NoUsableToken,
        Eligibility::Eligible,
        Eligibility::Eligible,
        Eligibility::NoUsableToken,
    ];
    for (i, want) in expected.iter().enumerate() {
        let got = h
            .manager
            .eligibility(&user("u"), &server(&format!("s{i}")))
            .await
            .expect("known server");
        assert_eq!(&got, want, "s{i}");
    }
    let scheduled = h.manager.reconnect_servers(&user("u")).await;
    let names: Vec<&str> = scheduled.iter().map(|s| s.as_str()).collect();
    assert_eq!(names, ["s0", "s1", "s3", "s4"]);
    h.manager.wait_idle().await;
    assert_eq!(h.connector.calls().len(), 4);
}

#[tokio::test(start_paused = true)]
async fn an_access_token_expiring_right_now_still_counts() {
    let h = harness(
        CoreConfig::default(),
        vec![http_server("s", "https://up.example/mcp")],
    );
    h.tokens.set("u", "s", token(Some(0), false));
    assert_eq!(
        h.manager.eligibility(&user("u"), &server("s")).await,
        Ok(Eligibility::Eligible)
    );
    tokio::time::advance(Duration::from_millis(1)).await;
    assert_eq!(
        h.manager.eligibility(&user("u"), &server("s")).await,
        Ok(Eligibility::NoUsableToken)
    );
}

#[tokio::test(start_paused = true)]
async fn connected_reconnecting_cooling_and_non_oauth_servers_are_skipped() {
    let mut plain = http_server("plain", "https://plain.example/mcp");
    plain.oauth = false;
    let servers = vec![
        http_server("connected", "https://a.example/mcp"),
        http_server("busy", "https://b.example/mcp"),
        http_server("cooling", "https://c.example/mcp"),
        plain,
    ];
    let h = harness(CoreConfig::default(), servers);
    h.tokens.valid_for_everyone();
    let u = user("u");

    assert!(h.manager.reconnect_server(&u, &server("connected")).await);
    assert_eq!(
        h.manager.eligibility(&u, &server("connected")).await,
        Ok(Eligibility::AlreadyConnected)
    );

    // The pair's own failure cools it down (an origin's transport failure is the breaker's).
    h.connector.script(
        "u",
        "cooling",
        vec![Err(ConnectError::Protocol("initialize failed".into()))],
    );
    assert!(!h.manager.reconnect_server(&u, &server("cooling")).await);
    assert_eq!(
        h.manager.eligibility(&u, &server("cooling")).await,
        Ok(Eligibility::InCooldown {
            until: T0 + Duration::from_secs(300)
        })
    );

    // A slow attempt keeps "busy" reconnecting.
    h.connector.set_latency(Duration::from_secs(5));
    let m = h.manager.clone();
    let slow = tokio::spawn(async move { m.reconnect_server(&user("u"), &server("busy")).await });
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(h.manager.is_reconnecting(&u, &server("busy")).await);
    assert_eq!(
        h.manager.eligibility(&u, &server("busy")).await,
        Ok(Eligibility::AlreadyReconnecting)
    );
    assert_eq!(
        h.manager.eligibility(&u, &server("plain")).await,
        Ok(Eligibility::NotOAuth)
    );
    assert!(h.manager.reconnect_servers(&u).await.is_empty());
    assert!(slow.await.expect("join"));
    assert!(!h.manager.is_reconnecting(&u, &server("busy")).await);
}

#[tokio::test(start_paused = true)]
async fn non_oauth_servers_join_when_configured() {
    let mut plain = http_server("plain", "https://plain.example/mcp");
    plain.oauth = false;
    let mut config = CoreConfig::default();
    config.reconnect.include_non_oauth = true;
    let h = harness(config, vec![plain]);
    // No tokens at all: a server without OAuth needs none.
    assert_eq!(
        h.manager.reconnect_servers(&user("u")).await,
        vec![server("plain")]
    );
}

#[tokio::test(start_paused = true)]
async fn unknown_servers_are_an_error_not_a_panic() {
    let h = harness(CoreConfig::default(), vec![]);
    let err = h
        .manager
        .eligibility(&user("u"), &server("nope"))
        .await
        .expect_err("unknown");
    assert!(err.to_string().contains("nope"));
    assert!(
        !h.manager
            .reconnect_server(&user("u"), &server("nope"))
            .await
    );
}
