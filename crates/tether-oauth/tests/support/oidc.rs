//! The `oidc-provider` peer: spawned with node, killed on drop.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub struct OidcPeer {
    pub issuer: String,
    pub port: u16,
    child: Child,
}

fn peers_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/peers")
}

/// Installs the pinned peer packages once if `node_modules` is missing (from the lock file).
async fn ensure_installed() {
    let dir = peers_dir();
    if dir.join("node_modules/oidc-provider").exists() {
        return;
    }
    let status = tokio::time::timeout(
        Duration::from_secs(180),
        Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .status(),
    )
    .await
    .expect("npm ci finishes within 3 minutes")
    .expect("npm runs");
    assert!(status.success(), "npm ci in {} failed", dir.display());
}

impl OidcPeer {
    /// `access_token_ttl` in seconds.
    pub async fn spawn(access_token_ttl: u64) -> Self {
        Self::spawn_with(access_token_ttl, "mcp:tools mcp:admin").await
    }

    pub async fn spawn_with(access_token_ttl: u64, resource_scopes: &str) -> Self {
        static INSTALL: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
        INSTALL.get_or_init(ensure_installed).await;
        let mut child = Command::new("node")
            .arg("oidc.mjs")
            .arg("0")
            .current_dir(peers_dir())
            .env("ACCESS_TOKEN_TTL", access_token_ttl.to_string())
            .env("RESOURCE_SCOPES", resource_scopes)
            .env("STATIC_REDIRECT_URI", super::REDIRECT_URI)
            // The peer exits when its stdin closes, i.e. when this test process dies.
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(if std::env::var_os("OIDC_DEBUG").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .kill_on_drop(true)
            .spawn()
            .expect("node starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("the OIDC peer announces itself within 20 s")
            .expect("reading the peer's stdout")
            .expect("the peer printed a line");
        let announced: Value = serde_json::from_str(&line).expect("the peer prints JSON");
        Self {
            issuer: announced["issuer"].as_str().expect("issuer").to_owned(),
            port: u16::try_from(announced["port"].as_u64().expect("port")).expect("port fits"),
            child,
        }
    }

    pub async fn stats(&self) -> Value {
        reqwest::get(format!("{}/__test/stats", self.issuer))
            .await
            .expect("stats request")
            .text()
            .await
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok())
            .expect("stats JSON")
    }

    pub async fn grant_count(&self, grant_type: &str) -> u64 {
        self.stats().await["grants"][grant_type]
            .as_u64()
            .unwrap_or(0)
    }

    /// From now on the token endpoint answers `status` (0: normally) without processing the
    /// request, or answers `delay` after processing it.
    pub async fn set_token_mode(&self, status: u16, delay: Duration) {
        reqwest::Client::new()
            .post(format!(
                "{}/__test/token-mode?status={status}&delay_ms={}",
                self.issuer,
                delay.as_millis()
            ))
            .send()
            .await
            .expect("token mode request")
            .error_for_status()
            .expect("token mode set");
    }

    /// Refresh-token reuses the AS detected (`invalid_grant` answers) and grants it revoked.
    pub async fn refresh_failures(&self) -> (u64, u64) {
        let stats = self.stats().await;
        let invalid = stats["grantErrors"]
            .as_object()
            .map(|errors| {
                errors
                    .iter()
                    .filter(|(key, _)| key.starts_with("refresh_token:"))
                    .filter_map(|(_, count)| count.as_u64())
                    .sum()
            })
            .unwrap_or(0);
        (invalid, stats["grantsRevoked"].as_u64().unwrap_or(0))
    }

    /// A raw token request (`grant_type=refresh_token`) as a public client; returns the status
    /// and the body's `error`.
    pub async fn refresh_raw(
        &self,
        client_id: &str,
        refresh_token: &str,
        resource: &str,
    ) -> (u16, Option<String>) {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "refresh_token")
            .append_pair("refresh_token", refresh_token)
            .append_pair("client_id", client_id)
            .append_pair("resource", resource)
            .finish();
        let response = reqwest::Client::new()
            .post(format!("{}/token", self.issuer))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .expect("token request");
        let status = response.status().as_u16();
        let json: Value = response
            .text()
            .await
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or(Value::Null);
        (status, json["error"].as_str().map(str::to_owned))
    }

    /// Revokes a refresh token as a public client.
    pub async fn revoke(&self, client_id: &str, token: &str) {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("token", token)
            .append_pair("token_type_hint", "refresh_token")
            .append_pair("client_id", client_id)
            .finish();
        let response = reqwest::Client::new()
            .post(format!("{}/token/revocation", self.issuer))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .expect("revocation request");
        assert!(
            response.status().is_success(),
            "revocation: {}",
            response.status()
        );
    }
}

impl Drop for OidcPeer {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}
