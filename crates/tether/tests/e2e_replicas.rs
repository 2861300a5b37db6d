//! Two real gateway processes as replicas of one deployment: PostgreSQL (the machine's, a fresh
//! database per test) for tokens and registrations, Redis (a fresh key prefix per test) for the
//! shared state, oidc-provider with refresh-token rotation (and its reuse detection) as the
//! authorization server.
//!
//! - an authorization started on replica 1 completes with its callback on replica 2;
//! - 100 concurrent tool calls split over both replicas with an expired access token: exactly
//!   one refresh request reaches the authorization server, every call succeeds, and the token
//!   family stays valid (a later refresh works, no grant was revoked);
//! - a login storm through both replicas keeps the per-origin in-flight limit as a whole;
//! - tracker and breaker states written by one replica are what the other acts on;
//! - Redis stopped mid-run (a private `redis-server`): both keep serving, degraded, and share
//!   again once it is back;
//! - PostgreSQL restarted (a private cluster): clear errors while it is down, no token lost,
//!   calls work again without restarting the gateway.
//!
//! Needs `npm ci` in crates/tether-oauth/tests/peers, PostgreSQL on 127.0.0.1:5432 and Redis on
//! 127.0.0.1:6379 (`.ci/run` checks both), and `initdb`/`pg_ctl` for the restart test.

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::future::join_all;
use serde_json::Value;
use tether_testkit::services::{PrivatePostgres, PrivateRedis};
use tether_testkit::{DemoTools, OidcPeer};

use support::faulty::{dead_upstream, refusing_upstream};
use support::gateway_process::{
    GatewayProcess, add_args, call, client_secret_env, follow_authorization_to, metric_sum,
    oauth_peers, oauth_server, result_text, tool_names, wait_expired, wait_for,
};
use support::replicas::{Deployment, Pair, Ports};
use support::{jwt, mcp_client};

const SHARED_REDIS: &str = "redis://127.0.0.1:6379";
/// Two replicas with the OAuth-protected server `alpha` at `alpha_url` (the oidc peer's
/// pre-registered client, its secret in the environment).
async fn start_with_alpha(
    label: &str,
    deployment: &Deployment,
    ports: &Ports,
    alpha_url: &str,
) -> Pair {
    Pair::start(
        label,
        deployment,
        ports,
        &oauth_server("alpha", alpha_url),
        &[client_secret_env()],
    )
    .await
}

/// How many requests reached the peer's token endpoint so far (any grant, any outcome).
async fn token_requests(peer: &OidcPeer) -> usize {
    let stats = peer.stats().await.expect("peer stats");
    stats["tokenRequests"].as_array().map_or(0, Vec::len)
}

