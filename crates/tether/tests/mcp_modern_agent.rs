//! Agents of the 2026-07-28 revision on `/mcp`: no `initialize` and no session, every request
//! stateless with its own `_meta` and standard headers. The TypeScript SDK v2's client
//! (`@modelcontextprotocol/client` 2.4.0) uses the whole gateway that way; two replicas of one
//! deployment answer one agent's requests alternately, with no session affinity.
//!
//! Needs `npm ci` in crates/tether-mcp/tests/peers.

mod support;

use serde_json::{Value, json};
use tether_testkit::{DemoTools, serve_streamable_http};

use support::gateway_process::{modern_agent, modern_agent_declaring, result_text};
use support::replicas::{Deployment, Pair, Ports};
use support::{demo_gateway, jwt};

fn step<'a>(run: &'a Value, i: usize, op: &str) -> &'a Value {
    let done = &run["steps"][i];
    assert_eq!(done["op"], op, "step {i}: {run}");
    assert!(done["error"].is_null(), "step {i} ({op}) failed: {done}");
    &done["result"]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2026_agent_uses_the_gateway_without_initialize_or_a_session() {
    // The upstream speaks the 2026-07-28 wire too: both legs without a session.
    let tools = DemoTools::default().with_interaction().with_2026_wire();
    let (gateway, server) = demo_gateway(&tools).await;
    let steps = json!([
        {"op": "discover"},
        {"op": "listTools"},
        {"op": "callTool", "params": {"name": "demo__add", "arguments": {"a": 20, "b": 22}}},
        {"op": "callTool", "params": {"name": "demo__progress", "arguments": {"steps": 3}}},
        {"op": "readResource", "params": {"uri": "tether://demo/notes://readme"}},
        {"op": "getPrompt", "params": {"name": "demo__greet", "arguments": {"name": "Ada"}}},
    ]);
    let run = modern_agent(&gateway.base, &jwt("alice"), steps).await;
    assert_eq!(run["version"], "2026-07-28", "{run}");
    let discovered = step(&run, 0, "discover");
    assert!(
        discovered.to_string().contains("2026-07-28"),
        "{discovered}"
    );
    let names: Vec<&str> = step(&run, 1, "listTools")["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(names.contains(&"demo__add"), "{names:?}");
    assert_eq!(result_text(step(&run, 2, "callTool")), "42");
    assert_eq!(result_text(step(&run, 3, "callTool")), "done after 3 steps");
    let progress = run["steps"][3]["progress"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        progress.len(),
        3,
        "progress on the call's own stream: {run}"
    );
    assert_eq!(
        step(&run, 4, "readResource")["contents"][0]["text"],
        "the note called readme"
    );
    assert_eq!(
        step(&run, 5, "getPrompt")["messages"][0]["content"]["text"],
        "Say hello to Ada."
    );
    assert_eq!(
        tools.initialized(),
        0,
        "the upstream leg had no initialize either"
    );
    gateway.stop().await;
    server.stop().await;
}

/// One stateless 2026-07-28 request to `base`.
async fn modern_post(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    id: u64,
    method: &str,
    mut params: Value,
    name: Option<&str>,
) -> Value {
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "raw-2026", "version": "0"},
        "io.modelcontextprotocol/clientCapabilities": {}
    });
    let mut request = http
        .post(format!("{base}/mcp"))
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", method);
    if let Some(name) = name {
        request = request.header("mcp-name", name);
    }
    let response = request
        .json(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), 200, "{method} on {base}");
    assert!(
        response.headers().get("mcp-session-id").is_none(),
        "no session on this wire"
    );
    support::first_message(response).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_2026_agents_requests_alternate_between_replicas_and_all_succeed() {
    let upstream = serve_streamable_http(DemoTools::default(), "127.0.0.1:0")
        .await
        .expect("demo server");
    let ports = Ports::new().await;
    let deployment = Deployment::new("modern-agent", "redis://127.0.0.1:6379").await;
    let replicas = Pair::start(
        "modern-agent",
        &deployment,
        &ports,
        &format!("[[servers]]\nname = \"demo\"\nurl = \"{}\"\n", upstream.url),
        &[],
    )
    .await;
    let token = jwt("alice");
    let http = reqwest::Client::new();
    let bases = [replicas.one.base.clone(), replicas.two.base.clone()];
    let discovered = modern_post(
        &http,
        &bases[0],
        &token,
        1,
        "server/discover",
        json!({}),
        None,
    )
    .await;
    assert!(
        discovered["result"]["supportedVersions"]
            .as_array()
            .is_some_and(|v| v.iter().any(|v| v == "2026-07-28")),
        "{discovered}"
    );
    for i in 0..6u64 {
        let base = &bases[(i % 2) as usize];
        let listed = modern_post(&http, base, &token, 10 + i, "tools/list", json!({}), None).await;
        assert!(
            listed.to_string().contains("demo__add"),
            "{listed}\n{}",
            replicas.logs()
        );
        let called = modern_post(
            &http,
            base,
            &token,
            100 + i,
            "tools/call",
            json!({"name": "demo__add", "arguments": {"a": i, "b": 1}}),
            Some("demo__add"),
        )
        .await;
        assert_eq!(
            result_text(&called["result"]),
            (i + 1).to_string(),
            "{called}\n{}",
            replicas.logs()
        );
    }
    upstream.stop().await;
}

