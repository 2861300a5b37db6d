//! The gateway as a process, for the end-to-end tests (`tests/e2e_*.rs`): the real `tether`
//! binary (`CARGO_BIN_EXE_tether`) started with a configuration file written to a temporary
//! directory, its secrets in the environment, its stdout and stderr captured to files there; the
//! testkit's MCP server as a process of its own (`tether-testkit-mcp`), to kill and restart; the
//! OAuth peers; a TypeScript SDK client; bounded waits.
//!
//! Everything listens on 127.0.0.1; every child is killed when its handle drops.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tether_testkit::{DemoTools, OidcOptions, OidcPeer, ProtectedServer, ProtectionConfig};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::{AUDIENCE, ISSUER, SECRET};

/// The environment variable the test configurations name for the host-token secret.
pub const JWT_SECRET_ENV: &str = "E2E_TETHER_JWT_SECRET";
/// The environment variable holding the `/status` Basic password.
pub const ADMIN_PASSWORD_ENV: &str = "E2E_TETHER_ADMIN_PASSWORD";
pub const ADMIN_USER: &str = "ops";
pub const ADMIN_PASSWORD: &str = "e2e-admin-password-0123456789";
/// The storage key (32 bytes, base64), id `e2e`.
pub const ENCRYPTION_KEY: &str = "e2e:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
/// The most the gateway may take to print its "listening" line.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How often waits poll.
const POLL: Duration = Duration::from_millis(100);

/// The host-token secret as the environment carries it.
pub fn jwt_secret() -> String {
    String::from_utf8(SECRET.to_vec()).expect("the test secret is UTF-8")
}

// ---------------------------------------------------------------------------------------------
// Waiting

/// Polls `probe` until it returns `Some`, at most `timeout`; panics naming `what` otherwise.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            started.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Temporary directories

/// A directory under the system's temp dir, removed on drop unless the test failed (then its
/// path is printed, to read the gateway's logs).
#[derive(Debug)]
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new(label: &str) -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .subsec_nanos();
        let path = std::env::temp_dir().join(format!(
            "tether-e2e-{label}-{}-{nanos}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        Self { path }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "e2e: kept {} (configuration, gateway logs, database)",
                self.path.display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// A loopback port that was free a moment ago.
pub async fn free_port() -> u16 {
    tether_testkit::services::free_port()
        .await
        .expect("binds a free loopback port")
}

// ---------------------------------------------------------------------------------------------
// Configuration

/// The configuration file for a gateway keeping its data in `dir`: host JWTs (HS256, the secret
/// in [`JWT_SECRET_ENV`]), the operator page behind Basic credentials, then `rest` (tables such
/// as `[reconnect]` and the `[[servers]]`).
pub fn config_text(dir: &Path, rest: &str) -> String {
    let db = dir.join("tether.db");
    config_with(
        &format!("[storage]\nurl = \"sqlite://{}\"\n", db.display()),
        "",
        rest,
    )
}

/// The e2e configuration with `head` first (top-level keys and the storage and shared-state
/// tables), `oauth_extra` lines in `[oauth]` and `rest` (usually `[[servers]]`) last.
pub fn config_with(head: &str, oauth_extra: &str, rest: &str) -> String {
    format!(
        r#"{head}
[oauth]
client_name = "Tether e2e"
return_url = "{RETURN_URL}"
{oauth_extra}

[gateway.host_auth]
issuer = "{ISSUER}"
audience = "{AUDIENCE}"
hs256_secret_env = "{JWT_SECRET_ENV}"

[gateway.admin]
basic_user = "{ADMIN_USER}"
password_env = "{ADMIN_PASSWORD_ENV}"

{rest}
"#
    )
}

/// Accepts connections on `listener` and closes each at once, counting them: a dead upstream
/// whose connection attempts a test can count.
pub fn count_and_close(
    listener: tokio::net::TcpListener,
) -> (Arc<AtomicU64>, tokio::task::JoinHandle<()>) {
    let count = Arc::new(AtomicU64::new(0));
    let counted = count.clone();
    let task = tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            drop(socket);
        }
    });
    (count, task)
}

// ---------------------------------------------------------------------------------------------
// The gateway process

/// One run of `tether serve`. Killed on drop.
#[derive(Debug)]
pub struct GatewayProcess {
    pub base: String,
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    pub stdout_path: PathBuf,
    pub stderr_path: PathBuf,
    child: Child,
}

