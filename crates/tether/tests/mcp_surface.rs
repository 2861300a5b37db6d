//! The MCP surface beyond tools on `/mcp`, with real peers: the testkit's rmcp server (`demo`,
//! Streamable HTTP: text and binary resources, templates, a prompt with an embedded resource,
//! completion, logging) and `@modelcontextprotocol/server-everything` (`everything`, stdio),
//! asked by rmcp's client through the gateway.
//!
//! Needs `npm ci` in crates/tether-mcp/tests/peers (server-everything).

mod support;

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine;
use rmcp::model::{
    ArgumentInfo, CompleteRequestParams, GetPromptRequestParams, PaginatedRequestParams,
    ReadResourceRequestParams, Reference,
};
#[allow(deprecated, reason = "logging is what the test exercises")]
use rmcp::model::{LoggingLevel, SetLevelRequestParams};
use rmcp::service::RunningService;
use rmcp::{RoleClient, model::ClientConfig};
use serde_json::{Value, json};
use tether::gateway::Gateway;
use tether_core::ServerName;
use tether_testkit::{DemoTools, blob_bytes, serve_streamable_http};

use support::{TestGateway, everything_server, host_auth, http_server, jwt, manager, mcp_client};

type Client = RunningService<RoleClient, ClientConfig>;

const PATIENCE: Duration = Duration::from_secs(60);

/// Every page of `resources/list` (bounded), following the gateway's cursor.
async fn all_resources(client: &Client) -> Vec<Value> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let params = cursor
            .clone()
            .map(|c| PaginatedRequestParams::default().with_cursor(Some(c)));
        let page = tokio::time::timeout(PATIENCE, client.peer().list_resources(params))
            .await
            .expect("resources/list answers")
            .expect("resources/list succeeds");
        let page = serde_json::to_value(&page).expect("serializes");
        all.extend(page["resources"].as_array().cloned().unwrap_or_default());
        match page["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return all,
        }
    }
    panic!("more than 100 pages of resources");
}

async fn read(client: &Client, uri: &str) -> Value {
    let result = tokio::time::timeout(
        PATIENCE,
        client
            .peer()
            .read_resource(ReadResourceRequestParams::new(uri)),
    )
    .await
    .expect("resources/read answers")
    .unwrap_or_else(|e| panic!("resources/read {uri}: {e}"));
    serde_json::to_value(&result).expect("serializes")
}