/// A 2026-07-28 upstream asks for input (SEP-2322) during a 2026-07-28 agent's call: the
/// questions go back to the agent in an input-required result, the agent answers by retrying,
/// and its answers reach the server that asked; no session on either leg.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2026_agent_answers_an_upstreams_input_required_result_itself() {
    let upstream = tether_testkit::ModernPeer::start("modern").await;
    let gateway = support::TestGateway::start(
        vec![support::http_server(
            "modern",
            &upstream.url,
            std::time::Duration::from_secs(20),
        )],
        |builder| builder,
    )
    .await;
    let steps = json!([
        {"op": "callTool", "params": {"name": "modern__ask", "arguments": {}}},
        {"op": "callTool", "params": {"name": "modern__add", "arguments": {"a": 1, "b": 2}}},
    ]);
    let run = modern_agent(&gateway.base, &jwt("alice"), steps).await;
    assert_eq!(result_text(step(&run, 0, "callTool")), "hello Ada", "{run}");
    let asked = run["steps"][0]["elicitations"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(asked.len(), 1, "the agent was asked once: {run}");
    assert_eq!(asked[0]["message"], "What is your name?", "{run}");
    let added = step(&run, 1, "callTool");
    assert_eq!(result_text(added), "3");
    assert_ne!(
        added["_meta"]["io.modelcontextprotocol/serverInfo"]["name"], "tether-modern-peer",
        "the upstream's own server info stays on its leg: {added}"
    );
    gateway.stop().await;
}

/// A 2026-07-28 upstream's tool list says how long it stays fresh (`ttlMs`): once stale, the
/// gateway reads it again, so a tool the server added without telling anyone reaches the agent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_lists_freshness_hint_is_honoured() {
    let tools = DemoTools::default()
        .with_interaction()
        .with_2026_wire()
        .with_tools_ttl(std::time::Duration::from_secs(1));
    let (gateway, server) = demo_gateway(&tools).await;
    let client = support::mcp_client(&gateway.base, &jwt("alice")).await;
    let names = |listed: Vec<rmcp::model::Tool>| -> Vec<String> {
        listed.into_iter().map(|t| t.name.to_string()).collect()
    };
    let before = names(client.peer().list_all_tools().await.expect("tools/list"));
    assert!(before.iter().any(|n| n == "demo__grow"), "{before:?}");
    assert!(!before.iter().any(|n| n == "demo__extra"), "{before:?}");

    tools.grow_quietly();
    let mut after = Vec::new();
    for _ in 0..60 {
        after = names(client.peer().list_all_tools().await.expect("tools/list"));
        if after.iter().any(|n| n == "demo__extra") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        after.iter().any(|n| n == "demo__extra"),
        "listed again once stale: {after:?}"
    );
    let _ = client.cancel().await;
    gateway.stop().await;
    server.stop().await;
}

