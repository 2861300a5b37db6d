//! Forgetting tokens revokes their grant at the authorization server (RFC 7009), counted by
//! oidc-provider: a user removing a server (`DELETE /v1/me/servers/{name}`, the peer's
//! confidential static client), and an operator deleting a catalog server (a client Tether
//! registered dynamically), whose grants are revoked in the background before the tokens go
//! (checked in the gateway's storage).
//!
//! Needs `npm ci` in crates/tether-oauth/tests/peers.

mod support;

use std::time::{Duration, Instant};

use serde_json::json;

use support::gateway_process::{
    ADMIN_PASSWORD, ADMIN_USER, GatewayProcess, Launch, TempDir, add_args,
    authorize_through_gateway, call, client_secret_env, config_text, free_port, oauth_peers,
    oauth_server, result_text,
};
use support::{jwt, mcp_client};

async fn grants_revoked(peers: &support::gateway_process::OAuthPeers) -> u64 {
    let stats = peers.peer.stats().await.expect("peer stats");
    stats["grantsRevoked"].as_u64().unwrap_or(0)
}

/// Polls until the peer counts more revoked grants than `before`, at most 15 s.
async fn revoked_after(peers: &support::gateway_process::OAuthPeers, before: u64, what: &str) {
    let started = Instant::now();
    while grants_revoked(peers).await <= before {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{what}: the grant was revoked at the authorization server within 15 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_server_revokes_the_grant_at_the_authorization_server() {
    let dir = TempDir::new("revocation");
    let port = free_port().await;
    let redirect_uri = format!("http://127.0.0.1:{port}/oauth/callback");
    let peers = oauth_peers(&redirect_uri, 300).await;
    let config = config_text(
        &dir.path,
        &format!(
            "[catalog]\nallowed_hosts = [\"127.0.0.1\"]\n{}",
            oauth_server("alpha", &peers.server.url)
        ),
    );
    let mut launch = Launch::new(&dir.path);
    launch.listen = format!("127.0.0.1:{port}");
    launch.env.push(client_secret_env());
    let gateway: GatewayProcess = GatewayProcess::start(&launch, &config).await;
    let alice = jwt("alice");

    // The user's own removal of a file server.
    let authorized = authorize_through_gateway(&gateway, &alice, "alpha").await;
    assert_eq!(authorized.status, 200, "{}", authorized.page);
    let client = mcp_client(&gateway.base, &alice).await;
    assert_eq!(
        result_text(&call(&client, "alpha__add", add_args(1, 2)).await),
        "3"
    );
    let before = grants_revoked(&peers).await;
    let removed = gateway
        .http
        .delete(gateway.url("/v1/me/servers/alpha"))
        .bearer_auth(&alice)
        .send()
        .await
        .expect("answers");
    assert_eq!(removed.status().as_u16(), 204);
    revoked_after(&peers, before, "the user's removal").await;

    // An operator's delete of a catalog server with a dynamically registered client.
    let created = gateway
        .http
        .post(gateway.url("/v1/admin/servers"))
        .basic_auth(ADMIN_USER, Some(ADMIN_PASSWORD))
        .json(
            &json!({"name": "beta", "url": peers.server.url, "oauth": true, "init_timeout": "15s"}),
        )
        .send()
        .await
        .expect("answers");
    assert_eq!(created.status().as_u16(), 201);
    let authorized = authorize_through_gateway(&gateway, &alice, "beta").await;
    assert_eq!(authorized.status, 200, "{}", authorized.page);
    assert_eq!(
        result_text(&call(&client, "beta__add", add_args(2, 3)).await),
        "5"
    );
    // The gateway's storage (its SQLite file), read beside it.
    let store = tether_store::sql::SqlStore::open(
        &format!("sqlite://{}", dir.path.join("tether.db").display()),
        tether_store::crypto::Keyring::parse(support::gateway_process::ENCRYPTION_KEY)
            .expect("the gateway's key"),
    )
    .await
    .expect("the gateway's storage opens");
    assert!(
        !store.token_users("beta").await.expect("reads").is_empty(),
        "alice holds tokens of beta"
    );
    let before = grants_revoked(&peers).await;
    let deleted = gateway
        .http
        .delete(gateway.url("/v1/admin/servers/beta"))
        .basic_auth(ADMIN_USER, Some(ADMIN_PASSWORD))
        .send()
        .await
        .expect("answers");
    assert_eq!(deleted.status().as_u16(), 204);
    revoked_after(&peers, before, "the catalog delete").await;
    // And the tokens are gone from the storage.
    let started = Instant::now();
    while !store.token_users("beta").await.expect("reads").is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the deleted server's tokens were deleted within 15 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        store.token_users("alpha").await.expect("reads").is_empty(),
        "the user's removal deleted alpha's tokens"
    );
    store.close().await;

    let _ = client.cancel().await;
    gateway.kill().await;
}
