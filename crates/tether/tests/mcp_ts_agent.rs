//! The TypeScript SDK's client as the agent (support/ts_agent.cjs), declaring sampling,
//! elicitation and roots and answering them, against real upstreams behind the gateway: the
//! testkit's rmcp server over Streamable HTTP and `@modelcontextprotocol/server-everything`
//! over Streamable HTTP. One agent run goes through the whole surface in order.
//!
//! Needs `npm ci` in crates/tether-mcp/tests/peers (the SDK and server-everything).

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use tether_testkit::{DemoTools, blob_bytes};

use support::everything_http::EverythingHttp;
use support::gateway_process::{TempDir, result_text, ts_agent};
use support::{TestGateway, demo_gateway, http_server, jwt};

/// The result of step `i`, or a panic naming the step and its error.
fn step<'a>(run: &'a Value, i: usize, op: &str) -> &'a Value {
    let done = &run["steps"][i];
    assert_eq!(done["op"], op, "step {i}: {run}");
    assert!(done["error"].is_null(), "step {i} ({op}) failed: {done}");
    &done["result"]
}

/// The `progress` values of the notifications the agent received, in order.
fn progress_values(run: &Value) -> Vec<f64> {
    run["progress"]
        .as_array()
        .expect("progress")
        .iter()
        .filter_map(|p| p["progress"].as_f64())
        .collect()
}

