//! `bench idle-sessions`: memory per idle Streamable HTTP session, Tether's client
//! (`tether_mcp::McpConnector` over rmcp) beside the TypeScript SDK's in Node, against one
//! `tether-testkit-mcp` server in its own process (so the server's memory is in neither figure).
//!
//! Each (session count, client, mode) runs in a fresh process — this binary re-executed with
//! the hidden `--child-url`, or `node node/idle_sessions.mjs` — so that one run's freed memory
//! cannot hide the next one's growth. A run opens one uncounted warm-up session (the per-origin
//! HTTP client, first-use allocations), takes a baseline, opens N sessions the way the gateway
//! does (connect = `initialize`, then `tools/list` once), waits until they are idle, measures
//! with all of them still open, and closes them.
//!
//! Both modes of [`McpConnectorConfig::standalone_stream`] are measured: with rmcp's standalone
//! `GET` event stream every idle session holds a TCP connection. The Node SDK always opens that
//! stream; its "off" run answers that `GET` with 405 (see the script).
//!
//! Heap figures are not the same quantity on both sides: Tether's is the live bytes of the
//! counting allocator, Node's is V8's `heapUsed` after a full GC (buffers outside the V8 heap are
//! the "Node ext" column). RSS is the comparable figure; the ratio column divides RSS.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use tether_core::{
    AuthorizationMode, ConnectRequest, Connector, ServerConfig, ServerName, Session,
    TransportConfig, UserId,
};
use tether_mcp::{McpConnector, McpConnectorConfig};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};

use crate::memory::{live_heap_bytes, rss_kib};

/// File descriptors we ask for (the hard limit caps it): one per session with the standalone
/// stream, on the client and on the server side, plus the pool and some slack.
const WANTED_NOFILE: u64 = 65_536;
/// One connect (initialize + initialized) and its `tools/list`, each.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the server may take to print its URL.
const SERVER_START_TIMEOUT: Duration = Duration::from_secs(10);
/// A child run: fixed part plus a per-session allowance (connect and close at a slow pace).
const CHILD_BASE_TIMEOUT: Duration = Duration::from_secs(120);
const CHILD_PER_SESSION_TIMEOUT: Duration = Duration::from_millis(50);

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Session counts to measure, comma-separated; each in fresh processes.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
    sessions: Vec<usize>,
    /// Connects in flight at once while opening sessions (both clients).
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// How long the sessions sit idle before the measurement, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    idle_ms: u64,
    /// Only Tether's client (no Node needed).
    #[arg(long)]
    no_node: bool,
    /// Folder of `idle_sessions.mjs` and its `node_modules`.
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/node"))]
    node_dir: PathBuf,
    /// Internal: measure one count in this process against this server URL.
    #[arg(long, hide = true)]
    child_url: Option<String>,
    /// Internal, with `--child-url`: keep the standalone event stream open.
    #[arg(long, hide = true)]
    child_standalone_stream: bool,
}

