//! The protected MCP server in front of the oidc-provider peer, seen from a plain HTTP client:
//! its challenge, its RFC 9728 metadata and its refusal of tokens the peer does not know.
//! (Whole authorizations against it are `tether connect`'s tests: crates/tether/tests/connect_cli.rs.)

use std::time::Duration;

use serde_json::{Value, json};
use tether_testkit::{DemoTools, OidcPeer, ProtectionConfig, serve_protected};

const STEP: Duration = Duration::from_secs(30);

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(STEP)
        .build()
        .expect("the HTTP client builds")
}

fn initialize() -> String {
    json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "testkit-test", "version": "0"}}
    })
    .to_string()
}

#[tokio::test]
async fn challenges_publishes_metadata_and_refuses_unknown_tokens() {
    let peer = tokio::time::timeout(STEP, OidcPeer::spawn())
        .await
        .expect("the peer starts in time")
        .expect("the oidc-provider peer starts");
    let tools = DemoTools::default();
    let server = serve_protected(
        tools.clone(),
        "127.0.0.1:0",
        ProtectionConfig::oidc_peer(&peer.issuer),
    )
    .await
    .expect("the protected server starts");
    assert!(server.addr.ip().is_loopback());
    let http = client();

    let bare = http
        .post(&server.url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(initialize())
        .send()
        .await
        .expect("request without a token");
    assert_eq!(bare.status().as_u16(), 401);
    let challenge = bare
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .expect("a WWW-Authenticate challenge")
        .to_owned();
    assert_eq!(
        challenge,
        format!(
            r#"Bearer resource_metadata="{}/.well-known/oauth-protected-resource/mcp", scope="mcp:tools""#,
            server.base
        )
    );

    let forged = http
        .post(&server.url)
        .bearer_auth("not-a-token-the-peer-issued")
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(initialize())
        .send()
        .await
        .expect("request with an unknown token");
    assert_eq!(forged.status().as_u16(), 401);
    let challenge = forged
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .expect("a challenge")
        .to_owned();
    assert!(
        challenge.starts_with(r#"Bearer error="invalid_token", "#),
        "{challenge}"
    );
    assert_eq!(server.refused(), 2);
    assert!(server.accepted_tokens().is_empty());
    assert_eq!(tools.initialized(), 0, "nothing reached the MCP service");

    let metadata: Value = serde_json::from_str(
        &http
            .get(&server.metadata_url)
            .send()
            .await
            .expect("metadata request")
            .text()
            .await
            .expect("metadata body"),
    )
    .expect("metadata is JSON");
    assert_eq!(metadata["resource"], json!(server.url));
    assert_eq!(metadata["authorization_servers"], json!([peer.issuer]));
    assert_eq!(metadata["scopes_supported"], json!(["mcp:tools"]));

    // The peer's own discovery document is where the metadata points.
    let discovery: Value = serde_json::from_str(
        &http
            .get(format!("{}/.well-known/openid-configuration", peer.issuer))
            .send()
            .await
            .expect("discovery request")
            .text()
            .await
            .expect("discovery body"),
    )
    .expect("discovery is JSON");
    assert_eq!(discovery["issuer"], json!(peer.issuer));
    assert_eq!(
        discovery["introspection_endpoint"],
        json!(format!("{}/token/introspection", peer.issuer))
    );
    server.stop().await;
}