/// An upstream of the session revisions asks a question during a 2026-07-28 agent's call (an
/// `elicitation/create` request on its session): the gateway parks the call and hands the
/// agent an input-required result; the agent's retry brings the answer to the upstream and the
/// call finishes. What the agent did not declare (sampling) is refused to the upstream as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_upstreams_question_reaches_a_2026_agent_as_an_input_required_result() {
    let tools = DemoTools::default().with_interaction();
    let (gateway, server) = demo_gateway(&tools).await;
    let steps = json!([
        {"op": "callTool", "params": {"name": "demo__ask", "arguments": {}}},
    ]);
    let run = modern_agent(&gateway.base, &jwt("alice"), steps).await;
    let answer: Value = serde_json::from_str(&result_text(step(&run, 0, "callTool")))
        .unwrap_or_else(|e| panic!("the tool's JSON answer: {e}: {run}"));
    assert_eq!(
        answer["elicited"]["content"]["name"], "Ada",
        "the agent's answer reached the upstream: {run}"
    );
    assert!(
        answer["sampled"].to_string().contains("did not declare"),
        "sampling, not declared by the agent, was refused: {run}"
    );
    let asked = run["steps"][0]["elicitations"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(asked.len(), 1, "{run}");
    assert_eq!(asked[0]["message"], "Your name?", "{run}");

    // An answer to a question no call waits for (expired, another replica's, forged).
    let http = reqwest::Client::new();
    let stray = modern_post(
        &http,
        &gateway.base,
        &jwt("alice"),
        9,
        "tools/call",
        json!({"name": "demo__ask", "arguments": {},
               "requestState": "tether-question:00000000000000000000000000000000",
               "inputResponses": {"upstream": {"action": "accept", "content": {"name": "Eve"}}}}),
        Some("demo__ask"),
    )
    .await;
    assert!(
        stray["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("call the tool again")),
        "{stray}"
    );
    gateway.stop().await;
    server.stop().await;
}

/// Every JSON-RPC message of a response, whether one JSON body or an event stream (read to
/// its end: a stateless answer's stream ends with the answer).
async fn messages(response: reqwest::Response) -> (String, Vec<Value>) {
    let kind = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = tokio::time::timeout(std::time::Duration::from_secs(20), response.text())
        .await
        .expect("the answer ends in time")
        .expect("a readable answer");
    let messages = if kind.starts_with("application/json") {
        vec![serde_json::from_str(&text).expect("a JSON body")]
    } else {
        text.lines()
            .filter_map(|line| line.strip_prefix("data:"))
            .filter_map(|data| serde_json::from_str::<Value>(data.trim()).ok())
            .filter(|message| message.get("jsonrpc").is_some())
            .collect()
    };
    (kind, messages)
}

/// A stateless 2026-07-28 request; `extra` is one more header. Answers with the status and
/// every message.
#[allow(clippy::too_many_arguments)]
async fn post_2026(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    id: u64,
    method: &str,
    params: Value,
    extra: Option<(&str, &str)>,
) -> (u16, String, Vec<Value>) {
    let key = if method == "resources/read" {
        "uri"
    } else {
        "name"
    };
    let name = params[key].as_str().unwrap_or_default().to_owned();
    let mut params = params;
    let meta = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "raw-2026", "version": "0"},
        "io.modelcontextprotocol/clientCapabilities": {}
    });
    match params.get_mut("_meta").and_then(Value::as_object_mut) {
        Some(own) => own.extend(meta.as_object().cloned().unwrap_or_default()),
        None => params["_meta"] = meta,
    }
    let mut request = support::mcp_post(http, &format!("{base}/mcp"), token)
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", method)
        .header("mcp-name", name);
    if let Some((header, value)) = extra {
        request = request.header(header, value);
    }
    let response = request
        .json(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
        .send()
        .await
        .expect("answered");
    let status = response.status().as_u16();
    let (kind, messages) = messages(response).await;
    (status, kind, messages)
}

/// A stateless 2026-07-28 `tools/call`, answered 200.
async fn call_2026(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    id: u64,
    params: Value,
    extra: Option<(&str, &str)>,
) -> (String, Vec<Value>) {
    let (status, kind, messages) =
        post_2026(http, base, token, id, "tools/call", params, extra).await;
    assert_eq!(status, 200);
    (kind, messages)
}

