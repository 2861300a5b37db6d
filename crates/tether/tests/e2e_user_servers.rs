//! Servers a user adds for themselves (`POST /v1/me/servers`): seen and used by that user only,
//! under the name they chose (two users' `mine` are two servers, each reaching its own
//! upstream), limited per user, checked like the catalog (no internal URL, no operator keys),
//! and deleted by their owner. The gateway runs as a process with the testkit's rmcp servers.

mod support;

use std::time::Duration;

use rmcp::model::CallToolRequestParams;
use serde_json::{Value, json};
use tether_testkit::{DemoTools, serve_streamable_http};

use support::gateway_process::{
    ADMIN_PASSWORD, ADMIN_USER, GatewayProcess, Launch, TempDir, add_args, call, config_text,
    result_text, tool_names,
};
use support::{jwt, mcp_client};

async fn add(gateway: &GatewayProcess, token: &str, body: Value) -> (u16, Value) {
    let response = gateway
        .http
        .post(gateway.url("/v1/me/servers"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_own_server_is_theirs_alone_under_the_name_they_chose() {
    let first = DemoTools::default();
    let second = DemoTools::default();
    let up1 = serve_streamable_http(first.clone(), "127.0.0.1:0")
        .await
        .expect("upstream 1 starts");
    let up2 = serve_streamable_http(second.clone(), "127.0.0.1:0")
        .await
        .expect("upstream 2 starts");
    let dir = TempDir::new("user-servers");
    let config = config_text(
        &dir.path,
        "[catalog]\nuser_allowed_hosts = [\"127.0.0.1\"]\nuser_server_limit = 1\n",
    );
    let gateway = GatewayProcess::start(&Launch::new(&dir.path), &config).await;
    let (alice_token, bob_token) = (jwt("alice"), jwt("bob"));

    let (status, alices) = add(
        &gateway,
        &alice_token,
        json!({"name": "mine", "url": up1.url}),
    )
    .await;
    assert_eq!(status, 201, "{alices}");
    let alices_name = alices["name"].as_str().expect("a name").to_owned();
    assert_eq!(alices["source"], "user");
    let alice = mcp_client(&gateway.base, &alice_token).await;
    assert!(tool_names(&alice).await.contains(&"mine__add".to_owned()));
    assert_eq!(
        result_text(&call(&alice, "mine__add", add_args(1, 2)).await),
        "3"
    );
    assert_eq!(first.calls(), 1);

    // bob does not see alice's; his own "mine" is another server, on his upstream.
    let bob = mcp_client(&gateway.base, &bob_token).await;
    assert!(!tool_names(&bob).await.contains(&"mine__add".to_owned()));
    let mut params = CallToolRequestParams::new("mine__add");
    params.arguments = add_args(1, 1).as_object().cloned();
    let answer = tokio::time::timeout(Duration::from_secs(10), bob.peer().call_tool(params))
        .await
        .expect("answered");
    assert!(answer.is_err(), "alice's server is not bob's: {answer:?}");
    let rows: Value = gateway
        .http
        .get(gateway.url("/v1/me/servers"))
        .bearer_auth(&bob_token)
        .send()
        .await
        .expect("answers")
        .json()
        .await
        .expect("JSON");
    assert!(!rows.to_string().contains(&alices_name), "{rows}");
    let (status, bobs) = add(
        &gateway,
        &bob_token,
        json!({"name": "mine", "url": up2.url}),
    )
    .await;
    assert_eq!(status, 201, "{bobs}");
    assert_ne!(bobs["name"], alices["name"]);
    assert_eq!(
        result_text(&call(&bob, "mine__add", add_args(2, 2)).await),
        "4"
    );
    assert_eq!(
        (first.calls(), second.calls()),
        (1, 1),
        "each reached their own"
    );
    assert_eq!(
        result_text(&call(&alice, "mine__add", add_args(3, 3)).await),
        "6"
    );
    assert_eq!(first.calls(), 2);

    // The limit, the URL policy and the operator's keys.
    let (status, body) = add(
        &gateway,
        &alice_token,
        json!({"name": "more", "url": up1.url}),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("at most 1")),
        "{body}"
    );
    for refused in [
        json!({"name": "meta", "url": "http://169.254.169.254/mcp"}),
        json!({"name": "inner", "url": "https://10.1.2.3/mcp"}),
        json!({"name": "named", "url": up1.url, "prefix": ""}),
        json!({"name": "run", "command": "sh"}),
    ] {
        let (status, body) = add(&gateway, &jwt("carol"), refused.clone()).await;
        assert_eq!(status, 400, "{refused} → {body}");
    }

    // The operator sees both as users' servers.
    let listed: Value = gateway
        .http
        .get(gateway.url("/v1/admin/servers"))
        .basic_auth(ADMIN_USER, Some(ADMIN_PASSWORD))
        .send()
        .await
        .expect("answers")
        .json()
        .await
        .expect("JSON");
    let users = listed
        .as_array()
        .expect("a list")
        .iter()
        .filter(|s| s["source"] == "user")
        .count();
    assert_eq!(users, 2, "{listed}");

    // bob cannot delete alice's; alice can.
    let delete = |token: String, name: String| {
        let request = gateway
            .http
            .delete(gateway.url(&format!("/v1/me/servers/{name}")))
            .bearer_auth(token);
        async move { request.send().await.expect("answers").status().as_u16() }
    };
    assert_eq!(delete(bob_token.clone(), alices_name.clone()).await, 404);
    assert_eq!(delete(alice_token.clone(), alices_name.clone()).await, 204);
    assert!(!tool_names(&alice).await.contains(&"mine__add".to_owned()));
    assert!(
        tool_names(&bob).await.contains(&"mine__add".to_owned()),
        "bob's stays"
    );

    let _ = alice.cancel().await;
    let _ = bob.cancel().await;
    gateway.kill().await;
    up1.stop().await;
    up2.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_turns_users_servers_off_or_keeps_them_to_some_origins() {
    let off_dir = TempDir::new("user-servers-off");
    let off = GatewayProcess::start(
        &Launch::new(&off_dir.path),
        &config_text(&off_dir.path, "[catalog]\nuser_servers = false\n"),
    )
    .await;
    let (status, body) = add(
        &off,
        &jwt("alice"),
        json!({"name": "mine", "url": "https://mcp.example.com/mcp"}),
    )
    .await;
    assert_eq!(status, 404, "switched off: {body}");
    off.kill().await;

    let some_dir = TempDir::new("user-servers-origins");
    let some = GatewayProcess::start(
        &Launch::new(&some_dir.path),
        &config_text(
            &some_dir.path,
            "[catalog]\nuser_server_origins = [\"https://mcp.example.com\"]\n",
        ),
    )
    .await;
    let (status, body) = add(
        &some,
        &jwt("alice"),
        json!({"name": "other", "url": "https://mcp.elsewhere.example/mcp"}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("https://mcp.example.com")),
        "the error names the allowed origins: {body}"
    );
    let (status, body) = add(
        &some,
        &jwt("alice"),
        json!({"name": "allowed", "url": "https://mcp.example.com/mcp"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    some.kill().await;
}