/// The browser's side of an authorization started on `start` whose callback lands on
/// `finish`: the authorization server's steps without a person, then `GET /oauth/callback` and
/// the host's confirmation on the other replica. Returns the confirmation's status and body.
async fn authorize_across(
    start: &GatewayProcess,
    finish: &GatewayProcess,
    redirect_uri: &str,
    token: &str,
    server: &str,
) -> (u16, String) {
    let (status, body) = start
        .post(token, &format!("/v1/me/servers/{server}/authorize"))
        .await;
    assert_eq!(status, 200, "authorize answers the URL: {body}");
    let url = body["authorization_url"]
        .as_str()
        .unwrap_or_else(|| panic!("no authorization_url in {body}"));
    let authorized = follow_authorization_to(finish, redirect_uri, url, token).await;
    (authorized.status, authorized.page)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flow_crosses_replicas_and_one_refresh_serves_100_calls_on_both() {
    const TTL: Duration = Duration::from_secs(8);
    let ports = Ports::new().await;
    let peers = oauth_peers(&ports.redirect_uri(), TTL.as_secs()).await;
    let (peer, alpha) = (&peers.peer, &peers.server);
    let mut deployment = Deployment::new("flow", SHARED_REDIS).await;
    // Use the access token until it has really expired (the default refreshes a minute ahead,
    // which would refresh an 8-second token on every use).
    deployment.oauth_extra = "refresh_ahead = \"0s\"".to_owned();
    let replicas = start_with_alpha("flow", &deployment, &ports, &alpha.url).await;
    let (one, two) = (&replicas.one, &replicas.two);
    let alice = jwt("alice");

    // 1. Started on replica 1, the callback lands on replica 2.
    let (status, page) = authorize_across(one, two, &ports.redirect_uri(), &alice, "alpha").await;
    assert_eq!(
        status,
        200,
        "callback on replica 2: {page}\n{}",
        replicas.logs()
    );
    assert!(page.contains("\"connected\":true"), "{page}");
    assert_eq!(two.row(&alice, "alpha").await["state"], "connected");
    // Replica 1 uses the same tokens from PostgreSQL, without a second authorization.
    let (status, body) = one.post(&alice, "/v1/me/servers/alpha/reconnect").await;
    assert_eq!(
        (status, &body["connected"]),
        (200, &Value::Bool(true)),
        "{body}"
    );
    let stats = peer.stats().await.expect("peer stats");
    assert_eq!(stats["grants"]["authorization_code"], 1, "{stats}");

    // 2. An MCP client on each replica; both see alice's tools.
    let client_one = mcp_client(&one.base, &alice).await;
    let client_two = mcp_client(&two.base, &alice).await;
    for client in [&client_one, &client_two] {
        let mut names = tool_names(client).await;
        names.sort();
        assert_eq!(names, ["alpha__add", "alpha__echo"]);
    }

    // 3. The access token expires; 100 calls at once, half on each replica.
    wait_expired(peer, alpha, TTL).await;
    let before = token_requests(peer).await;
    let refreshes_before = peer.grant_count("refresh_token").await.expect("stats");
    let calls = (0..100i64).map(|i| {
        let client = if i % 2 == 0 { &client_one } else { &client_two };
        async move { (i, call(client, "alpha__add", add_args(i, 1000)).await) }
    });
    for (i, result) in join_all(calls).await {
        assert_ne!(
            result["isError"],
            true,
            "call {i}: {result}\n{}",
            replicas.logs()
        );
        assert_eq!(result_text(&result), (i + 1000).to_string(), "call {i}");
    }
    let after = token_requests(peer).await;
    let stats = peer.stats().await.expect("peer stats");
    println!(
        "100 calls over 2 replicas with an expired token: {} token request(s); stats {stats}",
        after - before
    );
    assert_eq!(
        after - before,
        1,
        "exactly one request at the token endpoint for 100 calls on two replicas: {stats}\n{}",
        replicas.logs()
    );
    assert_eq!(
        peer.grant_count("refresh_token").await.expect("stats"),
        refreshes_before + 1
    );
    assert_eq!(stats["grantsRevoked"], 0, "{stats}");

    // 4. The family is intact: once the new token expired too, a call on the other replica
    //    refreshes again with the rotated refresh token.
    wait_expired(peer, alpha, TTL).await;
    let result = call(&client_two, "alpha__add", add_args(2, 3)).await;
    assert_eq!(result_text(&result), "5", "{result}\n{}", replicas.logs());
    let result = call(&client_one, "alpha__add", add_args(3, 3)).await;
    assert_eq!(result_text(&result), "6", "{result}");
    let stats = peer.stats().await.expect("peer stats");
    assert_eq!(
        peer.grant_count("refresh_token").await.expect("stats"),
        refreshes_before + 2,
        "{stats}"
    );
    assert!(
        stats["grantErrors"]
            .as_object()
            .is_none_or(|m| m.is_empty()),
        "no refresh was refused (reuse detection would revoke the family): {stats}"
    );
    assert_eq!(stats["grantsRevoked"], 0, "{stats}");

    let _ = client_one.cancel().await;
    let _ = client_two.cancel().await;
    replicas.one.kill().await;
    replicas.two.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_login_storm_through_both_replicas_keeps_the_origin_limit_as_a_whole() {
    const LIMIT: u64 = 3;
    const USERS: usize = 40;
    let tools = DemoTools::default().with_init_delay(Duration::from_millis(150));
    let upstream = tether_testkit::serve_streamable_http(tools.clone(), "127.0.0.1:0")
        .await
        .expect("the upstream starts");
    let deployment = Deployment::new("storm", SHARED_REDIS).await;
    let ports = Ports::new().await;
    let rest = format!(
        r#"[reconnect]
stagger = "0ms"
include_non_oauth = true

[limits]
max_in_flight = {LIMIT}
per_second = 0

[[servers]]
name = "demo"
url = "{}"
"#,
        upstream.url
    );
    let replicas = Pair::start("storm", &deployment, &ports, &rest, &[]).await;
    let started = Instant::now();
    let logins = (0..USERS).map(|i| {
        let replica = if i % 2 == 0 {
            &replicas.one
        } else {
            &replicas.two
        };
        async move {
            let (status, body) = replica
                .post(&jwt(&format!("user{i}")), "/v1/me/reconnect")
                .await;
            assert_eq!(status, 202, "{body}");
        }
    });
    join_all(logins).await;
    wait_for(
        "every user's session to be initialized",
        Duration::from_secs(60),
        || async { (tools.initialized() >= USERS as u64).then_some(()) },
    )
    .await;
    let peak = tools.peak_initializing();
    println!(
        "{USERS} logins over 2 replicas: all initialized in {:?}, peak {peak} concurrent initialize (limit {LIMIT})",
        started.elapsed()
    );
    assert!(
        peak <= LIMIT,
        "the upstream saw {peak} concurrent handshakes from two replicas with a limit of {LIMIT}\n{}",
        replicas.logs()
    );
    // Each replica alone could fill the limit: the limit was reached, not just respected.
    assert_eq!(peak, LIMIT, "the storm should fill the shared limit");
    for i in [0, 1] {
        let replica = if i == 0 { &replicas.one } else { &replicas.two };
        let row = replica
            .wait_state(
                &jwt(&format!("user{i}")),
                "demo",
                "connected",
                Duration::from_secs(30),
            )
            .await;
        assert_eq!(row["tools"], 2, "{row}");
    }
    replicas.one.kill().await;
    replicas.two.kill().await;
    upstream.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tracker_and_breaker_states_written_by_one_replica_rule_the_other() {
    let (url, attempts, counter) = dead_upstream().await;
    let (refusing_url, refusing) = refusing_upstream().await;
    let deployment = Deployment::new("breaker", SHARED_REDIS).await;
    let ports = Ports::new().await;
    let rest = format!(
        r#"[reconnect]
stagger = "0ms"
include_non_oauth = true
default_init_timeout = "3s"

[breaker]
failure_threshold = 2
open_base = "2m"
open_cap = "5m"

[[servers]]
name = "dead"
url = "{url}"

[[servers]]
name = "refusing"
url = "{refusing_url}"
"#
    );
    let replicas = Pair::start("breaker", &deployment, &ports, &rest, &[]).await;
    let (one, two) = (&replicas.one, &replicas.two);
    let alice = jwt("alice");
    let bob = jwt("bob");

    // Replica 1 fails to connect alice to a server that refuses her (the pair's own failure,
    // which cools down): the tracker's failure entry is shared.
    let (status, body) = one.post(&alice, "/v1/me/servers/refusing/reconnect").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["connected"], false, "{body}");
    let row_one = one.row(&alice, "refusing").await;
    let row_two = two.row(&alice, "refusing").await;
    println!("after one failure: replica 1 {row_one}; replica 2 {row_two}");
    assert_eq!(row_one["state"], "failed", "{row_one}");
    assert_eq!(
        row_two["state"], "failed",
        "replica 2 sees replica 1's failure"
    );
    assert_eq!(row_two["retry_at"], row_one["retry_at"]);
    assert_eq!(row_two["last_error"], row_one["last_error"]);
    // The login hook on replica 2 respects that cooldown: the cooling pair is not scheduled
    // (the never-tried one is).
    let (status, body) = two.post(&alice, "/v1/me/reconnect").await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        body["scheduled"],
        serde_json::json!(["dead"]),
        "in cooldown on the other replica: {body}"
    );
    // That scheduled attempt is the origin's first transport failure.
    two.wait_state(&alice, "dead", "failed", Duration::from_secs(30))
        .await;
    let seen = attempts.load(Ordering::SeqCst);
    assert!(
        seen >= 1,
        "the login hook's attempt reached the dead upstream"
    );

    // A second failure on replica 1 opens the origin's breaker; replica 2 then refuses to
    // connect anyone to that upstream without touching it.
    let (_, body) = one.post(&alice, "/v1/me/servers/dead/reconnect").await;
    assert_eq!(body["connected"], false, "{body}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let seen_before_two = attempts.load(Ordering::SeqCst);
    assert!(
        seen_before_two > seen,
        "replica 1's second attempt reached the upstream"
    );
    let (status, body) = two.post(&bob, "/v1/me/servers/dead/reconnect").await;
    assert_eq!(status, 200, "{body}");
    println!("bob on replica 2 after replica 1 opened the breaker: {body}");
    assert_eq!(body["connected"], false, "{body}");
    assert_eq!(body["state"], "circuit_open", "{body}\n{}", replicas.logs());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        attempts.load(Ordering::SeqCst),
        seen_before_two,
        "replica 2 connected to an upstream whose breaker replica 1 opened"
    );
    counter.abort();
    refusing.abort();
    replicas.one.kill().await;
    replicas.two.kill().await;
}

/// `/readyz`'s shared-state detail and the degraded gauge of one replica.
async fn shared_state_view(replica: &GatewayProcess) -> (String, f64) {
    let body: Value = replica
        .http
        .get(replica.url("/readyz"))
        .send()
        .await
        .expect("GET /readyz answers")
        .json()
        .await
        .expect("readyz JSON");
    let detail = body["checks"]
        .as_array()
        .and_then(|checks| checks.iter().find(|c| c["name"] == "shared_state"))
        .and_then(|c| c["detail"].as_str())
        .unwrap_or_default()
        .to_owned();
    let degraded = metric_sum(&replica.metrics().await, "tether_shared_state_degraded");
    (detail, degraded)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_stopped_mid_run_degrades_both_replicas_and_they_share_again_when_it_is_back() {
    let mut redis = PrivateRedis::start().await.expect("a private redis-server");
    let tools = DemoTools::default();
    let upstream = tether_testkit::serve_streamable_http(tools.clone(), "127.0.0.1:0")
        .await
        .expect("the upstream starts");
    // Refused for the pair itself, so its failure is a shared cooldown entry (an origin's
    // transport failure leaves none: its breaker owns it).
    let (dead_url, counter) = refusing_upstream().await;
    let deployment = Deployment::new("redis", &redis.url()).await;
    let ports = Ports::new().await;
    let rest = format!(
        r#"[reconnect]
stagger = "0ms"
include_non_oauth = true
default_init_timeout = "3s"

[[servers]]
name = "demo"
url = "{}"

[[servers]]
name = "dead"
url = "{dead_url}"
"#,
        upstream.url
    );
    let replicas = Pair::start("redis", &deployment, &ports, &rest, &[]).await;
    let (one, two) = (&replicas.one, &replicas.two);
    let alice = jwt("alice");
    let client = mcp_client(&one.base, &alice).await;
    assert_eq!(
        result_text(&call(&client, "demo__add", add_args(1, 2)).await),
        "3"
    );
    for replica in [one, two] {
        let (detail, degraded) = shared_state_view(replica).await;
        assert_eq!((detail.as_str(), degraded), ("shared (Redis)", 0.0));
    }

    // Redis goes away: both keep serving on their own state and say so.
    redis.stop().await;
    let result = call(&client, "demo__add", add_args(20, 22)).await;
    assert_eq!(
        result_text(&result),
        "42",
        "serving continues: {result}\n{}",
        replicas.logs()
    );
    let (status, body) = two.post(&alice, "/v1/me/servers/demo/reconnect").await;
    assert_eq!(
        (status, &body["connected"]),
        (200, &Value::Bool(true)),
        "{body}"
    );
    for replica in [one, two] {
        let (detail, degraded) = wait_for(
            "the replica to report degraded shared state",
            Duration::from_secs(30),
            || async {
                let view = shared_state_view(replica).await;
                (view.1 == 1.0).then_some(view)
            },
        )
        .await;
        assert!(detail.starts_with("degraded"), "{detail}");
        assert_eq!(degraded, 1.0);
        let ready = replica
            .http
            .get(replica.url("/readyz"))
            .send()
            .await
            .expect("readyz");
        assert_eq!(ready.status(), 200, "degraded is still ready");
    }

    // Redis is back (empty): both share again, and a failure on one is seen by the other.
    redis.start_again().await.expect("redis-server restarts");
    for replica in [one, two] {
        wait_for(
            "the replica to share again",
            Duration::from_secs(60),
            || async {
                let view = shared_state_view(replica).await;
                (view.1 == 0.0 && view.0 == "shared (Redis)").then_some(())
            },
        )
        .await;
    }
    let (_, body) = one.post(&alice, "/v1/me/servers/dead/reconnect").await;
    assert_eq!(body["connected"], false, "{body}");
    let row = two.row(&alice, "dead").await;
    assert_eq!(
        row["state"],
        "failed",
        "shared again: {row}\n{}",
        replicas.logs()
    );
    assert_eq!(
        result_text(&call(&client, "demo__add", add_args(2, 2)).await),
        "4"
    );
    let _ = client.cancel().await;
    counter.abort();
    replicas.one.kill().await;
    replicas.two.kill().await;
    upstream.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_restarted_gives_clear_errors_loses_no_token_and_recovers_without_restart() {
    let postgres = PrivatePostgres::start()
        .await
        .expect("a private PostgreSQL cluster (initdb, pg_ctl)");
    let ports = Ports::new().await;
    let peers = oauth_peers(&ports.redirect_uri(), 300).await;
    let (peer, alpha) = (&peers.peer, &peers.server);
    let deployment = Deployment::on("pgrestart", postgres.url(), SHARED_REDIS);
    let replicas = start_with_alpha("pgrestart", &deployment, &ports, &alpha.url).await;
    let (one, two) = (&replicas.one, &replicas.two);
    let alice = jwt("alice");
    let (status, page) = authorize_across(one, one, &ports.redirect_uri(), &alice, "alpha").await;
    assert_eq!(status, 200, "{page}");
    let client = mcp_client(&one.base, &alice).await;
    assert_eq!(
        result_text(&call(&client, "alpha__add", add_args(1, 1)).await),
        "2"
    );

    // PostgreSQL stops.
    postgres.stop().await.expect("pg_ctl stop");
    let (status, body) = two.post(&alice, "/v1/me/servers/alpha/reconnect").await;
    println!("reconnect while PostgreSQL is down: {status} {body}");
    let ready = one
        .http
        .get(one.url("/readyz"))
        .send()
        .await
        .expect("readyz");
    let ready_status = ready.status();
    let ready_body: Value = ready.json().await.expect("readyz JSON");
    println!("readyz while PostgreSQL is down: {ready_status} {ready_body}");
    assert_eq!(
        ready_status, 503,
        "not ready without its store: {ready_body}"
    );
    let result = call(&client, "alpha__add", add_args(2, 2)).await;
    println!("a call while PostgreSQL is down: {result}");
    assert_eq!(result["isError"], true, "{result}");
    let text = result_text(&result);
    assert!(
        text.contains("store unavailable") && text.contains("Retry in a moment"),
        "the error says what is wrong: {text}"
    );
    assert_eq!(
        body["last_error"]
            .as_str()
            .map(|e| e.contains("store unavailable")),
        Some(true),
        "the reconnect answer names the store: {body}"
    );
    // Tether's own outage is not the upstream's fault: no breaker opened, no cooldown.
    let row = two.row(&alice, "alpha").await;
    assert_ne!(row["state"], "circuit_open", "{row}");

    for replica in [one, two] {
        let logs = replica.logs();
        assert!(!logs.contains("panicked"), "{logs}");
    }

    // PostgreSQL is back: the same tokens work, no new authorization, no restart.
    postgres.start_again().await.expect("pg_ctl start");
    wait_for(
        "a call to succeed again",
        Duration::from_secs(60),
        || async {
            let result = call(&client, "alpha__add", add_args(20, 22)).await;
            (result_text(&result) == "42").then_some(())
        },
    )
    .await;
    // The failed attempt during the outage left no cooldown: the login hook schedules it.
    let (_, login) = two.post(&alice, "/v1/me/reconnect").await;
    assert_eq!(
        login["scheduled"],
        serde_json::json!(["alpha"]),
        "no cooldown after a store outage: {login}"
    );
    two.wait_state(&alice, "alpha", "connected", Duration::from_secs(30))
        .await;
    let stats = peer.stats().await.expect("peer stats");
    assert_eq!(
        stats["grants"]["authorization_code"], 1,
        "no new authorization was needed: {stats}"
    );
    let ready = one
        .http
        .get(one.url("/readyz"))
        .send()
        .await
        .expect("readyz");
    assert_eq!(ready.status(), 200);
    let _ = client.cancel().await;
    replicas.one.kill().await;
    replicas.two.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_delete_on_one_replica_wins_over_a_refresh_in_flight_on_the_other() {
    const TTL: Duration = Duration::from_secs(4);
    /// How long the authorization server holds its refresh answer.
    const SLOW: Duration = Duration::from_secs(3);
    let ports = Ports::new().await;
    let peers = oauth_peers(&ports.redirect_uri(), TTL.as_secs()).await;
    let (peer, alpha) = (&peers.peer, &peers.server);
    let mut deployment = Deployment::new("delete-race", SHARED_REDIS).await;
    deployment.oauth_extra = "refresh_ahead = \"0s\"".to_owned();
    let replicas = start_with_alpha("delete-race", &deployment, &ports, &alpha.url).await;
    let (one, two) = (&replicas.one, &replicas.two);
    let alice = jwt("alice");
    let (status, page) = authorize_across(one, one, &ports.redirect_uri(), &alice, "alpha").await;
    assert_eq!(status, 200, "{page}\n{}", replicas.logs());
    let client_one = Arc::new(mcp_client(&one.base, &alice).await);
    assert_eq!(
        result_text(&call(&client_one, "alpha__add", add_args(1, 1)).await),
        "2"
    );

    // The access token expires; a call on replica 1 refreshes, and the authorization server
    // (which rotates refresh tokens) takes its time to answer.
    wait_expired(peer, alpha, TTL).await;
    let refreshes_before = peer.grant_count("refresh_token").await.expect("stats");
    peer.set_token_mode(0, SLOW).await.expect("token mode");
    let requests_before = token_requests(peer).await;
    let calling = tokio::spawn({
        let client = client_one.clone();
        async move { call(&client, "alpha__add", add_args(2, 2)).await }
    });
    wait_for(
        "replica 1's refresh at the token endpoint",
        Duration::from_secs(10),
        || async { (token_requests(peer).await > requests_before).then_some(()) },
    )
    .await;

    // Meanwhile alice removes the server on replica 2.
    let response = two
        .http
        .delete(two.url("/v1/me/servers/alpha"))
        .bearer_auth(&alice)
        .send()
        .await
        .expect("DELETE answers");
    assert_eq!(response.status().as_u16(), 204);
    let _ = tokio::time::timeout(Duration::from_secs(30), calling)
        .await
        .expect("the call on replica 1 ends");
    peer.set_token_mode(0, Duration::ZERO)
        .await
        .expect("token mode");
    assert_eq!(
        peer.grant_count("refresh_token").await.expect("stats"),
        refreshes_before + 1,
        "the refresh reached the authorization server and was answered"
    );
    // Bounded: a late save of the rotated tokens would land within a second.
    tokio::time::sleep(Duration::from_secs(1)).await;

    // The rotated tokens were not put back: replica 2 cannot connect alice, and replica 1's
    // live session, whose requests take their token from the store, cannot call for her.
    let (status, body) = two.post(&alice, "/v1/me/servers/alpha/reconnect").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (&body["connected"], &body["state"]),
        (&Value::Bool(false), &Value::from("needs_authorization")),
        "{body}\n{}",
        replicas.logs()
    );
    let result = call(&client_one, "alpha__add", add_args(3, 4)).await;
    assert_eq!(result["isError"], true, "{result}\n{}", replicas.logs());
    assert!(
        result_text(&result).contains("authoriz"),
        "{result}\n{}",
        replicas.logs()
    );
    if let Ok(client) = Arc::try_unwrap(client_one) {
        let _ = client.cancel().await;
    }
    replicas.one.kill().await;
    replicas.two.kill().await;
}

/// What a connect learns of an upstream's wire is the deployment's: replica 1 asks an
/// earlier revision's server `server/discover` once and falls back to `initialize`; replica 2,
/// connecting another user to it, goes straight to `initialize` (the memory is in Redis).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_upstreams_wire_is_discovered_once_for_all_replicas() {
    // The testkit's server speaks the session revisions only: it refuses server/discover.
    let upstream = tether_testkit::serve_streamable_http(DemoTools::default(), "127.0.0.1:0")
        .await
        .expect("demo server");
    let ports = Ports::new().await;
    let deployment = Deployment::new("wires", SHARED_REDIS).await;
    let rest = format!("[[servers]]\nname = \"demo\"\nurl = \"{}\"\n", upstream.url);
    let replicas = Pair::start("wires", &deployment, &ports, &rest, &[]).await;

    let (status, body) = replicas
        .one
        .post(&jwt("alice"), "/v1/me/servers/demo/reconnect")
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["connected"], true, "{body}\n{}", replicas.logs());
    assert_eq!(upstream.discover_probes(), 1, "replica 1 discovered it");

    let (status, body) = replicas
        .two
        .post(&jwt("bob"), "/v1/me/servers/demo/reconnect")
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["connected"], true, "{body}\n{}", replicas.logs());
    assert_eq!(
        upstream.discover_probes(),
        1,
        "replica 2 knew the wire from replica 1\n{}",
        replicas.logs()
    );
}

