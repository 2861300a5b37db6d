//! `/mcp` end to end: a real rmcp client through the gateway to real upstreams
//! (`server-everything` over stdio, an in-process rmcp server over Streamable HTTP).

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use rmcp::model::{CallToolRequestParams, ErrorCode};
use rmcp::service::ServiceError;
use serde_json::{Value, json};
use tether::gateway::McpConfig;
use tether::gateway::mcp::{SESSION_HEADER, ToolFilter};
use tether_core::ServerName;

use support::{
    STEP, TestGateway, everything_server, first_message, http_server, initialize_body, jwt,
    mcp_client, mcp_post, open_session, upstream,
};

fn deny_hidden() -> BTreeMap<ServerName, ToolFilter> {
    BTreeMap::from([(
        ServerName::new("local"),
        ToolFilter {
            allow: None,
            deny: vec!["hidden".to_owned()],
        },
    )])
}

fn error_code(error: &ServiceError) -> Option<ErrorCode> {
    match error {
        ServiceError::McpError(data) => Some(data.code),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_client_lists_and_calls_the_tools_of_every_server() {
    let local = upstream::start().await;
    let gateway = TestGateway::start(
        vec![
            everything_server(),
            http_server("local", &local.url, Duration::from_secs(10)),
        ],
        |b| b.tool_filters(deny_hidden()),
    )
    .await;
    let client = mcp_client(&gateway.base, &jwt("alice")).await;

    let tools = tokio::time::timeout(STEP, client.peer().list_all_tools())
        .await
        .expect("tools/list in time")
        .expect("tools/list succeeds");
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert!(names.contains(&"everything__echo"), "{names:?}");
    assert!(names.contains(&"local__add"), "{names:?}");
    assert!(
        !names.contains(&"local__hidden"),
        "denied tools are not listed: {names:?}"
    );
    let echo = tools
        .iter()
        .find(|t| t.name == "everything__echo")
        .expect("echo listed");
    assert!(
        echo.input_schema.get("properties").is_some(),
        "the upstream schema is kept"
    );

    let mut call = CallToolRequestParams::new("everything__echo");
    call.arguments = json!({"message": "hello gateway"}).as_object().cloned();
    let result = tokio::time::timeout(STEP, client.peer().call_tool(call))
        .await
        .expect("tools/call in time")
        .expect("tools/call succeeds");
    let text = serde_json::to_value(&result).expect("serializes");
    assert_eq!(text["content"][0]["text"], "Echo: hello gateway", "{text}");

    let mut add = CallToolRequestParams::new("local__add");
    add.arguments = json!({"a": 2, "b": 3}).as_object().cloned();
    let result = client.peer().call_tool(add).await.expect("add succeeds");
    let text = serde_json::to_value(&result).expect("serializes");
    assert_eq!(text["content"][0]["text"], "5", "{text}");

    // Denied, unknown tool of a known server, unknown server: JSON-RPC invalid params.
    for name in [
        "local__hidden",
        "everything__no_such_tool",
        "nowhere__echo",
        "echo",
    ] {
        let error = client
            .peer()
            .call_tool(CallToolRequestParams::new(name))
            .await
            .expect_err(name);
        assert_eq!(
            error_code(&error),
            Some(ErrorCode::INVALID_PARAMS),
            "{name}: {error:?}"
        );
    }

    let metrics = gateway
        .http
        .get(gateway.url("/metrics"))
        .send()
        .await
        .expect("metrics answer")
        .text()
        .await
        .expect("metrics text");
    assert!(
        metrics.contains("tether_tool_call_duration_seconds_bucket{server=\"everything\""),
        "{metrics}"
    );
    assert!(
        !metrics.contains("alice"),
        "no user ids in metrics:\n{metrics}"
    );

    client.cancel().await.expect("client closes");
    gateway.stop().await;
}

async fn list_in_session(gateway: &TestGateway, token: &str, session: &str) -> reqwest::Response {
    mcp_post(&gateway.http, &gateway.url("/mcp"), token)
        .header(SESSION_HEADER, session)
        .header("mcp-protocol-version", "2025-06-18")
        .json(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}))
        .send()
        .await
        .expect("tools/list answers")
}