/// How to start the gateway.
#[derive(Debug, Clone)]
pub struct Launch {
    /// The directory with the configuration, the database and the logs.
    pub dir: PathBuf,
    /// `--listen`: `127.0.0.1:0` for any port, or a port kept from an earlier run.
    pub listen: String,
    /// `RUST_LOG` for the process.
    pub rust_log: String,
    /// Distinguishes the log files of successive runs in one directory.
    pub run: u32,
    /// Extra environment (client secrets).
    pub env: Vec<(String, String)>,
    /// Extra arguments of `tether serve` (`--dev`).
    pub args: Vec<String>,
}

impl Launch {
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            listen: "127.0.0.1:0".to_owned(),
            rust_log: "info".to_owned(),
            run: 1,
            env: Vec::new(),
            args: Vec::new(),
        }
    }
}

impl GatewayProcess {
    /// Writes `config` to `{dir}/tether.toml` and starts `tether serve` on it; returns once it
    /// printed its listening line (at most a minute), with the output of a failed start in the
    /// panic message.
    pub async fn start(launch: &Launch, config: &str) -> Self {
        let config_path = launch.dir.join("tether.toml");
        std::fs::write(&config_path, config).expect("writes the configuration file");
        let stdout_path = launch.dir.join(format!("gateway-{}.stdout", launch.run));
        let stderr_path = launch.dir.join(format!("gateway-{}.stderr", launch.run));
        let stdout = std::fs::File::create(&stdout_path).expect("creates the stdout file");
        let stderr = std::fs::File::create(&stderr_path).expect("creates the stderr file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_tether"));
        command
            .arg("serve")
            .arg("--config")
            .arg(&config_path)
            .arg("--listen")
            .arg(&launch.listen)
            .args(&launch.args)
            .current_dir(&launch.dir)
            .env("TETHER_ENCRYPTION_KEY", ENCRYPTION_KEY)
            .env(JWT_SECRET_ENV, jwt_secret())
            .env(ADMIN_PASSWORD_ENV, ADMIN_PASSWORD)
            .env("RUST_LOG", &launch.rust_log)
            .env("NO_COLOR", "1")
            .stdin(Stdio::piped())
            .stdout(stdout)
            .stderr(stderr)
            .kill_on_drop(true);
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
        for (key, value) in &launch.env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("the tether binary starts");
        let started = Instant::now();
        let addr = loop {
            let out = std::fs::read_to_string(&stdout_path).unwrap_or_default();
            if let Some(addr) = out
                .lines()
                .find_map(|l| l.strip_prefix("tether listening on http://"))
                .and_then(|a| a.trim().parse::<SocketAddr>().ok())
            {
                break addr;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "tether serve exited before listening ({status})\n--- stdout ---\n{out}\n--- stderr ---\n{}",
                    std::fs::read_to_string(&stderr_path).unwrap_or_default()
                );
            }
            assert!(
                started.elapsed() < START_TIMEOUT,
                "tether serve did not print its listening line within {START_TIMEOUT:?}\n--- stderr ---\n{}",
                std::fs::read_to_string(&stderr_path).unwrap_or_default()
            );
            tokio::time::sleep(POLL).await;
        };
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("an HTTP client");
        Self {
            base: format!("http://{addr}"),
            addr,
            http,
            stdout_path,
            stderr_path,
            child,
        }
    }

    /// The process's peak resident memory so far (`VmHWM`), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let pid = self.child.id().expect("the gateway is running");
        let status =
            std::fs::read_to_string(format!("/proc/{pid}/status")).expect("reads /proc/PID/status");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc/PID/status")
    }

    /// The process id (to send it signals).
    pub fn pid(&self) -> u32 {
        self.child.id().expect("the gateway is running")
    }

    /// Resets the peak resident memory to the current one (`clear_refs` 5, Linux 4.0+).
    pub fn reset_peak_rss(&self) {
        let pid = self.child.id().expect("the gateway is running");
        std::fs::write(format!("/proc/{pid}/clear_refs"), "5").expect("resets VmHWM");
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `{base}/oauth/callback`
    pub fn redirect_uri(&self) -> String {
        self.url("/oauth/callback")
    }

    /// The process's stdout and stderr so far.
    pub fn logs(&self) -> String {
        format!(
            "{}\n{}",
            std::fs::read_to_string(&self.stdout_path).unwrap_or_default(),
            std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
        )
    }

    /// Kills the process (SIGKILL: a crash, nothing flushed on purpose) and waits for it.
    pub async fn kill(mut self) {
        let _ = self.child.start_kill();
        tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("the gateway exits within 30 s of SIGKILL")
            .expect("waiting for the gateway");
    }

    /// Sends SIGTERM (an orderly stop) and waits at most `bound` for the process to exit.
    /// Returns how long it took, or `None` when it was still running (it is then killed).
    pub async fn terminate_within(mut self, bound: Duration) -> Option<Duration> {
        let pid = self.child.id().expect("the gateway is running");
        let started = Instant::now();
        let status = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await
            .expect("kill runs");
        assert!(status.success(), "kill -TERM {pid}");
        let exited = tokio::time::timeout(bound, self.child.wait()).await.is_ok();
        exited.then(|| started.elapsed())
    }

    /// `GET /v1/me/servers` as `token`.
    pub async fn servers(&self, token: &str) -> Vec<Value> {
        let response = self
            .http
            .get(self.url("/v1/me/servers"))
            .bearer_auth(token)
            .send()
            .await
            .expect("GET /v1/me/servers answers");
        assert_eq!(response.status(), 200, "GET /v1/me/servers");
        response.json().await.expect("a JSON list of servers")
    }

    /// The row of `server` in `GET /v1/me/servers`.
    pub async fn row(&self, token: &str, server: &str) -> Value {
        let rows = self.servers(token).await;
        rows.iter()
            .find(|r| r["name"] == server)
            .cloned()
            .unwrap_or_else(|| panic!("no row for {server} in {rows:?}"))
    }

    /// Waits until the row of `server` has `state`, at most `timeout`.
    pub async fn wait_state(
        &self,
        token: &str,
        server: &str,
        state: &str,
        timeout: Duration,
    ) -> Value {
        let started = Instant::now();
        loop {
            let last = self.row(token, server).await;
            if last["state"] == state {
                return last;
            }
            assert!(
                started.elapsed() < timeout,
                "{server} did not reach {state} within {timeout:?}; last row {last}\n--- gateway log (tail) ---\n{}",
                tail(&self.logs(), 40)
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// `POST path` as `token`, the status and the JSON body (or `null`).
    /// `POST path` with a JSON body: status and JSON answer.
    pub async fn post_json(&self, token: &str, path: &str, body: &Value) -> (u16, Value) {
        let response = self
            .http
            .post(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path} answers: {e}"));
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn post(&self, token: &str, path: &str) -> (u16, Value) {
        let response = self
            .http
            .post(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path} answers: {e}"));
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// `GET /metrics`.
    pub async fn metrics(&self) -> String {
        self.http
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("GET /metrics answers")
            .text()
            .await
            .expect("metrics text")
    }
}

/// The sum of every sample of metric `name` (all label sets) in a Prometheus text.
pub fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum()
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Asserts that none of `secrets` (8 characters or more) occurs in `text`; names the secret by
/// its first characters only.
pub fn assert_contains_none(what: &str, text: &str, secrets: &[String]) {
    for secret in secrets.iter().filter(|s| s.len() >= 8) {
        assert!(
            !text.contains(secret.as_str()),
            "{what} contains a secret value starting {:?}",
            &secret[..4]
        );
    }
}

/// The bytes of the SQLite database and its write-ahead log.
pub fn database_bytes(dir: &Path) -> Vec<u8> {
    let mut bytes = std::fs::read(dir.join("tether.db")).expect("the database file exists");
    if let Ok(wal) = std::fs::read(dir.join("tether.db-wal")) {
        bytes.extend(wal);
    }
    bytes
}

/// Asserts that no secret appears in `bytes` (as UTF-8).
pub fn assert_bytes_contain_none(what: &str, bytes: &[u8], secrets: &[String]) {
    for secret in secrets.iter().filter(|s| s.len() >= 8) {
        let needle = secret.as_bytes();
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle),
            "{what} holds a plaintext secret starting {:?}",
            &secret[..4]
        );
    }
}

// ---------------------------------------------------------------------------------------------
// OAuth peers

/// oidc-provider (its static clients registered with `redirect_uri`) and the testkit's protected
/// MCP server in front of it.
pub struct OAuthPeers {
    pub peer: OidcPeer,
    pub server: ProtectedServer,
    pub tools: DemoTools,
}

pub async fn oauth_peers(redirect_uri: &str, access_token_ttl: u64) -> OAuthPeers {
    let peer = OidcPeer::spawn_with(OidcOptions {
        access_token_ttl,
        static_redirect_uri: redirect_uri.to_owned(),
        ..OidcOptions::default()
    })
    .await
    .expect("the oidc-provider peer starts (npm ci in crates/tether-oauth/tests/peers)");
    let tools = DemoTools::default();
    let server = tether_testkit::serve_protected(
        tools.clone(),
        "127.0.0.1:0",
        ProtectionConfig::oidc_peer(&peer.issuer),
    )
    .await
    .expect("the protected MCP server starts");
    OAuthPeers {
        peer,
        server,
        tools,
    }
}

/// The environment variable the `[[servers]]` entries of [`oauth_server`] name for the client
/// secret.
pub const CLIENT_SECRET_ENV: &str = "E2E_CLIENT_SECRET";

/// The gateway's environment entry for [`CLIENT_SECRET_ENV`]: the peer's static basic client.
pub fn client_secret_env() -> (String, String) {
    (
        CLIENT_SECRET_ENV.to_owned(),
        tether_testkit::oidc::BASIC_CLIENT_SECRET.to_owned(),
    )
}

/// A `[[servers]]` entry for a protected server, with the peer's confidential static client.
pub fn oauth_server(name: &str, url: &str) -> String {
    format!(
        r#"
[[servers]]
name = "{name}"
url = "{url}"
oauth = true
init_timeout = "15s"
client_id = "{}"
client_secret_env = "{CLIENT_SECRET_ENV}"
"#,
        tether_testkit::oidc::BASIC_CLIENT_ID
    )
}

/// Waits until the last access token `server` accepted is no longer active at the peer.
pub async fn wait_expired(peer: &OidcPeer, server: &ProtectedServer, ttl: Duration) {
    let token = server
        .accepted_tokens()
        .last()
        .cloned()
        .expect("the server accepted a token");
    wait_for(
        "the last access token to expire at the peer",
        ttl + Duration::from_secs(30),
        || {
            let token = token.clone();
            async move { (!is_active(peer, &token).await).then_some(()) }
        },
    )
    .await;
}

/// Revokes `token` (a refresh token) at the peer as the confidential `client_secret_basic`
/// client.
pub async fn revoke_refresh_token(peer: &OidcPeer, token: &str) {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("token", token)
        .append_pair("token_type_hint", "refresh_token")
        .finish();
    let response = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("an HTTP client")
        .post(format!("{}/token/revocation", peer.issuer))
        .basic_auth(
            tether_testkit::oidc::BASIC_CLIENT_ID,
            Some(tether_testkit::oidc::BASIC_CLIENT_SECRET),
        )
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("the revocation request is answered");
    assert!(
        response.status().is_success(),
        "revocation: {}",
        response.status()
    );
}

/// The host page the e2e gateways send browsers back to (never fetched: the test's browser does
/// not follow redirects, it reads the completion code from the `Location`).
pub const RETURN_URL: &str = "http://127.0.0.1:9/host/oauth-return";

/// What one authorization through the gateway went through.
#[derive(Debug)]
pub struct Authorized {
    /// `{public_url}/oauth/callback?code=…&state=…[&iss=…]`, as the browser requested it.
    pub callback_url: String,
    /// The browser's flow cookie (`name=value`), set by `/oauth/begin`.
    pub browser_cookie: String,
    /// The single-use completion code the callback handed to the host page.
    pub completion_code: String,
    /// The host's confirmation (`POST /v1/me/oauth/complete`): its status and body.
    pub status: u16,
    pub page: String,
    /// The authorization code (a secret: it must not appear in logs).
    pub code: String,
    pub state: String,
}

/// A user authorizes `server` through the gateway: `POST …/authorize`, the browser at the
/// gateway's `/oauth/begin` link, the authorization server's steps without a person
/// (`tether_oauth::headless`), the browser's `GET /oauth/callback`, and the host page's
/// `POST /v1/me/oauth/complete` with the user's token.
pub async fn authorize_through_gateway(
    gateway: &GatewayProcess,
    token: &str,
    server: &str,
) -> Authorized {
    let (status, body) = gateway
        .post(token, &format!("/v1/me/servers/{server}/authorize"))
        .await;
    assert_eq!(status, 200, "authorize answers the URL: {body}");
    let authorization_url = body["authorization_url"]
        .as_str()
        .unwrap_or_else(|| panic!("no authorization_url in {body}"))
        .to_owned();
    follow_authorization(gateway, &authorization_url, token).await
}

/// The user's browser at a gateway link (`…/oauth/begin/…`), then the host page confirming
/// with `token`.
pub async fn follow_authorization(gateway: &GatewayProcess, link: &str, token: &str) -> Authorized {
    follow_authorization_to(gateway, &gateway.redirect_uri(), link, token).await
}

/// What a browser got from the gateway: status, `Location`, `Set-Cookie` (`name=value`), body.
#[derive(Debug)]
pub struct BrowserAnswer {
    pub status: u16,
    pub location: Option<String>,
    pub cookie: Option<String>,
    pub body: String,
}

/// A browser's `GET` on `url` (sent to `gateway`, whatever origin `url` names), with `cookie`.
pub async fn browser_get(
    gateway: &GatewayProcess,
    url: &str,
    cookie: Option<&str>,
) -> BrowserAnswer {
    let mut target = url::Url::parse(url).expect("a URL");
    let base = url::Url::parse(&gateway.base).expect("the gateway's URL");
    target.set_port(base.port()).expect("a port");
    target.set_host(base.host_str()).expect("a host");
    let mut request = gateway.http.get(target.as_str());
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    let response = request.send().await.expect("the gateway answers");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let location = header("location");
    let cookie = header("set-cookie").and_then(|c| c.split(';').next().map(str::to_owned));
    BrowserAnswer {
        status: response.status().as_u16(),
        location,
        cookie,
        body: response.text().await.unwrap_or_default(),
    }
}

/// The browser's steps up to the callback: `/oauth/begin` on `start_on` (binding the flow to
/// this browser's cookie), the authorization server, then `GET /oauth/callback` on `finish`.
/// Returns the callback URL, the cookie and the callback's answer.
pub async fn browser_authorizes(
    start_on: &GatewayProcess,
    finish: &GatewayProcess,
    redirect_uri: &str,
    link: &str,
) -> (
    String,
    String,
    BrowserAnswer,
    tether_oauth::headless::AuthorizationResponse,
) {
    let begun = browser_get(start_on, link, None).await;
    assert_eq!(begun.status, 303, "/oauth/begin redirects: {}", begun.body);
    let authorization_url = begun
        .location
        .expect("/oauth/begin names the authorization server");
    let cookie = begun
        .cookie
        .expect("/oauth/begin binds the browser with a cookie");
    let response = tether_oauth::headless::authorize(&authorization_url, redirect_uri)
        .await
        .expect("the authorization server approves without a person");
    let mut callback = url::Url::parse(&finish.redirect_uri()).expect("a valid redirect URI");
    {
        let mut query = callback.query_pairs_mut();
        query.append_pair("code", response.code.expose());
        query.append_pair("state", &response.state);
        if let Some(issuer) = &response.issuer {
            query.append_pair("iss", issuer);
        }
    }
    let answer = browser_get(finish, callback.as_str(), Some(&cookie)).await;
    (callback.to_string(), cookie, answer, response)
}

/// The completion code in the callback's redirect to the host page.
pub fn completion_code(answer: &BrowserAnswer) -> String {
    let location = answer
        .location
        .as_deref()
        .unwrap_or_else(|| panic!("the callback redirects to the host: {answer:?}"));
    assert!(location.starts_with(RETURN_URL), "{location}");
    url::Url::parse(location)
        .expect("a URL")
        .query_pairs()
        .find(|(k, _)| k == "completion_code")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("no completion_code in {location}"))
}

/// [`follow_authorization`] where the authorization server redirects to `redirect_uri` (a load
/// balancer's address) and the browser's steps and the host's confirmation land on `finish`
/// (any replica behind it).
pub async fn follow_authorization_to(
    finish: &GatewayProcess,
    redirect_uri: &str,
    link: &str,
    token: &str,
) -> Authorized {
    let (callback_url, browser_cookie, answer, response) =
        browser_authorizes(finish, finish, redirect_uri, link).await;
    assert_eq!(
        answer.status, 303,
        "the callback sends the browser to the host: {answer:?}"
    );
    let completion_code = completion_code(&answer);
    let (status, body) = finish
        .post_json(
            token,
            "/v1/me/oauth/complete",
            &serde_json::json!({ "code": completion_code }),
        )
        .await;
    Authorized {
        callback_url,
        browser_cookie,
        completion_code,
        status,
        page: body.to_string(),
        code: response.code.expose().to_owned(),
        state: response.state,
    }
}

/// Whether the authorization server still considers `token` active (RFC 7662, as the resource
/// server).
pub async fn is_active(peer: &OidcPeer, token: &str) -> bool {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("token", token)
        .finish();
    let response = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("an HTTP client")
        .post(format!("{}/token/introspection", peer.issuer))
        .basic_auth(
            tether_testkit::oidc::RESOURCE_SERVER_CLIENT_ID,
            Some(tether_testkit::oidc::RESOURCE_SERVER_CLIENT_SECRET),
        )
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("the introspection request is answered");
    let info: Value = response.json().await.expect("introspection answers JSON");
    info["active"].as_bool() == Some(true)
}

/// Every secret of an OAuth run: the tokens the peer issued and the resource servers accepted,
/// the static clients' secrets, the host-token secret, the admin password, the storage key.
pub fn oauth_secrets(peer: &OidcPeer, servers: &[&ProtectedServer]) -> Vec<String> {
    let mut secrets = peer.issued_tokens();
    for server in servers {
        secrets.extend(server.accepted_tokens());
    }
    secrets.extend(
        [
            tether_testkit::oidc::BASIC_CLIENT_SECRET,
            tether_testkit::oidc::POST_CLIENT_SECRET,
            tether_testkit::oidc::RESOURCE_SERVER_CLIENT_SECRET,
            ADMIN_PASSWORD,
        ]
        .map(str::to_owned),
    );
    secrets.push(jwt_secret());
    secrets.push(
        ENCRYPTION_KEY
            .split_once(':')
            .map(|(_, key)| key.to_owned())
            .expect("id:key"),
    );
    secrets
}

/// Calls `tool` through an rmcp client and returns the result as JSON.
pub async fn call(
    client: &rmcp::service::RunningService<rmcp::RoleClient, rmcp::model::ClientConfig>,
    tool: &str,
    args: Value,
) -> Value {
    let mut params = rmcp::model::CallToolRequestParams::new(tool.to_owned());
    params.arguments = args.as_object().cloned();
    let result = tokio::time::timeout(Duration::from_secs(60), client.peer().call_tool(params))
        .await
        .unwrap_or_else(|_| panic!("tools/call {tool} answered within 60 s"))
        .unwrap_or_else(|e| panic!("tools/call {tool} is answered with a result: {e}"));
    serde_json::to_value(&result).expect("a tool result serializes")
}

/// The names from `tools/list` through an rmcp client.
pub async fn tool_names(
    client: &rmcp::service::RunningService<rmcp::RoleClient, rmcp::model::ClientConfig>,
) -> Vec<String> {
    tokio::time::timeout(Duration::from_secs(60), client.peer().list_all_tools())
        .await
        .expect("tools/list answered within 60 s")
        .expect("tools/list succeeds")
        .iter()
        .map(|t| t.name.to_string())
        .collect()
}

/// A GET as a browser would do it (no credentials), status and body.
pub async fn get_page(gateway: &GatewayProcess, url: &str) -> (u16, String) {
    let response = gateway
        .http
        .get(url)
        .send()
        .await
        .expect("the gateway answers");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

// ---------------------------------------------------------------------------------------------
// The testkit's MCP server as a process

/// `tether-testkit-mcp`, built once per test process (a no-op when `cargo test --workspace`
/// built it already) next to the `tether` binary.
async fn testkit_mcp_binary() -> PathBuf {
    static BUILT: tokio::sync::OnceCell<PathBuf> = tokio::sync::OnceCell::const_new();
    BUILT
        .get_or_init(|| async {
            let tether = Path::new(env!("CARGO_BIN_EXE_tether"));
            let profile_dir = tether.parent().expect("the binary's directory");
            let target_dir = profile_dir.parent().expect("the target directory");
            let mut command =
                Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
            command
                .args([
                    "build",
                    "--quiet",
                    "-p",
                    "tether-testkit",
                    "--bin",
                    "tether-testkit-mcp",
                ])
                .arg("--target-dir")
                .arg(target_dir)
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .kill_on_drop(true);
            if profile_dir.file_name().is_some_and(|n| n == "release") {
                command.arg("--release");
            }
            let status = tokio::time::timeout(Duration::from_secs(600), command.status())
                .await
                .expect("building tether-testkit-mcp takes less than 10 minutes")
                .expect("cargo runs");
            assert!(status.success(), "cargo build of tether-testkit-mcp failed");
            let binary = profile_dir.join(format!(
                "tether-testkit-mcp{}",
                std::env::consts::EXE_SUFFIX
            ));
            assert!(binary.exists(), "{} was not built", binary.display());
            binary
        })
        .await
        .clone()
}

/// The demo MCP server (`echo`, `add`) as its own process. Killed on drop; it also exits when
/// its stdin closes.
#[derive(Debug)]
pub struct TestkitMcp {
    pub url: String,
    pub addr: SocketAddr,
    child: Child,
}

impl TestkitMcp {
    /// Starts it on `addr` (`127.0.0.1:0` for any port, or a port to reuse after a kill).
    pub async fn spawn(addr: &str) -> Self {
        let binary = testkit_mcp_binary().await;
        let mut child = Command::new(&binary)
            .arg(addr)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("tether-testkit-mcp starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let line = tokio::time::timeout(Duration::from_secs(30), async {
            BufReader::new(stdout).lines().next_line().await
        })
        .await
        .expect("tether-testkit-mcp announces itself within 30 s")
        .expect("reads its stdout")
        .expect("tether-testkit-mcp exited before announcing itself (port taken?)");
        let announced: Value = serde_json::from_str(&line).expect("its first line is JSON");
        let url = announced["url"]
            .as_str()
            .expect("the announcement has a url")
            .to_owned();
        let addr = url
            .trim_start_matches("http://")
            .trim_end_matches("/mcp")
            .parse()
            .expect("the url names a socket address");
        Self { url, addr, child }
    }

    /// Kills it (SIGKILL) and waits for it to be gone.
    pub async fn kill(mut self) {
        let _ = self.child.start_kill();
        tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("tether-testkit-mcp exits within 30 s of SIGKILL")
            .expect("waiting for tether-testkit-mcp");
    }
}

// ---------------------------------------------------------------------------------------------
// The TypeScript SDK as a client

/// The SDK's `node_modules` (installed by `npm ci` in crates/tether-mcp/tests/peers).
fn sdk_node_modules() -> PathBuf {
    let peers = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("tether-mcp")
        .join("tests")
        .join("peers");
    let modules = peers.join("node_modules");
    assert!(
        modules
            .join("@modelcontextprotocol")
            .join("sdk")
            .join("package.json")
            .exists(),
        "the TypeScript MCP SDK is missing from {}: run `npm ci` in {} (.ci/run does it)",
        modules.display(),
        peers.display()
    );
    modules
}

const TS_CLIENT: &str = r#"
const { Client } = require('@modelcontextprotocol/sdk/client/index.js');
const { StreamableHTTPClientTransport } = require('@modelcontextprotocol/sdk/client/streamableHttp.js');
(async () => {
  const [url, tool, args] = process.argv.slice(2);
  const token = process.env.E2E_HOST_TOKEN;
  const client = new Client({ name: 'tether-e2e-ts', version: '0.0.0' });
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    requestInit: { headers: { Authorization: `Bearer ${token}` } },
  });
  await client.connect(transport);
  const listed = await client.listTools();
  const result = await client.callTool({ name: tool, arguments: JSON.parse(args) });
  process.stdout.write(JSON.stringify({ tools: listed.tools.map((t) => t.name), result }) + '\n');
  await client.close();
})().catch((err) => {
  console.error(String((err && err.stack) || err));
  process.exit(1);
});
"#;