/// A plain 2026-07-28 call is answered by the gateway itself, as one JSON body, with what
/// rmcp's stateless road answers for the same call (that road taken here by an `Mcp-Param-*`
/// header, which the direct path leaves to rmcp and rmcp ignores for a tool without
/// annotations): a complete result from a session upstream and from a 2026-07-28 one, an
/// upstream's input-required result, an unknown tool, a call with progress, and reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_2026_call_is_answered_directly_as_rmcp_would_answer_it() {
    let tools = DemoTools::default().with_interaction();
    let demo = serve_streamable_http(tools.clone(), "127.0.0.1:0")
        .await
        .expect("demo server");
    let modern = tether_testkit::ModernPeer::start("modern").await;
    let timeout = std::time::Duration::from_secs(20);
    let gateway = support::TestGateway::start(
        vec![
            support::http_server("demo", &demo.url, timeout),
            support::http_server("modern", &modern.url, timeout),
        ],
        |builder| builder,
    )
    .await;
    let (http, token) = (reqwest::Client::new(), jwt("alice"));
    let to_rmcp = Some(("mcp-param-unused", "x"));
    for (i, params) in [
        json!({"name": "demo__add", "arguments": {"a": 2, "b": 3}}),
        json!({"name": "modern__add", "arguments": {"a": 4, "b": 5}}),
        json!({"name": "modern__ask", "arguments": {}}),
        json!({"name": "nobody__add", "arguments": {}}),
    ]
    .into_iter()
    .enumerate()
    {
        let id = 10 + i as u64;
        let (kind, direct) =
            call_2026(&http, &gateway.base, &token, id, params.clone(), None).await;
        let (rmcp_kind, through_rmcp) =
            call_2026(&http, &gateway.base, &token, id, params.clone(), to_rmcp).await;
        assert!(kind.starts_with("application/json"), "{params}: {kind}");
        assert!(
            rmcp_kind.starts_with("text/event-stream"),
            "{params}: rmcp's road: {rmcp_kind}"
        );
        assert_eq!(direct.len(), 1, "{params}: {direct:?}");
        assert_eq!(through_rmcp.len(), 1, "{params}: {through_rmcp:?}");
        let (direct, through_rmcp) = (direct[0].clone(), through_rmcp[0].clone());
        if params["name"] == "modern__ask" {
            assert_eq!(direct["result"]["resultType"], "input_required", "{direct}");
            assert!(direct["result"]["inputRequests"].is_object(), "{direct}");
        }
        assert_eq!(direct, through_rmcp, "{params}");
    }
    let (_, added) = call_2026(
        &http,
        &gateway.base,
        &token,
        1,
        json!({"name": "demo__add", "arguments": {"a": 2, "b": 3}}),
        None,
    )
    .await;
    assert_eq!(result_text(&added[0]["result"]), "5", "{added:?}");
    assert_eq!(added[0]["result"]["resultType"], "complete", "{added:?}");

    let progress = json!({"name": "demo__progress", "arguments": {"steps": 3}, "_meta": {"progressToken": "p"}});
    let (_, direct) = call_2026(&http, &gateway.base, &token, 30, progress.clone(), None).await;
    let (_, through_rmcp) = call_2026(&http, &gateway.base, &token, 30, progress, to_rmcp).await;
    let notified = |messages: &[Value]| {
        messages
            .iter()
            .filter(|m| m["method"] == "notifications/progress")
            .count()
    };
    assert_eq!(notified(&direct), 3, "{direct:?}");
    assert_eq!(notified(&through_rmcp), 3, "{through_rmcp:?}");
    assert_eq!(direct.last(), through_rmcp.last());
    assert_eq!(
        direct.last().map(|m| result_text(&m["result"])),
        Some("done after 3 steps".to_owned())
    );

    // Reads: of a session upstream's and a 2026-07-28 upstream's resource, and of resources
    // nobody has (unknown server, unknown URI upstream).
    for (i, uri) in [
        "tether://demo/notes://readme",
        "tether://modern/notes://readme",
        "tether://nobody/notes://readme",
        "tether://demo/nowhere://x",
    ]
    .into_iter()
    .enumerate()
    {
        let id = 40 + i as u64;
        let params = json!({"uri": uri});
        let (status, kind, direct) = post_2026(
            &http,
            &gateway.base,
            &token,
            id,
            "resources/read",
            params.clone(),
            None,
        )
        .await;
        let (rmcp_status, rmcp_kind, through_rmcp) = post_2026(
            &http,
            &gateway.base,
            &token,
            id,
            "resources/read",
            params,
            to_rmcp,
        )
        .await;
        assert!(kind.starts_with("application/json"), "{uri}: {kind}");
        assert!(
            rmcp_kind.starts_with("text/event-stream") || rmcp_status != 200,
            "{uri}: rmcp's road: {rmcp_kind}"
        );
        assert_eq!(status, rmcp_status, "{uri}: {direct:?} / {through_rmcp:?}");
        assert_eq!(direct, through_rmcp, "{uri}");
        if i < 2 {
            assert!(
                direct[0]["result"]["contents"][0]["text"].is_string(),
                "{direct:?}"
            );
        } else {
            assert!(direct[0]["error"].is_object(), "{direct:?}");
        }
    }
    gateway.stop().await;
    demo.stop().await;
}

