//! Requests that talk back to the agent while they run, through the gateway: progress
//! notifications, the upstream's sampling, elicitation and roots requests answered by the agent,
//! and cancellation, with an rmcp client as the agent (its handler answers like a host would)
//! and real upstreams: the testkit's rmcp server over Streamable HTTP (with its interactive
//! tools) and `@modelcontextprotocol/server-everything` over stdio.
//!
//! Needs `npm ci` in crates/tether-mcp/tests/peers (server-everything).

#![allow(
    deprecated,
    reason = "sampling and roots (SEP-2577) are what the test exercises"
)]

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmcp::model::{
    CallToolRequestParams, ClientCapabilities, ClientConfig, CreateMessageRequestParams,
    CreateMessageResult, ElicitRequestParams, ElicitResult, Implementation, ListRootsResult,
    ProgressNotificationParam,
};
use rmcp::service::{NotificationContext, RequestContext, RunningService};
use rmcp::{ClientHandler, ErrorData as McpError, RoleClient};
use serde_json::{Value, json};
use tether_testkit::DemoTools;

use support::gateway_process::result_text;
use support::{TestGateway, demo_gateway, everything_server, jwt, mcp_client};

/// An agent that declares sampling, elicitation and roots, answers them, and keeps the progress
/// it is sent.
#[derive(Clone, Default)]
struct Agent {
    progress: Arc<Mutex<Vec<(f64, Instant)>>>,
    tools_changed: Arc<std::sync::atomic::AtomicU64>,
    updated: Arc<Mutex<Vec<String>>>,
    logs: Arc<Mutex<Vec<Value>>>,
    /// Questions the server withdrew while this agent was answering them.
    withdrawn: Arc<std::sync::atomic::AtomicU64>,
}

impl ClientHandler for Agent {
    fn get_info(&self) -> ClientConfig {
        let capabilities: ClientCapabilities = serde_json::from_value(json!({
            "sampling": {}, "elicitation": {"form": {}}, "roots": {}
        }))
        .expect("capabilities");
        ClientConfig::new(capabilities, Implementation::new("agent", "1"))
    }

    async fn create_message(
        &self,
        _params: CreateMessageRequestParams,
        _context: RequestContext<RoleClient>,
    ) -> Result<CreateMessageResult, McpError> {
        serde_json::from_value(json!({
            "role": "assistant", "content": {"type": "text", "text": "forty-two"}, "model": "test-model"
        }))
        .map_err(|e| McpError::internal_error(e.to_string(), None))
    }