/// What one child run reports, per session (one JSON line on stdout; Node's has the same keys).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Measurement {
    sessions: usize,
    standalone_stream: bool,
    heap_bytes_per_session: f64,
    rss_bytes_per_session: f64,
    fds_per_session: f64,
    /// Node only: `external` + `arrayBuffers` (buffers outside the V8 heap).
    #[serde(default)]
    external_bytes_per_session: f64,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    // Raised here, it is inherited by the server, the re-executed children and Node.
    let nofile = raise_nofile_limit();
    if let Some(url) = &args.child_url {
        let n = match args.sessions.as_slice() {
            [n] => *n,
            _ => bail!("--child-url measures exactly one --sessions count"),
        };
        let measurement = measure_tether(url, n, &args).await?;
        println!("{}", serde_json::to_string(&measurement)?);
        return Ok(());
    }

    let exe = std::env::current_exe().context("locating the bench binary")?;
    let server_bin = sibling(&exe, "tether-testkit-mcp")?;
    let node = if args.no_node {
        None
    } else {
        Some(NodeSide::locate(&args.node_dir)?)
    };
    let needed = args.sessions.iter().max().copied().unwrap_or(0) as u64 + 1024;
    if nofile < needed {
        eprintln!(
            "warning: the open-file limit is {nofile} (hard limit reached); {needed} are needed for \
             the standalone-stream runs. Raise it with `ulimit -n {needed}` (as root, or raise \
             the hard limit in limits.conf / the service manager) before running."
        );
    }

    let mut server = UpstreamServer::start(&server_bin).await?;
    println!(
        "idle Streamable HTTP sessions against tether-testkit-mcp (pid {}, {}), per session; \
         each row's runs in fresh processes; open-file limit {nofile}",
        server.pid, server.url
    );
    println!(
        "Tether heap: live bytes (counting allocator); Node heap: V8 heapUsed after GC, Node ext: \
         its Buffers outside V8; ratio: Node RSS / Tether RSS"
    );
    let header = format!(
        "{:>8} {:>10} | {:>11} {:>10} {:>5} | {:>9} {:>9} {:>9} {:>5} | {:>6}",
        "sessions",
        "GET stream",
        "Tether heap",
        "Tether RSS",
        "fds",
        "Node heap",
        "Node ext",
        "Node RSS",
        "fds",
        "ratio"
    );
    println!("{header}");
    println!("{}", "-".repeat(header.chars().count()));
    let result = async {
        for &n in &args.sessions {
            // Off first: its runs leave few sockets in TIME_WAIT for the "on" runs to compete with.
            for standalone in [false, true] {
                let tether = run_tether_child(&exe, &server.url, n, standalone, &args).await?;
                let node = match &node {
                    Some(node) => Some(node.run(&server.url, n, standalone, &args).await?),
                    None => None,
                };
                print_row(&tether, node.as_ref());
            }
        }
        anyhow::Ok(())
    }
    .await;
    server.stop().await;
    result
}

fn kib(bytes: f64) -> String {
    format!("{:.1} KiB", bytes / 1024.0)
}

fn print_row(tether: &Measurement, node: Option<&Measurement>) {
    let (node_heap, node_ext, node_rss, node_fds, ratio) = match node {
        Some(node) => (
            kib(node.heap_bytes_per_session),
            kib(node.external_bytes_per_session),
            kib(node.rss_bytes_per_session),
            format!("{:.2}", node.fds_per_session),
            if tether.rss_bytes_per_session > 0.0 {
                format!(
                    "{:.1}×",
                    node.rss_bytes_per_session / tether.rss_bytes_per_session
                )
            } else {
                "-".to_owned()
            },
        ),
        None => Default::default(),
    };
    println!(
        "{:>8} {:>10} | {:>11} {:>10} {:>5.2} | {:>9} {:>9} {:>9} {:>5} | {:>6}",
        tether.sessions,
        if tether.standalone_stream {
            "open"
        } else {
            "off"
        },
        kib(tether.heap_bytes_per_session),
        kib(tether.rss_bytes_per_session),
        tether.fds_per_session,
        node_heap,
        node_ext,
        node_rss,
        node_fds,
        ratio
    );
}

/// Raises the soft open-file limit towards [`WANTED_NOFILE`] (within the hard limit, which only
/// root can raise); returns the limit in force.
fn raise_nofile_limit() -> u64 {
    match rlimit::increase_nofile_limit(WANTED_NOFILE) {
        Ok(limit) => limit,
        Err(e) => {
            eprintln!("warning: could not raise the open-file limit: {e}");
            rlimit::getrlimit(rlimit::Resource::NOFILE)
                .map(|(soft, _)| soft)
                .unwrap_or(0)
        }
    }
}

fn sibling(exe: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let dir = exe
        .parent()
        .context("the bench binary has no parent directory")?;
    let path = dir.join(name);
    ensure!(
        path.is_file(),
        "{name} not found next to the bench binary (in {}): build both with \
         `cargo build --release -p tether-testkit -p tether-bench` (same CARGO_TARGET_DIR)",
        dir.display()
    );
    Ok(path)
}

