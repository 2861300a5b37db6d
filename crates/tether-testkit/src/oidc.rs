//! The `oidc-provider` peer (a certified OpenID provider, `crates/tether-oauth/tests/peers/
//! oidc.mjs`): spawned with node on 127.0.0.1, killed on drop (and it exits by itself when our
//! end of its stdin closes, so it never outlives a test process that died).
//!
//! It offers dynamic registration, PKCE, resource indicators (the token's audience is the
//! `resource` asked for), refresh token rotation, introspection and auto-approval (login and
//! consent happen by following redirects with a cookie jar). Its static clients are below.
//!
//! The peer logs every token response on stderr when `OIDC_DEBUG` is set; this launcher always
//! sets it and keeps the token values it sees, so tests can assert that none of them leaked
//! ([`OidcPeer::issued_tokens`]). Set `OIDC_DEBUG` in the test's environment to see the log.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The confidential client authenticating with `client_secret_basic`.
pub const BASIC_CLIENT_ID: &str = "confidential-basic";
pub const BASIC_CLIENT_SECRET: &str = "basic-secret-0123456789abcdef";
/// The confidential client authenticating with `client_secret_post`.
pub const POST_CLIENT_ID: &str = "confidential-post";
pub const POST_CLIENT_SECRET: &str = "post-secret-0123456789abcdef";
/// The public client (`none`).
pub const PUBLIC_CLIENT_ID: &str = "public-client";
/// The client a resource server introspects with.
pub const RESOURCE_SERVER_CLIENT_ID: &str = "resource-server";
pub const RESOURCE_SERVER_CLIENT_SECRET: &str = "rs-secret-0123456789abcdef";
/// The redirect URI the static clients are registered with unless
/// [`OidcOptions::static_redirect_uri`] says otherwise.
pub const DEFAULT_STATIC_REDIRECT_URI: &str = "http://127.0.0.1:9/callback";

const ANNOUNCE_TIMEOUT: Duration = Duration::from_secs(30);
/// Token values kept from the peer's log (a test issues a handful).
const MAX_CAPTURED_TOKENS: usize = 1024;

/// The directory holding `oidc.mjs` and its `node_modules`.
pub fn peers_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("tether-oauth")
        .join("tests")
        .join("peers")
}

#[derive(Debug, Clone)]
pub struct OidcOptions {
    /// Access token lifetime in seconds.
    pub access_token_ttl: u64,
    /// The scopes the MCP resource accepts (space-separated).
    pub resource_scopes: String,
    /// The redirect URI of the static clients.
    pub static_redirect_uri: String,
}

impl Default for OidcOptions {
    fn default() -> Self {
        Self {
            access_token_ttl: 300,
            resource_scopes: "mcp:tools mcp:admin".to_owned(),
            static_redirect_uri: DEFAULT_STATIC_REDIRECT_URI.to_owned(),
        }
    }
}

#[derive(Debug)]
pub struct OidcPeer {
    /// `http://127.0.0.1:<port>`
    pub issuer: String,
    pub port: u16,
    tokens: Arc<Mutex<Vec<String>>>,
    child: Child,
}

impl OidcPeer {
    pub async fn spawn() -> anyhow::Result<Self> {
        Self::spawn_with(OidcOptions::default()).await
    }

    pub async fn spawn_with(options: OidcOptions) -> anyhow::Result<Self> {
        let dir = peers_dir();
        if !dir.join("node_modules").join("oidc-provider").exists() {
            bail!(
                "{} has no node_modules/oidc-provider: run `npm ci` in that directory first \
                 (.ci/run does it for every crates/*/tests/peers)",
                dir.display()
            );
        }
        let mut child = Command::new("node")
            .arg("oidc.mjs")
            .arg("0")
            .current_dir(&dir)
            .env("ACCESS_TOKEN_TTL", options.access_token_ttl.to_string())
            .env("RESOURCE_SCOPES", &options.resource_scopes)
            .env("STATIC_REDIRECT_URI", &options.static_redirect_uri)
            .env("OIDC_DEBUG", "1")
            // The peer exits when its stdin closes, i.e. when this process dies.
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("cannot start `node oidc.mjs` (is Node.js 20+ installed?)")?;
        let stderr = child.stderr.take().context("the peer's stderr is piped")?;
        let tokens = Arc::new(Mutex::new(Vec::new()));
        tokio::spawn(collect_tokens(stderr, tokens.clone()));
        let stdout = child.stdout.take().context("the peer's stdout is piped")?;
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(ANNOUNCE_TIMEOUT, lines.next_line())
            .await
            .context("the OIDC peer did not announce itself within 30 s")?
            .context("cannot read the OIDC peer's stdout")?
            .context("the OIDC peer exited before announcing itself (run with OIDC_DEBUG=1)")?;
        // Keep reading: oidc-provider prints notices on stdout later (the first call of a
        // default helper, e.g. on revocation), and a closed pipe would kill it with EPIPE.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let announced: Value =
            serde_json::from_str(&line).context("the OIDC peer's first line is not JSON")?;
        let issuer = announced["issuer"]
            .as_str()
            .context("the announcement has no issuer")?
            .to_owned();
        let port = announced["port"]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .context("the announcement has no port")?;
        Ok(Self {
            issuer,
            port,
            tokens,
            child,
        })
    }

    /// Every access, refresh and ID token the peer issued so far (from its token responses).
    pub fn issued_tokens(&self) -> Vec<String> {
        self.tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// `GET /__test/stats`: registrations, grants per type, grant errors, token requests.
    pub async fn stats(&self) -> anyhow::Result<Value> {
        let text = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()?
            .get(format!("{}/__test/stats", self.issuer))
            .send()
            .await
            .context("stats request")?
            .text()
            .await
            .context("stats body")?;
        serde_json::from_str(&text).context("stats are not JSON")
    }

    /// Successful token requests of `grant_type` so far.
    /// From now on the token endpoint answers `status` (0: normally) without processing the
    /// request, or answers `delay` after processing it (a slow authorization server).
    pub async fn set_token_mode(&self, status: u16, delay: Duration) -> anyhow::Result<()> {
        reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()?
            .post(format!(
                "{}/__test/token-mode?status={status}&delay_ms={}",
                self.issuer,
                delay.as_millis()
            ))
            .send()
            .await
            .context("token mode request")?
            .error_for_status()
            .context("token mode refused")?;
        Ok(())
    }

    pub async fn grant_count(&self, grant_type: &str) -> anyhow::Result<u64> {
        Ok(self.stats().await?["grants"][grant_type]
            .as_u64()
            .unwrap_or(0))
    }
}

impl Drop for OidcPeer {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// Reads the peer's stderr to its end: keeps the token values of `grant <type> <json>` lines,
/// and echoes everything when the test process has `OIDC_DEBUG` set.
async fn collect_tokens(stderr: tokio::process::ChildStderr, tokens: Arc<Mutex<Vec<String>>>) {
    let echo = std::env::var_os("OIDC_DEBUG").is_some();
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if echo {
            eprintln!("[oidc] {line}");
        }
        let Some(rest) = line.strip_prefix("grant ") else {
            continue;
        };
        let Some((_, body)) = rest.split_once(' ') else {
            continue;
        };
        let Ok(body) = serde_json::from_str::<Value>(body) else {
            continue;
        };
        let mut tokens = tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for field in ["access_token", "refresh_token", "id_token"] {
            if let Some(value) = body[field].as_str()
                && tokens.len() < MAX_CAPTURED_TOKENS
            {
                tokens.push(value.to_owned());
            }
        }
    }
}