/// What rmcp checks on a 2026-07-28 request is still checked: a tool name header that is not
/// the body's, and a `_meta` without the agent's capabilities, are refused as rmcp refuses them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2026_call_with_wrong_headers_or_meta_is_refused() {
    let (gateway, server) = demo_gateway(&DemoTools::default()).await;
    let http = reqwest::Client::new();
    let post = |name: &'static str, meta: Value| {
        support::mcp_post(&http, &format!("{}/mcp", gateway.base), &jwt("alice"))
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", "tools/call")
            .header("mcp-name", name)
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                "params": {"name": "demo__add", "arguments": {"a": 1, "b": 1}, "_meta": meta}}))
            .send()
    };
    let full = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {}
    });
    let mismatch = post("demo__other", full).await.expect("answered");
    assert_eq!(mismatch.status(), 400);
    let (_, answer) = messages(mismatch).await;
    assert_eq!(answer[0]["error"]["code"], -32020, "{answer:?}");
    let incomplete = post(
        "demo__add",
        json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28"}),
    )
    .await
    .expect("answered");
    assert_eq!(incomplete.status(), 400);
    let (_, answer) = messages(incomplete).await;
    assert_eq!(answer[0]["error"]["code"], -32602, "{answer:?}");
    gateway.stop().await;
    server.stop().await;
}

/// The TypeScript SDK v2's client as a plain 2026-07-28 agent (no capabilities declared): its
/// calls and reads are answered on the direct path (JSON, or an event stream once progress
/// comes), and the SDK reads those answers as it reads rmcp's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_2026_sdk_agents_calls_and_reads_take_the_direct_path() {
    let (gateway, server) = demo_gateway(&DemoTools::default().with_interaction()).await;
    let steps = json!([
        {"op": "callTool", "params": {"name": "demo__add", "arguments": {"a": 20, "b": 22}}},
        {"op": "callTool", "params": {"name": "demo__progress", "arguments": {"steps": 3}}},
        {"op": "readResource", "params": {"uri": "tether://demo/notes://readme"}},
        {"op": "callTool", "params": {"name": "nobody__add", "arguments": {}}},
    ]);
    let run = modern_agent_declaring(&gateway.base, &jwt("alice"), steps, json!({})).await;
    let answered_with = |i: usize| -> Vec<String> {
        run["steps"][i]["contentTypes"]
            .as_array()
            .map(|kinds| {
                kinds
                    .iter()
                    .filter_map(|k| k.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(result_text(step(&run, 0, "callTool")), "42");
    assert_eq!(answered_with(0), ["application/json"], "{run}");
    assert_eq!(result_text(step(&run, 1, "callTool")), "done after 3 steps");
    let progress = run["steps"][1]["progress"].as_array().map_or(0, Vec::len);
    assert_eq!(progress, 3, "{run}");
    assert_eq!(answered_with(1), ["text/event-stream"], "{run}");
    assert_eq!(
        step(&run, 2, "readResource")["contents"][0]["text"],
        "the note called readme"
    );
    assert_eq!(answered_with(2), ["application/json"], "{run}");
    assert!(
        run["steps"][3]["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("unknown tool")),
        "{run}"
    );
    gateway.stop().await;
    server.stop().await;
}
