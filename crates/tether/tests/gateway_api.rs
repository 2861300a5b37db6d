//! The `/v1/me/…` API, the probes, `/metrics` and `/status`, against real upstreams.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::Engine as _;
use serde_json::Value;
use tether::gateway::auth::AdminCredentials;
use tether::gateway::{HookError, PairForgetter, ReadinessCheck};
use tether_core::{ServerName, UserId};
use tokio::net::TcpListener;

use support::{STEP, TestGateway, expired_jwt, http_server, jwt, upstream};

/// A TCP server that accepts connections and never answers: an upstream that hangs.
async fn black_hole() -> (String, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (format!("http://{addr}/mcp"), task)
}

async fn servers_of(gateway: &TestGateway, token: &str) -> Vec<Value> {
    let response = gateway
        .http
        .get(gateway.url("/v1/me/servers"))
        .bearer_auth(token)
        .send()
        .await
        .expect("servers answer");
    assert_eq!(response.status(), 200);
    response.json().await.expect("a JSON list")
}

fn row<'a>(rows: &'a [Value], name: &str) -> &'a Value {
    rows.iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no row for {name} in {rows:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_on_login_answers_202_at_once_and_states_are_per_user() {
    let local = upstream::start().await;
    let (hole, hole_task) = black_hole().await;
    let gateway = TestGateway::start(
        vec![
            http_server("slow", &hole, Duration::from_secs(3)),
            http_server("local", &local.url, Duration::from_secs(10)),
        ],
        |b| b,
    )
    .await;
    let alice = jwt("alice");

    let started = Instant::now();
    let response = gateway
        .http
        .post(gateway.url("/v1/me/reconnect"))
        .bearer_auth(&alice)
        .send()
        .await
        .expect("reconnect answers");
    assert_eq!(response.status(), 202);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "answered after {:?}: it waited for the hanging upstream",
        started.elapsed()
    );
    let body: Value = response.json().await.expect("JSON body");
    let scheduled: Vec<&str> = body["scheduled"]
        .as_array()
        .expect("scheduled list")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(scheduled, ["slow", "local"]);

    // The background attempt connects `local` (bounded wait).
    let mut connected = false;
    for _ in 0..100 {
        let rows = servers_of(&gateway, &alice).await;
        if row(&rows, "local")["state"] == "connected" {
            let local_row = row(&rows, "local");
            assert_eq!(local_row["tools"], 2, "{local_row}");
            assert!(
                local_row["since"]
                    .as_str()
                    .is_some_and(|s| s.ends_with('Z')),
                "{local_row}"
            );
            connected = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(connected, "local never connected");

    // Bob sees his own (untouched) states, not Alice's.
    let bob_rows = servers_of(&gateway, &jwt("bob")).await;
    assert_eq!(
        row(&bob_rows, "local")["state"],
        "disconnected",
        "{bob_rows:?}"
    );
    assert_eq!(row(&bob_rows, "local")["tools"], 0, "{bob_rows:?}");

    gateway.stop().await;
    hole_task.abort();
}

#[derive(Debug, Default)]
struct RecordingForgetter {
    forgotten: Mutex<Vec<(UserId, ServerName)>>,
}

#[async_trait]
impl PairForgetter for RecordingForgetter {
    async fn forget(&self, user: &UserId, server: &ServerName) -> Result<(), HookError> {
        self.forgotten
            .lock()
            .expect("not poisoned")
            .push((user.clone(), server.clone()));
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_server_reconnects_is_removed_and_unknown_servers_are_404() {
    let local = upstream::start().await;
    let forgetter = Arc::new(RecordingForgetter::default());
    let hook: Arc<dyn PairForgetter> = forgetter.clone();
    let gateway = TestGateway::start(
        vec![http_server("local", &local.url, Duration::from_secs(10))],
        move |b| b.pair_forgetter(hook),
    )
    .await;
    let alice = jwt("alice");

    let response = gateway
        .http
        .post(gateway.url("/v1/me/servers/local/reconnect"))
        .bearer_auth(&alice)
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["connected"], true, "{body}");
    assert_eq!(body["state"], "connected", "{body}");
    assert_eq!(body["name"], "local", "{body}");

    for (method, path) in [
        (reqwest::Method::POST, "/v1/me/servers/nope/reconnect"),
        (reqwest::Method::DELETE, "/v1/me/servers/nope"),
    ] {
        let response = gateway
            .http
            .request(method.clone(), gateway.url(path))
            .bearer_auth(&alice)
            .send()
            .await
            .expect("answers");
        assert_eq!(response.status(), 404, "{method} {path}");
        let body: Value = response.json().await.expect("JSON error");
        assert_eq!(body["error"], "unknown_server", "{body}");
    }

    let response = gateway
        .http
        .delete(gateway.url("/v1/me/servers/local"))
        .bearer_auth(&alice)
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status(), 204);
    assert_eq!(
        *forgetter.forgotten.lock().expect("not poisoned"),
        [(UserId::new("alice"), ServerName::new("local"))]
    );
    let rows = servers_of(&gateway, &alice).await;
    assert_eq!(row(&rows, "local")["state"], "disconnected", "{rows:?}");
    // The manager forgot the pair's tools too (an agent opening a session connects the
    // configured server again).
    assert_eq!(row(&rows, "local")["tools"], 0, "{rows:?}");
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_needs_a_good_host_token() {
    let gateway = TestGateway::start(Vec::new(), |b| b).await;
    let expired = expired_jwt("alice");
    for token in [None, Some(expired.as_str()), Some("a.b.c")] {
        let mut request = gateway.http.get(gateway.url("/v1/me/servers"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("answers");
        assert_eq!(response.status(), 401, "{token:?}");
        assert!(
            response
                .headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("Bearer")),
            "{token:?}"
        );
        let body: Value = response.json().await.expect("JSON error");
        assert_eq!(body["error"], "unauthorized", "{body}");
        if let Some(token) = token {
            assert!(!body.to_string().contains(token));
        }
    }
    gateway.stop().await;
}

#[derive(Debug)]
struct Failing;

#[async_trait]
impl ReadinessCheck for Failing {
    fn name(&self) -> &str {
        "database"
    }

    async fn check(&self) -> Result<(), HookError> {
        Err(HookError("unreachable".into()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_metrics_and_the_operator_page() {
    let local = upstream::start().await;
    let gateway = TestGateway::start(
        vec![http_server("local", &local.url, Duration::from_secs(10))],
        |b| {
            b.admin(AdminCredentials::new(
                Some("admin-token".into()),
                Some(("ops".into(), "s3cret".into())),
            ))
        },
    )
    .await;
    let http = &gateway.http;

    let health = http
        .get(gateway.url("/healthz"))
        .send()
        .await
        .expect("answers");
    assert_eq!(health.status(), 200);
    let ready = http
        .get(gateway.url("/readyz"))
        .send()
        .await
        .expect("answers");
    assert_eq!(ready.status(), 200);
    let ready: Value = ready.json().await.expect("JSON");
    assert_eq!(ready["ready"], true, "{ready}");

    // A user whose id is markup, connected through the API.
    let odd_user = "<img src=x onerror=alert(1)>";
    let token = jwt(odd_user);
    let response = http
        .post(gateway.url("/v1/me/servers/local/reconnect"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("answers");
    assert_eq!(response.status(), 200);

    let metrics = gateway.metrics().await;
    for name in [
        "tether_sessions",
        "tether_reconnect_attempts_total",
        "tether_breaker_opens_total",
        "tether_admission_waits_total",
    ] {
        assert!(metrics.contains(name), "{name} missing:\n{metrics}");
    }
    assert!(
        metrics.contains(r#"tether_sessions{state="connected"} 1"#),
        "{metrics}"
    );
    // (The tool-call histogram appears with the first call: see gateway_mcp.)
    assert!(
        !metrics.contains("img"),
        "no user ids in metrics:\n{metrics}"
    );
    assert!(!metrics.contains(&token), "no tokens in metrics");

    let status = http
        .get(gateway.url("/status"))
        .send()
        .await
        .expect("answers");
    assert_eq!(status.status(), 401);
    let status = http
        .get(gateway.url("/status"))
        .basic_auth("ops", Some("wrong"))
        .send()
        .await
        .expect("answers");
    assert_eq!(status.status(), 401);
    let status = http
        .get(gateway.url("/status"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("answers");
    assert_eq!(
        status.status(),
        401,
        "a host token is not an admin credential"
    );
    let basic = base64::engine::general_purpose::STANDARD.encode("ops:s3cret");
    let status = http
        .get(gateway.url("/status"))
        .header("authorization", format!("Basic {basic}"))
        .send()
        .await
        .expect("answers");
    assert_eq!(status.status(), 200);
    assert!(
        status
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/html"))
    );
    let page = status.text().await.expect("HTML");
    assert!(
        page.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "{page}"
    );
    assert!(!page.contains("<img"), "user ids are escaped:\n{page}");
    assert!(page.contains("<td>local</td><td>connected</td>"), "{page}");
    let status = http
        .get(gateway.url("/status"))
        .bearer_auth("admin-token")
        .send()
        .await
        .expect("answers");
    assert_eq!(status.status(), 200);
    gateway.stop().await;

    // Readiness follows the registered checks.
    let gateway = TestGateway::start(Vec::new(), |b| b.readiness_check(Arc::new(Failing))).await;
    let ready = gateway
        .http
        .get(gateway.url("/readyz"))
        .send()
        .await
        .expect("answers");
    assert_eq!(ready.status(), 503);
    let ready: Value = ready.json().await.expect("JSON");
    assert_eq!(ready["checks"][0]["name"], "database", "{ready}");
    assert_eq!(ready["checks"][0]["ok"], false, "{ready}");
    // Without an admin credential configured the page does not exist.
    let status = gateway
        .http
        .get(gateway.url("/status"))
        .send()
        .await
        .expect("answers");
    assert_eq!(status.status(), 404);
    tokio::time::timeout(STEP, gateway.stop())
        .await
        .expect("stops");
}