fn names(list: &Value, key: &str, field: &str) -> Vec<String> {
    list[key]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i[field].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typescript_agent_uses_every_method_through_the_gateway_to_an_rmcp_upstream() {
    let tools = DemoTools::default().with_interaction();
    let (gateway, server) = demo_gateway(&tools).await;
    let dir = TempDir::new("ts-agent");
    let steps = json!([
        {"op": "listTools", "params": {}},
        {"op": "callTool", "params": {"name": "demo__progress", "arguments": {"steps": 4}}},
        {"op": "callTool", "params": {"name": "demo__ask", "arguments": {}}},
        {"op": "callTool", "params": {"name": "demo__roots", "arguments": {}}},
        {"op": "listResources", "params": {}},
        {"op": "listResourceTemplates", "params": {}},
        {"op": "readResource", "params": {"uri": "tether://demo/notes://readme"}},
        {"op": "readResource", "params": {"uri": "tether://demo/blob://bytes/65536"}},
        {"op": "subscribeResource", "params": {"uri": "tether://demo/notes://readme"}},
        {"op": "callTool", "params": {"name": "demo__touch", "arguments": {}}},
        {"op": "listPrompts", "params": {}},
        {"op": "getPrompt", "params": {"name": "demo__greet", "arguments": {"name": "Ada"}}},
        {"op": "complete", "params": {"ref": {"type": "ref/prompt", "name": "demo__greet"},
                                       "argument": {"name": "name", "value": "al"}}},
        {"op": "complete", "params": {"ref": {"type": "ref/resource", "uri": "tether://demo/notes://{name}"},
                                       "argument": {"name": "name", "value": "ro"}}},
        {"op": "setLoggingLevel", "params": {"level": "warning"}},
        {"op": "sleep", "params": {"ms": 300}},
    ]);
    let run = ts_agent(&dir.path, &gateway.base, &jwt("alice"), steps).await;

    let tools_listed = names(step(&run, 0, "listTools"), "tools", "name");
    for tool in ["demo__add", "demo__progress", "demo__ask", "demo__roots"] {
        assert!(tools_listed.iter().any(|t| t == tool), "{tools_listed:?}");
    }

    // Progress: every step, in order, on the stream of the call, before its result.
    assert_eq!(
        result_text(step(&run, 1, "callTool")),
        "done after 4 steps",
        "{run}"
    );
    let progress = progress_values(&run);
    assert_eq!(progress, [1.0, 2.0, 3.0, 4.0], "{run}");

    // The upstream's sampling, elicitation and roots requests, answered by the TypeScript agent.
    let answers: Value =
        serde_json::from_str(&result_text(step(&run, 2, "callTool"))).expect("the tool's JSON");
    assert_eq!(
        answers["sampled"]["content"]["text"], "forty-two",
        "{answers}"
    );
    assert_eq!(answers["sampled"]["model"], "ts-test-model", "{answers}");
    assert_eq!(answers["elicited"]["action"], "accept", "{answers}");
    assert_eq!(answers["elicited"]["content"]["name"], "Ada", "{answers}");
    let roots: Value =
        serde_json::from_str(&result_text(step(&run, 3, "callTool"))).expect("the tool's JSON");
    assert_eq!(
        roots["roots"][0]["uri"], "file:///work/ts-project",
        "{roots}"
    );
    let asked: Vec<&str> = run["asked"]
        .as_array()
        .expect("asked")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        asked,
        ["sampling/createMessage", "elicitation/create", "roots/list"],
        "{run}"
    );

    // Resources: listed wrapped, read back (text and a 64 KiB blob), subscribed and updated.
    let uris = names(step(&run, 4, "listResources"), "resources", "uri");
    assert!(
        uris.iter().any(|u| u == "tether://demo/notes://readme"),
        "{uris:?}"
    );
    let templates = names(
        step(&run, 5, "listResourceTemplates"),
        "resourceTemplates",
        "uriTemplate",
    );
    assert!(
        templates
            .iter()
            .any(|t| t == "tether://demo/notes://{name}"),
        "{templates:?}"
    );
    let text = step(&run, 6, "readResource");
    assert_eq!(
        text["contents"][0]["text"], "the note called readme",
        "{text}"
    );
    assert_eq!(text["contents"][0]["uri"], "tether://demo/notes://readme");
    let blob = step(&run, 7, "readResource")["contents"][0]["blob"]
        .as_str()
        .expect("a blob");
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(blob)
        .expect("base64");
    assert_eq!(bytes, blob_bytes(65536));
    step(&run, 8, "subscribeResource");
    assert_eq!(tools.subscriptions(), ["notes://readme"]);
    step(&run, 9, "callTool");
    let updated: Vec<&Value> = run["notifications"]
        .as_array()
        .expect("notifications")
        .iter()
        .filter(|n| n["method"] == "notifications/resources/updated")
        .collect();
    assert_eq!(updated.len(), 1, "{run}");
    assert_eq!(updated[0]["params"]["uri"], "tether://demo/notes://readme");

    // Prompts: named like tools, the embedded resource passed through unchanged.
    let prompts = names(step(&run, 10, "listPrompts"), "prompts", "name");
    assert_eq!(prompts, ["demo__greet"]);
    let prompt = step(&run, 11, "getPrompt");
    assert_eq!(
        prompt["messages"][0]["content"]["text"],
        "Say hello to Ada."
    );
    assert_eq!(
        prompt["messages"][1]["content"]["resource"]["uri"],
        "notes://readme"
    );

    // Completion, routed by the prompt's name and by the resource template.
    assert_eq!(
        step(&run, 12, "complete")["completion"]["values"],
        json!(["alice", "alex"])
    );
    assert_eq!(
        step(&run, 13, "complete")["completion"]["values"],
        json!(["roadmap"])
    );

    // setLevel reaches the user's upstream session.
    step(&run, 14, "setLoggingLevel");
    assert_eq!(tools.log_level().as_deref(), Some("warning"));

    gateway.stop().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typescript_agent_reaches_server_everything_over_streamable_http() {
    let everything = EverythingHttp::start().await;
    let gateway = TestGateway::start(
        vec![http_server(
            "everything",
            &everything.url,
            Duration::from_secs(30),
        )],
        |builder| builder,
    )
    .await;
    let dir = TempDir::new("ts-agent");
    let steps = json!([
        {"op": "listTools", "params": {}},
        {"op": "callTool", "params": {"name": "everything__trigger-long-running-operation",
                                       "arguments": {"duration": 1, "steps": 3}}},
        {"op": "callTool", "params": {"name": "everything__trigger-sampling-request",
                                       "arguments": {"prompt": "six times seven?"}}},
        {"op": "callTool", "params": {"name": "everything__trigger-elicitation-request", "arguments": {}}},
        {"op": "readResource", "params": {"uri": "tether://everything/demo://resource/dynamic/text/1"}},
        {"op": "readResource", "params": {"uri": "tether://everything/demo://resource/dynamic/blob/2"}},
        {"op": "listResourceTemplates", "params": {}},
        {"op": "getPrompt", "params": {"name": "everything__args-prompt", "arguments": {"city": "Oslo"}}},
        {"op": "complete", "params": {"ref": {"type": "ref/prompt", "name": "everything__completable-prompt"},
                                       "argument": {"name": "department", "value": "S"}}},
        {"op": "setLoggingLevel", "params": {"level": "debug"}},
        {"op": "callTool", "params": {"name": "everything__echo", "arguments": {"message": "hi"}}},
    ]);
    let run = ts_agent(&dir.path, &gateway.base, &jwt("erin"), steps).await;

    // server-everything lists its sampling and elicitation tools only to clients that declared
    // those capabilities: Tether declares them for the agent.
    let tools_listed = names(step(&run, 0, "listTools"), "tools", "name");
    for tool in [
        "everything__echo",
        "everything__trigger-sampling-request",
        "everything__trigger-elicitation-request",
    ] {
        assert!(tools_listed.iter().any(|t| t == tool), "{tools_listed:?}");
    }

    let long = step(&run, 1, "callTool");
    assert_ne!(long["isError"], true, "{long}");
    let progress = progress_values(&run);
    assert_eq!(progress.len(), 3, "{run}");
    assert!(progress.windows(2).all(|w| w[0] < w[1]), "{progress:?}");

    let sampled = step(&run, 2, "callTool");
    assert!(sampled.to_string().contains("forty-two"), "{sampled}");
    let elicited = step(&run, 3, "callTool");
    assert_ne!(elicited["isError"], true, "{elicited}");
    assert!(elicited.to_string().contains("Ada"), "{elicited}");

    let text = step(&run, 4, "readResource");
    assert_eq!(
        text["contents"][0]["uri"],
        "tether://everything/demo://resource/dynamic/text/1"
    );
    assert!(text["contents"][0]["text"].is_string(), "{text}");
    let blob = step(&run, 5, "readResource");
    assert!(blob["contents"][0]["blob"].is_string(), "{blob}");
    let templates = names(
        step(&run, 6, "listResourceTemplates"),
        "resourceTemplates",
        "uriTemplate",
    );
    assert!(
        templates
            .iter()
            .any(|t| t == "tether://everything/demo://resource/dynamic/text/{resourceId}"),
        "{templates:?}"
    );
    let prompt = step(&run, 7, "getPrompt");
    assert_eq!(
        prompt["messages"][0]["content"]["text"],
        "What's weather in Oslo?"
    );
    assert_eq!(
        step(&run, 8, "complete")["completion"]["values"],
        json!(["Sales", "Support"])
    );
    step(&run, 9, "setLoggingLevel");
    assert_eq!(result_text(step(&run, 10, "callTool")), "Echo: hi");

    gateway.stop().await;
}
