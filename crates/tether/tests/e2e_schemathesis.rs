//! Schemathesis (from PyPI, `st`) fuzzes the gateway process's HTTP API from its own OpenAPI
//! document, with a host token and a real upstream behind the gateway: no answer is a server
//! error, and every answer's status, content type and body match the document.
//!
//! It runs as a user (host token) over every route but `GET /mcp` (an event stream that stays
//! open), then as the operator (admin credential) over the admin routes. Needs `st` on the PATH
//! (`pip install schemathesis`; `scripts/test` does).

mod support;

use std::time::Duration;

use tether_testkit::{DemoTools, serve_streamable_http};

use base64::Engine as _;

use support::gateway_process::{
    ADMIN_PASSWORD, ADMIN_USER, GatewayProcess, Launch, TempDir, config_text,
};
use support::jwt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_answer_outside_the_document() {
    let upstream = serve_streamable_http(DemoTools::default(), "127.0.0.1:0")
        .await
        .expect("the upstream starts");
    let dir = TempDir::new("schemathesis");
    let config = config_text(
        &dir.path,
        &format!("[[servers]]\nname = \"demo\"\nurl = \"{}\"\n", upstream.url),
    );
    let gateway = GatewayProcess::start(&Launch::new(&dir.path), &config).await;
    // As a user, then as the operator (their routes only).
    let user = format!("Bearer {}", jwt("fuzz"));
    run_schemathesis(
        &gateway,
        &dir.path,
        &user,
        &["--exclude-operation-id", "mcp_get"],
    )
    .await;
    let admin = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{ADMIN_USER}:{ADMIN_PASSWORD}"))
    );
    run_schemathesis(&gateway, &dir.path, &admin, &["--include-tag", "admin"]).await;
    gateway.kill().await;
    upstream.stop().await;
}

/// One `st run` against the gateway's own document with `authorization` on every request.
async fn run_schemathesis(
    gateway: &GatewayProcess,
    dir: &std::path::Path,
    authorization: &str,
    selection: &[&str],
) {
    let output = tokio::time::timeout(
        Duration::from_secs(600),
        tokio::process::Command::new("st")
            .arg("run")
            .arg(gateway.url("/openapi.json"))
            .args(["--url", &gateway.base])
            .args([
                "--checks",
                "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
            ])
            .args(selection)
            .args(["--max-examples", "25", "--request-timeout", "20"])
            .arg("--generation-deterministic")
            .arg("--header")
            .arg(format!("Authorization: {authorization}"))
            .current_dir(dir)
            .env("SCHEMATHESIS_TELEMETRY", "false")
            .env_remove("http_proxy")
            .env_remove("HTTP_PROXY")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("schemathesis ends within 10 minutes")
    .expect("`st` runs (pip install schemathesis)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "schemathesis found failures ({selection:?}):\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
