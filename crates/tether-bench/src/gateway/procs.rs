//! The processes of `bench gateway` and what is read from them: `tether serve` with a
//! configuration in a temporary directory, `tether-testkit-mcp` upstreams, host JWTs signed here,
//! the gateway's HTTP API, and `/proc/<pid>` figures (RSS, CPU time, open files).
//!
//! Everything listens on 127.0.0.1. Every child is killed when its handle drops; the upstreams
//! also stop when their stdin closes.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail, ensure};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};

/// The environment variable the benchmark's configuration names for the host-token secret.
const JWT_SECRET_ENV: &str = "TETHER_BENCH_JWT_SECRET";
const JWT_SECRET: &str = "tether-bench-host-token-secret-0123456789abcdef";
const ISSUER: &str = "https://host.bench.invalid";
const AUDIENCE: &str = "tether";
/// The storage key (32 bytes, base64), id `bench`.
pub const ENCRYPTION_KEY: &str = "bench:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
/// How long a child may take to say where it listens.
const START_TIMEOUT: Duration = Duration::from_secs(30);
const START_POLL: Duration = Duration::from_millis(20);
/// One HTTP request to the gateway or an upstream.
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);
/// `/proc/<pid>/stat` times are in USER_HZ ticks, 100 per second on Linux.
const TICKS_PER_SECOND: f64 = 100.0;
const PROXY_VARS: [&str; 6] = [
    "http_proxy",
    "HTTP_PROXY",
    "https_proxy",
    "HTTPS_PROXY",
    "all_proxy",
    "ALL_PROXY",
];

/// `tether` and `tether-testkit-mcp`, next to this executable, and this executable (which
/// also runs the pass-through proxy).
#[derive(Debug, Clone)]
pub struct Binaries {
    pub tether: PathBuf,
    pub testkit: PathBuf,
    pub bench: PathBuf,
}

impl Binaries {
    pub fn locate() -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("locating the bench binary")?;
        let dir = exe
            .parent()
            .context("the bench binary has no parent directory")?;
        let find = |name: &str| -> anyhow::Result<PathBuf> {
            let path = dir.join(name);
            ensure!(
                path.is_file(),
                "{name} not found next to the bench binary (in {}): build all three with \
                 `cargo build --release -p tether -p tether-bench -p tether-testkit` (same \
                 CARGO_TARGET_DIR) and run target/release/bench",
                dir.display()
            );
            Ok(path)
        };
        Ok(Self {
            tether: find("tether")?,
            testkit: find("tether-testkit-mcp")?,
            bench: exe.clone(),
        })
    }
}

/// An HTTP client for loopback: no proxy, bounded requests, a large idle pool.
pub fn http_client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .timeout(HTTP_TIMEOUT)
        .pool_max_idle_per_host(1024)
        .build()
        .context("building the HTTP client")
}

#[derive(Serialize)]
struct Claims<'a> {
    sub: &'a str,
    iss: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
}

/// A host token for `user`, valid for an hour (what `tether token` prints, signed here so that
/// 10,000 of them take no 10,000 processes).
pub fn jwt(user: &str) -> anyhow::Result<String> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let claims = Claims {
        sub: user,
        iss: ISSUER,
        aud: AUDIENCE,
        iat: now,
        exp: now + 3600,
    };
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .context("signing a host token")
}

/// A directory under the system's temp dir, removed on drop.
#[derive(Debug)]
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new(label: &str) -> anyhow::Result<Self> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "tether-bench-{label}-{}-{nanos}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self { path })
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// The counters an upstream serves at `GET /stats`.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct UpstreamStats {
    pub initialized: u64,
    pub peak_initializing: u64,
}

/// A child process that prints one JSON line `{"url": …, "pid": …}` once it listens and stops
/// when its stdin closes (`tether-testkit-mcp`, the pass-through proxy). Killed on drop.
#[derive(Debug)]
pub struct ReadyChild {
    child: Child,
    stdin: Option<ChildStdin>,
}

/// What a [`ReadyChild`] prints when it is ready.
#[derive(Debug, Serialize, Deserialize)]
pub struct Ready {
    pub url: String,
    pub pid: u32,
}

impl ReadyChild {
    /// Spawns `command` (`what` names it in errors) and waits for its ready line.
    pub async fn spawn(mut command: Command, what: &str) -> anyhow::Result<(Self, Ready)> {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {what}"))?;
        let stdin = child.stdin.take();
        let stdout = child
            .stdout
            .take()
            .with_context(|| format!("{what}'s stdout is not piped"))?;
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(START_TIMEOUT, lines.next_line())
            .await
            .with_context(|| format!("{what} did not print its URL in time"))?
            .with_context(|| format!("reading {what}'s output"))?
            .with_context(|| format!("{what} exited before printing its URL"))?;
        let ready: Ready =
            serde_json::from_str(&line).with_context(|| format!("{what} printed {line:?}"))?;
        Ok((Self { child, stdin }, ready))
    }

