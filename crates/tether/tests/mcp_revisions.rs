//! One agent suite of `/mcp`, run once per downstream MCP revision: 2025-03-26, 2025-06-18 and
//! 2025-11-25 (rmcp's client proposing that version in `initialize`) and 2026-07-28 (rmcp's
//! client on the stateless wire: `server/discover`, then requests carrying their own `_meta`).
//! The upstream is the testkit's rmcp server on its session wire, so every revision downstream
//! meets the same upstream and must see the same answers.

mod support;

use std::time::Duration;

use rmcp::model::{
    ArgumentInfo, CallToolRequestParams, ClientConfig, CompleteRequestParams,
    GetPromptRequestParams, ProtocolVersion, ReadResourceRequestParams, Reference,
};
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientLifecycleMode, RoleClient, serve_client, serve_client_with_lifecycle};
use serde_json::{Value, json};
use tether_testkit::DemoTools;

use support::{demo_gateway, jwt};

type Client = RunningService<RoleClient, ClientConfig>;

const STEP: Duration = Duration::from_secs(20);

async fn agent(base: &str, token: &str, revision: &ProtocolVersion) -> Client {
    let config =
        StreamableHttpClientTransportConfig::with_uri(format!("{base}/mcp")).auth_header(token);
    let transport = StreamableHttpClientTransport::from_config(config);
    let connected = if *revision == ProtocolVersion::V_2026_07_28 {
        let lifecycle = ClientLifecycleMode::Discover {
            preferred_versions: vec![revision.clone()],
        };
        tokio::time::timeout(
            STEP,
            serve_client_with_lifecycle(ClientConfig::default(), transport, lifecycle),
        )
        .await
    } else {
        let mut info = ClientConfig::default();
        info.protocol_version = revision.clone();
        tokio::time::timeout(STEP, serve_client(info, transport)).await
    };
    match connected {
        Ok(Ok(client)) => client,
        Ok(Err(e)) => panic!("{revision}: connects: {e}"),
        Err(_) => panic!("{revision}: connects in time"),
    }
}

/// A step's result, or the test fails naming the revision and the step.
trait Checked<T> {
    fn checked(self, revision: &ProtocolVersion, what: &str) -> T;
}

impl<T, E: std::fmt::Display> Checked<T> for Result<T, E> {
    fn checked(self, revision: &ProtocolVersion, what: &str) -> T {
        self.unwrap_or_else(|e| panic!("{revision}: {what}: {e}"))
    }
}

fn json_of<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).expect("serializes")
}

/// What every revision's agent must be able to do through the gateway.
async fn suite(client: &Client, revision: &ProtocolVersion) {
    let peer = client.peer();
    let at = |what: &str| format!("{revision}: {what}");

    let negotiated = peer.peer_info().map(|info| info.protocol_version.clone());
    assert_eq!(negotiated.as_ref(), Some(revision), "{}", at("negotiated"));

    let tools = json_of(&peer.list_all_tools().await.checked(revision, "tools/list"));
    let names: Vec<&str> = tools
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(names.contains(&"demo__add"), "{}: {names:?}", at("tools"));

    let mut call = CallToolRequestParams::new("demo__add");
    call.arguments = json!({"a": 40, "b": 2}).as_object().cloned();
    let result = json_of(&peer.call_tool(call).await.checked(revision, "tools/call"));
    assert_eq!(
        result["content"][0]["text"],
        "42",
        "{}: {result}",
        at("call")
    );

    let resources = json_of(
        &peer
            .list_resources(None)
            .await
            .checked(revision, "resources/list"),
    );
    assert!(
        resources["resources"]
            .as_array()
            .is_some_and(|r| r.iter().any(|r| r["uri"] == "tether://demo/notes://readme")),
        "{}: {resources}",
        at("resources")
    );
    let templates = json_of(
        &peer
            .list_resource_templates(None)
            .await
            .checked(revision, "resources/templates/list"),
    );
    assert!(
        templates["resourceTemplates"]
            .as_array()
            .is_some_and(|t| !t.is_empty()),
        "{}: {templates}",
        at("templates")
    );
    let read = json_of(
        &peer
            .read_resource(ReadResourceRequestParams::new(
                "tether://demo/notes://readme",
            ))
            .await
            .checked(revision, "resources/read"),
    );
    assert_eq!(
        read["contents"][0]["text"], "the note called readme",
        "{read}"
    );

    let prompts = json_of(
        &peer
            .list_prompts(None)
            .await
            .checked(revision, "prompts/list"),
    );
    assert!(
        prompts["prompts"]
            .as_array()
            .is_some_and(|p| p.iter().any(|p| p["name"] == "demo__greet")),
        "{}: {prompts}",
        at("prompts")
    );
    let mut get = GetPromptRequestParams::new("demo__greet");
    get.arguments = json!({"name": "Ada"}).as_object().cloned();
    let prompt = json_of(&peer.get_prompt(get).await.checked(revision, "prompts/get"));
    assert_eq!(
        prompt["messages"][0]["content"]["text"],
        "Say hello to Ada."
    );

    let completion = peer
        .complete(CompleteRequestParams::new(
            Reference::for_prompt("demo__greet"),
            ArgumentInfo::new("name", "al"),
        ))
        .await
        .checked(revision, "completion/complete");
    assert_eq!(completion.completion.values, ["alice", "alex"]);

    // An unknown tool is the server's answer, never a broken session.
    let mut unknown = CallToolRequestParams::new("demo__nope");
    unknown.arguments = Some(Default::default());
    let refused = peer.call_tool(unknown).await;
    let refused_is_error = match &refused {
        Ok(result) => result.is_error == Some(true),
        Err(_) => true,
    };
    assert!(refused_is_error, "{}: {refused:?}", at("unknown tool"));
    let again = json_of(
        &peer
            .list_all_tools()
            .await
            .checked(revision, "tools/list again"),
    );
    assert!(again.as_array().is_some_and(|t| !t.is_empty()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_agent_suite_passes_on_every_downstream_revision() {
    let tools = DemoTools::default();
    let (gateway, demo) = demo_gateway(&tools).await;
    let revisions = [
        ProtocolVersion::V_2025_03_26,
        ProtocolVersion::V_2025_06_18,
        ProtocolVersion::V_2025_11_25,
        ProtocolVersion::V_2026_07_28,
    ];
    for revision in &revisions {
        let client = agent(&gateway.base, &jwt("alice"), revision).await;
        suite(&client, revision).await;
        let _ = client.cancel().await;
    }
    gateway.stop().await;
    demo.stop().await;
}
