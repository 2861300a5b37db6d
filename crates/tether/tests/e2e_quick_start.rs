//! The README's quick start on a machine that has never run it: `tether serve --config
//! examples/tether.toml --dev` with an empty home directory (so an empty npm cache: `npx` must
//! download `@modelcontextprotocol/server-everything` from the npm registry first), then the
//! walkthrough's login hook with a token from `tether token`. The example's server must connect
//! on its first attempt: the download fits in the stdio start time, and no state on the way
//! shows a failure.
//!
//! Needs the npm registry (as `scripts/test` does for the npm peers).

mod support;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use support::gateway_process::{GatewayProcess, Launch, TempDir};

/// The most the first connect may take: the download and the 60 s stdio start time, with room.
const PATIENCE: Duration = Duration::from_secs(150);

fn example_config() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/tether.toml");
    std::fs::read_to_string(&path).expect("reads examples/tether.toml")
}

/// `tether token --config … --user alice`, as the walkthrough runs it: the last line it prints.
async fn token(dir: &Path, home: &Path) -> String {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_tether"))
        .args(["token", "--config", "tether.toml", "--user", "alice"])
        .current_dir(dir)
        .env("HOME", home)
        .stdin(Stdio::null())
        .output()
        .await
        .expect("tether token runs");
    assert!(
        output.status.success(),
        "tether token failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .last()
        .expect("a token")
        .trim()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quick_start_connects_its_server_on_the_first_attempt_with_an_empty_npm_cache() {
    let dir = TempDir::new("quick-start");
    let home = dir.path.join("home");
    std::fs::create_dir_all(&home).expect("creates the empty home");
    let mut launch = Launch::new(&dir.path);
    launch.args.push("--dev".to_owned());
    launch.env.extend([
        ("HOME".to_owned(), home.display().to_string()),
        // npm's cache and npx's packages live under the home directory; nothing is inherited.
        (
            "npm_config_cache".to_owned(),
            home.join(".npm").display().to_string(),
        ),
    ]);
    let gateway = GatewayProcess::start(&launch, &example_config()).await;
    let token = token(&dir.path, &home).await;

    let reconnect = gateway
        .http
        .post(gateway.url("/v1/me/reconnect"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("the login hook answers");
    assert_eq!(
        reconnect.status().as_u16(),
        202,
        "the login hook is accepted"
    );

    let started = Instant::now();
    let mut seen = Vec::new();
    let row = loop {
        let rows: Value = gateway
            .http
            .get(gateway.url("/v1/me/servers"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("the servers answer")
            .json()
            .await
            .expect("JSON rows");
        let row = rows
            .as_array()
            .and_then(|rows| rows.iter().find(|r| r["name"] == "everything"))
            .cloned()
            .expect("the example's server is listed");
        let state = row["state"].as_str().unwrap_or_default().to_owned();
        if seen.last() != Some(&state) {
            seen.push(state.clone());
        }
        assert!(
            row["last_error"].is_null(),
            "no failure on the way (states {seen:?}): {row}\n--- gateway stderr ---\n{}",
            std::fs::read_to_string(&gateway.stderr_path).unwrap_or_default()
        );
        if state == "connected" {
            break row;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "not connected within {PATIENCE:?} (states {seen:?})"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    println!(
        "connected after {:.1} s, states {seen:?}",
        started.elapsed().as_secs_f64()
    );
    assert!(
        row["tools"].as_u64().is_some_and(|n| n > 0),
        "its tools are listed: {row}"
    );
    assert!(
        home.join(".npm").exists(),
        "npx downloaded into the empty home's cache"
    );
    gateway.kill().await;
}
