//! The gateway as a process against OAuth-protected upstreams: the real `tether serve` with its
//! SQLite store, the testkit's protected MCP servers, `oidc-provider` (refresh-token rotation on,
//! short access tokens), an rmcp client and the TypeScript SDK's client on `/mcp`.
//!
//! - a user authorizes through `POST …/authorize` and the callback; tools are listed and called
//!   by both clients; the database holds no plaintext token;
//! - the gateway is killed and started again on the same data: the login hook reconnects every
//!   server, staggered, refreshing the expired access tokens first, with no browser step; the
//!   rotated refresh token was stored (the next refresh works);
//! - `invalid_grant` at refresh: the pair needs authorization and its stub carries a link to the
//!   authorization server, which completes like any other flow;
//! - a server moved to another URL (a reload) is never sent the tokens of its old URL;
//! - the logs (`RUST_LOG=debug`) hold no token, code or secret.
//!
//! Needs `npm ci` in crates/tether-oauth/tests/peers and crates/tether-mcp/tests/peers.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use tether_testkit::{DemoTools, ProtectionConfig, serve_protected};

use support::gateway_process::{
    ADMIN_PASSWORD, ADMIN_USER, GatewayProcess, Launch, TempDir, add_args,
    assert_bytes_contain_none, assert_contains_none, authorize_through_gateway, call,
    client_secret_env, config_text, database_bytes, follow_authorization, free_port, oauth_peers,
    oauth_secrets, oauth_server, result_text, revoke_refresh_token, tail, tool_names,
    ts_client_call, wait_expired, wait_for,
};
use support::{jwt, mcp_client};

fn launch(dir: &std::path::Path, port: u16) -> Launch {
    let mut launch = Launch::new(dir);
    launch.listen = format!("127.0.0.1:{port}");
    // One run of every test logs at debug level: the leak checks read it.
    launch.rust_log = "debug".to_owned();
    launch.env.push(client_secret_env());
    launch
}