/// A gateway process with one OAuth server, `alpha` (oidc-provider in front of the protected
/// rmcp server), on a port of its own (its redirect URI is known before the peers start).
pub async fn gateway_with_alpha(label: &str) -> (TempDir, OAuthPeers, GatewayProcess) {
    let dir = TempDir::new(label);
    let port = free_port().await;
    let redirect_uri = format!("http://127.0.0.1:{port}/oauth/callback");
    let peers = oauth_peers(&redirect_uri, 300).await;
    let config = config_text(&dir.path, &oauth_server("alpha", &peers.server.url));
    let mut launch = Launch::new(&dir.path);
    launch.listen = format!("127.0.0.1:{port}");
    launch.env.push(client_secret_env());
    let gateway = GatewayProcess::start(&launch, &config).await;
    (dir, peers, gateway)
}

/// Runs the TypeScript SDK's client against `{base}/mcp` as `token`: lists the tools and calls
/// `tool` with `args`. Returns `{"tools": [names], "result": CallToolResult}`.
pub async fn ts_client_call(dir: &Path, base: &str, token: &str, tool: &str, args: Value) -> Value {
    let script = dir.join("ts-client.cjs");
    std::fs::write(&script, TS_CLIENT).expect("writes the TypeScript client script");
    run_node(
        &script,
        &[format!("{base}/mcp"), tool.to_owned(), args.to_string()],
        token,
        &[],
    )
    .await
}