/// A user removing a server on one replica: the other replica closes its own session of the
/// pair and stops listing the pair's tools at once (a notice over Redis pub/sub), instead of
/// when that session idles out. Another user's pair stays connected.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_server_removed_on_one_replica_is_forgotten_on_the_other() {
    let upstream = tether_testkit::serve_streamable_http(DemoTools::default(), "127.0.0.1:0")
        .await
        .expect("demo server");
    let ports = Ports::new().await;
    let deployment = Deployment::new("forget", SHARED_REDIS).await;
    let rest = format!("[[servers]]\nname = \"demo\"\nurl = \"{}\"\n", upstream.url);
    let replicas = Pair::start("forget", &deployment, &ports, &rest, &[]).await;
    let (one, two) = (&replicas.one, &replicas.two);
    let (alice, bob) = (jwt("alice"), jwt("bob"));
    for (replica, user) in [(one, &alice), (two, &alice), (one, &bob)] {
        let (status, body) = replica.post(user, "/v1/me/servers/demo/reconnect").await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["connected"], true, "{body}\n{}", replicas.logs());
    }
    let before = one.row(&alice, "demo").await;
    assert!(before["tools"].as_u64() > Some(0), "{before}");
    // Both replicas subscribe in the background as they start; a notice sent before that is
    // lost by design, so the test waits until Redis counts both subscribers.
    let redis = redis::Client::open(SHARED_REDIS)
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("Redis on 127.0.0.1:6379");
    let channel = format!("{}:forgotten", deployment.prefix);
    wait_for(
        "both replicas to listen for forgotten pairs",
        Duration::from_secs(10),
        || {
            let (mut redis, channel) = (redis.clone(), channel.clone());
            async move {
                let counts: Vec<(String, u64)> = redis::cmd("PUBSUB")
                    .arg("NUMSUB")
                    .arg(&channel)
                    .query_async(&mut redis)
                    .await
                    .expect("PUBSUB NUMSUB");
                (counts.first().map(|(_, n)| *n) == Some(2)).then_some(())
            }
        },
    )
    .await;

    let removed = two
        .http
        .delete(two.url("/v1/me/servers/demo"))
        .bearer_auth(&alice)
        .send()
        .await
        .expect("DELETE answers");
    assert_eq!(removed.status().as_u16(), 204);
    wait_for(
        "replica 1 to forget alice's pair",
        Duration::from_secs(5),
        || async {
            let row = one.row(&alice, "demo").await;
            (row["state"] == "disconnected" && row["tools"] == 0).then_some(())
        },
    )
    .await;
    let bobs = one.row(&bob, "demo").await;
    assert_eq!(bobs["state"], "connected", "{bobs}\n{}", replicas.logs());
}
