//! The operator page (`/status`) of the gateway process, rendered by headless Chromium with the
//! admin's HTTP Basic credentials: users, servers and states are shown, markup in a user id is
//! text, and a PNG screenshot is saved next to the gateway's logs.
//!
//! Needs /usr/bin/chromium (`.ci/run` installs it); the test fails and says so when it is missing.

mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tether_testkit::{DemoTools, serve_streamable_http};
use tokio::process::Command;

use support::gateway_process::{
    ADMIN_PASSWORD, ADMIN_USER, GatewayProcess, Launch, TempDir, config_text, free_port, get_page,
};
use support::jwt;

const CHROMIUM: &str = "/usr/bin/chromium";

fn chromium() -> PathBuf {
    let path = PathBuf::from(CHROMIUM);
    assert!(
        path.exists(),
        "{CHROMIUM} is missing: install it with \
         `apt-get update && apt-get install -y --no-install-recommends chromium` (.ci/run does)"
    );
    path
}

/// Runs headless Chromium on `url` with `extra` arguments; its stdout.
async fn run_chromium(profile: &Path, url: &str, extra: &[String]) -> String {
    let child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .env_remove("http_proxy")
        .env_remove("https_proxy")
        .env_remove("HTTP_PROXY")
        .env_remove("HTTPS_PROXY")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("chromium starts");
    let output = tokio::time::timeout(Duration::from_secs(90), child.wait_with_output())
        .await
        .expect("chromium finishes within 90 s")
        .expect("waiting for chromium");
    assert!(
        output.status.success(),
        "chromium failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chromium_renders_users_servers_and_states_on_the_status_page() {
    chromium();
    let dir = TempDir::new("status");
    let demo = serve_streamable_http(DemoTools::default(), "127.0.0.1:0")
        .await
        .expect("the demo MCP server starts");
    let dead_port = free_port().await;
    let config = config_text(
        &dir.path,
        &format!(
            r#"[reconnect]
stagger = "10ms"
include_non_oauth = true
default_init_timeout = "3s"

[[servers]]
name = "demo"
url = "{}"

[[servers]]
name = "down"
url = "http://127.0.0.1:{dead_port}/mcp"
"#,
            demo.url
        ),
    );
    let gateway = GatewayProcess::start(&Launch::new(&dir.path), &config).await;

    // Alice logs in: demo connects, down fails. Bob and a user whose id holds markup are seen.
    let alice = jwt("alice");
    let (status, body) = gateway.post(&alice, "/v1/me/reconnect").await;
    assert_eq!(status, 202, "{body}");
    gateway
        .wait_state(&alice, "demo", "connected", Duration::from_secs(30))
        .await;
    gateway
        .wait_state(&alice, "down", "failed", Duration::from_secs(30))
        .await;
    let _ = gateway.servers(&jwt("bob")).await;
    let _ = gateway.servers(&jwt("carol<b>bold</b>")).await;

    // Without the credential: refused.
    let (status, _) = get_page(&gateway, &gateway.url("/status")).await;
    assert_eq!(status, 401);

    // Chromium, with the Basic credentials in the URL (sent after the 401 challenge).
    let url = format!(
        "http://{ADMIN_USER}:{ADMIN_PASSWORD}@{}/status",
        gateway.addr
    );
    let profile = dir.path.join("chromium-profile");
    let dom = run_chromium(&profile, &url, &["--dump-dom".to_owned()]).await;
    assert!(
        dom.contains("<h1>Tether status</h1>"),
        "Chromium did not get the page with the Basic credentials: {dom}"
    );
    for expected in [
        "<td>alice</td><td>demo</td><td>connected</td>",
        "<td>alice</td><td>down</td><td>failed</td>",
        "<td>bob</td><td>demo</td><td>disconnected</td>",
        "<td>carol&lt;b&gt;bold&lt;/b&gt;</td>",
        "3 known users",
    ] {
        assert!(
            dom.contains(expected),
            "{expected:?} is not in the DOM: {dom}"
        );
    }
    assert!(
        !dom.contains("<b>bold</b>"),
        "markup in a user id is rendered as text: {dom}"
    );

    let screenshot = dir.path.join("status.png");
    run_chromium(
        &profile,
        &url,
        &[
            format!("--screenshot={}", screenshot.display()),
            "--window-size=1280,800".to_owned(),
            "--hide-scrollbars".to_owned(),
        ],
    )
    .await;
    let png = std::fs::read(&screenshot).expect("chromium saved the screenshot");
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 2_000,
        "{} is a PNG of the page ({} bytes)",
        screenshot.display(),
        png.len()
    );
    println!("screenshot: {}", screenshot.display());
    if std::env::var_os("E2E_KEEP_SCREENSHOT").is_some() {
        let kept = std::env::temp_dir().join("tether-e2e-status.png");
        std::fs::copy(&screenshot, &kept).expect("copies the screenshot");
        println!("kept a copy at {}", kept.display());
    }
    gateway.kill().await;
}