/// The TypeScript SDK's client as an interactive agent (support/ts_agent.cjs): it declares
/// sampling, elicitation and roots, answers them, and runs `steps` (`[{op, params}]`) against
/// `{base}/mcp` as `token`. Returns `{steps: [{op, result}|{op, error}], progress,
/// notifications, asked}`.
pub async fn ts_agent(dir: &Path, base: &str, token: &str, steps: Value) -> Value {
    let script = dir.join("ts-agent.cjs");
    std::fs::write(&script, include_str!("ts_agent.cjs")).expect("writes the TypeScript agent");
    run_node(
        &script,
        &[format!("{base}/mcp"), steps.to_string()],
        token,
        &[],
    )
    .await
}

/// The TypeScript SDK v2's client on the 2026-07-28 wire (no `initialize`, no session;
/// crates/tether-mcp/tests/peers/modern_client.mjs) against `{base}/mcp` as `token`, running
/// `steps`. Returns `{version, steps: [{op, result}|{op, error}]}`.
pub async fn modern_agent(base: &str, token: &str, steps: Value) -> Value {
    run_modern_agent(base, token, steps, &[]).await
}

/// [`modern_agent`] declaring `capabilities` instead of form elicitation.
pub async fn modern_agent_declaring(
    base: &str,
    token: &str,
    steps: Value,
    capabilities: Value,
) -> Value {
    let declared = capabilities.to_string();
    run_modern_agent(
        base,
        token,
        steps,
        &[("MODERN_CLIENT_CAPABILITIES", &declared)],
    )
    .await
}