fn child_timeout(sessions: usize) -> Duration {
    CHILD_BASE_TIMEOUT
        + CHILD_PER_SESSION_TIMEOUT.saturating_mul(u32::try_from(sessions).unwrap_or(u32::MAX))
}

/// Runs `command`, bounded, and reads the JSON line it prints last.
async fn run_reporting_child(
    mut command: Command,
    what: &str,
    sessions: usize,
) -> anyhow::Result<Measurement> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        // A timed-out run is killed when its future is dropped.
        .kill_on_drop(true);
    let child = command
        .spawn()
        .with_context(|| format!("starting the {what} run"))?;
    let limit = child_timeout(sessions);
    let output = tokio::time::timeout(limit, child.wait_with_output())
        .await
        .with_context(|| format!("the {what} run with {sessions} sessions took over {limit:?}"))?
        .with_context(|| format!("waiting for the {what} run"))?;
    ensure!(
        output.status.success(),
        "the {what} run with {sessions} sessions failed ({})",
        output.status
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .with_context(|| format!("the {what} run printed no result"))?;
    serde_json::from_str(line).with_context(|| format!("the {what} run printed {line:?}"))
}

async fn run_tether_child(
    exe: &Path,
    url: &str,
    sessions: usize,
    standalone: bool,
    args: &Args,
) -> anyhow::Result<Measurement> {
    let mut command = Command::new(exe);
    command.args([
        "idle-sessions",
        "--sessions",
        &sessions.to_string(),
        "--concurrency",
        &args.concurrency.to_string(),
        "--idle-ms",
        &args.idle_ms.to_string(),
        "--child-url",
        url,
    ]);
    if standalone {
        command.arg("--child-standalone-stream");
    }
    run_reporting_child(command, "Tether", sessions).await
}

/// One run inside a child process: N sessions through the gateway's connector.
async fn measure_tether(url: &str, n: usize, args: &Args) -> anyhow::Result<Measurement> {
    let connector = McpConnector::new(McpConnectorConfig {
        standalone_stream: args.child_standalone_stream,
        ..McpConnectorConfig::default()
    })?;
    let server = Arc::new(ServerConfig {
        name: ServerName::new("upstream"),
        transport: TransportConfig::StreamableHttp {
            url: url.to_owned(),
        },
        oauth: false,
        init_timeout: None,
    });
    let idle = Duration::from_millis(args.idle_ms);
    let warm_up = open_session(&connector, &server, usize::MAX).await?;
    tokio::time::sleep(idle).await;
    let heap_before = live_heap_bytes();
    let (rss_before, _) = rss_kib();
    let fds_before = open_fds();

    let sessions: Vec<Arc<dyn Session>> = futures::stream::iter(0..n)
        .map(|i| open_session(&connector, &server, i))
        .buffer_unordered(args.concurrency.max(1))
        .try_collect()
        .await?;
    tokio::time::sleep(idle).await;
    let heap_after = live_heap_bytes();
    let (rss_after, _) = rss_kib();
    let fds_after = open_fds();
    let open = sessions.iter().filter(|s| s.is_open()).count();
    ensure!(open == n, "only {open} of {n} sessions are still open");

    // Closing (one DELETE each) is bounded per session by the connector's close timeout.
    futures::stream::iter(sessions)
        .for_each_concurrent(args.concurrency.max(1), |session| async move {
            session.close().await;
        })
        .await;
    warm_up.close().await;

    let per_session = |before: u64, after: u64| {
        if n == 0 {
            0.0
        } else {
            after.saturating_sub(before) as f64 / n as f64
        }
    };
    Ok(Measurement {
        sessions: n,
        standalone_stream: args.child_standalone_stream,
        heap_bytes_per_session: per_session(heap_before, heap_after),
        rss_bytes_per_session: per_session(rss_before * 1024, rss_after * 1024),
        fds_per_session: per_session(fds_before, fds_after),
        external_bytes_per_session: 0.0,
    })
}

