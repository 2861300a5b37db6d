//! The 2026-07-28 wire upstream, against the TypeScript SDK's v2 server
//! (`@modelcontextprotocol/server` 2.4.0, tests/peers/modern_server.mjs): a server of that
//! revision only (it refuses `initialize` with HTTP 400 and -32022) is discovered and used
//! without a session; every request carries the `_meta` and the standard headers; input-required
//! results are answered by the agent waiting on the request, or refused naming the question;
//! progress reaches the agent; a dual-era server is spoken to on the newer wire.
//!
//! Needs `npm ci` in tests/peers.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Map, Value, json};
use tether_core::{CallContext, ConnectError, Connector, Downstream, PeerError, Session};
use tether_mcp::McpConnector;
use tether_testkit::ModernPeer;

use support::{http, request};

async fn connect(server: &ModernPeer) -> Arc<dyn Session> {
    tokio::time::timeout(
        Duration::from_secs(20),
        McpConnector::default().connect(request(http(&server.url))),
    )
    .await
    .expect("connects in time")
    .expect("connects: a server that refuses initialize is discovered")
}

/// An agent that answers elicitations with a name and keeps the notifications it is sent.
#[derive(Debug, Default)]
struct Agent {
    asked: Mutex<Vec<String>>,
    notified: Mutex<Vec<Value>>,
}

#[async_trait]
impl Downstream for Agent {
    async fn notify(&self, method: &str, params: Option<Value>) {
        if let Ok(mut notified) = self.notified.lock() {
            notified.push(json!({"method": method, "params": params}));
        }
    }

    async fn request(&self, method: &str, _params: Option<Value>) -> Result<Value, PeerError> {
        if let Ok(mut asked) = self.asked.lock() {
            asked.push(method.to_owned());
        }
        Ok(json!({"action": "accept", "content": {"name": "Ada"}}))
    }
}

fn args(value: Value) -> Option<Map<String, Value>> {
    value.as_object().cloned()
}

#[tokio::test]
async fn a_server_of_the_2026_revision_only_is_used_without_initialize_and_with_its_headers() {
    let server = ModernPeer::start("modern").await;
    let session = connect(&server).await;
    let tools = session.list_tools().await.expect("tools/list");
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
    for tool in ["echo", "add", "progress", "ask", "whoami"] {
        assert!(names.contains(&tool), "{names:?}");
    }
    let sum = session
        .call_tool("add", args(json!({"a": 2, "b": 3})))
        .await
        .expect("tools/call");
    assert_eq!(sum.text(), "5");

    let who = session.call_tool("whoami", None).await.expect("whoami");
    let who: Value = serde_json::from_str(&who.text()).expect("the report");
    assert_eq!(who["era"], "modern", "{who}");
    assert_eq!(who["protocolVersion"], "2026-07-28", "{who}");
    assert_eq!(who["clientInfo"]["name"], "tether", "{who}");
    assert_eq!(
        who["headers"]["mcp-protocol-version"], "2026-07-28",
        "{who}"
    );
    assert_eq!(who["headers"]["mcp-method"], "tools/call", "{who}");
    assert_eq!(who["headers"]["mcp-name"], "whoami", "{who}");

    let stats = server.stats().await;
    assert_eq!(stats["initialize"], 0, "{stats}");
    assert_eq!(stats["methods"]["server/discover"], 1, "{stats}");

    // Resources and prompts through the same wire.
    let read = session
        .request(
            "resources/read",
            Some(json!({"uri": "notes://readme"})),
            &CallContext::default(),
        )
        .await
        .expect("resources/read");
    assert!(read["contents"][0]["text"].is_string(), "{read}");
    let prompt = session
        .request(
            "prompts/get",
            Some(json!({"name": "greet", "arguments": {"name": "Ada"}})),
            &CallContext::default(),
        )
        .await
        .expect("prompts/get");
    assert!(prompt.to_string().contains("Ada"), "{prompt}");
    session.close().await;
}

