//! `tether connect` end to end: the real binary (`CARGO_BIN_EXE_tether`) against real peers —
//! the reference `server-everything` (stdio, Streamable HTTP, legacy SSE), the testkit's
//! OAuth-protected MCP server in front of `oidc-provider` (headless and interactive
//! authorization, dynamic and pre-registered clients, scopes, extra headers), and the
//! TypeScript SDK's OAuth example server with its demo authorization server.
//!
//! Every run of the binary has a timeout; every peer listens on 127.0.0.1 only. The npm peers
//! need `npm ci` in `crates/tether-mcp/tests/peers` and `crates/tether-oauth/tests/peers`
//! (`scripts/test` does it); without it the tests fail and say so.

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tether_testkit::modern_peer::mcp_peers_dir;

use serde_json::{Value, json};
use tether_testkit::{
    DemoTools, OidcPeer, ProtectedServer, ProtectionConfig, oidc, serve_protected,
    serve_streamable_http,
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// The most one `tether connect` run may take (node peers and OAuth round trips included).
const RUN_TIMEOUT: Duration = Duration::from_secs(90);
/// The most a peer may take to start listening.
const PEER_START: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// Running the binary

#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn describe(&self) -> String {
        format!(
            "exit {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }

    /// Exit 0, and stdout's lines as JSON.
    fn success(&self) -> Vec<Value> {
        assert_eq!(
            self.code,
            Some(0),
            "tether connect failed: {}",
            self.describe()
        );
        self.stdout
            .lines()
            .map(|line| {
                serde_json::from_str(line).unwrap_or_else(|e| {
                    panic!(
                        "stdout line {line:?} is not JSON ({e}): {}",
                        self.describe()
                    )
                })
            })
            .collect()
    }

    /// A non-zero exit with exactly one non-empty stderr line starting with `tether:`; returns it.
    fn failure(&self) -> String {
        assert!(
            matches!(self.code, Some(code) if code != 0),
            "tether connect should have failed: {}",
            self.describe()
        );
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "exactly one stderr line expected: {}",
            self.describe()
        );
        let line = lines[0];
        assert!(
            line.starts_with("tether: ") && line.len() > "tether: ".len(),
            "the stderr line must start with `tether: ` and say something: {}",
            self.describe()
        );
        // Visible with `--nocapture`, to read what users would read.
        println!("{line}");
        line.to_owned()
    }

    /// None of `secrets` (nor an authorization response's `code=`) in stdout or stderr.
    fn assert_leaks_none(&self, secrets: &[String]) {
        for (name, text) in [("stdout", &self.stdout), ("stderr", &self.stderr)] {
            assert!(
                !text.contains("code="),
                "{name} shows an authorization code parameter: {}",
                self.describe()
            );
            for secret in secrets.iter().filter(|s| s.len() >= 8) {
                assert!(
                    !text.contains(secret.as_str()),
                    "{name} contains a secret value (token, code or client secret) starting {:?}: {}",
                    &secret[..4],
                    self.describe()
                );
            }
        }
    }
}

fn tether(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tether"));
    command
        .arg("connect")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        // The defaults of the command, whatever the developer's shell has set.
        .env_remove("RUST_LOG");
    for proxy in [
        "http_proxy",
        "HTTP_PROXY",
        "https_proxy",
        "HTTPS_PROXY",
        "all_proxy",
        "ALL_PROXY",
    ] {
        command.env_remove(proxy);
    }
    command
}