async fn run_modern_agent(base: &str, token: &str, steps: Value, env: &[(&str, &str)]) -> Value {
    let script = sdk_node_modules().join("..").join("modern_client.mjs");
    run_node(
        &script,
        &[format!("{base}/mcp"), steps.to_string()],
        token,
        env,
    )
    .await
}

async fn run_node(script: &Path, args: &[String], token: &str, env: &[(&str, &str)]) -> Value {
    let modules = sdk_node_modules();
    let child = Command::new("node")
        .arg(script)
        .args(args)
        .envs(env.iter().copied())
        .env("NODE_PATH", &modules)
        .env("E2E_HOST_TOKEN", token)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node starts (is Node.js 20+ installed?)");
    let output = tokio::time::timeout(Duration::from_secs(90), child.wait_with_output())
        .await
        .expect("the TypeScript client finishes within 90 s")
        .expect("waiting for node");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the TypeScript SDK client failed ({})\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
        output.status
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!("the TypeScript client's output is not JSON ({e}): {stdout}\n{stderr}")
    })
}

/// The text of a tool result (`content[*].text` joined).
pub fn result_text(result: &Value) -> String {
    result["content"]
        .as_array()
        .map(|c| c.iter().filter_map(|c| c["text"].as_str()).collect())
        .unwrap_or_default()
}

/// `{"a": a, "b": b}`
pub fn add_args(a: i64, b: i64) -> Value {
    json!({"a": a, "b": b})
}
