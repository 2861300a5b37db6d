//! The gateway as a process, from the outside: one user's authorization, tools and states are
//! not another's; the OAuth callback refuses forged and replayed `state`s and answers a repeated
//! callback of a completed flow again; bad host tokens get 401, bad JSON-RPC a JSON-RPC error,
//! unknown servers 404, oversize bodies 413.
//!
//! Needs `npm ci` in crates/tether-oauth/tests/peers.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use tether_testkit::oidc;

use support::gateway_process::{
    CLIENT_SECRET_ENV, GatewayProcess, Launch, TempDir, add_args, authorize_through_gateway,
    browser_get, call, client_secret_env, completion_code, config_text, free_port, get_page,
    oauth_peers, result_text, tool_names,
};
use support::{expired_jwt, first_message, initialize_body, jwt, jwt_with, mcp_client, mcp_post};

const MAX_BODY: usize = 64 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn users_callbacks_and_bad_requests_are_kept_apart_by_the_process() {
    let dir = TempDir::new("isolation");
    let port = free_port().await;
    let redirect_uri = format!("http://127.0.0.1:{port}/oauth/callback");
    let peers = oauth_peers(&redirect_uri, 300).await;
    let config = config_text(
        &dir.path,
        &format!(
            r#"[gateway.mcp]
max_body_bytes = {MAX_BODY}

[[servers]]
name = "alpha"
url = "{}"
oauth = true
client_id = "{}"
client_secret_env = "{CLIENT_SECRET_ENV}"
"#,
            peers.server.url,
            oidc::BASIC_CLIENT_ID
        ),
    );
    let mut launch = Launch::new(&dir.path);
    launch.listen = format!("127.0.0.1:{port}");
    launch.env.push(client_secret_env());
    let gateway = GatewayProcess::start(&launch, &config).await;
    let alice = jwt("alice");
    let bob = jwt("bob");

    // Alice authorizes; a repeated callback in the same browser (a reload) and a repeated
    // confirmation by the host answer the same, without a second code exchange.
    let authorized = authorize_through_gateway(&gateway, &alice, "alpha").await;
    assert_eq!(authorized.status, 200, "{}", authorized.page);
    let again = browser_get(
        &gateway,
        &authorized.callback_url,
        Some(&authorized.browser_cookie),
    )
    .await;
    assert_eq!(
        again.status, 303,
        "a repeated callback is answered again: {again:?}"
    );
    assert_eq!(completion_code(&again), authorized.completion_code);
    let (status, body) = gateway
        .post_json(
            &alice,
            "/v1/me/oauth/complete",
            &serde_json::json!({ "code": authorized.completion_code }),
        )
        .await;
    assert_eq!(status, 200, "a repeated confirmation: {body}");
    assert_eq!(body["connected"], true, "{body}");
    let (status, body) = gateway
        .post_json(
            &bob,
            "/v1/me/oauth/complete",
            &serde_json::json!({ "code": authorized.completion_code }),
        )
        .await;
    assert_eq!(
        status, 400,
        "another user cannot reuse Alice's code: {body}"
    );
    let stats = peers.peer.stats().await.expect("peer stats");
    assert_eq!(
        stats["grants"]["authorization_code"], 1,
        "the code was exchanged once: {stats}"
    );

    // Forged states, and a callback without its parameters, are refused with a page.
    let forged_states = [
        "forged-state".to_owned(),
        format!("{}x", authorized.state),
        authorized.state.chars().rev().collect::<String>(),
    ];
    for state in &forged_states {
        let url = format!(
            "{}?code=stolen-code-0123456789&state={}",
            gateway.redirect_uri(),
            url::form_urlencoded::byte_serialize(state.as_bytes()).collect::<String>()
        );
        let (status, page) = get_page(&gateway, &url).await;
        assert_eq!(status, 400, "state {state:?}: {page}");
        assert!(
            page.contains("<h1>This authorization link is not valid</h1>"),
            "{page}"
        );
    }
    let (status, _) = get_page(&gateway, &gateway.redirect_uri()).await;
    assert_eq!(status, 400);
    let row = gateway.row(&alice, "alpha").await;
    assert_eq!(
        row["state"], "connected",
        "forged callbacks change nothing: {row}"
    );

    // Bob sees his own state, not Alice's, and cannot use Alice's authorization.
    let bob_row = gateway.row(&bob, "alpha").await;
    assert_ne!(bob_row["state"], "connected", "{bob_row}");
    assert_eq!(bob_row["tools"], 0, "{bob_row}");
    let bob_client = mcp_client(&gateway.base, &bob).await;
    let bob_tools = tool_names(&bob_client).await;
    assert!(
        !bob_tools.iter().any(|n| n == "alpha__echo"),
        "bob has no tool list of alpha: {bob_tools:?}"
    );
    let upstream_calls = peers.tools.calls();
    let bobs_call = call(&bob_client, "alpha__add", add_args(40, 2)).await;
    assert_eq!(bobs_call["isError"], true, "{bobs_call}");
    assert_ne!(result_text(&bobs_call), "42", "{bobs_call}");
    assert!(
        result_text(&bobs_call).contains(&gateway.url("/oauth/begin/")),
        "bob is sent to authorize for himself, through Tether's link: {bobs_call}"
    );
    let _ = bob_client.cancel().await;
    let bob_row = gateway.row(&bob, "alpha").await;
    assert_eq!(bob_row["state"], "needs_authorization", "{bob_row}");

    // Alice's MCP session is hers: Bob's token on it is refused.
    let init = mcp_post(&gateway.http, &gateway.url("/mcp"), &alice)
        .json(&initialize_body())
        .send()
        .await
        .expect("initialize answers");
    assert_eq!(init.status(), 200);
    let session = init
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .expect("a session id")
        .to_owned();
    let _ = first_message(init).await;
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    let refused = mcp_post(&gateway.http, &gateway.url("/mcp"), &bob)
        .header("mcp-session-id", &session)
        .json(&list)
        .send()
        .await
        .expect("answers");
    assert_eq!(refused.status(), 404, "another user's session is not found");
    let bob_call = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": {"name": "alpha__add", "arguments": {"a": 40, "b": 2}}});
    let refused = mcp_post(&gateway.http, &gateway.url("/mcp"), &bob)
        .header("mcp-session-id", &session)
        .json(&bob_call)
        .send()
        .await
        .expect("answers");
    assert_eq!(refused.status(), 404);
    assert_eq!(
        peers.tools.calls(),
        upstream_calls,
        "none of Bob's calls reached the upstream (with Alice's token)"
    );

    // Bob removing "his" alpha leaves Alice's connected.
    let removed = gateway
        .http
        .delete(gateway.url("/v1/me/servers/alpha"))
        .bearer_auth(&bob)
        .send()
        .await
        .expect("DELETE answers");
    assert_eq!(removed.status(), 204);
    let alice_client = mcp_client(&gateway.base, &alice).await;
    let result = call(&alice_client, "alpha__add", add_args(40, 2)).await;
    assert_eq!(result_text(&result), "42", "{result}");
    let _ = alice_client.cancel().await;
    assert_eq!(gateway.row(&alice, "alpha").await["state"], "connected");

    // Host tokens: expired, wrongly signed, for another audience, missing: 401 everywhere.
    let wrong_secret = {
        let claims = json!({"sub": "alice", "iss": support::ISSUER, "aud": support::AUDIENCE,
            "exp": 4_000_000_000_u64});
        let key = jsonwebtoken::EncodingKey::from_secret(b"not-the-gateway-secret-0123456789");
        jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).expect("signs")
    };
    let other_audience = jwt_with(json!({"sub": "alice", "iss": support::ISSUER,
        "aud": "someone-else", "exp": 4_000_000_000_u64}));
    for token in [
        Some(expired_jwt("alice")),
        Some(wrong_secret),
        Some(other_audience),
        Some("not-a-jwt".to_owned()),
        None,
    ] {
        for (method, path) in [
            ("GET", "/v1/me/servers"),
            ("POST", "/v1/me/reconnect"),
            ("POST", "/v1/me/servers/alpha/authorize"),
            ("POST", "/mcp"),
        ] {
            let mut request = match method {
                "GET" => gateway.http.get(gateway.url(path)),
                _ => gateway.http.post(gateway.url(path)),
            };
            if let Some(token) = &token {
                request = request.bearer_auth(token);
            }
            let response = request
                .header("accept", "application/json, text/event-stream")
                .json(&initialize_body())
                .send()
                .await
                .expect("answers");
            assert_eq!(response.status(), 401, "{method} {path} with {token:?}");
        }
    }

    // Malformed JSON-RPC: a JSON-RPC error, not a crash or an HTML page.
    for body in [
        "{not json".to_owned(),
        json!({"jsonrpc": "2.0", "id": 1}).to_string(),
        json!({"hello": "world"}).to_string(),
    ] {
        let response = mcp_post(&gateway.http, &gateway.url("/mcp"), &alice)
            .body(body.clone())
            .send()
            .await
            .expect("answers");
        let status = response.status();
        assert!(status.is_client_error(), "{body}: {status}");
        let answer: Value = response.json().await.expect("a JSON body");
        assert_eq!(answer["jsonrpc"], "2.0", "{body}: {answer}");
        assert!(answer["error"]["code"].is_i64(), "{body}: {answer}");
    }

    // Unknown servers: 404 on every route that names one.
    for (method, path) in [
        ("POST", "/v1/me/servers/nope/reconnect"),
        ("POST", "/v1/me/servers/nope/authorize"),
        ("DELETE", "/v1/me/servers/nope"),
    ] {
        let request = match method {
            "DELETE" => gateway.http.delete(gateway.url(path)),
            _ => gateway.http.post(gateway.url(path)),
        };
        let response = request.bearer_auth(&alice).send().await.expect("answers");
        assert_eq!(response.status(), 404, "{method} {path}");
    }

    // Oversize bodies: 413.
    let big = json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
        "params": {"name": "alpha__echo", "arguments": {"text": "x".repeat(MAX_BODY * 2)}}});
    let response = mcp_post(&gateway.http, &gateway.url("/mcp"), &alice)
        .json(&big)
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status(), 413);

    // A restart forgets completed flows and the flow was spent: replaying the callback now is
    // refused like any unknown state, and changes nothing.
    gateway.kill().await;
    launch.run = 2;
    let gateway = GatewayProcess::start(&launch, &config).await;
    let (status, page) = get_page(&gateway, &authorized.callback_url).await;
    assert_eq!(status, 400, "a replayed callback after a restart: {page}");
    let stats = peers.peer.stats().await.expect("peer stats");
    assert_eq!(stats["grants"]["authorization_code"], 1, "{stats}");
    let (status, body) = gateway.post(&alice, "/v1/me/servers/alpha/reconnect").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["connected"], true,
        "the stored tokens still work: {body}"
    );
    tokio::time::timeout(Duration::from_secs(30), gateway.kill())
        .await
        .expect("the gateway stops");
}