    async fn create_elicitation(
        &self,
        request: ElicitRequestParams,
        context: RequestContext<RoleClient>,
    ) -> Result<ElicitResult, McpError> {
        let message = serde_json::to_value(&request).unwrap_or_default()["message"].clone();
        if message == "Never mind?" {
            // A person thinking: only a withdrawal (`notifications/cancelled`) ends it.
            let withdrawn =
                tokio::time::timeout(Duration::from_secs(10), context.ct.cancelled()).await;
            if withdrawn.is_ok() {
                self.withdrawn
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            return Err(McpError::internal_error("no answer", None));
        }
        serde_json::from_value(json!({"action": "accept", "content": {"name": "Ada"}}))
            .map_err(|e| McpError::internal_error(e.to_string(), None))
    }

    async fn list_roots(
        &self,
        _context: RequestContext<RoleClient>,
    ) -> Result<ListRootsResult, McpError> {
        serde_json::from_value(
            json!({"roots": [{"uri": "file:///work/project", "name": "project"}]}),
        )
        .map_err(|e| McpError::internal_error(e.to_string(), None))
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.tools_changed
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    async fn on_resource_updated(
        &self,
        params: rmcp::model::ResourceUpdatedNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        if let Ok(mut updated) = self.updated.lock() {
            updated.push(params.uri);
        }
    }

    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        if let Ok(mut seen) = self.progress.lock() {
            seen.push((params.progress, Instant::now()));
        }
    }

    async fn on_logging_message(
        &self,
        params: rmcp::model::LoggingMessageNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        if let (Ok(mut logs), Ok(params)) = (self.logs.lock(), serde_json::to_value(params)) {
            logs.push(params);
        }
    }
}

async fn agent_client(base: &str, token: &str, agent: Agent) -> RunningService<RoleClient, Agent> {
    support::mcp_agent(base, token, agent).await
}

async fn call_with_progress<H: rmcp::service::Service<RoleClient>>(
    client: &RunningService<RoleClient, H>,
    tool: &str,
    arguments: Value,
) -> Value {
    let mut params = CallToolRequestParams::new(tool.to_owned());
    params.arguments = arguments.as_object().cloned();
    let mut meta = rmcp::model::RequestMetaObject::default();
    meta.set_progress_token(rmcp::model::ProgressToken(
        rmcp::model::NumberOrString::String("agent-token".into()),
    ));
    params.meta = Some(meta);
    let result = tokio::time::timeout(Duration::from_secs(30), client.peer().call_tool(params))
        .await
        .expect("answered in time")
        .expect("a result");
    serde_json::to_value(result).expect("serializes")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_arrives_in_order_before_the_result_and_the_agent_answers_the_upstream() {
    let tools = DemoTools::default().with_interaction();
    let (gateway, server) = demo_gateway(&tools).await;
    let agent = Agent::default();
    let client = agent_client(&gateway.base, &jwt("alice"), agent.clone()).await;

    let result = call_with_progress(&client, "demo__progress", json!({"steps": 4})).await;
    let answered = Instant::now();
    assert_eq!(result_text(&result), "done after 4 steps", "{result}");
    let progress = agent.progress.lock().expect("progress").clone();
    let values: Vec<f64> = progress.iter().map(|(p, _)| *p).collect();
    assert_eq!(values, [1.0, 2.0, 3.0, 4.0], "every step, in order");
    assert!(
        progress.iter().all(|(_, at)| *at <= answered),
        "before the result"
    );

    // The tool asks the agent's model and its user; the answers reach the tool's result.
    let result = call_with_progress(&client, "demo__ask", json!({})).await;
    let answers: Value = serde_json::from_str(&result_text(&result)).expect("the tool's JSON");
    assert_eq!(
        answers["sampled"]["content"]["text"], "forty-two",
        "{answers}"
    );
    assert_eq!(answers["elicited"]["action"], "accept", "{answers}");
    assert_eq!(answers["elicited"]["content"]["name"], "Ada", "{answers}");
    let result = call_with_progress(&client, "demo__roots", json!({})).await;
    let roots: Value = serde_json::from_str(&result_text(&result)).expect("the tool's JSON");
    assert_eq!(roots["roots"][0]["uri"], "file:///work/project", "{roots}");

    let _ = client.cancel().await;
    gateway.stop().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_without_the_capability_gets_a_clear_refusal_upstream() {
    let tools = DemoTools::default().with_interaction();
    let (gateway, server) = demo_gateway(&tools).await;
    // rmcp's default client declares neither sampling nor elicitation.
    let client = mcp_client(&gateway.base, &jwt("bob")).await;
    let result = support::gateway_process::call(&client, "demo__ask", json!({})).await;
    let answers: Value = serde_json::from_str(&result_text(&result)).expect("the tool's JSON");
    for asked in ["sampled", "elicited"] {
        let refusal = answers[asked]["refused"].as_str().unwrap_or_default();
        assert!(refusal.contains("did not declare"), "{asked}: {answers}");
    }
    let _ = client.cancel().await;
    gateway.stop().await;
    server.stop().await;
}

/// Waits (bounded) until the upstream counted `n` cancelled calls.
async fn cancelled_upstream(tools: &DemoTools, n: u64) {
    for _ in 0..100 {
        if tools.cancelled() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "the upstream saw {} cancelled calls, not {n}",
        tools.cancelled()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_by_the_agent_reaches_the_upstream_on_both_paths() {
    let tools = DemoTools::default().with_interaction();
    let (gateway, server) = demo_gateway(&tools).await;

    // An interactive agent: the call goes through rmcp's session worker.
    let client = agent_client(&gateway.base, &jwt("alice"), Agent::default()).await;
    let slow = CallToolRequestParams::new("demo__slow".to_owned());
    let gave_up = tokio::time::timeout(
        Duration::from_secs(1),
        client.peer().call_tool(slow.clone()),
    )
    .await;
    assert!(gave_up.is_err(), "the call is still running");
    cancelled_upstream(&tools, 1).await;

    // A plain agent: its call is answered on the direct path, and its cancel must find it.
    let plain = mcp_client(&gateway.base, &jwt("bob")).await;
    let warm = support::gateway_process::call(&plain, "demo__add", json!({"a": 1, "b": 2})).await;
    assert_eq!(result_text(&warm), "3");
    let gave_up = tokio::time::timeout(Duration::from_secs(1), plain.peer().call_tool(slow)).await;
    assert!(gave_up.is_err(), "the call is still running");
    cancelled_upstream(&tools, 2).await;

    let _ = client.cancel().await;
    let _ = plain.cancel().await;
    gateway.stop().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_everything_over_stdio_reports_progress_and_samples_through_the_agent() {
    let gateway = TestGateway::start(vec![everything_server()], |builder| builder).await;
    let agent = Agent::default();
    let client = agent_client(&gateway.base, &jwt("carol"), agent.clone()).await;
    let tools = client.peer().list_all_tools().await.expect("tools/list");
    let names: Vec<String> = tools.iter().map(|t| t.name.to_string()).collect();
    assert!(
        names
            .iter()
            .any(|n| n == "everything__trigger-long-running-operation"),
        "{names:?}"
    );

    let result = call_with_progress(
        &client,
        "everything__trigger-long-running-operation",
        json!({"duration": 1, "steps": 3}),
    )
    .await;
    assert_ne!(result["isError"], true, "{result}");
    let values: Vec<f64> = agent
        .progress
        .lock()
        .expect("progress")
        .iter()
        .map(|(p, _)| *p)
        .collect();
    assert_eq!(values.len(), 3, "{values:?}");
    assert!(
        values.windows(2).all(|w| w[0] < w[1]),
        "in order: {values:?}"
    );

    // server-everything lists its sampling tool to clients that declared sampling: Tether does.
    assert!(
        names
            .iter()
            .any(|n| n == "everything__trigger-sampling-request"),
        "{names:?}"
    );
    {
        let result = call_with_progress(
            &client,
            "everything__trigger-sampling-request",
            json!({"prompt": "six times seven?"}),
        )
        .await;
        assert!(
            result.to_string().contains("forty-two"),
            "the agent's answer reached the tool: {result}"
        );
    }
    let _ = client.cancel().await;
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_change_upstream_shows_in_the_agents_next_tools_list_without_reconnecting() {
    let tools = DemoTools::default().with_interaction();
    let (gateway, server) = demo_gateway(&tools).await;
    let agent = Agent::default();
    let client = agent_client(&gateway.base, &jwt("alice"), agent.clone()).await;
    let names = |list: Vec<rmcp::model::Tool>| -> Vec<String> {
        list.iter().map(|t| t.name.to_string()).collect()
    };
    let before = names(client.peer().list_all_tools().await.expect("tools/list"));
    assert!(before.iter().any(|n| n == "demo__grow"), "{before:?}");
    assert!(!before.iter().any(|n| n == "demo__extra"), "{before:?}");

    let grown = support::gateway_process::result_text(
        &call_with_progress(&client, "demo__grow", json!({})).await,
    );
    assert!(grown.contains("sent: true"), "{grown}");
    let mut heard = false;
    for _ in 0..100 {
        if agent
            .tools_changed
            .load(std::sync::atomic::Ordering::SeqCst)
            > 0
        {
            heard = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(heard, "the agent was told the tool list changed");
    let after = names(client.peer().list_all_tools().await.expect("tools/list"));
    assert!(after.iter().any(|n| n == "demo__extra"), "{after:?}");
    assert_eq!(
        tools.initialized(),
        1,
        "no reconnect: one upstream session throughout"
    );
    let result = call_with_progress(&client, "demo__extra", json!({})).await;
    assert_eq!(result_text(&result), "extra", "{result}");
    let _ = client.cancel().await;
    gateway.stop().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscribed_resource_update_reaches_the_subscribing_session_under_its_aggregated_uri() {
    let tools = DemoTools::default().with_interaction();
    let (gateway, server) = demo_gateway(&tools).await;
    let agent = Agent::default();
    let client = agent_client(&gateway.base, &jwt("alice"), agent.clone()).await;
    // A second session of the same user that did not subscribe hears nothing.
    let other = Agent::default();
    let other_client = agent_client(&gateway.base, &jwt("alice"), other.clone()).await;
    client.peer().list_all_tools().await.expect("tools/list");

    client
        .peer()
        .subscribe(rmcp::model::SubscribeRequestParams::new(
            "tether://demo/notes://readme",
        ))
        .await
        .expect("resources/subscribe");
    assert_eq!(
        tools.subscriptions(),
        ["notes://readme"],
        "the server's own URI upstream"
    );

    let touched = result_text(&call_with_progress(&client, "demo__touch", json!({})).await);
    assert!(touched.contains("sent: true"), "{touched}");
    let mut heard = Vec::new();
    for _ in 0..100 {
        heard = agent.updated.lock().expect("updates").clone();
        if !heard.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(heard, ["tether://demo/notes://readme"]);
    assert!(
        other.updated.lock().expect("updates").is_empty(),
        "only the subscriber hears it"
    );

    client
        .peer()
        .unsubscribe(rmcp::model::UnsubscribeRequestParams::new(
            "tether://demo/notes://readme",
        ))
        .await
        .expect("resources/unsubscribe");
    assert!(tools.subscriptions().is_empty());
    let _ = client.cancel().await;
    let _ = other_client.cancel().await;
    gateway.stop().await;
    server.stop().await;
}

/// The JSON-RPC messages of an event-stream body, in order.
fn sse_messages(body: &str) -> Vec<Value> {
    body.lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .filter(|data| !data.trim().is_empty())
        .map(|data| serde_json::from_str(data.trim()).expect("each event holds JSON"))
        .collect()
}

async fn raw_call(
    gateway: &TestGateway,
    token: &str,
    session: &str,
    id: u64,
    params: Value,
) -> (String, String) {
    let response = support::mcp_post(&gateway.http, &gateway.url("/mcp"), token)
        .header(tether::gateway::mcp::SESSION_HEADER, session)
        .header("mcp-protocol-version", "2025-06-18")
        .json(&json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params}))
        .send()
        .await
        .expect("the call answers");
    assert_eq!(response.status(), 200);
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = tokio::time::timeout(Duration::from_secs(30), response.text())
        .await
        .expect("the body ends in time")
        .expect("a body");
    (content_type, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_agents_call_turns_into_an_event_stream_only_when_the_upstream_sends_progress() {
    let tools = DemoTools::default().with_interaction();
    let (gateway, server) = demo_gateway(&tools).await;
    let token = jwt("dora");
    let session = support::open_session(&gateway, &token).await;

    // A call that sends no progress stays one JSON body, progress token or not (rmcp's own
    // path would have answered on an event stream: this is the direct path).
    let (kind, body) = raw_call(
        &gateway,
        &token,
        &session,
        2,
        json!({"name": "demo__add", "arguments": {"a": 1, "b": 2}, "_meta": {"progressToken": "p1"}}),
    )
    .await;
    assert!(kind.starts_with("application/json"), "{kind}: {body}");
    let answer: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(result_text(&answer["result"]), "3", "{answer}");

    // A call whose upstream reports progress: the progress, in order and under the agent's own
    // token, then the result, on one event stream.
    let (kind, body) = raw_call(
        &gateway,
        &token,
        &session,
        3,
        json!({"name": "demo__progress", "arguments": {"steps": 3}, "_meta": {"progressToken": "p2"}}),
    )
    .await;
    assert!(kind.starts_with("text/event-stream"), "{kind}: {body}");
    let messages = sse_messages(&body);
    assert_eq!(messages.len(), 4, "{body}");
    for (step, message) in messages[..3].iter().enumerate() {
        assert_eq!(message["method"], "notifications/progress", "{body}");
        assert_eq!(message["params"]["progressToken"], "p2", "{body}");
        assert_eq!(
            message["params"]["progress"],
            json!(step as f64 + 1.0),
            "{body}"
        );
    }
    assert_eq!(messages[3]["id"], 3, "{body}");
    assert_eq!(result_text(&messages[3]["result"]), "done after 3 steps");

    // Without a token there is nothing to report progress to: JSON again.
    let (kind, body) = raw_call(
        &gateway,
        &token,
        &session,
        4,
        json!({"name": "demo__progress", "arguments": {"steps": 2}}),
    )
    .await;
    assert!(kind.starts_with("application/json"), "{kind}: {body}");

    // rmcp's client as a plain agent (it declares none of sampling, elicitation, roots) gets
    // the progress of its call too.
    let plain = PlainAgent::default();
    let client = support::mcp_agent(&gateway.base, &jwt("dora"), plain.clone()).await;
    let result = call_with_progress(&client, "demo__progress", json!({"steps": 4})).await;
    assert_eq!(result_text(&result), "done after 4 steps", "{result}");
    let values = plain.progress.lock().expect("progress").clone();
    assert_eq!(values, [1.0, 2.0, 3.0, 4.0], "every step, in order");

    let _ = client.cancel().await;
    gateway.stop().await;
    server.stop().await;
}

/// An agent that declares nothing but keeps the progress it is sent.
#[derive(Clone, Default)]
struct PlainAgent {
    progress: Arc<Mutex<Vec<f64>>>,
}

impl ClientHandler for PlainAgent {
    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        if let Ok(mut seen) = self.progress.lock() {
            seen.push(params.progress);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_servers_log_message_outside_a_request_reaches_the_users_agent_naming_the_server() {
    let tools = DemoTools::default().with_interaction();
    let (gateway, server) = demo_gateway(&tools).await;
    let agent = Agent::default();
    let client = agent_client(&gateway.base, &jwt("alice"), agent.clone()).await;
    let answered = call_with_progress(&client, "demo__announce", json!({})).await;
    assert_eq!(result_text(&answered), "announced");
    let mut heard = None;
    for _ in 0..100 {
        if let Some(log) = agent.logs.lock().expect("logs").first().cloned() {
            heard = Some(log);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = heard.expect("the log message arrived within 5 s");
    assert_eq!(log["logger"], "demo/indexer", "{log}");
    assert_eq!(log["level"], "warning", "{log}");
    assert_eq!(log["data"], "the index was rebuilt", "{log}");
    let _ = client.cancel().await;
    gateway.stop().await;
    server.stop().await;
}

/// `logging/setLevel` is per agent session: two sessions of one user share the upstream
/// session, which is given the more verbose level, and each hears only its own level and above.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_agent_session_hears_the_log_level_it_set_and_no_other() {
    use rmcp::model::{LoggingLevel, SetLevelRequestParams};

    let tools = DemoTools::default().with_interaction();
    let (gateway, server) = demo_gateway(&tools).await;
    let chatty = Agent::default();
    let quiet = Agent::default();
    let chatty_client = agent_client(&gateway.base, &jwt("alice"), chatty.clone()).await;
    let quiet_client = agent_client(&gateway.base, &jwt("alice"), quiet.clone()).await;
    // Both sessions have an upstream session to set a level on.
    let answered = call_with_progress(&chatty_client, "demo__add", json!({"a": 1, "b": 2})).await;
    assert_eq!(result_text(&answered), "3");
    let set = |client: &RunningService<RoleClient, Agent>, level| {
        let peer = client.peer().clone();
        async move {
            tokio::time::timeout(
                Duration::from_secs(20),
                peer.set_level(SetLevelRequestParams::new(level)),
            )
            .await
            .expect("answered")
            .expect("logging/setLevel");
        }
    };
    set(&chatty_client, LoggingLevel::Info).await;
    set(&quiet_client, LoggingLevel::Error).await;
    assert_eq!(
        tools.log_level().as_deref(),
        Some("info"),
        "the quieter session's level did not silence the upstream for the other"
    );

    // A warning from the server, outside any request.
    let answered = call_with_progress(&quiet_client, "demo__announce", json!({})).await;
    assert_eq!(result_text(&answered), "announced");
    let mut heard = false;
    for _ in 0..100 {
        if !chatty.logs.lock().expect("logs").is_empty() {
            heard = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(heard, "the session at info heard the warning within 5 s");
    // Both sessions get the server's messages from the same broadcast: by now the other
    // session would have it too, were it let through.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        quiet.logs.lock().expect("logs").is_empty(),
        "the session at error did not hear a warning: {:?}",
        quiet.logs.lock().expect("logs")
    );
    let _ = chatty_client.cancel().await;
    let _ = quiet_client.cancel().await;
    gateway.stop().await;
    server.stop().await;
}

/// The upstream withdraws its own question (`notifications/cancelled` for its elicitation)
/// while the agent is answering it: the withdrawal reaches the agent, and the call finishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_withdrawing_its_question_reaches_the_agent() {
    let tools = DemoTools::default().with_interaction();
    let (gateway, demo) = demo_gateway(&tools).await;
    let agent = Agent::default();
    let client = support::mcp_agent(&gateway.base, &jwt("alice"), agent.clone()).await;
    let mut params = CallToolRequestParams::new("demo__withdraw");
    params.arguments = Some(Default::default());
    let result = tokio::time::timeout(Duration::from_secs(20), client.peer().call_tool(params))
        .await
        .expect("the call ends")
        .expect("tools/call");
    let result = serde_json::to_value(&result).expect("serializes");
    assert_eq!(
        result_text(&result),
        "withdrawn (cancel sent: true)",
        "{result}"
    );
    // The agent's handler sees the cancel in its own task: wait for it, bounded.
    let mut withdrawn = 0;
    for _ in 0..50 {
        withdrawn = agent.withdrawn.load(std::sync::atomic::Ordering::SeqCst);
        if withdrawn > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        withdrawn, 1,
        "the agent was told the question was withdrawn"
    );
    let _ = client.cancel().await;
    gateway.stop().await;
    demo.stop().await;
}