fn grant_errors(stats: &Value) -> Vec<String> {
    stats["grantErrors"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn authorize_call_from_rust_and_typescript_then_restart_refreshes_and_reconnects() {
    const TTL: Duration = Duration::from_secs(6);
    const STAGGER: Duration = Duration::from_millis(1500);
    let dir = TempDir::new("oauth");
    let port = free_port().await;
    let redirect_uri = format!("http://127.0.0.1:{port}/oauth/callback");
    let peers = oauth_peers(&redirect_uri, TTL.as_secs()).await;
    let peer = &peers.peer;
    let alpha = &peers.server;
    let beta_tools = DemoTools::default();
    let beta = serve_protected(
        beta_tools.clone(),
        "127.0.0.1:0",
        ProtectionConfig::oidc_peer(&peer.issuer),
    )
    .await
    .expect("the second protected server starts");
    let config = config_text(
        &dir.path,
        &format!(
            "[reconnect]\nstagger = \"{}ms\"\n{}{}",
            STAGGER.as_millis(),
            oauth_server("alpha", &alpha.url),
            oauth_server("beta", &beta.url)
        ),
    );
    let mut launch = launch(&dir.path, port);
    let gateway = GatewayProcess::start(&launch, &config).await;
    assert_eq!(gateway.redirect_uri(), redirect_uri);
    let alice = jwt("alice");
    let mut codes = Vec::new();

    // 1. Authorize both servers: POST …/authorize, /oauth/begin, the peer's steps, the callback,
    //    the host's confirmation.
    for server in ["alpha", "beta"] {
        let authorized = authorize_through_gateway(&gateway, &alice, server).await;
        assert_eq!(
            authorized.status, 200,
            "the host's confirmation for {server}: {}",
            authorized.page
        );
        let answer: serde_json::Value =
            serde_json::from_str(&authorized.page).expect("the confirmation answers JSON");
        assert_eq!(answer["server"], server, "{answer}");
        assert_eq!(answer["connected"], true, "{answer}");
        codes.push(authorized.code);
        codes.push(authorized.completion_code);
        let row = gateway.row(&alice, server).await;
        assert_eq!(row["state"], "connected", "{row}");
        assert_eq!(row["tools"], 2, "{row}");
    }
    let stats = peer.stats().await.expect("peer stats");
    assert_eq!(stats["grants"]["authorization_code"], 2, "{stats}");
    assert_eq!(
        stats["registrations"], 0,
        "the static client is used: {stats}"
    );

    // No plaintext token in the database file or its write-ahead log.
    let secrets = oauth_secrets(peer, &[alpha, &beta]);
    assert!(
        peer.issued_tokens().len() >= 4,
        "the peer's tokens were captured to look for"
    );
    assert_bytes_contain_none(
        "the SQLite database (+ WAL)",
        &database_bytes(&dir.path),
        &secrets,
    );

    // The tools through /mcp: an rmcp client…
    let client = mcp_client(&gateway.base, &alice).await;
    let names = tool_names(&client).await;
    for expected in ["alpha__echo", "alpha__add", "beta__echo", "beta__add"] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} in {names:?}"
        );
    }
    let result = call(&client, "alpha__add", add_args(40, 2)).await;
    assert_eq!(result_text(&result), "42", "{result}");
    assert_ne!(result["isError"], true, "{result}");
    let _ = client.cancel().await;
    // …and the TypeScript SDK's client.
    let ts = ts_client_call(
        &dir.path,
        &gateway.base,
        &alice,
        "beta__add",
        add_args(40, 2),
    )
    .await;
    let ts_names: Vec<&str> = ts["tools"]
        .as_array()
        .expect("tool names")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        ts_names.contains(&"alpha__add") && ts_names.contains(&"beta__echo"),
        "{ts}"
    );
    assert_eq!(result_text(&ts["result"]), "42", "{ts}");
    assert!(beta_tools.calls() >= 1 && peers.tools.calls() >= 1);

    // 2. Kill the gateway; let the access tokens expire at the peer.
    let first_logs = gateway.logs();
    gateway.kill().await;
    wait_expired(peer, alpha, TTL).await;
    wait_expired(peer, &beta, TTL).await;
    let refreshes_before = peer.grant_count("refresh_token").await.expect("peer stats");

    launch.run = 2;
    let gateway = GatewayProcess::start(&launch, &config).await;
    let t0 = Instant::now();
    let (status, body) = gateway.post(&alice, "/v1/me/reconnect").await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["scheduled"], serde_json::json!(["alpha", "beta"]));
    let mut connected_at: [Option<Duration>; 2] = [None, None];
    while connected_at.iter().any(Option::is_none) {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "alpha and beta did not both connect again within 60 s: {:?}\n{}",
            gateway.servers(&alice).await,
            tail(&gateway.logs(), 40)
        );
        let rows = gateway.servers(&alice).await;
        for (i, name) in ["alpha", "beta"].iter().enumerate() {
            let connected = rows
                .iter()
                .any(|r| r["name"] == *name && r["state"] == "connected");
            if connected && connected_at[i].is_none() {
                connected_at[i] = Some(t0.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let beta_at = connected_at[1].expect("beta was seen connected");
    assert!(
        beta_at >= STAGGER,
        "the second server starts one stagger ({STAGGER:?}) after login; it was connected after {beta_at:?}"
    );
    let refreshes_after = peer.grant_count("refresh_token").await.expect("peer stats");
    assert!(
        refreshes_after >= refreshes_before + 2,
        "each expired access token was refreshed before connecting ({refreshes_before} → {refreshes_after})"
    );
    let stats = peer.stats().await.expect("peer stats");
    assert_eq!(
        stats["grants"]["authorization_code"], 2,
        "no new authorization: {stats}"
    );

    // The rotated refresh tokens were stored: after another expiry, the next use refreshes with
    // them (the old ones are spent: rotation is on).
    wait_expired(peer, alpha, TTL).await;
    let client = mcp_client(&gateway.base, &alice).await;
    let result = call(&client, "alpha__add", add_args(40, 2)).await;
    assert_eq!(result_text(&result), "42", "{result}");
    let _ = client.cancel().await;
    let stats = peer.stats().await.expect("peer stats");
    assert!(
        peer.grant_count("refresh_token").await.expect("stats") > refreshes_after,
        "{stats}"
    );
    assert!(
        grant_errors(&stats).is_empty(),
        "no refresh was refused: {stats}"
    );
    // The gateway counts its refreshes by outcome (no user in the labels).
    let metrics = gateway.metrics().await;
    let refreshed = metrics
        .lines()
        .find_map(|l| l.strip_prefix("tether_oauth_refreshes_total{outcome=\"refreshed\"} "))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .expect("tether_oauth_refreshes_total{outcome=\"refreshed\"} in /metrics");
    assert!(refreshed >= 1, "{metrics}");

    // Still no plaintext token at rest, and none, nor the codes or secrets, in the logs.
    let mut secrets = oauth_secrets(peer, &[alpha, &beta]);
    assert_bytes_contain_none(
        "the SQLite database (+ WAL)",
        &database_bytes(&dir.path),
        &secrets,
    );
    secrets.extend(codes);
    secrets.push(alice.clone());
    let logs = format!("{first_logs}\n{}", gateway.logs());
    assert!(
        logs.contains("DEBUG"),
        "the debug log was captured: {}",
        tail(&logs, 5)
    );
    assert_contains_none("the gateway's output at RUST_LOG=debug", &logs, &secrets);
    gateway.kill().await;
}

/// A gateway process in front of the OAuth server "alpha" (its access tokens living
/// `ttl_secs`), which alice has authorized through the gateway and called once.
struct AliceAtAlpha {
    dir: TempDir,
    peers: support::gateway_process::OAuthPeers,
    gateway: GatewayProcess,
    alice: String,
    /// The authorization that connected the pair.
    first: support::gateway_process::Authorized,
    client: rmcp::service::RunningService<rmcp::RoleClient, rmcp::model::ClientConfig>,
}

async fn alice_at_alpha(name: &str, ttl_secs: u64) -> AliceAtAlpha {
    let dir = TempDir::new(name);
    let port = free_port().await;
    let redirect_uri = format!("http://127.0.0.1:{port}/oauth/callback");
    let peers = oauth_peers(&redirect_uri, ttl_secs).await;
    let config = config_text(&dir.path, &oauth_server("alpha", &peers.server.url));
    let gateway = GatewayProcess::start(&launch(&dir.path, port), &config).await;
    let alice = jwt("alice");
    let first = authorize_through_gateway(&gateway, &alice, "alpha").await;
    assert_eq!(first.status, 200, "{}", first.page);
    let client = mcp_client(&gateway.base, &alice).await;
    let result = call(&client, "alpha__add", add_args(40, 2)).await;
    assert_eq!(result_text(&result), "42", "{result}");
    AliceAtAlpha {
        dir,
        peers,
        gateway,
        alice,
        first,
        client,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn invalid_grant_at_refresh_needs_authorization_and_the_stub_links_to_a_tether_flow() {
    const TTL: Duration = Duration::from_secs(4);
    let AliceAtAlpha {
        dir,
        peers,
        gateway,
        alice,
        first,
        client,
    } = alice_at_alpha("invalid-grant", TTL.as_secs()).await;
    let peer = &peers.peer;
    let alpha = &peers.server;

    // The user revokes Tether at the authorization server: every token issued so far, newest
    // first (the current refresh token among them: the peer then revokes the whole grant).
    for token in peer
        .issued_tokens()
        .iter()
        .rev()
        .filter(|t| !t.contains('.'))
    {
        revoke_refresh_token(peer, token).await;
    }
    let stats = peer.stats().await.expect("peer stats");
    assert!(stats["grantsRevoked"].as_u64() >= Some(1), "{stats}");
    // And the access token expires as well.
    let last_call = Instant::now();
    wait_expired(peer, alpha, TTL).await;
    wait_for(
        "the access token's lifetime to pass",
        TTL + Duration::from_secs(5),
        || async move { (last_call.elapsed() > TTL + Duration::from_secs(1)).then_some(()) },
    )
    .await;

    // The next call meets invalid_grant at refresh: an error result, and the pair needs
    // authorization.
    let failed = call(&client, "alpha__add", add_args(1, 2)).await;
    assert_eq!(
        failed["isError"], true,
        "a call with revoked tokens fails: {failed}"
    );
    let row = gateway
        .wait_state(
            &alice,
            "alpha",
            "needs_authorization",
            Duration::from_secs(30),
        )
        .await;
    let stats = peer.stats().await.expect("peer stats");
    assert!(
        grant_errors(&stats)
            .iter()
            .any(|e| e == "refresh_token:invalid_grant"),
        "the refresh was refused with invalid_grant: {stats}"
    );
    let metrics = gateway.metrics().await;
    assert!(
        metrics.lines().any(|l| l
            .starts_with("tether_oauth_refreshes_total{outcome=\"rejected\"} ")
            && !l.ends_with(" 0")),
        "the refused refresh is counted: {metrics}"
    );

    // The stub (same name) explains, with a link to a flow the gateway started: Tether's own
    // `/oauth/begin` link, never the authorization server's URL.
    let names = tool_names(&client).await;
    assert!(names.iter().any(|n| n == "alpha__add"), "{names:?}");
    let stub = call(&client, "alpha__add", add_args(1, 2)).await;
    assert_eq!(stub["isError"], true, "{stub}");
    let text = result_text(&stub);
    assert!(
        !text.contains(&format!("{}/auth", peer.issuer)),
        "no bare authorization server URL in a stub: {text:?}"
    );
    let begin = gateway.url("/oauth/begin/");
    let link = text
        .split_whitespace()
        .map(|w| w.trim_matches(|c: char| matches!(c, '(' | ')' | '<' | '>' | '"' | '\'' | ',')))
        .find(|w| w.starts_with(&begin))
        .unwrap_or_else(|| panic!("the stub's text links to {begin}…: {text:?} (row {row})"))
        .trim_end_matches('.')
        .to_owned();
    // The link is a real flow: following it reconnects the pair.
    let again = follow_authorization(&gateway, &link, &alice).await;
    assert_eq!(again.status, 200, "{}", again.page);
    gateway
        .wait_state(&alice, "alpha", "connected", Duration::from_secs(30))
        .await;
    let result = call(&client, "alpha__add", add_args(40, 2)).await;
    assert_eq!(result_text(&result), "42", "{result}");
    let _ = client.cancel().await;

    let mut secrets = oauth_secrets(peer, &[alpha]);
    assert_bytes_contain_none(
        "the SQLite database (+ WAL)",
        &database_bytes(&dir.path),
        &secrets,
    );
    secrets.extend([first.code, again.code, alice.clone()]);
    assert_contains_none(
        "the gateway's output at RUST_LOG=debug",
        &gateway.logs(),
        &secrets,
    );
    gateway.kill().await;
}

/// A server moves: the configuration names another URL under the same name and is reloaded.
/// The tokens issued for the old URL are never sent to the new one (the new server sees no
/// `Authorization` header until the user authorizes it), the pair needs authorization, and an
/// authorization for the new URL connects it with tokens of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tokens_issued_for_a_servers_old_url_never_reach_its_new_url() {
    let AliceAtAlpha {
        dir,
        peers,
        gateway,
        alice,
        client,
        ..
    } = alice_at_alpha("moved-server", 300).await;
    let old = &peers.server;
    let old_tokens = old.accepted_tokens();
    assert!(!old_tokens.is_empty(), "the old server accepted a token");

    let moved = serve_protected(
        DemoTools::default(),
        "127.0.0.1:0",
        ProtectionConfig::oidc_peer(&peers.peer.issuer),
    )
    .await
    .expect("the new server starts");
    std::fs::write(
        dir.path.join("tether.toml"),
        config_text(&dir.path, &oauth_server("alpha", &moved.url)),
    )
    .expect("rewrites the configuration");
    let answer = gateway
        .http
        .post(gateway.url("/v1/admin/reload"))
        .basic_auth(ADMIN_USER, Some(ADMIN_PASSWORD))
        .send()
        .await
        .expect("answers");
    assert_eq!(answer.status().as_u16(), 200, "the reload is applied");

    // Calls go on (bounded) while the pair moves: the first may still reach the old server
    // over its open session; none may reach the new one with the old server's grant.
    for _ in 0..10 {
        let answer = call(&client, "alpha__add", add_args(1, 2)).await;
        if answer["isError"] == true {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    gateway
        .wait_state(
            &alice,
            "alpha",
            "needs_authorization",
            Duration::from_secs(30),
        )
        .await;
    let sent = moved.header_values("authorization");
    assert!(
        sent.is_empty(),
        "the new server was sent {} Authorization header(s) before any authorization for it",
        sent.len()
    );

    let again = authorize_through_gateway(&gateway, &alice, "alpha").await;
    assert_eq!(again.status, 200, "{}", again.page);
    gateway
        .wait_state(&alice, "alpha", "connected", Duration::from_secs(30))
        .await;
    let result = call(&client, "alpha__add", add_args(2, 3)).await;
    assert_eq!(result_text(&result), "5", "{result}");
    let new_tokens = moved.accepted_tokens();
    assert!(!new_tokens.is_empty(), "the new server accepted a token");
    for header in moved.header_values("authorization") {
        assert!(
            !old_tokens.iter().any(|t| header.ends_with(t.as_str())),
            "a token of the old URL reached the new one"
        );
    }
    let _ = client.cancel().await;
    gateway.kill().await;
    moved.stop().await;
}