async fn demo_and_everything() -> (TestGateway, DemoTools, tether_testkit::RunningServer) {
    let tools = DemoTools::default();
    let demo = serve_streamable_http(tools.clone(), "127.0.0.1:0")
        .await
        .expect("demo server");
    let gateway = TestGateway::start(
        vec![
            http_server("demo", &demo.url, Duration::from_secs(10)),
            everything_server(),
        ],
        |builder| builder,
    )
    .await;
    (gateway, tools, demo)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resources_of_every_server_are_listed_paged_and_read_with_their_uris_kept_apart() {
    let (gateway, _tools, demo) = demo_and_everything().await;
    let client = mcp_client(&gateway.base, &jwt("alice")).await;

    let resources = all_resources(&client).await;
    let uris: Vec<&str> = resources.iter().filter_map(|r| r["uri"].as_str()).collect();
    assert!(uris.contains(&"tether://demo/notes://readme"), "{uris:?}");
    assert!(
        uris.contains(&"tether://demo/blob://bytes/1048576"),
        "{uris:?}"
    );
    let everything: Vec<&str> = uris
        .iter()
        .copied()
        .filter(|u| u.starts_with("tether://everything/"))
        .collect();
    assert!(
        !everything.is_empty(),
        "server-everything's resources: {uris:?}"
    );
    assert_eq!(
        uris.len(),
        uris.iter().collect::<std::collections::HashSet<_>>().len(),
        "no resource twice across pages"
    );

    // A text resource, routed to its server; the answer carries the aggregated URI.
    let text = read(&client, "tether://demo/notes://readme").await;
    assert_eq!(
        text["contents"][0]["text"], "the note called readme",
        "{text}"
    );
    assert_eq!(text["contents"][0]["uri"], "tether://demo/notes://readme");
    // One of server-everything's, over stdio.
    let first = read(&client, everything[0]).await;
    assert_eq!(first["contents"][0]["uri"], everything[0], "{first}");

    // 1 MiB of binary, every byte as the server sent it.
    let blob = read(&client, "tether://demo/blob://bytes/1048576").await;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(blob["contents"][0]["blob"].as_str().expect("a blob"))
        .expect("base64");
    assert_eq!(bytes.len(), 1 << 20);
    assert!(
        bytes == blob_bytes(1 << 20),
        "the blob's bytes changed on the way"
    );

    // Templates, wrapped the same way.
    let templates = client
        .peer()
        .list_resource_templates(None)
        .await
        .expect("resources/templates/list");
    let templates = serde_json::to_value(&templates).expect("serializes");
    let list: Vec<&str> = templates["resourceTemplates"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["uriTemplate"].as_str())
        .collect();
    assert!(
        list.contains(&"tether://demo/notes://{name}"),
        "{templates}"
    );

    // Unknown URIs: the specification's "resource not found", not a hang.
    let error = client
        .peer()
        .read_resource(ReadResourceRequestParams::new("nowhere://x"))
        .await
        .expect_err("no server has it");
    assert!(error.to_string().contains("not found"), "{error}");
    let _ = client.cancel().await;
    gateway.stop().await;
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompts_completion_and_log_levels_reach_the_right_server() {
    let (gateway, tools, demo) = demo_and_everything().await;
    let client = mcp_client(&gateway.base, &jwt("alice")).await;

    let prompts = client
        .peer()
        .list_prompts(None)
        .await
        .expect("prompts/list");
    let mut names = Vec::new();
    let mut page = serde_json::to_value(&prompts).expect("serializes");
    for _ in 0..20 {
        names.extend(
            page["prompts"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p["name"].as_str().map(str::to_owned)),
        );
        let Some(next) = page["nextCursor"].as_str().map(str::to_owned) else {
            break;
        };
        let next_page = client
            .peer()
            .list_prompts(Some(
                PaginatedRequestParams::default().with_cursor(Some(next)),
            ))
            .await
            .expect("prompts/list page");
        page = serde_json::to_value(&next_page).expect("serializes");
    }
    assert!(names.iter().any(|n| n == "demo__greet"), "{names:?}");
    assert!(
        names.iter().any(|n| n.starts_with("everything__")),
        "server-everything's prompts: {names:?}"
    );

    // prompts/get: arguments go up, the embedded resource comes back unchanged.
    let mut request = GetPromptRequestParams::new("demo__greet");
    request.arguments = Some(
        json!({"name": "Ada"})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    );
    let prompt = client
        .peer()
        .get_prompt(request)
        .await
        .expect("prompts/get");
    let prompt = serde_json::to_value(&prompt).expect("serializes");
    assert_eq!(
        prompt["messages"][0]["content"]["text"],
        "Say hello to Ada."
    );
    assert_eq!(
        prompt["messages"][1]["content"]["resource"]["uri"], "notes://readme",
        "embedded resources pass through as the server sent them: {prompt}"
    );

    // completion/complete by prompt name and by resource template.
    let by_prompt = client
        .peer()
        .complete(CompleteRequestParams::new(
            Reference::for_prompt("demo__greet"),
            ArgumentInfo::new("name", "al"),
        ))
        .await
        .expect("completion by prompt");
    assert_eq!(by_prompt.completion.values, ["alice", "alex"]);
    let by_template = client
        .peer()
        .complete(CompleteRequestParams::new(
            Reference::for_resource("tether://demo/notes://{name}"),
            ArgumentInfo::new("name", "r"),
        ))
        .await
        .expect("completion by template");
    assert_eq!(by_template.completion.values, ["readme", "roadmap"]);

    // logging/setLevel reaches the user's upstream sessions.
    #[allow(deprecated, reason = "logging is what the test exercises")]
    client
        .peer()
        .set_level(SetLevelRequestParams::new(LoggingLevel::Debug))
        .await
        .expect("logging/setLevel");
    assert_eq!(tools.log_level().as_deref(), Some("debug"));

    let _ = client.cancel().await;
    gateway.stop().await;
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_prefix_keeps_its_names_and_uris() {
    let tools = DemoTools::default();
    let demo = serve_streamable_http(tools.clone(), "127.0.0.1:0")
        .await
        .expect("demo server");
    let other = serve_streamable_http(DemoTools::default(), "127.0.0.1:0")
        .await
        .expect("second server");
    let gateway = TestGateway::start(
        vec![
            http_server("demo", &demo.url, Duration::from_secs(10)),
            http_server("other", &other.url, Duration::from_secs(10)),
        ],
        |builder| builder.name_prefixes(HashMap::from([(ServerName::new("demo"), String::new())])),
    )
    .await;
    let client = mcp_client(&gateway.base, &jwt("alice")).await;
    let mut tool_names = support::gateway_process::tool_names(&client).await;
    tool_names.sort();
    assert_eq!(tool_names, ["add", "echo", "other__add", "other__echo"]);
    let uris: Vec<String> = all_resources(&client)
        .await
        .iter()
        .filter_map(|r| r["uri"].as_str().map(str::to_owned))
        .collect();
    assert!(uris.contains(&"notes://readme".to_owned()), "{uris:?}");
    assert!(
        uris.contains(&"tether://other/notes://readme".to_owned()),
        "{uris:?}"
    );
    let text = read(&client, "notes://readme").await;
    assert_eq!(text["contents"][0]["uri"], "notes://readme");
    let result = support::gateway_process::call(&client, "add", json!({"a": 2, "b": 3})).await;
    assert_eq!(support::gateway_process::result_text(&result), "5");
    assert_eq!(tools.calls(), 1, "the unprefixed server ran the call");
    let _ = client.cancel().await;
    gateway.stop().await;
    demo.stop().await;
    other.stop().await;
}

#[tokio::test]
async fn two_servers_whose_names_could_collide_are_refused_naming_both() {
    let servers = vec![
        http_server("first", "http://127.0.0.1:9/mcp", Duration::from_secs(1)),
        http_server("second", "http://127.0.0.1:9/mcp", Duration::from_secs(1)),
    ];
    let error = Gateway::builder(manager(servers), host_auth())
        .name_prefixes(HashMap::from([
            (ServerName::new("first"), String::new()),
            (ServerName::new("second"), String::new()),
        ]))
        .build()
        .expect_err("refused");
    let text = error.to_string();
    assert!(text.contains("first") && text.contains("second"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_is_down_answers_with_an_error_naming_it_never_a_hang() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/mcp", listener.local_addr().expect("address"));
    drop(listener);
    let gateway = TestGateway::start(
        vec![http_server("gone", &url, Duration::from_secs(2))],
        |builder| builder,
    )
    .await;
    let client = mcp_client(&gateway.base, &jwt("alice")).await;
    let started = std::time::Instant::now();
    let error = tokio::time::timeout(
        Duration::from_secs(20),
        client.peer().read_resource(ReadResourceRequestParams::new(
            "tether://gone/notes://readme",
        )),
    )
    .await
    .expect("answered, not hung")
    .expect_err("the server is down");
    let text = error.to_string();
    assert!(
        text.contains("\"gone\"") && text.contains("unavailable"),
        "{text}"
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    // Lists skip it rather than fail.
    let resources = client
        .peer()
        .list_resources(None)
        .await
        .expect("resources/list");
    assert!(resources.resources.is_empty());
    let _ = client.cancel().await;
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_host_or_origin_is_refused_on_mcp() {
    let gateway = TestGateway::start(Vec::new(), |builder| {
        builder.public_url("https://tether.example.com")
    })
    .await;
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
    let send = |host: &'static str, origin: Option<&'static str>| {
        let mut request = gateway
            .http
            .post(gateway.url("/mcp"))
            .header("host", host)
            .header("accept", "application/json, text/event-stream")
            .bearer_auth(jwt("alice"))
            .json(&body);
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        request.send()
    };
    for (host, origin) in [
        ("evil.example", None),
        ("evil.example:8080", None),
        ("127.0.0.1", Some("https://evil.example")),
    ] {
        let response = send(host, origin).await.expect("answers");
        assert_eq!(
            response.status().as_u16(),
            403,
            "Host {host}, Origin {origin:?}"
        );
    }
    for (host, origin) in [
        ("tether.example.com", Some("https://tether.example.com")),
        ("127.0.0.1", None),
    ] {
        let response = send(host, origin).await.expect("answers");
        assert_ne!(
            response.status().as_u16(),
            403,
            "Host {host}, Origin {origin:?}"
        );
    }
    gateway.stop().await;
}