async fn open_session(
    connector: &McpConnector,
    server: &Arc<ServerConfig>,
    i: usize,
) -> anyhow::Result<Arc<dyn Session>> {
    let request = ConnectRequest {
        user: UserId::new(format!("user-{i}")),
        server: server.clone(),
        timeout: CONNECT_TIMEOUT,
        authorization: AuthorizationMode::NeverInteractive,
        events: None,
    };
    let session = connector
        .connect(request)
        .await
        .with_context(|| format!("session {i}: connect"))?;
    // The gateway lists tools once after connecting; the session's cost includes that answer.
    let tools = tokio::time::timeout(CONNECT_TIMEOUT, session.list_tools())
        .await
        .with_context(|| format!("session {i}: tools/list timed out"))?
        .with_context(|| format!("session {i}: tools/list"))?;
    ensure!(!tools.is_empty(), "session {i}: the server listed no tools");
    Ok(session)
}

/// Open file descriptors of this process (0 where procfs is not available).
fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd")
        .map(|dir| dir.count() as u64)
        .unwrap_or(0)
}

/// `node idle_sessions.mjs` with its dependencies installed.
#[derive(Debug)]
struct NodeSide {
    script: PathBuf,
}

impl NodeSide {
    fn locate(dir: &Path) -> anyhow::Result<Self> {
        let script = dir.join("idle_sessions.mjs");
        ensure!(
            script.is_file(),
            "{} not found (pass --node-dir, or --no-node to skip the Node side)",
            script.display()
        );
        ensure!(
            dir.join("node_modules/@modelcontextprotocol/sdk").is_dir(),
            "the Node side's dependencies are missing: run `npm ci` in {} (or pass --no-node)",
            dir.display()
        );
        Ok(Self { script })
    }

    async fn run(
        &self,
        url: &str,
        sessions: usize,
        standalone: bool,
        args: &Args,
    ) -> anyhow::Result<Measurement> {
        let mut command = Command::new("node");
        command.arg("--expose-gc").arg(&self.script).args([
            "--url",
            url,
            "--sessions",
            &sessions.to_string(),
            "--concurrency",
            &args.concurrency.to_string(),
            "--idle-ms",
            &args.idle_ms.to_string(),
        ]);
        if !standalone {
            command.arg("--no-standalone-stream");
        }
        run_reporting_child(command, "Node", sessions)
            .await
            .map_err(|e| match e.root_cause().downcast_ref::<std::io::Error>() {
                Some(io) if io.kind() == std::io::ErrorKind::NotFound => e.context(
                    "node not found on PATH: install Node 20 or later (or pass --no-node)",
                ),
                _ => e,
            })
    }
}

/// `tether-testkit-mcp` as a child process; it serves until its stdin closes.
#[derive(Debug)]
struct UpstreamServer {
    url: String,
    pid: u32,
    child: Child,
    stdin: Option<ChildStdin>,
}

#[derive(Debug, Deserialize)]
struct ServerReady {
    url: String,
    pid: u32,
}

impl UpstreamServer {
    async fn start(bin: &Path) -> anyhow::Result<Self> {
        let mut child = Command::new(bin)
            .arg("127.0.0.1:0")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let stdin = child.stdin.take();
        let stdout = child
            .stdout
            .take()
            .context("the server's stdout is not piped")?;
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(SERVER_START_TIMEOUT, lines.next_line())
            .await
            .context("the MCP test server did not print its URL in time")?
            .context("reading the MCP test server's output")?
            .context("the MCP test server exited before printing its URL")?;
        let ready: ServerReady = serde_json::from_str(&line)
            .with_context(|| format!("the MCP test server printed {line:?}"))?;
        let parsed = url::Url::parse(&ready.url).context("the MCP test server's URL")?;
        ensure!(
            matches!(parsed.host_str(), Some("127.0.0.1" | "localhost" | "[::1]")),
            "the MCP test server is not on loopback"
        );
        Ok(Self {
            url: ready.url,
            pid: ready.pid,
            child,
            stdin,
        })
    }

    /// Closes its stdin (it stops serving) and waits a little; kills it if it lingers.
    async fn stop(&mut self) {
        drop(self.stdin.take());
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}