/// Runs `tether connect ARGS…` to its end, at most [`RUN_TIMEOUT`].
async fn connect(args: &[&str]) -> Run {
    let child = tether(args).spawn().expect("the tether binary starts");
    let output = tokio::time::timeout(RUN_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("tether connect {args:?} did not finish within {RUN_TIMEOUT:?}"))
        .expect("waiting for tether connect");
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// The names in a `{"tools": [...]}` line.
fn tool_names(line: &Value) -> Vec<String> {
    line["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("the first stdout line lists tools: {line}"))
        .iter()
        .map(|tool| {
            tool["name"]
                .as_str()
                .expect("every tool has a name")
                .to_owned()
        })
        .collect()
}

/// The text of a tool result's content.
fn result_text(result: &Value) -> String {
    result["content"]
        .as_array()
        .unwrap_or_else(|| panic!("a tool result has content: {result}"))
        .iter()
        .filter_map(|c| c["text"].as_str())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Peers

fn npm_entry(relative: &str) -> String {
    let dir = mcp_peers_dir();
    let entry = dir.join("node_modules").join(relative);
    assert!(
        entry.exists(),
        "{} is missing: run `npm ci` in {} before these tests",
        entry.display(),
        dir.display()
    );
    entry.to_string_lossy().into_owned()
}

fn everything() -> String {
    npm_entry("@modelcontextprotocol/server-everything/dist/index.js")
}

fn loopback_preload() -> String {
    mcp_peers_dir()
        .join("loopback.cjs")
        .to_string_lossy()
        .into_owned()
}

async fn free_port() -> u16 {
    tether_testkit::services::free_port()
        .await
        .expect("binds a free loopback port")
}

/// Waits, bounded, until `port` on 127.0.0.1 accepts connections, or the child has exited.
async fn wait_listening(child: &mut Child, port: u16, what: &str) {
    if let Err(why) = listening(child, port, what).await {
        panic!("{why}");
    }
}

/// Whether `port` on 127.0.0.1 accepts connections before the child exits (bounded).
async fn listening(child: &mut Child, port: u16, what: &str) -> Result<(), String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let attempts = PEER_START.as_millis() / 100;
    for _ in 0..attempts {
        if TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "{what} exited before listening on {addr} ({status})"
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!(
        "{what} did not listen on {addr} within {PEER_START:?}"
    ))
}

/// `server-everything <mode>` on a free loopback port; killed on drop.
async fn start_everything(mode: &str) -> (Child, u16) {
    let port = free_port().await;
    let mut child = Command::new("node")
        .arg("--require")
        .arg(loopback_preload())
        .arg(everything())
        .arg(mode)
        .env("PORT", port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("node starts (is Node.js installed?)");
    wait_listening(&mut child, port, &format!("server-everything {mode}")).await;
    (child, port)
}

/// oidc-provider and the testkit's protected MCP server in front of it.
async fn oauth_peers() -> (OidcPeer, ProtectedServer) {
    oauth_peers_with(|_| {}).await
}

/// The oidc peer and a protected server whose configuration `adjust` changed.
async fn oauth_peers_with(
    adjust: impl FnOnce(&mut ProtectionConfig),
) -> (OidcPeer, ProtectedServer) {
    let peer = OidcPeer::spawn()
        .await
        .expect("the oidc-provider peer starts");
    let mut config = ProtectionConfig::oidc_peer(&peer.issuer);
    adjust(&mut config);
    let server = serve_protected(DemoTools::default(), "127.0.0.1:0", config)
        .await
        .expect("the protected MCP server starts");
    (peer, server)
}

/// Everything that must never be printed by an OAuth run against the oidc peer.
fn oauth_secrets(peer: &OidcPeer, server: &ProtectedServer) -> Vec<String> {
    let mut secrets = peer.issued_tokens();
    secrets.extend(server.accepted_tokens());
    secrets.push(oidc::BASIC_CLIENT_SECRET.to_owned());
    secrets.push(oidc::POST_CLIENT_SECRET.to_owned());
    secrets
}

// ---------------------------------------------------------------------------------------------
// Unauthenticated transports against server-everything

fn assert_everything_echo(run: &Run) {
    let lines = run.success();
    assert_eq!(lines.len(), 2, "tools, then the result: {}", run.describe());
    let names = tool_names(&lines[0]);
    assert!(
        names.iter().any(|n| n == "echo") && names.len() > 5,
        "server-everything's tools: {names:?}"
    );
    assert_eq!(result_text(&lines[1]), "Echo: hello tether");
    assert_ne!(lines[1]["isError"], json!(true));
}

#[tokio::test]
async fn stdio_server_everything_lists_and_calls_echo() {
    let entry = everything();
    let run = connect(&[
        "--call",
        "echo",
        "--args",
        r#"{"message":"hello tether"}"#,
        "--stdio",
        "--",
        "node",
        &entry,
        "stdio",
    ])
    .await;
    assert_everything_echo(&run);
}

#[tokio::test]
async fn streamable_http_server_everything_lists_and_calls_echo() {
    let (_server, port) = start_everything("streamableHttp").await;
    let url = format!("http://127.0.0.1:{port}/mcp");
    let run = connect(&[
        &url,
        "--call",
        "echo",
        "--args",
        r#"{"message":"hello tether"}"#,
    ])
    .await;
    assert_everything_echo(&run);
    // server-everything is of the session revisions: discovered as such, then initialize.
    let protocol = &run.success()[0]["protocol"];
    assert_eq!(protocol["wire"], "session", "{protocol}");
    assert_eq!(protocol["version"], "2025-11-25", "{protocol}");
}

#[tokio::test]
async fn a_2026_server_is_reached_statelessly_and_the_wire_is_printed() {
    // The TypeScript SDK v2's server of 2026-07-28 only (it refuses initialize).
    let server = tether_testkit::ModernPeer::start("modern").await;
    let url = server.url.clone();
    let run = connect(&[&url, "--call", "echo", "--args", r#"{"text":"hi"}"#]).await;
    let lines = run.success();
    assert_eq!(
        lines[0]["protocol"],
        json!({"version": "2026-07-28", "wire": "stateless"}),
        "{}",
        run.describe()
    );
    assert_eq!(result_text(&lines[1]), "echo: hi");
    drop(server);
}

/// A server that needs a scope its metadata does not advertise answers the first token 403
/// `insufficient_scope`; `tether connect` authorizes again for the union of scopes (step-up)
/// and the call succeeds in the same run.
#[tokio::test]
async fn headless_oauth_steps_up_to_the_scope_a_403_names() {
    let (peer, server) =
        oauth_peers_with(|config| config.required_scope = "mcp:admin".into()).await;

    // The first authorization asks for mcp:tools only.
    let run = connect(&[
        "--headless",
        &server.url,
        "--scope",
        "mcp:tools",
        "--call",
        "add",
        "--args",
        r#"{"a":40,"b":2}"#,
    ])
    .await;
    let lines = run.success();
    assert_eq!(lines.len(), 2, "tools, then the result: {}", run.describe());
    assert_eq!(result_text(&lines[1]), "42", "{}", run.describe());
    let stats = peer.stats().await.expect("peer stats");
    assert_eq!(
        stats["grants"]["authorization_code"],
        json!(2),
        "one authorization, then one step-up: {stats}"
    );
    let last = server.token_scopes().last().cloned().unwrap_or_default();
    let granted: Vec<&str> = last.split_whitespace().collect();
    assert!(
        granted.contains(&"mcp:admin") && granted.contains(&"mcp:tools"),
        "the step-up kept the first scope and added the new one: {granted:?}"
    );
}

#[tokio::test]
async fn legacy_sse_server_everything_lists_and_calls_echo() {
    let (_server, port) = start_everything("sse").await;
    let url = format!("http://127.0.0.1:{port}/sse");
    let run = connect(&[
        "--transport",
        "sse",
        &url,
        "--call",
        "echo",
        "--args",
        r#"{"message":"hello tether"}"#,
    ])
    .await;
    assert_everything_echo(&run);
}

#[tokio::test]
async fn lists_only_without_call() {
    let server = serve_streamable_http(DemoTools::default(), "127.0.0.1:0")
        .await
        .expect("the demo MCP server starts");
    let run = connect(&[&server.url]).await;
    let lines = run.success();
    assert_eq!(lines.len(), 1, "only the tools line: {}", run.describe());
    assert_eq!(tool_names(&lines[0]), ["echo", "add"]);
    assert!(
        run.stderr.is_empty(),
        "a success is quiet: {}",
        run.describe()
    );
}

// ---------------------------------------------------------------------------------------------
// OAuth against oidc-provider + the protected testkit server

#[tokio::test]
async fn headless_oauth_with_dynamic_registration_lists_and_calls_add() {
    let (peer, server) = oauth_peers().await;

    let listed = connect(&["--headless", &server.url]).await;
    let lines = listed.success();
    assert_eq!(lines.len(), 1, "only the tools line: {}", listed.describe());
    assert_eq!(tool_names(&lines[0]), ["echo", "add"]);

    let called = connect(&[
        "--headless",
        &server.url,
        "--call",
        "add",
        "--args",
        r#"{"a":40,"b":2}"#,
    ])
    .await;
    let lines = called.success();
    assert_eq!(
        lines.len(),
        2,
        "tools, then the result: {}",
        called.describe()
    );
    assert_eq!(result_text(&lines[1]), "42");
    assert_eq!(lines[1]["structuredContent"], json!({"sum": 42}));

    let stats = peer.stats().await.expect("peer stats");
    assert_eq!(
        stats["registrations"],
        json!(2),
        "each run registers its client dynamically (nothing persists between runs): {stats}"
    );
    assert_eq!(stats["grants"]["authorization_code"], json!(2), "{stats}");
    assert!(
        server.refused() >= 2,
        "each run met the 401 challenge first"
    );
    assert!(
        server
            .token_scopes()
            .iter()
            .all(|s| s.split(' ').any(|s| s == "mcp:tools")
                && !s.split(' ').any(|s| s == "mcp:admin")),
        "by default the scopes of the resource metadata are asked for: {:?}",
        server.token_scopes()
    );
    let secrets = oauth_secrets(&peer, &server);
    assert!(
        !server.accepted_tokens().is_empty() && !peer.issued_tokens().is_empty(),
        "tokens were captured to look for"
    );
    listed.assert_leaks_none(&secrets);
    called.assert_leaks_none(&secrets);
}

#[tokio::test]
async fn headless_oauth_finds_metadata_named_only_by_the_challenge() {
    let (peer, server) = oauth_peers_with(|config| {
        config.metadata_path = "/custom/protected-resource-metadata".into();
    })
    .await;
    let run = connect(&[
        "--headless",
        &server.url,
        "--call",
        "add",
        "--args",
        r#"{"a":1,"b":2}"#,
    ])
    .await;
    let lines = run.success();
    assert_eq!(result_text(&lines[1]), "3", "{}", run.describe());
    run.assert_leaks_none(&oauth_secrets(&peer, &server));
}

#[tokio::test]
async fn headless_oauth_with_preregistered_clients() {
    let (peer, server) = oauth_peers().await;
    for (client_id, secret) in [
        (oidc::BASIC_CLIENT_ID, oidc::BASIC_CLIENT_SECRET),
        (oidc::POST_CLIENT_ID, oidc::POST_CLIENT_SECRET),
    ] {
        // The static clients are registered with the peer's default redirect URI.
        let run = connect(&[
            "--headless",
            "--client-id",
            client_id,
            "--client-secret",
            secret,
            "--redirect-uri",
            oidc::DEFAULT_STATIC_REDIRECT_URI,
            &server.url,
            "--call",
            "add",
            "--args",
            r#"{"a":40,"b":2}"#,
        ])
        .await;
        let lines = run.success();
        assert_eq!(result_text(&lines[1]), "42", "{}", run.describe());
        run.assert_leaks_none(&oauth_secrets(&peer, &server));
    }
    // Also with no --redirect-uri: headless then uses the same default.
    let run = connect(&[
        "--headless",
        "--client-id",
        oidc::PUBLIC_CLIENT_ID,
        &server.url,
    ])
    .await;
    assert_eq!(tool_names(&run.success()[0]), ["echo", "add"]);

    let stats = peer.stats().await.expect("peer stats");
    assert_eq!(
        stats["registrations"],
        json!(0),
        "pre-registered clients do not register: {stats}"
    );
    assert_eq!(stats["grants"]["authorization_code"], json!(3), "{stats}");
    let basic: Vec<bool> = stats["tokenRequests"]
        .as_array()
        .expect("token requests")
        .iter()
        .map(|r| r["basicAuth"].as_bool().unwrap_or(false))
        .collect();
    // With a secret the CLI authenticates with client_secret_basic, the RFC 8414 default when
    // the server supports it (there is no flag for the method); the public client sends none.
    assert_eq!(
        basic,
        [true, true, false],
        "client_secret_basic twice, then the public client: {stats}"
    );
}

#[tokio::test]
async fn a_wrong_client_secret_fails_with_one_line_and_no_secret() {
    let (peer, server) = oauth_peers().await;
    let wrong = "wrong-secret-fedcba9876543210";
    let run = connect(&[
        "--headless",
        "--client-id",
        oidc::BASIC_CLIENT_ID,
        "--client-secret",
        wrong,
        &server.url,
    ])
    .await;
    let line = run.failure();
    assert!(run.stdout.is_empty(), "{}", run.describe());
    assert!(line.contains("authoriz"), "{line}");
    let mut secrets = oauth_secrets(&peer, &server);
    secrets.push(wrong.to_owned());
    run.assert_leaks_none(&secrets);
    assert!(
        peer.issued_tokens().is_empty(),
        "no token was issued to a client with a wrong secret"
    );
}

#[tokio::test]
async fn a_client_metadata_url_the_server_does_not_support_falls_back_to_registration() {
    let (peer, server) = oauth_peers().await;
    let run = connect(&[
        "--headless",
        "--client-metadata-url",
        "https://tether.example/client.json",
        &server.url,
    ])
    .await;
    assert_eq!(tool_names(&run.success()[0]), ["echo", "add"]);
    let stats = peer.stats().await.expect("peer stats");
    assert_eq!(stats["registrations"], json!(1), "{stats}");
    run.assert_leaks_none(&oauth_secrets(&peer, &server));
}

#[tokio::test]
async fn headless_oauth_with_explicit_scope() {
    let (peer, server) = oauth_peers().await;
    let run = connect(&["--headless", "--scope", "mcp:tools mcp:admin", &server.url]).await;
    assert_eq!(tool_names(&run.success()[0]), ["echo", "add"]);
    let scopes = server.token_scopes();
    assert!(
        !scopes.is_empty()
            && scopes.iter().all(|s| {
                let s: Vec<&str> = s.split(' ').collect();
                s.contains(&"mcp:tools") && s.contains(&"mcp:admin")
            }),
        "the token carries the scopes asked for: {scopes:?}"
    );
    run.assert_leaks_none(&oauth_secrets(&peer, &server));

    // Too narrow a scope: the token lacks mcp:tools, the server's 403 names it, and the run
    // steps up to both.
    let run = connect(&["--headless", "--scope", "mcp:admin", &server.url]).await;
    assert_eq!(tool_names(&run.success()[0]), ["echo", "add"]);

    // A scope the authorization server never grants: the step-up cannot help.
    let mut config = ProtectionConfig::oidc_peer(&peer.issuer);
    config.required_scope = "mcp:never".to_owned();
    let never = serve_protected(DemoTools::default(), "127.0.0.1:0", config)
        .await
        .expect("the protected MCP server starts");
    let run = connect(&["--headless", &never.url]).await;
    let line = run.failure();
    assert!(run.stdout.is_empty(), "{}", run.describe());
    assert!(
        line.contains("--scope"),
        "the line points at --scope: {line}\n{}\nscopes seen: {:?}",
        run.describe(),
        never.token_scopes()
    );
}

#[tokio::test]
async fn headers_reach_the_server() {
    let (peer, server) = oauth_peers().await;
    let run = connect(&[
        "--headless",
        "--header",
        "X-Tether-Probe: hello probe",
        "--header",
        "X-Tether-Other:second",
        &server.url,
    ])
    .await;
    assert_eq!(tool_names(&run.success()[0]), ["echo", "add"]);
    let probes = server.header_values("x-tether-probe");
    assert!(
        !probes.is_empty() && probes.iter().all(|v| v == "hello probe"),
        "every MCP request carries the header: {probes:?}"
    );
    assert!(
        server
            .header_values("x-tether-other")
            .iter()
            .any(|v| v == "second")
    );
    run.assert_leaks_none(&oauth_secrets(&peer, &server));
}

/// Plays the user's browser: follows every redirect with a cookie jar, recording the URLs.
async fn browse(url: &str) -> (u16, String, Vec<String>) {
    let visited = Arc::new(Mutex::new(Vec::new()));
    let seen = visited.clone();
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::custom(move |attempt| {
            seen.lock()
                .expect("visited lock")
                .push(attempt.url().to_string());
            if attempt.previous().len() > 20 {
                attempt.error("more than 20 redirects")
            } else {
                attempt.follow()
            }
        }))
        .build()
        .expect("the browser builds");
    let response = browser
        .get(url)
        .send()
        .await
        .expect("the browser reaches the end of the redirects");
    let status = response.status().as_u16();
    let body = response.text().await.expect("the final page");
    let visited = visited.lock().expect("visited lock").clone();
    (status, body, visited)
}

#[tokio::test]
async fn interactive_oauth_through_a_browser() {
    interactive(None).await;
}

#[tokio::test]
async fn interactive_oauth_with_a_given_redirect_uri() {
    let port = free_port().await;
    interactive(Some(&format!("http://127.0.0.1:{port}/oauth/done"))).await;
}

/// Starts an interactive `tether connect`, reads the authorization URL it prints, plays the
/// browser up to the CLI's loopback callback and checks the outcome.
async fn interactive(redirect_uri: Option<&str>) {
    let (peer, server) = oauth_peers().await;
    let mut args = vec![
        server.url.as_str(),
        "--call",
        "echo",
        "--args",
        r#"{"text":"hi"}"#,
    ];
    if let Some(uri) = redirect_uri {
        args.extend(["--redirect-uri", uri]);
    }
    let mut child = tether(&args).spawn().expect("the tether binary starts");
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    let mut stderr = BufReader::new(stderr).lines();

    // The authorization URL, on a line of its own on stderr.
    let mut printed = Vec::new();
    let authorization_url = tokio::time::timeout(RUN_TIMEOUT, async {
        for _ in 0..50 {
            let Some(line) = stderr.next_line().await.expect("reading stderr") else {
                break;
            };
            printed.push(line.clone());
            if line.trim().starts_with(&peer.issuer) {
                return Some(line.trim().to_owned());
            }
        }
        None
    })
    .await
    .expect("the authorization URL is printed in time")
    .unwrap_or_else(|| panic!("no authorization URL on stderr: {printed:?}"));
    assert!(
        authorization_url.contains("code_challenge=") && authorization_url.contains("resource="),
        "{authorization_url}"
    );

    let (status, page, visited) = browse(&authorization_url).await;
    let callback = visited.last().cloned().expect("the browser was redirected");
    let expected = redirect_uri.map_or("/callback?".to_owned(), |uri| format!("{uri}?"));
    assert!(
        callback.starts_with("http://127.0.0.1:") && callback.contains(&expected),
        "the last redirect goes to the CLI's loopback callback {expected}: {visited:?}"
    );
    assert_eq!(status, 200, "the callback page: {page}");
    assert!(page.contains("authorized"), "{page}");
    let code = reqwest::Url::parse(&callback)
        .expect("the callback URL parses")
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("the callback carries a code");

    let finished = tokio::time::timeout(RUN_TIMEOUT, async {
        let mut out = String::new();
        stdout
            .read_to_string(&mut out)
            .await
            .expect("reading stdout");
        let mut rest = Vec::new();
        while let Some(line) = stderr.next_line().await.expect("reading stderr") {
            rest.push(line);
        }
        let status = child.wait().await.expect("waiting for tether");
        (status, out, rest)
    })
    .await
    .expect("tether connect finishes after the redirect");
    let (status, out, rest) = finished;
    printed.extend(rest);
    let run = Run {
        code: status.code(),
        stdout: out,
        stderr: printed.join("\n"),
    };
    let lines = run.success();
    assert_eq!(lines.len(), 2, "{}", run.describe());
    assert_eq!(tool_names(&lines[0]), ["echo", "add"]);
    assert_eq!(result_text(&lines[1]), "hi");
    let mut secrets = oauth_secrets(&peer, &server);
    secrets.push(code);
    run.assert_leaks_none(&secrets);
}

// ---------------------------------------------------------------------------------------------
// The TypeScript SDK's example server with its demo authorization server

#[tokio::test]
async fn headless_oauth_against_the_sdk_example_server() {
    let example =
        npm_entry("@modelcontextprotocol/sdk/dist/esm/examples/server/simpleStreamableHttp.js");
    // Its two ports are picked free, then bound by the example: another test may take one in
    // between (the example then exits at once), so a few tries with new ports.
    let mut started = None;
    for _ in 0..3 {
        let mcp_port = free_port().await;
        let mut auth_port = free_port().await;
        while auth_port == mcp_port {
            auth_port = free_port().await;
        }
        let mut child = Command::new("node")
            .arg("--require")
            .arg(loopback_preload())
            .arg(&example)
            .arg("--oauth")
            .current_dir(mcp_peers_dir())
            .env("MCP_PORT", mcp_port.to_string())
            .env("MCP_AUTH_PORT", auth_port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("node starts");
        let up = match listening(&mut child, mcp_port, "the SDK example's MCP server").await {
            Ok(()) => {
                listening(
                    &mut child,
                    auth_port,
                    "the SDK example's authorization server",
                )
                .await
            }
            Err(why) => Err(why),
        };
        match up {
            Ok(()) => {
                started = Some((child, mcp_port));
                break;
            }
            Err(why) => eprintln!("retrying with other ports: {why}"),
        }
    }
    let (_child, mcp_port) = started.expect("the SDK example listens within 3 tries");

    // The example names itself and its authorization server with `localhost`.
    let url = format!("http://localhost:{mcp_port}/mcp");
    let run = connect(&[
        "--headless",
        &url,
        "--call",
        "greet",
        "--args",
        r#"{"name":"Tether"}"#,
    ])
    .await;
    let lines = run.success();
    assert_eq!(lines.len(), 2, "{}", run.describe());
    assert!(tool_names(&lines[0]).iter().any(|n| n == "greet"));
    assert!(
        result_text(&lines[1]).contains("Tether"),
        "{}",
        run.describe()
    );
    run.assert_leaks_none(&[]);
}

// ---------------------------------------------------------------------------------------------
// Failures: one `tether:` line on stderr, a non-zero exit

#[tokio::test]
async fn a_closed_port_fails_with_one_line_and_no_output() {
    let port = free_port().await; // bound and released: nothing listens there now
    for transport in ["streamable-http", "sse"] {
        let url = format!("http://127.0.0.1:{port}/mcp");
        let run = connect(&["--transport", transport, &url]).await;
        let line = run.failure();
        assert!(run.stdout.is_empty(), "{}", run.describe());
        assert!(
            line.contains(&url) && line.contains("refused"),
            "the line names the server and the reason: {line}"
        );
        // Headless OAuth changes nothing when nobody answers.
        let run = connect(&["--headless", "--transport", transport, &url]).await;
        run.failure();
        assert!(run.stdout.is_empty(), "{}", run.describe());
    }
}

#[tokio::test]
async fn bad_arguments_fail_before_connecting() {
    // The handler's counters are shared by the clones the server makes per session.
    let tools = DemoTools::default();
    let server = serve_streamable_http(tools.clone(), "127.0.0.1:0")
        .await
        .expect("the demo MCP server starts");
    for (args, expected) in [
        (vec!["--call", "add", "--args", "{not json"], "--args"),
        (vec!["--call", "add", "--args", "[1,2]"], "--args"),
        (vec!["--header", "X-No-Colon"], "--header"),
        (vec!["--header", ": no name"], "--header"),
        (vec!["--header", "X-Bad: line\u{1}break"], "--header"),
    ] {
        let mut all = args.clone();
        all.push(&server.url);
        let run = connect(&all).await;
        let line = run.failure();
        assert!(line.contains(expected), "{args:?}: {line}");
        assert!(run.stdout.is_empty(), "{}", run.describe());
    }
    assert_eq!(tools.initialized(), 0, "nothing reached the server");
}

#[tokio::test]
async fn an_unknown_tool_fails_with_one_line() {
    let server = serve_streamable_http(DemoTools::default(), "127.0.0.1:0")
        .await
        .expect("the demo MCP server starts");
    let run = connect(&[&server.url, "--call", "no-such-tool"]).await;
    let line = run.failure();
    assert!(line.contains("no-such-tool"), "{line}");

    // server-everything reports it as a tool error result instead of a JSON-RPC error.
    let (_everything, port) = start_everything("streamableHttp").await;
    let url = format!("http://127.0.0.1:{port}/mcp");
    let run = connect(&[&url, "--call", "no-such-tool"]).await;
    let line = run.failure();
    assert!(line.contains("no-such-tool"), "{line}");
}

#[tokio::test]
async fn an_authorization_server_off_loopback_is_refused_with_one_line() {
    // The metadata names an authorization server on a private address over plain http: the
    // SSRF policy refuses to contact it (nothing listens there anyway).
    let mut config = ProtectionConfig::oidc_peer("http://10.255.255.1:9");
    config.introspection_client = None;
    let server = serve_protected(DemoTools::default(), "127.0.0.1:0", config)
        .await
        .expect("the protected MCP server starts");
    let run = connect(&["--headless", &server.url]).await;
    run.failure();
    assert!(run.stdout.is_empty(), "{}", run.describe());
}

#[tokio::test]
async fn usage_errors_fail_cleanly() {
    for args in [
        vec!["not a url"],
        vec!["--stdio"],
        vec!["http://127.0.0.1:9/mcp", "--", "node"],
        vec!["--stdio", "--", "/nonexistent/tether-test-no-such-program"],
    ] {
        let run = connect(&args).await;
        run.failure();
        assert!(run.stdout.is_empty(), "{}", run.describe());
    }
}