    /// Closes its stdin (it stops); kills it if it lingers.
    pub async fn stop(mut self) {
        drop(self.stdin.take());
        if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// `tether-testkit-mcp` as a child process.
#[derive(Debug)]
pub struct Upstream {
    /// `http://127.0.0.1:PORT/mcp`
    pub url: String,
    pub pid: u32,
    base: String,
    process: ReadyChild,
}

impl Upstream {
    /// Starts one on any free loopback port; every `initialize` it answers takes `init_delay`.
    pub async fn start(bin: &Path, init_delay: Duration) -> anyhow::Result<Self> {
        Self::start_at(bin, init_delay, "127.0.0.1:0").await
    }

    /// Starts one on `addr` (a loopback address; port 0 for any).
    pub async fn start_at(bin: &Path, init_delay: Duration, addr: &str) -> anyhow::Result<Self> {
        let mut command = Command::new(bin);
        command
            .arg(addr)
            .env("TESTKIT_INIT_DELAY_MS", init_delay.as_millis().to_string());
        let (process, ready) = ReadyChild::spawn(command, "tether-testkit-mcp").await?;
        let parsed = url::Url::parse(&ready.url).context("the upstream's URL")?;
        ensure!(
            parsed.host_str() == Some("127.0.0.1"),
            "the upstream is not on loopback: {}",
            ready.url
        );
        let base = ready
            .url
            .strip_suffix("/mcp")
            .with_context(|| format!("unexpected upstream URL {}", ready.url))?
            .to_owned();
        Ok(Self {
            url: ready.url,
            pid: ready.pid,
            base,
            process,
        })
    }

    pub async fn stats(&self, http: &reqwest::Client) -> anyhow::Result<UpstreamStats> {
        let response = http
            .get(format!("{}/stats", self.base))
            .send()
            .await
            .context("GET /stats of the upstream")?;
        ensure!(
            response.status().is_success(),
            "GET /stats of the upstream: {}",
            response.status()
        );
        let body = response.bytes().await.context("reading /stats")?;
        serde_json::from_slice(&body).context("parsing /stats (is tether-testkit-mcp current?)")
    }

    /// Closes its stdin (it stops serving); kills it if it lingers.
    pub async fn stop(self) {
        self.process.stop().await;
    }
}

/// One `tether serve`, its configuration and data in a temporary directory. Killed on drop.
#[derive(Debug)]
pub struct Gateway {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    pub pid: u32,
    child: Child,
    _stdin: Option<ChildStdin>,
    stderr_path: PathBuf,
    dir: TempDir,
}

/// The `[[servers]]` entries for `(name, url)` pairs: Streamable HTTP, no OAuth.
pub fn servers_toml(servers: &[(String, String)]) -> String {
    servers
        .iter()
        .map(|(name, url)| {
            format!("[[servers]]\nname = \"{name}\"\nurl = \"{url}\"\noauth = false\n")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

impl Gateway {
    /// Writes the configuration (host JWTs with the bench's secret, SQLite in the temporary
    /// directory, then `rest`) and starts `tether serve` on `127.0.0.1:0`.
    pub async fn start(bin: &Path, label: &str, rest: &str) -> anyhow::Result<Self> {
        Self::start_with(bin, label, None, "127.0.0.1:0", rest).await
    }

    /// [`Self::start`] with `head` (top-level keys and the `[storage]` table; SQLite in the
    /// temporary directory when `None`) and a listen address.
    pub async fn start_with(
        bin: &Path,
        label: &str,
        head: Option<&str>,
        listen: &str,
        rest: &str,
    ) -> anyhow::Result<Self> {
        let dir = TempDir::new(label)?;
        let head = match head {
            Some(head) => head.to_owned(),
            None => format!(
                "[storage]\nurl = \"sqlite://{}\"\n",
                dir.path.join("tether.db").display()
            ),
        };
        let config = format!(
            "{head}\n[gateway.host_auth]\nissuer = \"{ISSUER}\"\n\
             audience = \"{AUDIENCE}\"\nhs256_secret_env = \"{JWT_SECRET_ENV}\"\n\n{rest}\n"
        );
        let config_path = dir.path.join("tether.toml");
        std::fs::write(&config_path, &config)
            .with_context(|| format!("writing {}", config_path.display()))?;
        let stdout_path = dir.path.join("gateway.stdout");
        let stderr_path = dir.path.join("gateway.stderr");
        let stdout = std::fs::File::create(&stdout_path).context("creating the stdout file")?;
        let stderr = std::fs::File::create(&stderr_path).context("creating the stderr file")?;
        let mut command = Command::new(bin);
        command
            .arg("serve")
            .arg("--config")
            .arg(&config_path)
            .arg("--listen")
            .arg(listen)
            .current_dir(&dir.path)
            .env("TETHER_ENCRYPTION_KEY", ENCRYPTION_KEY)
            .env(JWT_SECRET_ENV, JWT_SECRET)
            .env("RUST_LOG", "warn")
            .env("NO_COLOR", "1")
            .stdin(Stdio::piped())
            .stdout(stdout)
            .stderr(stderr)
            .kill_on_drop(true);
        for var in PROXY_VARS {
            command.env_remove(var);
        }
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let pid = child.id().context("the gateway has no pid")?;
        let stdin = child.stdin.take();
        let started = Instant::now();
        let addr = loop {
            let out = std::fs::read_to_string(&stdout_path).unwrap_or_default();
            if let Some(addr) = out
                .lines()
                .find_map(|l| l.strip_prefix("tether listening on http://"))
                .and_then(|a| a.trim().parse::<std::net::SocketAddr>().ok())
            {
                break addr;
            }
            if let Ok(Some(status)) = child.try_wait() {
                bail!(
                    "tether serve exited before listening ({status}):\n{}",
                    std::fs::read_to_string(&stderr_path).unwrap_or_default()
                );
            }
            ensure!(
                started.elapsed() < START_TIMEOUT,
                "tether serve did not print its listening line within {START_TIMEOUT:?}:\n{}",
                std::fs::read_to_string(&stderr_path).unwrap_or_default()
            );
            tokio::time::sleep(START_POLL).await;
        };
        ensure!(addr.ip().is_loopback(), "the gateway is not on loopback");
        Ok(Self {
            base: format!("http://{addr}"),
            pid,
            child,
            _stdin: stdin,
            stderr_path,
            dir,
        })
    }

    /// The SQLite store of a gateway started without a `head` of its own.
    pub fn sqlite_url(&self) -> String {
        format!("sqlite://{}", self.dir.path.join("tether.db").display())
    }

    /// The last lines the gateway logged (warnings and errors), for error messages.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.stderr_path).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(10)..].join("\n")
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }

    /// `POST /v1/me/reconnect`: expects 202.
    pub async fn reconnect(&self, http: &reqwest::Client, token: &str) -> anyhow::Result<()> {
        let response = http
            .post(format!("{}/v1/me/reconnect", self.base))
            .bearer_auth(token)
            .send()
            .await
            .context("POST /v1/me/reconnect")?;
        ensure!(
            response.status() == reqwest::StatusCode::ACCEPTED,
            "POST /v1/me/reconnect answered {}",
            response.status()
        );
        Ok(())
    }

    /// `GET /v1/me/servers`: (connected, listed) servers of the token's user.
    pub async fn connected(
        &self,
        http: &reqwest::Client,
        token: &str,
    ) -> anyhow::Result<(usize, usize)> {
        #[derive(Deserialize)]
        struct Row {
            state: String,
        }
        let response = http
            .get(format!("{}/v1/me/servers", self.base))
            .bearer_auth(token)
            .send()
            .await
            .context("GET /v1/me/servers")?;
        ensure!(
            response.status().is_success(),
            "GET /v1/me/servers answered {}",
            response.status()
        );
        let body = response.bytes().await.context("reading /v1/me/servers")?;
        let rows: Vec<Row> = serde_json::from_slice(&body).context("parsing /v1/me/servers")?;
        let connected = rows.iter().filter(|r| r.state == "connected").count();
        Ok((connected, rows.len()))
    }
}

/// `VmRSS` of a process, in KiB.
pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .with_context(|| format!("no VmRSS in /proc/{pid}/status"))
}

/// User + system CPU time of a process so far, in seconds.
pub fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces; fields after its ')' start at field 3.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .with_context(|| format!("unexpected /proc/{pid}/stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15, i.e. 11 and 12 after the state (field 3).
    let tick = |i: usize| -> anyhow::Result<u64> {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .with_context(|| format!("no field {} in /proc/{pid}/stat", i + 3))
    };
    Ok((tick(11)? + tick(12)?) as f64 / TICKS_PER_SECOND)
}

/// Open file descriptors of a process (0 where they cannot be read).
pub fn open_fds(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| dir.count() as u64)
        .unwrap_or(0)
}
