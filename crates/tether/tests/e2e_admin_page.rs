//! The admin page driven in the machine's headless Chromium (playwright-core, from
//! `tests/peers`): an operator adds a server through the form, an agent calls it, the page shows
//! the user's pair connected, the server is switched off and on again, and its delete button
//! removes it. Forms that do not come
//! from the page (no form token, another site's `Origin`) are refused.
//!
//! Needs /usr/bin/chromium and `npm ci` in crates/tether/tests/peers (`scripts/test` does both).

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use tether_testkit::{DemoTools, serve_streamable_http};

use support::gateway_process::{
    ADMIN_PASSWORD, ADMIN_USER, GatewayProcess, Launch, TempDir, add_args, call, config_text,
    result_text,
};
use support::{jwt, mcp_client};

fn peers() -> PathBuf {
    let peers = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("peers");
    assert!(
        peers.join("node_modules").join("playwright-core").exists(),
        "playwright-core is missing: run `npm ci` in {} (scripts/test does)",
        peers.display()
    );
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "/usr/bin/chromium is missing (scripts/test installs it)"
    );
    peers
}

/// One step of `admin_page.mjs`: its JSON line.
async fn page_step(gateway: &GatewayProcess, args: &[&str]) -> Value {
    let peers = peers();
    let output = tokio::time::timeout(
        Duration::from_secs(90),
        tokio::process::Command::new("node")
            .arg(peers.join("admin_page.mjs"))
            .arg(args[0])
            .arg(&gateway.base)
            .args([ADMIN_USER, ADMIN_PASSWORD])
            .args(&args[1..])
            .current_dir(&peers)
            .env_remove("http_proxy")
            .env_remove("HTTP_PROXY")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the browser step ends within 90 s")
    .expect("node runs");
    assert!(
        output.status.success(),
        "admin_page.mjs {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or_default()).expect("one JSON line")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_adds_a_server_in_the_admin_page_and_sees_it_connect() {
    let upstream = serve_streamable_http(DemoTools::default(), "127.0.0.1:0")
        .await
        .expect("the upstream starts");
    let dir = TempDir::new("admin-page");
    let config = config_text(&dir.path, "[catalog]\nallowed_hosts = [\"127.0.0.1\"]\n");
    let gateway = GatewayProcess::start(&Launch::new(&dir.path), &config).await;

    let added = page_step(&gateway, &["add", "formed", &upstream.url]).await;
    assert_eq!(
        added["done"].as_str().map(str::trim),
        Some("added formed"),
        "{added}"
    );
    assert!(
        added["servers"]
            .as_str()
            .is_some_and(|t| t.contains("formed") && t.contains("catalog")),
        "{added}"
    );

    // An agent uses it; the page shows the pair connected.
    let agent = mcp_client(&gateway.base, &jwt("alice")).await;
    assert_eq!(
        result_text(&call(&agent, "formed__add", add_args(20, 22)).await),
        "42"
    );
    let pairs = page_step(&gateway, &["pairs"]).await;
    let text = pairs["pairs"].as_str().unwrap_or_default();
    assert!(
        text.contains("alice") && text.contains("formed") && text.contains("connected"),
        "the page shows alice's pair connected: {pairs}"
    );

    // Forms not made by the page are refused.
    let forged = [
        (vec![("csrf", "not-the-token")], None),
        (vec![("csrf", "")], Some("https://evil.example")),
    ];
    for (fields, origin) in forged {
        let mut form: Vec<(&str, &str)> = fields;
        form.extend([("name", "evil"), ("url", upstream.url.as_str())]);
        let mut request = gateway
            .http
            .post(gateway.url("/status/servers"))
            .basic_auth(ADMIN_USER, Some(ADMIN_PASSWORD))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(
                url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(&form)
                    .finish(),
            );
        if let Some(origin) = origin {
            request = request.header("Origin", origin);
        }
        let status = request.send().await.expect("answers").status();
        assert_eq!(status.as_u16(), 403, "{form:?} from {origin:?}");
    }

    // Switched off in the page: marked, and gone from the agent's tools; on again.
    let switched = page_step(&gateway, &["switch", "formed"]).await;
    assert_eq!(
        switched["done"].as_str().map(str::trim),
        Some("disabled formed"),
        "{switched}"
    );
    assert!(
        switched["servers"]
            .as_str()
            .is_some_and(|t| t.contains("(disabled)")),
        "{switched}"
    );
    assert!(
        !support::gateway_process::tool_names(&agent)
            .await
            .contains(&"formed__add".to_owned())
    );
    let switched = page_step(&gateway, &["switch", "formed"]).await;
    assert_eq!(
        switched["done"].as_str().map(str::trim),
        Some("enabled formed"),
        "{switched}"
    );

    let deleted = page_step(&gateway, &["delete", "formed"]).await;
    assert_eq!(
        deleted["done"].as_str().map(str::trim),
        Some("deleted formed"),
        "{deleted}"
    );
    assert!(
        deleted["servers"]
            .as_str()
            .is_some_and(|t| !t.contains("formed")),
        "{deleted}"
    );
    let _ = agent.cancel().await;
    gateway.kill().await;
    upstream.stop().await;
}