#[tokio::test]
async fn input_required_results_are_answered_by_the_agent_or_refused_naming_the_question() {
    let server = ModernPeer::start("modern").await;
    let session = connect(&server).await;

    let agent = Arc::new(Agent::default());
    let context = CallContext {
        meta: None,
        downstream: Some(agent.clone()),
        input: None,
    };
    let answered = session
        .call_tool_in("ask", None, &context)
        .await
        .expect("answered after the agent's input");
    assert_eq!(answered.text(), "hello Ada");
    assert_eq!(
        *agent.asked.lock().expect("asked"),
        ["elicitation/create"],
        "the agent was asked once"
    );
    let stats = server.stats().await;
    assert_eq!(
        stats["methods"]["tools/call"], 2,
        "the call and its retry: {stats}"
    );

    // No agent waits on a plain call: refused, naming what the server asked.
    match session.call_tool("ask", None).await {
        Err(ConnectError::Refused { message, .. }) => {
            assert!(message.contains("elicitation/create"), "{message}");
        }
        other => panic!("a refusal, not {other:?}"),
    }
    session.close().await;
}

#[tokio::test]
async fn progress_of_a_call_reaches_the_agent_under_its_token() {
    let server = ModernPeer::start("modern").await;
    let session = connect(&server).await;
    let agent = Arc::new(Agent::default());
    let context = CallContext {
        meta: args(json!({"progressToken": "agent-7"})),
        downstream: Some(agent.clone()),
        input: None,
    };
    let result = session
        .call_tool_in("progress", args(json!({"steps": 3})), &context)
        .await
        .expect("tools/call");
    assert_eq!(result.text(), "done after 3 steps");
    let notified = agent.notified.lock().expect("notified").clone();
    let progress: Vec<&Value> = notified
        .iter()
        .filter(|n| n["method"] == "notifications/progress")
        .collect();
    assert_eq!(progress.len(), 3, "{notified:?}");
    assert!(
        progress
            .iter()
            .all(|p| p["params"]["progressToken"] == "agent-7"),
        "{notified:?}"
    );
    session.close().await;
}

#[tokio::test]
async fn a_dual_era_server_is_spoken_to_on_the_newer_wire() {
    let server = ModernPeer::start("dual").await;
    let session = connect(&server).await;
    let who = session.call_tool("whoami", None).await.expect("whoami");
    let who: Value = serde_json::from_str(&who.text()).expect("the report");
    assert_eq!(who["era"], "modern", "{who}");
    assert_eq!(server.stats().await["initialize"], 0);
    session.close().await;
}

/// A 2026-07-28 server that annotates a tool's argument with `x-mcp-header` (the TypeScript
/// SDK v2, which refuses a call without the matching `Mcp-Param-*` header): Tether reads the
/// annotation from the tool list and repeats the argument in the header, Base64 where the value
/// needs it; the server's own check passes. A tool whose annotation the revision does not allow
/// is left out of the list.
#[tokio::test]
async fn an_annotated_argument_travels_in_its_mcp_param_header() {
    let server = ModernPeer::start("modern").await;
    let session = connect(&server).await;
    let tools = session.list_tools().await.expect("tools/list");
    let route = tools
        .iter()
        .find(|t| t.name == "route")
        .expect("the annotated tool is listed");
    assert_eq!(
        route.input_schema["properties"]["region"]["x-mcp-header"], "Region",
        "the annotation reaches the agent too"
    );
    assert!(
        !tools.iter().any(|t| t.name == "weigh"),
        "a tool whose annotation breaks the rules is left out"
    );
    for region in ["eu-west", "nord ", "Zürich"] {
        let routed = session
            .call_tool("route", args(json!({"region": region, "text": "hi"})))
            .await
            .unwrap_or_else(|e| panic!("the server accepts the call for {region:?}: {e}"));
        assert_eq!(routed.text(), format!("hi via {region}"));
    }
    session.close().await;
}
