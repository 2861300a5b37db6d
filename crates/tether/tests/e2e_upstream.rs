//! The gateway as a process with a plain (non-OAuth) upstream that is itself a process, the
//! testkit's `tether-testkit-mcp`, killed and restarted on the same port: its tools stay listed
//! as stubs, calls say why they fail, the breaker opens, the gateway does not hammer the dead
//! port, and once the upstream is back a reconnect makes the calls work again.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;

use support::gateway_process::{
    GatewayProcess, Launch, TempDir, TestkitMcp, add_args, call, config_text, count_and_close,
    metric_sum, result_text, tail, tool_names, wait_for,
};
use support::{jwt, mcp_client};

/// Accepts connections on `addr` and closes them at once, counting them: the dead upstream's
/// port, watched.
async fn connection_counter(
    addr: std::net::SocketAddr,
) -> (Arc<AtomicU64>, tokio::task::JoinHandle<()>) {
    let listener = wait_for(
        "the upstream's port to be free",
        Duration::from_secs(10),
        || async move { TcpListener::bind(addr).await.ok() },
    )
    .await;
    count_and_close(listener)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_upstream_keeps_its_stubs_opens_the_breaker_without_a_tight_loop_and_comes_back() {
    let dir = TempDir::new("upstream");
    let upstream = TestkitMcp::spawn("127.0.0.1:0").await;
    let addr = upstream.addr;
    let config = config_text(
        &dir.path,
        &format!(
            r#"[reconnect]
stagger = "10ms"
include_non_oauth = true
default_init_timeout = "5s"
in_session_attempts = 3

[breaker]
failure_threshold = 3
open_base = "2s"
open_cap = "4s"

[backoff]
base = "200ms"
cap = "1s"

[[servers]]
name = "demo"
url = "{}"
"#,
            upstream.url
        ),
    );
    let gateway = GatewayProcess::start(&Launch::new(&dir.path), &config).await;
    let alice = jwt("alice");

    let client = mcp_client(&gateway.base, &alice).await;
    let mut names = tool_names(&client).await;
    names.sort();
    assert_eq!(names, ["demo__add", "demo__echo"]);
    let result = call(&client, "demo__add", add_args(40, 2)).await;
    assert_eq!(result_text(&result), "42", "{result}");

    // The upstream dies; its port is watched from now on.
    upstream.kill().await;
    let (attempts, counter) = connection_counter(addr).await;
    let window = Instant::now();
    let mut errors = Vec::new();
    // A model keeps calling for a few seconds.
    while window.elapsed() < Duration::from_secs(6) {
        let result = call(&client, "demo__add", add_args(1, 2)).await;
        assert_eq!(
            result["isError"], true,
            "a call to the dead upstream is an error result: {result}"
        );
        let text = result_text(&result);
        assert!(!text.trim().is_empty(), "the error says why: {result}");
        errors.push(text);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let seen = attempts.load(Ordering::SeqCst);
    println!(
        "{} calls in {:?}, {seen} connections to the dead port; last error: {:?}",
        errors.len(),
        window.elapsed(),
        errors.last()
    );
    assert!(
        seen <= 12,
        "{seen} connections to the dead upstream in {:?} for {} calls: a tight loop\n{}",
        window.elapsed(),
        errors.len(),
        tail(&gateway.logs(), 40)
    );
    // Stubs: the same names, still listed.
    let mut names = tool_names(&client).await;
    names.sort();
    assert_eq!(names, ["demo__add", "demo__echo"], "the stubs stay listed");

    // The breaker opens (explicit reconnects count as failures too).
    wait_for("the breaker to open", Duration::from_secs(30), || async {
        let metrics = gateway.metrics().await;
        let row = gateway.row(&alice, "demo").await;
        if metric_sum(&metrics, "tether_breaker_opens_total") >= 1.0
            || row["state"] == "circuit_open"
        {
            return Some(());
        }
        let _ = gateway.post(&alice, "/v1/me/servers/demo/reconnect").await;
        None
    })
    .await;
    let row = gateway.row(&alice, "demo").await;
    assert_ne!(row["state"], "connected", "{row}");
    let before_restart = attempts.load(Ordering::SeqCst);
    counter.abort();
    let _ = counter.await;

    // The upstream comes back on the same port; a reconnect brings the pair back.
    let upstream = TestkitMcp::spawn(&addr.to_string()).await;
    let answer = wait_for(
        "POST /v1/me/servers/demo/reconnect to connect",
        Duration::from_secs(30),
        || async {
            let (status, body) = gateway.post(&alice, "/v1/me/servers/demo/reconnect").await;
            assert_eq!(status, 200, "{body}");
            if body["connected"] == true {
                Some(body)
            } else {
                tokio::time::sleep(Duration::from_millis(400)).await;
                None
            }
        },
    )
    .await;
    assert_eq!(answer["state"], "connected", "{answer}");
    let result = call(&client, "demo__add", add_args(40, 2)).await;
    assert_eq!(result_text(&result), "42", "{result}");
    assert_ne!(result["isError"], true, "{result}");
    println!("{before_restart} connections to the dead port in all");
    let _ = client.cancel().await;
    upstream.kill().await;
    gateway.kill().await;
}
