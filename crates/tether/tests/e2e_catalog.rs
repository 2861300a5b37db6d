//! The server catalog through two replicas of one deployment (PostgreSQL + Redis, real gateway
//! processes, the testkit's rmcp servers as upstreams): a server created through the admin API
//! on replica 1 is listed and callable on replica 2 within 2 s; updated there, replica 1's calls
//! go to its new address; deleted, it is gone on both. The API refuses what it must: no
//! credential, a URL inside the deployment, a process to start, a taken name, a file server.
//!
//! Needs PostgreSQL on 127.0.0.1:5432 and Redis on 127.0.0.1:6379.

mod support;

use std::time::{Duration, Instant};

use rmcp::model::CallToolRequestParams;
use serde_json::{Value, json};
use tether_testkit::{DemoTools, serve_streamable_http};

use support::gateway_process::{
    ADMIN_PASSWORD, ADMIN_USER, GatewayProcess, add_args, call, result_text,
};
use support::replicas::{Deployment, Pair, Ports};
use support::{jwt, mcp_client};

type Client = rmcp::service::RunningService<rmcp::RoleClient, rmcp::model::ClientConfig>;

/// The most a change may take to reach the other replica (the bound).
const EVERYWHERE: Duration = Duration::from_secs(2);

async fn admin(
    gateway: &GatewayProcess,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = gateway
        .http
        .request(method, gateway.url(path))
        .basic_auth(ADMIN_USER, Some(ADMIN_PASSWORD));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("the admin API answers");
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

async fn lists(client: &Client, tool: &str) -> bool {
    let tools = tokio::time::timeout(Duration::from_secs(10), client.peer().list_all_tools())
        .await
        .expect("tools/list in time")
        .expect("tools/list");
    tools.iter().any(|t| t.name == tool)
}

/// Polls until `cond` holds, at most [`EVERYWHERE`] (plus one try); returns the time it took.
async fn within_bound<F, Fut>(what: &str, mut cond: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if cond().await {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < EVERYWHERE,
            "{what} within {EVERYWHERE:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catalog_server_reaches_every_replica_within_two_seconds_and_leaves_with_its_delete() {
    let first = DemoTools::default();
    let second = DemoTools::default();
    let up1 = serve_streamable_http(first.clone(), "127.0.0.1:0")
        .await
        .expect("upstream 1 starts");
    let up2 = serve_streamable_http(second.clone(), "127.0.0.1:0")
        .await
        .expect("upstream 2 starts");
    let deployment = Deployment::new("catalog", "redis://127.0.0.1:6379").await;
    let ports = Ports::new().await;
    let file_server = serve_streamable_http(DemoTools::default(), "127.0.0.1:0")
        .await
        .expect("the file's upstream starts");
    let rest = format!(
        "[catalog]\nallowed_hosts = [\"127.0.0.1\"]\n\n[[servers]]\nname = \"filed\"\nurl = \"{}\"\n",
        file_server.url
    );
    let pair = Pair::start("catalog", &deployment, &ports, &rest, &[]).await;
    let one = mcp_client(&pair.one.base, &jwt("alice")).await;
    let two = mcp_client(&pair.two.base, &jwt("alice")).await;
    assert!(lists(&two, "filed__add").await);

    // Created on replica 1: listed and callable on replica 2 within 2 s.
    let (status, body) = admin(
        &pair.one,
        reqwest::Method::POST,
        "/v1/admin/servers",
        Some(json!({"name": "cat", "url": up1.url})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["source"], "catalog", "{body}");
    assert!(
        lists(&one, "cat__add").await,
        "at once on the replica that made it"
    );
    let took = within_bound("the created server listed on replica 2", || {
        lists(&two, "cat__add")
    })
    .await;
    println!("created: on replica 2 after {took:?}");
    assert_eq!(
        result_text(&call(&two, "cat__add", add_args(1, 2)).await),
        "3"
    );
    assert_eq!(first.calls(), 1, "the call reached upstream 1");

    // Updated on replica 2: replica 1's calls go to the new address within 2 s.
    let (status, body) = admin(
        &pair.two,
        reqwest::Method::PUT,
        "/v1/admin/servers/cat",
        Some(json!({"url": up2.url})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let took = within_bound("replica 1's calls reaching the new address", || async {
        let before = second.calls();
        let result = call(&one, "cat__add", add_args(2, 2)).await;
        result_text(&result) == "4" && second.calls() > before
    })
    .await;
    println!("updated: replica 1 on the new address after {took:?}");

    // The listing names both sources.
    let (status, body) = admin(&pair.two, reqwest::Method::GET, "/v1/admin/servers", None).await;
    assert_eq!(status, 200);
    let sources: Vec<(String, String)> = body
        .as_array()
        .expect("a list")
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap_or_default().to_owned(),
                s["source"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        sources,
        [
            ("filed".to_owned(), "config".to_owned()),
            ("cat".to_owned(), "catalog".to_owned())
        ]
    );

    // Refusals, none of which changes anything.
    let refusals = [
        (
            json!({"name": "meta", "url": "http://169.254.169.254/mcp"}),
            400,
        ),
        (json!({"name": "inner", "url": "https://10.0.0.7/mcp"}), 400),
        (
            json!({"name": "shell", "command": "sh", "args": ["-c", "id"]}),
            400,
        ),
        (
            json!({"name": "env", "url": up1.url, "client_id": "x", "client_secret_env": "TETHER_ENCRYPTION_KEY"}),
            400,
        ),
        (json!({"name": "cat", "url": up1.url}), 409),
        (json!({"name": "filed", "url": up1.url}), 409),
        (json!({"name": "bad name!", "url": up1.url}), 400),
    ];
    for (definition, expected) in refusals {
        let (status, body) = admin(
            &pair.one,
            reqwest::Method::POST,
            "/v1/admin/servers",
            Some(definition.clone()),
        )
        .await;
        assert_eq!(status, expected, "{definition} → {body}");
    }
    let anonymous = pair
        .one
        .http
        .post(pair.one.url("/v1/admin/servers"))
        .json(&json!({"name": "x", "url": up1.url}))
        .send()
        .await
        .expect("answers");
    assert_eq!(anonymous.status().as_u16(), 401);
    let (status, _) = admin(
        &pair.one,
        reqwest::Method::DELETE,
        "/v1/admin/servers/filed",
        None,
    )
    .await;
    assert_eq!(status, 409, "a file server is not deleted through the API");

    // A file server switched off on replica 2: gone from replica 1 within 2 s; on again, back.
    let (status, _) = admin(
        &pair.two,
        reqwest::Method::POST,
        "/v1/admin/servers/filed/disable",
        None,
    )
    .await;
    assert_eq!(status, 204);
    let took = within_bound("the disabled server gone from replica 1", || async {
        !lists(&one, "filed__add").await
    })
    .await;
    println!("disabled: gone from replica 1 after {took:?}");
    let (status, body) = admin(
        &pair.one,
        reqwest::Method::GET,
        "/v1/admin/servers/filed",
        None,
    )
    .await;
    assert_eq!((status, &body["disabled"]), (200, &json!(true)), "{body}");
    let (status, _) = admin(
        &pair.one,
        reqwest::Method::POST,
        "/v1/admin/servers/filed/enable",
        None,
    )
    .await;
    assert_eq!(status, 204);
    within_bound("the enabled server back on replica 2", || {
        lists(&two, "filed__add")
    })
    .await;
    assert_eq!(
        result_text(&call(&two, "filed__add", add_args(1, 1)).await),
        "2"
    );

    // Deleted on replica 1: gone on both within 2 s, and no longer callable.
    let (status, body) = admin(
        &pair.one,
        reqwest::Method::DELETE,
        "/v1/admin/servers/cat",
        None,
    )
    .await;
    assert_eq!(status, 204, "{body}");
    assert!(
        !lists(&one, "cat__add").await,
        "at once on the replica that deleted it"
    );
    let took = within_bound("the deleted server gone from replica 2", || async {
        !lists(&two, "cat__add").await
    })
    .await;
    println!("deleted: gone from replica 2 after {took:?}");
    let mut params = CallToolRequestParams::new("cat__add");
    params.arguments = add_args(1, 1).as_object().cloned();
    let answer = tokio::time::timeout(Duration::from_secs(10), two.peer().call_tool(params))
        .await
        .expect("answered");
    assert!(
        answer.is_err(),
        "the deleted server's tool is unknown: {answer:?}"
    );
    let (status, _) = admin(
        &pair.two,
        reqwest::Method::DELETE,
        "/v1/admin/servers/cat",
        None,
    )
    .await;
    assert_eq!(status, 404);

    let _ = one.cancel().await;
    let _ = two.cancel().await;
    pair.one.kill().await;
    pair.two.kill().await;
    up1.stop().await;
    up2.stop().await;
    file_server.stop().await;
}
