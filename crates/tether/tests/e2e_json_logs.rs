//! Logs for machines: with `[log] format = "json"` every line the gateway writes is one JSON
//! object; a tool call's line names the server and the outcome, the request's line carries its
//! request id (the host's `X-Request-Id` when it sent one), and with `hash_users = true` no line
//! holds the user's id, only a stable pseudonym.

mod support;

use serde_json::{Value, json};
use tether_testkit::{DemoTools, serve_streamable_http};

use support::gateway_process::{GatewayProcess, Launch, TempDir, config_text};
use support::{jwt, mcp_post};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_lines_with_request_ids_and_hashed_users() {
    let upstream = serve_streamable_http(DemoTools::default(), "127.0.0.1:0")
        .await
        .expect("the upstream starts");
    let dir = TempDir::new("json-logs");
    let config = config_text(
        &dir.path,
        &format!(
            "[log]\nformat = \"json\"\nhash_users = true\n\
             [[servers]]\nname = \"demo\"\nurl = \"{}\"\n",
            upstream.url
        ),
    );
    let mut launch = Launch::new(&dir.path);
    launch.rust_log = "info".to_owned();
    let gateway = GatewayProcess::start(&launch, &config).await;

    // A plain agent's call, session-less (the direct path), with the host's request id.
    let user = "alice-the-unmistakable";
    let http = reqwest::Client::new();
    let mut session = None;
    for (id, method, params) in [
        (
            1,
            "initialize",
            json!({"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "curl", "version": "1"}}),
        ),
        (
            2,
            "tools/call",
            json!({"name": "demo__add", "arguments": {"a": 1, "b": 2}}),
        ),
    ] {
        let mut request = mcp_post(&http, &gateway.url("/mcp"), &jwt(user))
            .header("x-request-id", format!("host-req-{id}"));
        if let Some(session) = &session {
            request = request.header("mcp-session-id", session);
        }
        let response = request
            .json(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .send()
            .await
            .expect("answered");
        assert_eq!(response.status(), 200, "{method}");
        assert_eq!(
            response
                .headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok()),
            Some(format!("host-req-{id}").as_str()),
            "the id comes back"
        );
        if let Some(id) = response.headers().get("mcp-session-id") {
            session = Some(id.to_str().expect("ascii").to_owned());
        }
        let _ = response.bytes().await;
    }

    let mut call = None;
    for _ in 0..50 {
        let stderr = std::fs::read_to_string(dir.path.join("gateway-1.stderr")).unwrap_or_default();
        let lines: Vec<Value> = stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect();
        assert!(
            !stderr.contains(user),
            "the user's id is in the log:\n{stderr}"
        );
        call = lines
            .into_iter()
            .find(|l| l["fields"]["message"] == "tool call");
        if call.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let call = call.expect("a tool call line");
    assert_eq!(call["fields"]["server"], "demo", "{call}");
    assert_eq!(call["fields"]["outcome"], "ok", "{call}");
    let pseudonym = call["fields"]["user"].as_str().unwrap_or_default();
    assert_eq!(pseudonym.len(), 24, "{call}");
    assert!(pseudonym.bytes().all(|b| b.is_ascii_hexdigit()), "{call}");
    assert_eq!(call["span"]["id"], "host-req-2", "the request's id: {call}");
    assert_eq!(call["span"]["user"], pseudonym, "{call}");
}
