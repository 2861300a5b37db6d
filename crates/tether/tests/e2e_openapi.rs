//! The OpenAPI document (`GET /openapi.json`) of the gateway process: OpenAPI 3.1, every route
//! the gateway serves is in it (the list below is the routes; a route added without its
//! description fails here), and Redocly's linter (`@redocly/cli lint`, from `tests/peers`, with
//! `tests/peers/redocly.yaml`) finds neither an error nor a warning in it.
//!
//! Needs `npm ci` in crates/tether/tests/peers (`scripts/test` does).

mod support;

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

use support::gateway_process::{GatewayProcess, Launch, TempDir, config_text};

/// Every route of the HTTP API, as (method, path).
const ROUTES: &[(&str, &str)] = &[
    ("delete", "/mcp"),
    ("get", "/mcp"),
    ("post", "/mcp"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
    ("get", "/status"),
    ("post", "/status/servers"),
    ("post", "/status/servers/delete"),
    ("post", "/status/pairs"),
    ("post", "/status/servers/switch"),
    ("post", "/v1/admin/servers/{name}/disable"),
    ("post", "/v1/admin/servers/{name}/enable"),
    ("post", "/v1/admin/reload"),
    ("get", "/v1/admin/servers"),
    ("post", "/v1/admin/servers"),
    ("get", "/v1/admin/servers/{name}"),
    ("put", "/v1/admin/servers/{name}"),
    ("delete", "/v1/admin/servers/{name}"),
    ("post", "/v1/me/reconnect"),
    ("get", "/v1/me/servers"),
    ("post", "/v1/me/servers"),
    ("post", "/v1/me/servers/{name}/reconnect"),
    ("delete", "/v1/me/servers/{name}"),
    ("post", "/v1/me/servers/{name}/authorize"),
    ("post", "/v1/me/oauth/complete"),
    ("get", "/oauth/begin/{state}"),
    ("get", "/oauth/callback"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_covers_every_route_and_lints_clean() {
    let dir = TempDir::new("openapi");
    let gateway = GatewayProcess::start(&Launch::new(&dir.path), &config_text(&dir.path, "")).await;
    let doc: Value = gateway
        .http
        .get(gateway.url("/openapi.json"))
        .send()
        .await
        .expect("answers")
        .json()
        .await
        .expect("JSON");
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "{}",
        doc["openapi"]
    );
    assert_eq!(doc["info"]["title"], "Tether", "{}", doc["info"]);
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .into_iter()
                .flat_map(|ops| ops.keys())
                .map(move |method| (method.clone(), path.clone()))
        })
        .collect();
    let served: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    let missing: Vec<_> = served.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&served).collect();
    assert!(
        missing.is_empty(),
        "routes missing from the document: {missing:?}"
    );
    assert!(
        unknown.is_empty(),
        "documented routes not in the list: {unknown:?}"
    );

    // Each documented route is served: none answers the router's own 404 (an empty body).
    for (method, path) in &served {
        let url = gateway.url(&path.replace("{name}", "none").replace("{state}", "none"));
        let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
        let response = gateway
            .http
            .request(method.clone(), &url)
            .send()
            .await
            .expect("answers");
        let status = response.status().as_u16();
        let body = response.bytes().await.unwrap_or_default();
        assert!(
            !(status == 404 && body.is_empty()) && status != 405,
            "{method} {path} is not routed ({status})"
        );
    }

    // Redocly's linter, recommended rules: no errors.
    let file = dir.path.join("openapi.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&doc).expect("serializes")).expect("writes");
    let peers = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("peers");
    let redocly = peers.join("node_modules").join(".bin").join("redocly");
    assert!(
        redocly.exists(),
        "@redocly/cli is missing: run `npm ci` in {} (scripts/test does)",
        peers.display()
    );
    let output = tokio::time::timeout(
        std::time::Duration::from_secs(120),
        tokio::process::Command::new(&redocly)
            .arg("lint")
            .arg("--config")
            .arg(peers.join("redocly.yaml"))
            .arg(&file)
            .env("REDOCLY_TELEMETRY", "off")
            .env("REDOCLY_SUPPRESS_UPDATE_NOTICE", "true")
            .current_dir(&dir.path)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("redocly ends within 120 s")
    .expect("redocly runs");
    let report = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "redocly lint found errors:\n{report}"
    );
    assert!(
        !report.contains("Warning was generated"),
        "redocly lint found warnings:\n{report}"
    );
    gateway.kill().await;
}
