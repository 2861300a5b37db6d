//! The servers are reloaded from the configuration file while the gateway runs: SIGHUP adds a
//! server while an agent's calls go on without an error, and `POST /v1/admin/reload` (admin
//! credential, refused from web pages) removes one or refuses a file with problems, changing
//! nothing. The gateway runs as a process, with the testkit's rmcp servers as upstreams.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rmcp::model::CallToolRequestParams;
use serde_json::Value;
use tether_testkit::{DemoTools, serve_streamable_http};

use support::gateway_process::{
    ADMIN_PASSWORD, ADMIN_USER, GatewayProcess, Launch, TempDir, add_args, call, config_text,
    result_text, tool_names,
};
use support::{jwt, mcp_client};

fn servers(entries: &[(&str, &str)]) -> String {
    entries
        .iter()
        .map(|(name, url)| format!("[[servers]]\nname = \"{name}\"\nurl = \"{url}\"\n"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_are_reloaded_on_sighup_and_through_the_admin_api_while_calls_go_on() {
    let demo = serve_streamable_http(DemoTools::default(), "127.0.0.1:0")
        .await
        .expect("the first upstream starts");
    let extra = serve_streamable_http(DemoTools::default(), "127.0.0.1:0")
        .await
        .expect("the second upstream starts");
    let dir = TempDir::new("reload");
    let config = config_text(&dir.path, &servers(&[("demo", &demo.url)]));
    let gateway = GatewayProcess::start(&Launch::new(&dir.path), &config).await;
    let client = Arc::new(mcp_client(&gateway.base, &jwt("alice")).await);
    assert_eq!(
        result_text(&call(&client, "demo__add", add_args(1, 2)).await),
        "3"
    );

    // An agent calling all along, bounded in count and time.
    let stop = Arc::new(AtomicBool::new(false));
    let (done, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let caller = tokio::spawn({
        let (client, stop, done, failed) =
            (client.clone(), stop.clone(), done.clone(), failed.clone());
        async move {
            for i in 0..5_000i64 {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let mut params = CallToolRequestParams::new("demo__add");
                params.arguments = add_args(i, 1).as_object().cloned();
                let answer =
                    tokio::time::timeout(Duration::from_secs(10), client.peer().call_tool(params))
                        .await;
                let right = matches!(&answer, Ok(Ok(result))
                    if result_text(&serde_json::to_value(result).unwrap_or_default()) == (i + 1).to_string());
                if right {
                    done.fetch_add(1, Ordering::SeqCst);
                } else {
                    failed.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
    });

    // SIGHUP with a second server in the file.
    let config = config_text(
        &dir.path,
        &servers(&[("demo", &demo.url), ("extra", &extra.url)]),
    );
    std::fs::write(dir.path.join("tether.toml"), config).expect("rewrites the configuration");
    let before_signal = done.load(Ordering::SeqCst);
    let status = std::process::Command::new("kill")
        .args(["-HUP", &gateway.pid().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "SIGHUP sent");
    let started = Instant::now();
    loop {
        if tool_names(&client).await.iter().any(|n| n == "extra__add") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the added server's tools are listed within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        result_text(&call(&client, "extra__add", add_args(2, 3)).await),
        "5",
        "the added server is callable"
    );
    // Calls went on across the reload.
    let until = Instant::now() + Duration::from_secs(10);
    while done.load(Ordering::SeqCst) < before_signal + 20 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::SeqCst);
    caller.await.expect("the caller ends");
    assert_eq!(
        failed.load(Ordering::SeqCst),
        0,
        "no call failed across the reload"
    );
    assert!(
        done.load(Ordering::SeqCst) >= before_signal + 20,
        "calls went on after the signal"
    );

    // The admin API: refused without the credential and from a web page.
    let reload = gateway.url("/v1/admin/reload");
    let answer = gateway.http.post(&reload).send().await.expect("answers");
    assert_eq!(answer.status().as_u16(), 401);
    let answer = gateway
        .http
        .post(&reload)
        .basic_auth(ADMIN_USER, Some(ADMIN_PASSWORD))
        .header("Origin", "https://evil.example")
        .send()
        .await
        .expect("answers");
    assert_eq!(
        answer.status().as_u16(),
        403,
        "no admin action from a web page"
    );

    // A file with problems changes nothing and names them.
    let broken = config_text(
        &dir.path,
        &servers(&[("demo", &demo.url), ("demo", &extra.url)]),
    );
    std::fs::write(dir.path.join("tether.toml"), broken).expect("rewrites the configuration");
    let answer = gateway
        .http
        .post(&reload)
        .basic_auth(ADMIN_USER, Some(ADMIN_PASSWORD))
        .send()
        .await
        .expect("answers");
    assert_eq!(answer.status().as_u16(), 400);
    let body: Value = answer.json().await.expect("JSON");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("configured twice")),
        "{body}"
    );
    let names = tool_names(&client).await;
    assert!(
        names.iter().any(|n| n == "extra__add") && names.iter().any(|n| n == "demo__add"),
        "nothing changed: {names:?}"
    );

    // Removing a server: gone from the list and from calls.
    let config = config_text(&dir.path, &servers(&[("extra", &extra.url)]));
    std::fs::write(dir.path.join("tether.toml"), config).expect("rewrites the configuration");
    let answer = gateway
        .http
        .post(&reload)
        .basic_auth(ADMIN_USER, Some(ADMIN_PASSWORD))
        .send()
        .await
        .expect("answers");
    assert_eq!(answer.status().as_u16(), 200);
    let body: Value = answer.json().await.expect("JSON");
    assert_eq!(body["removed"], serde_json::json!(["demo"]), "{body}");
    let names = tool_names(&client).await;
    assert!(
        !names.iter().any(|n| n.starts_with("demo__")),
        "the removed server's tools are gone: {names:?}"
    );
    let mut params = CallToolRequestParams::new("demo__add");
    params.arguments = add_args(1, 1).as_object().cloned();
    let answer = tokio::time::timeout(Duration::from_secs(10), client.peer().call_tool(params))
        .await
        .expect("answered");
    assert!(
        answer.is_err(),
        "the removed server's tool is unknown: {answer:?}"
    );

    if let Ok(client) = Arc::try_unwrap(client) {
        let _ = client.cancel().await;
    }
    gateway.kill().await;
    demo.stop().await;
    extra.stop().await;
}