/// Ends a session by hand (`DELETE /mcp`).
async fn delete_session(gateway: &TestGateway, token: &str, session: &str) -> reqwest::StatusCode {
    gateway
        .http
        .delete(gateway.url("/mcp"))
        .bearer_auth(token)
        .header(SESSION_HEADER, session)
        .header("mcp-protocol-version", "2025-06-18")
        .send()
        .await
        .expect("DELETE answers")
        .status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_belongs_to_the_user_who_opened_it() {
    let local = upstream::start().await;
    let gateway = TestGateway::start(
        vec![http_server("local", &local.url, Duration::from_secs(10))],
        |b| b,
    )
    .await;
    let (alice, bob) = (jwt("alice"), jwt("bob"));
    let session = open_session(&gateway, &alice).await;

    // Bob, with a valid token of his own, cannot use Alice's session: not by POST, GET or
    // DELETE.
    let refused = list_in_session(&gateway, &bob, &session).await;
    assert_eq!(refused.status(), 404);
    let body: Value = refused.json().await.expect("JSON-RPC error body");
    assert!(body.get("error").is_some(), "{body}");
    let get = gateway
        .http
        .get(gateway.url("/mcp"))
        .bearer_auth(&bob)
        .header("accept", "text/event-stream")
        .header(SESSION_HEADER, &session)
        .send()
        .await
        .expect("GET answers");
    assert_eq!(get.status(), 404);
    let delete = gateway
        .http
        .delete(gateway.url("/mcp"))
        .bearer_auth(&bob)
        .header(SESSION_HEADER, &session)
        .send()
        .await
        .expect("DELETE answers");
    assert_eq!(delete.status(), 404);

    // Alice's session still works, and lists her tools.
    let listed = first_message(list_in_session(&gateway, &alice, &session).await).await;
    let names: Vec<&str> = listed["result"]["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(names.contains(&"local__add"), "{listed}");

    // And she can end it; afterwards the id is unknown to everyone.
    let deleted = delete_session(&gateway, &alice, &session).await;
    assert!(deleted.is_success(), "{deleted}");
    assert_eq!(
        list_in_session(&gateway, &alice, &session).await.status(),
        404
    );

    // Graceful shutdown does not wait forever for a client that keeps its session (and its
    // event stream) open.
    let lingering = mcp_client(&gateway.base, &alice).await;
    gateway.stop().await;
    drop(lingering);
}

/// A request of an unknown method on the 2026-07-28 (stateless) path: rmcp answers it with 404.
async fn unknown_method_in_session(
    gateway: &TestGateway,
    token: &str,
    session: &str,
) -> reqwest::Response {
    mcp_post(&gateway.http, &gateway.url("/mcp"), token)
        .header(SESSION_HEADER, session)
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "no/such/method")
        .json(&json!({
            "jsonrpc": "2.0",
            "id": 7,
            "method": "no/such/method",
            "params": {"_meta": {
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientCapabilities": {},
            }},
        }))
        .send()
        .await
        .expect("the request answers")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_404_from_rmcp_does_not_release_the_session_to_other_users() {
    let local = upstream::start().await;
    let gateway = TestGateway::start(
        vec![http_server("local", &local.url, Duration::from_secs(10))],
        |b| b,
    )
    .await;
    let (alice, bob) = (jwt("alice"), jwt("bob"));
    let session = open_session(&gateway, &alice).await;

    let not_found = unknown_method_in_session(&gateway, &alice, &session).await;
    let status = not_found.status();
    let text = not_found.text().await.unwrap_or_default();
    assert_eq!(status, 404, "rmcp's answer to an unknown method: {text}");

    // Bob still cannot reach Alice's session, by GET or DELETE.
    let get = gateway
        .http
        .get(gateway.url("/mcp"))
        .bearer_auth(&bob)
        .header("accept", "text/event-stream")
        .header(SESSION_HEADER, &session)
        .header("mcp-protocol-version", "2025-06-18")
        .send()
        .await
        .expect("GET answers");
    assert_eq!(get.status(), 404, "bob's GET");
    let delete = delete_session(&gateway, &bob, &session).await;
    assert_eq!(delete, 404, "bob's DELETE");

    // Alice's session is untouched.
    let listed = first_message(list_in_session(&gateway, &alice, &session).await).await;
    assert!(listed["result"]["tools"].is_array(), "{listed}");
    gateway.stop().await;
}

/// A gateway in front of the test upstream whose users may each hold `cap` MCP sessions.
async fn gateway_with_session_cap(cap: usize) -> (TestGateway, upstream::Upstream) {
    let local = upstream::start().await;
    let gateway = TestGateway::start(
        vec![http_server("local", &local.url, Duration::from_secs(10))],
        |b| {
            b.mcp(McpConfig {
                max_sessions_per_user: cap,
                ..McpConfig::default()
            })
        },
    )
    .await;
    (gateway, local)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_past_the_per_user_cap_get_429_until_one_is_closed() {
    let (gateway, _local) = gateway_with_session_cap(2).await;
    let (alice, bob) = (jwt("alice"), jwt("bob"));
    let first = open_session(&gateway, &alice).await;
    let _second = open_session(&gateway, &alice).await;

    let refused = mcp_post(&gateway.http, &gateway.url("/mcp"), &alice)
        .json(&initialize_body())
        .send()
        .await
        .expect("initialize answers");
    assert_eq!(refused.status(), 429);
    let retry_after = refused
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    assert!(retry_after.is_some_and(|s| s > 0), "{retry_after:?}");
    assert!(refused.headers().get(SESSION_HEADER).is_none());

    // Another user has slots of their own.
    let _bobs = open_session(&gateway, &bob).await;

    // Closing one frees its slot.
    let deleted = delete_session(&gateway, &alice, &first).await;
    assert!(deleted.is_success(), "{deleted}");
    let _third = open_session(&gateway, &alice).await;
    gateway.stop().await;
}

/// Initializes sent all at once cannot pass the cap either: the early check does not reserve a
/// slot, so the count is taken again, under one lock, as each session is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initializes_sent_at_once_do_not_pass_the_per_user_cap() {
    let (gateway, _local) = gateway_with_session_cap(2).await;
    let alice = jwt("alice");
    let url = gateway.url("/mcp");
    let burst = (0..16).map(|_| {
        mcp_post(&gateway.http, &url, &alice)
            .json(&initialize_body())
            .send()
    });
    let answers = futures::future::join_all(burst).await;
    let mut opened = Vec::new();
    let mut refused = 0;
    for answer in answers {
        let answer = answer.expect("initialize answers");
        match answer.status().as_u16() {
            200 => opened.push(
                answer
                    .headers()
                    .get(SESSION_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .expect("a session id")
                    .to_owned(),
            ),
            429 => {
                assert!(answer.headers().get(SESSION_HEADER).is_none());
                refused += 1;
            }
            other => panic!("initialize answered {other}"),
        }
    }
    assert_eq!(opened.len(), 2, "exactly the cap opened; refused {refused}");
    assert_eq!(refused, 14);
    let metrics = gateway.metrics().await;
    assert!(
        metrics.lines().any(|l| l == "tether_mcp_sessions 2"),
        "the refused sessions were not kept:\n{metrics}"
    );
    // Still at the cap afterwards; closing one frees its slot.
    let again = mcp_post(&gateway.http, &url, &alice)
        .json(&initialize_body())
        .send()
        .await
        .expect("initialize answers");
    assert_eq!(again.status(), 429);
    let deleted = delete_session(&gateway, &alice, &opened[0]).await;
    assert!(deleted.is_success(), "{deleted}");
    let _third = open_session(&gateway, &alice).await;
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_jsonrpc_errors_and_oversize_bodies_413() {
    let gateway = TestGateway::start(Vec::new(), |b| {
        b.mcp(McpConfig {
            max_body_bytes: 64 * 1024,
            ..McpConfig::default()
        })
    })
    .await;
    let token = jwt("alice");
    let url = gateway.url("/mcp");

    let not_json = mcp_post(&gateway.http, &url, &token)
        .body("{not json")
        .send()
        .await
        .expect("answers");
    assert_eq!(not_json.status(), 400);
    let body: Value = not_json.json().await.expect("JSON body");
    assert_eq!(body["error"]["code"], ErrorCode::PARSE_ERROR.0, "{body}");

    let not_rpc = mcp_post(&gateway.http, &url, &token)
        .json(&json!({"hello": "world"}))
        .send()
        .await
        .expect("answers");
    assert_eq!(not_rpc.status(), 400);
    let body: Value = not_rpc.json().await.expect("JSON body");
    assert_eq!(
        body["error"]["code"],
        ErrorCode::INVALID_REQUEST.0,
        "{body}"
    );

    let bad_params = mcp_post(&gateway.http, &url, &token)
        .json(
            &json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"arguments": 3}}),
        )
        .send()
        .await
        .expect("answers");
    assert_eq!(bad_params.status(), 400);
    let body: Value = bad_params.json().await.expect("JSON body");
    assert_eq!(body["id"], 7, "{body}");
    assert_eq!(body["error"]["code"], ErrorCode::INVALID_PARAMS.0, "{body}");

    // Well-formed, but without a session: rmcp's refusal arrives as a JSON-RPC error too.
    let no_session = mcp_post(&gateway.http, &url, &token)
        .json(&json!({"jsonrpc": "2.0", "id": 8, "method": "tools/list"}))
        .send()
        .await
        .expect("answers");
    assert!(
        no_session.status().is_client_error(),
        "{}",
        no_session.status()
    );
    let body: Value = no_session.json().await.expect("JSON body");
    assert!(body["error"]["code"].is_i64(), "{body}");

    let huge = json!({"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"pad": "x".repeat(100 * 1024)}});
    let too_large = mcp_post(&gateway.http, &url, &token)
        .json(&huge)
        .send()
        .await
        .expect("answers");
    assert_eq!(too_large.status(), 413);

    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_without_a_good_token_is_401() {
    let gateway = TestGateway::start(Vec::new(), |b| b).await;
    let url = gateway.url("/mcp");
    let expired = support::expired_jwt("alice");
    let forged = {
        let mut t = jwt("alice");
        t.push('x');
        t
    };
    for token in [
        None,
        Some(expired.as_str()),
        Some(forged.as_str()),
        Some("garbage"),
    ] {
        let mut request = gateway
            .http
            .post(&url)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .json(&initialize_body());
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("answers");
        assert_eq!(response.status(), 401, "{token:?}");
        let challenge = response
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .expect("a challenge")
            .to_owned();
        assert!(challenge.starts_with("Bearer"), "{challenge}");
        let body = response.text().await.expect("body");
        assert!(body.contains("\"error\""), "{body}");
        if let Some(token) = token {
            assert!(!body.contains(token), "the token is not echoed");
            assert!(!challenge.contains(token), "the token is not echoed");
        }
    }
    gateway.stop().await;
}

fn call_body(id: u64) -> Value {
    json!({
        "jsonrpc": "2.0",
        "id": id,
        "method": "tools/call",
        "params": {"name": "local__add", "arguments": {"a": 2, "b": 3}}
    })
}

async fn call_in_session(
    gateway: &TestGateway,
    token: &str,
    session: &str,
    accept: &str,
    id: u64,
) -> reqwest::Response {
    mcp_post(&gateway.http, &gateway.url("/mcp"), token)
        .header("accept", accept)
        .header(SESSION_HEADER, session)
        .header("mcp-protocol-version", "2025-06-18")
        .json(&call_body(id))
        .send()
        .await
        .expect("tools/call answers")
}

fn content_type(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// A plain `tools/call` on a live session is answered as JSON without rmcp's session worker;
/// the session's idle timer still only runs while the session is unused, other users are
/// still refused, and a session that ended is not served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_calls_are_answered_as_json_and_keep_their_session_alive() {
    const PLAIN: &str = "application/json, text/event-stream";
    let idle = Duration::from_secs(2);
    let local = upstream::start().await;
    let gateway = TestGateway::start(
        vec![http_server("local", &local.url, Duration::from_secs(10))],
        |b| {
            b.mcp(McpConfig {
                session_idle_timeout: idle,
                ..McpConfig::default()
            })
        },
    )
    .await;
    let (alice, bob) = (jwt("alice"), jwt("bob"));
    let session = open_session(&gateway, &alice).await;

    let direct = call_in_session(&gateway, &alice, &session, PLAIN, 7).await;
    assert_eq!(direct.status(), 200);
    assert!(content_type(&direct).starts_with("application/json"));
    let answer: Value = direct.json().await.expect("a JSON body");
    assert_eq!(answer["jsonrpc"], "2.0");
    assert_eq!(answer["id"], 7);
    assert_eq!(answer["result"]["content"][0]["text"], "5", "{answer}");

    // Weighted Accept values are rmcp's to judge: the same call through rmcp, as a stream.
    let weighted = "application/json;q=1, text/event-stream;q=0.9";
    let through_rmcp = call_in_session(&gateway, &alice, &session, weighted, 8).await;
    assert_eq!(through_rmcp.status(), 200);
    assert!(content_type(&through_rmcp).starts_with("text/event-stream"));
    let streamed = first_message(through_rmcp).await;
    assert_eq!(streamed["id"], 8);
    assert_eq!(streamed["result"], answer["result"]);

    // Unknown tools are the caller's mistake on this path too.
    let unknown = mcp_post(&gateway.http, &gateway.url("/mcp"), &alice)
        .header(SESSION_HEADER, &session)
        .json(&json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
                      "params": {"name": "local__nope"}}))
        .send()
        .await
        .expect("answers");
    let unknown: Value = first_message(unknown).await;
    assert_eq!(
        unknown["error"]["code"],
        ErrorCode::INVALID_PARAMS.0,
        "{unknown}"
    );

    // Bob's valid token with Alice's session id: refused before any call is made.
    assert_eq!(
        call_in_session(&gateway, &bob, &session, PLAIN, 10)
            .await
            .status(),
        404
    );

    // Calls only, for longer than the idle timeout: the session stays open.
    let started = tokio::time::Instant::now();
    for id in 0..12 {
        tokio::time::sleep(idle / 8).await;
        let response = call_in_session(&gateway, &alice, &session, PLAIN, 100 + id).await;
        assert_eq!(
            response.status(),
            200,
            "call {id} after {:?}",
            started.elapsed()
        );
    }
    assert!(started.elapsed() > idle);
    let listed = list_in_session(&gateway, &alice, &session).await;
    assert_eq!(listed.status(), 200, "rmcp still holds the session");

    // Unused for longer than the idle timeout, it is gone, for calls too.
    tokio::time::sleep(idle + idle / 2).await;
    assert_eq!(
        call_in_session(&gateway, &alice, &session, PLAIN, 200)
            .await
            .status(),
        404
    );

    // A session ended by DELETE is not served either.
    let session = open_session(&gateway, &alice).await;
    let deleted = delete_session(&gateway, &alice, &session).await;
    assert!(deleted.is_success(), "{deleted}");
    assert_eq!(
        call_in_session(&gateway, &alice, &session, PLAIN, 300)
            .await
            .status(),
        404
    );
    gateway.stop().await;
}

/// The statuses of a POSTed `initialize` without a token on `paths` of `base`: the endpoint
/// answers 401 with a challenge, anything else is not the endpoint.
async fn statuses_without_token(
    http: &reqwest::Client,
    base: &str,
    paths: &[&str],
) -> Vec<(String, u16)> {
    let mut statuses = Vec::new();
    for path in paths {
        let response = http
            .post(format!("{base}{path}"))
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .json(&initialize_body())
            .send()
            .await
            .expect("answers");
        statuses.push(((*path).to_owned(), response.status().as_u16()));
    }
    statuses
}

/// The listener serves `/mcp` without the router (`gateway::dispatch`); a host that serves
/// `Gateway::router()` itself gets the same endpoint, and both take exactly the path `/mcp`
/// (a query string included, a trailing slash or another case not).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_router_serves_the_same_mcp_endpoint_as_the_listener() {
    let local = upstream::start().await;
    let servers = || vec![http_server("local", &local.url, Duration::from_secs(10))];
    let listened = TestGateway::start(servers(), |b| b).await;
    let routed =
        tether::gateway::Gateway::builder(support::manager(servers()), support::host_auth())
            .build()
            .expect("gateway builds");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let routed_base = format!("http://{}", listener.local_addr().expect("address"));
    let router = routed.router();
    let served = tokio::spawn(async move { axum::serve(listener, router).await });

    let paths = ["/mcp", "/mcp?probe=1", "/mcp/", "/MCP", "/mcpx"];
    let expected: Vec<(String, u16)> = [401, 401, 404, 404, 404]
        .iter()
        .zip(paths)
        .map(|(status, path)| (path.to_owned(), *status))
        .collect();
    for base in [&listened.base, &routed_base] {
        assert_eq!(
            statuses_without_token(&listened.http, base, &paths).await,
            expected,
            "{base}"
        );
        let client = mcp_client(base, &jwt("alice")).await;
        let mut add = CallToolRequestParams::new("local__add");
        add.arguments = json!({"a": 2, "b": 3}).as_object().cloned();
        let result = tokio::time::timeout(STEP, client.peer().call_tool(add))
            .await
            .expect("tools/call in time")
            .expect("tools/call succeeds");
        let result = serde_json::to_value(&result).expect("serializes");
        assert_eq!(result["content"][0]["text"], "5", "{base}: {result}");
        let _ = client.cancel().await;
    }
    served.abort();
    listened.stop().await;
}
