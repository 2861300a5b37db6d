//! Access by group: a server with `groups = ["eng"]` is seen and used by members of `eng` only
//! (the host token's `groups` claim), on `/mcp` and `/v1/me/…`; a user whose new token lacks
//! the group loses the server at that request, and their session to it is closed. The gateway
//! runs as a process with the testkit's rmcp server as the upstream of both servers.

mod support;

use std::time::Duration;

use rmcp::model::{CallToolRequestParams, ReadResourceRequestParams};
use serde_json::Value;
use tether_testkit::{DemoTools, serve_streamable_http};

use support::gateway_process::{
    GatewayProcess, Launch, TempDir, add_args, call, config_text, result_text, tool_names,
};
use support::{jwt_in_groups, mcp_client};

type Client = rmcp::service::RunningService<rmcp::RoleClient, rmcp::model::ClientConfig>;

async fn refused_call(client: &Client, tool: &str) -> bool {
    let mut params = CallToolRequestParams::new(tool.to_owned());
    params.arguments = add_args(1, 1).as_object().cloned();
    tokio::time::timeout(Duration::from_secs(10), client.peer().call_tool(params))
        .await
        .expect("answered")
        .is_err()
}

/// `GET /v1/me/servers` as `token`: name → state.
async fn rows(gateway: &GatewayProcess, token: &str) -> Vec<(String, String)> {
    let rows: Value = gateway
        .http
        .get(gateway.url("/v1/me/servers"))
        .bearer_auth(token)
        .send()
        .await
        .expect("answers")
        .json()
        .await
        .expect("JSON");
    rows.as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap_or_default().to_owned(),
                r["state"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_groups_server_is_for_its_groups_only_and_leaves_with_the_group() {
    let upstream = serve_streamable_http(DemoTools::default(), "127.0.0.1:0")
        .await
        .expect("the upstream starts");
    let dir = TempDir::new("groups");
    let config = config_text(
        &dir.path,
        &format!(
            "[[servers]]\nname = \"open\"\nurl = \"{url}\"\n\n\
             [[servers]]\nname = \"eng\"\nurl = \"{url}\"\ngroups = [\"eng\", \"ops\"]\n",
            url = upstream.url
        ),
    );
    let gateway = GatewayProcess::start(&Launch::new(&dir.path), &config).await;

    // alice is in eng: both servers.
    let alice_eng = jwt_in_groups("alice", &["eng"]);
    let alice = mcp_client(&gateway.base, &alice_eng).await;
    let names = tool_names(&alice).await;
    assert!(
        names.iter().any(|n| n == "eng__add") && names.iter().any(|n| n == "open__add"),
        "{names:?}"
    );
    assert_eq!(
        result_text(&call(&alice, "eng__add", add_args(2, 2)).await),
        "4"
    );
    assert!(
        rows(&gateway, &alice_eng)
            .await
            .contains(&("eng".to_owned(), "connected".to_owned()))
    );

    // bob is in fin: the open server only, everywhere.
    let bob_fin = jwt_in_groups("bob", &["fin"]);
    let bob = mcp_client(&gateway.base, &bob_fin).await;
    let names = tool_names(&bob).await;
    assert!(names.iter().all(|n| !n.starts_with("eng__")), "{names:?}");
    assert!(names.iter().any(|n| n == "open__add"), "{names:?}");
    assert!(refused_call(&bob, "eng__add").await, "not callable by name");
    let read = tokio::time::timeout(
        Duration::from_secs(10),
        bob.peer().read_resource(ReadResourceRequestParams::new(
            "tether://eng/notes://readme",
        )),
    )
    .await
    .expect("answered");
    assert!(read.is_err(), "nor its resources: {read:?}");
    let bob_rows = rows(&gateway, &bob_fin).await;
    assert!(
        bob_rows.iter().all(|(name, _)| name != "eng"),
        "{bob_rows:?}"
    );
    let reconnect = gateway
        .http
        .post(gateway.url("/v1/me/servers/eng/reconnect"))
        .bearer_auth(&bob_fin)
        .send()
        .await
        .expect("answers");
    assert_eq!(reconnect.status().as_u16(), 404);
    let login = gateway
        .http
        .post(gateway.url("/v1/me/reconnect"))
        .bearer_auth(&bob_fin)
        .send()
        .await
        .expect("answers");
    let scheduled: Value = login.json().await.expect("JSON");
    assert!(
        !scheduled["scheduled"].to_string().contains("eng"),
        "reconnect-on-login leaves it out: {scheduled}"
    );

    // alice's new token lacks the group: gone at the next request, her session closed.
    let alice_fin = jwt_in_groups("alice", &["fin"]);
    let alice_now = mcp_client(&gateway.base, &alice_fin).await;
    let names = tool_names(&alice_now).await;
    assert!(names.iter().all(|n| !n.starts_with("eng__")), "{names:?}");
    assert!(refused_call(&alice_now, "eng__add").await);
    let seen_with_old_token = rows(&gateway, &alice_eng).await;
    assert!(
        seen_with_old_token.contains(&("eng".to_owned(), "disconnected".to_owned())),
        "the session to the server was closed: {seen_with_old_token:?}"
    );

    for client in [alice, bob, alice_now] {
        let _ = client.cancel().await;
    }
    gateway.kill().await;
    upstream.stop().await;
}
