//! Part 3: tool calls with the same rmcp client, through Tether (`/mcp`, `{server}__echo`; as an
//! agent of the session revisions and as one of 2026-07-28, stateless), straight to the upstream
//! (`echo`) and through the [pass-through proxy](super::pass_through) (`echo`): latency
//! percentiles, throughput at a fixed concurrency, and CPU time per call of
//! the process in the middle, of the upstream and of the client.

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use rmcp::model::{CallToolRequestParams, ClientConfig, ProtocolVersion};
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientLifecycleMode, RoleClient, serve_client, serve_client_with_lifecycle};
use serde_json::json;

use super::oauth_tokens;
use super::pass_through::PassThrough;
use super::procs::{
    Binaries, Gateway, Upstream, cpu_seconds, http_client, jwt, rss_kib, servers_toml,
};

/// One connect (initialize) or one call.
const STEP: Duration = Duration::from_secs(30);
const WARM_UP_CALLS: usize = 200;

pub(super) type Client = RunningService<RoleClient, ClientConfig>;

pub const DIRECT: &str = "direct";
pub const PASS_THROUGH: &str = "proxy";
/// The pass-through proxy on Tether's own upstream client (`pass-through --lean`): the floor
/// without the default proxy's downstream reconnections, shown beside the verdicts.
pub const PASS_THROUGH_LEAN: &str = "proxy-lean";
pub const TETHER: &str = "tether";
/// Through Tether as an agent of 2026-07-28: no session, each call a stateless request.
pub const TETHER_2026: &str = "tether26";
/// Through another build of Tether (`--baseline-tether`): a change measured before and after
/// in the same rounds.
pub const BASELINE: &str = "baseline";
/// The baseline build with the agent of [`TETHER_2026`].
pub const BASELINE_2026: &str = "base26";
/// Through Tether to the upstream configured with OAuth (`--oauth`), the pair's access token
/// remembered for 5 s (the default)...
pub const OAUTH: &str = "oauth";
/// ...and read from the store for every upstream request (`remember_tokens_for = "0s"`).
pub const OAUTH_STORE: &str = "oauth-db";

/// Another MCP gateway measured as one more path (`--peer NAME=TOOL@URL`).
#[derive(Debug, Clone)]
pub struct PeerPath {
    /// Its path name in the output (kept for the whole run).
    pub name: &'static str,
    pub tool: String,
    pub url: String,
}

impl PeerPath {
    pub fn parse(given: &str) -> anyhow::Result<Self> {
        let (name, rest) = given
            .split_once('=')
            .with_context(|| format!("--peer {given:?}: expected NAME=TOOL@URL"))?;
        let (tool, url) = rest
            .split_once('@')
            .with_context(|| format!("--peer {given:?}: expected NAME=TOOL@URL"))?;
        ensure!(
            !name.is_empty() && !tool.is_empty() && url.starts_with("http"),
            "--peer {given:?}: expected NAME=TOOL@URL with an http(s) URL"
        );
        Ok(Self {
            // A handful per run, printed beside the built-in paths' static names.
            name: Box::leak(name.to_owned().into_boxed_str()),
            tool: tool.to_owned(),
            url: url.to_owned(),
        })
    }
}

#[derive(Debug, Clone)]
pub struct CallsSettings {
    pub concurrency: usize,
    /// Calls per concurrent phase (split over the workers).
    pub calls: usize,
    /// Calls of the one-at-a-time phase.
    pub latency_calls: usize,
    /// Rounds of the four phases, one after the other (the machine's load drifts: each round
    /// compares the paths under the same conditions, and the verdict takes the median round).
    pub rounds: usize,
    /// The scale phase: sessions through Tether (one user each) and straight to the upstream,
    /// and the callers spread over them; 0 sessions: no scale phase.
    pub scale_sessions: usize,
    pub scale_concurrency: usize,
    pub scale_calls: usize,
    /// Where the upstream listens (`--upstream-addr`).
    pub upstream_addr: String,
    pub peers: Vec<PeerPath>,
    /// Another `tether` binary, run with the same configuration as one more path.
    pub baseline: Option<std::path::PathBuf>,
    /// The paths [`OAUTH`] and [`OAUTH_STORE`].
    pub oauth: bool,
}

/// The text the large-answer phases echo: a 64 KiB tool result (and argument).
const LARGE: usize = 64 * 1024;

/// One phase on one path.
#[derive(Debug, Clone)]
pub struct Phase {
    pub round: usize,
    pub path: &'static str,
    /// Bytes of the echoed text: 5 ("hello") or 64 KiB.
    pub payload: usize,
    pub concurrency: usize,
    pub calls: usize,
    pub wall: Duration,
    pub p50: Duration,
    pub p99: Duration,
    /// CPU per call of the process in the middle (Tether or the pass-through proxy).
    pub middle_cpu: Option<f64>,
    pub upstream_cpu: f64,
    pub bench_cpu: f64,
}

impl Phase {
    pub fn throughput(&self) -> f64 {
        self.calls as f64 / self.wall.as_secs_f64().max(f64::MIN_POSITIVE)
    }
}

pub(super) async fn connect(
    http: &reqwest::Client,
    uri: &str,
    token: Option<&str>,
) -> anyhow::Result<Client> {
    let mut config = StreamableHttpClientTransportConfig::with_uri(uri.to_owned());
    if let Some(token) = token {
        config = config.auth_header(token.to_owned());
    }
    let transport = StreamableHttpClientTransport::with_client(http.clone(), config);
    tokio::time::timeout(STEP, serve_client(ClientConfig::default(), transport))
        .await
        .with_context(|| format!("initialize at {uri} timed out"))?
        .with_context(|| format!("initialize at {uri}"))
}

/// A session agent of a gateway (`what` in errors) that has listed its tools, and so
/// connected the user's server, as an agent would first.
async fn connect_listing(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    what: &str,
) -> anyhow::Result<Client> {
    let client = connect(http, url, Some(token)).await?;
    let tools = tokio::time::timeout(STEP, client.peer().list_all_tools())
        .await
        .with_context(|| format!("tools/list through {what} timed out"))?
        .with_context(|| format!("tools/list through {what}"))?;
    ensure!(
        tools.iter().any(|t| t.name == "up__echo"),
        "{what} does not list up__echo: {:?}",
        tools.iter().map(|t| &t.name).collect::<Vec<_>>()
    );
    Ok(client)
}

/// A client on the 2026-07-28 wire: `server/discover`, then stateless requests.
async fn connect_2026(http: &reqwest::Client, uri: &str, token: &str) -> anyhow::Result<Client> {
    let config =
        StreamableHttpClientTransportConfig::with_uri(uri.to_owned()).auth_header(token.to_owned());
    let transport = StreamableHttpClientTransport::with_client(http.clone(), config);
    let lifecycle = ClientLifecycleMode::Discover {
        preferred_versions: vec![ProtocolVersion::V_2026_07_28],
    };
    tokio::time::timeout(
        STEP,
        serve_client_with_lifecycle(ClientConfig::default(), transport, lifecycle),
    )
    .await
    .with_context(|| format!("server/discover at {uri} timed out"))?
    .with_context(|| format!("server/discover at {uri}"))
}

async fn call(client: &Client, tool: &str, text: &str) -> anyhow::Result<Duration> {
    let mut params = CallToolRequestParams::new(tool.to_owned());
    params.arguments = json!({ "text": text }).as_object().cloned();
    let started = Instant::now();
    let result = tokio::time::timeout(STEP, client.peer().call_tool(params))
        .await
        .with_context(|| format!("{tool} timed out"))?
        .with_context(|| format!("calling {tool}"))?;
    let elapsed = started.elapsed();
    ensure!(
        result.is_error != Some(true),
        "{tool} answered an error: {result:?}"
    );
    Ok(elapsed)
}

/// `calls` calls split over `concurrency` workers; worker `w`'s `i`-th call goes to
/// `clients[(w + i × concurrency) % len]`, so more sessions than workers are all used in turn.
#[expect(
    clippy::too_many_arguments,
    reason = "one call site per phase, all named"
)]
async fn phase(
    round: usize,
    path: &'static str,
    clients: &[Client],
    tool: &str,
    text: &str,
    concurrency: usize,
    calls: usize,
    middle_pid: Option<u32>,
    upstream_pid: u32,
) -> anyhow::Result<Phase> {
    let concurrency = concurrency.max(1);
    let per_worker = calls.div_ceil(concurrency);
    let middle_before = middle_pid.map(cpu_seconds).transpose()?;
    let upstream_before = cpu_seconds(upstream_pid)?;
    let bench_before = cpu_seconds(std::process::id())?;
    let started = Instant::now();
    let workers = (0..concurrency).map(|w| async move {
        let mut latencies = Vec::with_capacity(per_worker);
        for i in 0..per_worker {
            let client = &clients[(w + i * concurrency) % clients.len()];
            latencies.push(call(client, tool, text).await?);
        }
        anyhow::Ok(latencies)
    });
    let results = futures::future::join_all(workers).await;
    let wall = started.elapsed();
    let mut latencies = Vec::with_capacity(per_worker * concurrency);
    for r in results {
        latencies.extend(r?);
    }
    let done = latencies.len();
    let middle_cpu = match (middle_pid, middle_before) {
        (Some(pid), Some(before)) => Some(cpu_seconds(pid)? - before),
        _ => None,
    };
    let upstream_cpu = cpu_seconds(upstream_pid)? - upstream_before;
    let bench_cpu = cpu_seconds(std::process::id())? - bench_before;
    latencies.sort_unstable();
    let pick = |q: f64| {
        let i = ((done as f64 * q).ceil() as usize).clamp(1, done.max(1)) - 1;
        latencies.get(i).copied().unwrap_or_default()
    };
    Ok(Phase {
        round,
        path,
        payload: text.len(),
        concurrency,
        calls: done,
        wall,
        p50: pick(0.50),
        p99: pick(0.99),
        middle_cpu: middle_cpu.map(|s| s / done.max(1) as f64),
        upstream_cpu: upstream_cpu / done.max(1) as f64,
        bench_cpu: bench_cpu / done.max(1) as f64,
    })
}

/// Many callers over many sessions on one path, with the gateway's resident memory.
#[derive(Debug, Clone)]
pub struct ScaleRow {
    pub sessions: usize,
    pub phase: Phase,
    /// The gateway's RSS before the phase and its highest reading during it (sampled every
    /// 50 ms), KiB.
    pub gateway_rss_before_kib: u64,
    pub gateway_rss_peak_kib: u64,
}

/// Reads a process's RSS every 50 ms until stopped; keeps the highest.
struct RssSampler {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<u64>,
}

impl RssSampler {
    fn start(pid: u32) -> Self {
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let mut peak = rss_kib(pid).unwrap_or_default();
            loop {
                tokio::select! {
                    _ = &mut stopped => return peak,
                    () = tokio::time::sleep(Duration::from_millis(50)) => {
                        peak = peak.max(rss_kib(pid).unwrap_or_default());
                    }
                }
            }
        });
        Self { stop, task }
    }

    async fn peak(self) -> u64 {
        let _ = self.stop.send(());
        self.task.await.unwrap_or_default()
    }
}

/// The phases of each round in order: direct, pass-through, Tether, and Tether for an agent of
/// 2026-07-28, one at a time, then the same at `concurrency`.
pub async fn run(
    bins: &Binaries,
    settings: &CallsSettings,
) -> anyhow::Result<(Vec<Phase>, Vec<ScaleRow>)> {
    let http = http_client()?;
    let upstream =
        Upstream::start_at(&bins.testkit, Duration::ZERO, &settings.upstream_addr).await?;
    if !settings.peers.is_empty() {
        println!("the upstream of this part: {}", upstream.url);
    }
    let proxy = PassThrough::start(&bins.bench, &upstream.url, false).await?;
    let lean_proxy = PassThrough::start(&bins.bench, &upstream.url, true).await?;
    let config = format!(
        "[reconnect]\ninclude_non_oauth = true\n\n[limits]\nper_second = 0\n\n{}",
        servers_toml(&[("up".to_owned(), upstream.url.clone())])
    );
    let gateway = Gateway::start(&bins.tether, "calls", &config).await?;
    let baseline = match &settings.baseline {
        Some(bin) => Some(Gateway::start(bin, "calls-baseline", &config).await?),
        None => None,
    };
    let n = settings.concurrency.max(1);
    let mut oauth_gateways = Vec::new();
    if settings.oauth {
        for (label, remember_for) in [("calls-oauth", "5s"), ("calls-oauth-db", "0s")] {
            let config = oauth_tokens::config("up", &upstream.url, remember_for);
            let gateway = Gateway::start(&bins.tether, label, &config).await?;
            let users = (0..n).map(|i| format!("calls-{i}"));
            oauth_tokens::seed(&gateway, "up", &upstream.url, users).await?;
            oauth_gateways.push(gateway);
        }
    }
    let result = async {
        let mcp = format!("{}/mcp", gateway.base);
        let mut direct = Vec::with_capacity(n);
        let mut proxied = Vec::with_capacity(n);
        let mut lean = Vec::with_capacity(n);
        let mut through = Vec::with_capacity(n);
        let mut stateless = Vec::with_capacity(n);
        let mut before = Vec::with_capacity(n);
        let mut before26 = Vec::with_capacity(n);
        let mut oauth: Vec<Vec<Client>> = oauth_gateways.iter().map(|_| Vec::new()).collect();
        for i in 0..n {
            direct.push(connect(&http, &upstream.url, None).await?);
            proxied.push(connect(&http, &proxy.url, None).await?);
            lean.push(connect(&http, &lean_proxy.url, None).await?);
            let token = jwt(&format!("calls-{i}"))?;
            through.push(connect_listing(&http, &mcp, &token, "Tether").await?);
            stateless.push(connect_2026(&http, &mcp, &token).await?);
            if let Some(baseline) = &baseline {
                let url = format!("{}/mcp", baseline.base);
                before.push(connect_listing(&http, &url, &token, "the baseline").await?);
                before26.push(connect_2026(&http, &url, &token).await?);
            }
            for (gateway, clients) in oauth_gateways.iter().zip(&mut oauth) {
                let url = format!("{}/mcp", gateway.base);
                clients.push(connect_listing(&http, &url, &token, "an OAuth gateway").await?);
            }
        }
        let mut peers = Vec::with_capacity(settings.peers.len());
        for peer in &settings.peers {
            let mut clients = Vec::with_capacity(n);
            for _ in 0..n {
                clients.push(connect(&http, &peer.url, None).await?);
            }
            peers.push(clients);
        }
        let up = upstream.pid;
        let mut paths: Vec<(&'static str, &Vec<Client>, &str, Option<u32>)> = vec![
            (DIRECT, &direct, "echo", None),
            (PASS_THROUGH, &proxied, "echo", Some(proxy.pid)),
            (PASS_THROUGH_LEAN, &lean, "echo", Some(lean_proxy.pid)),
            (TETHER, &through, "up__echo", Some(gateway.pid)),
            (TETHER_2026, &stateless, "up__echo", Some(gateway.pid)),
        ];
        if let Some(baseline) = &baseline {
            paths.push((BASELINE, &before, "up__echo", Some(baseline.pid)));
            paths.push((BASELINE_2026, &before26, "up__echo", Some(baseline.pid)));
        }
        for ((path, gateway), clients) in [OAUTH, OAUTH_STORE]
            .into_iter()
            .zip(&oauth_gateways)
            .zip(&oauth)
        {
            paths.push((path, clients, "up__echo", Some(gateway.pid)));
        }
        for (peer, clients) in settings.peers.iter().zip(&peers) {
            paths.push((peer.name, clients, &peer.tool, None));
        }
        // Warm-up on every path (connections, caches, the gateway's upstream sessions).
        for &(path, clients, tool, _) in &paths {
            phase(0, path, clients, tool, "hello", n, WARM_UP_CALLS, None, up).await?;
        }
        let large = "x".repeat(LARGE);
        let mut phases = Vec::new();
        for r in 1..=settings.rounds.max(1) {
            // One at a time, at the concurrency, then 64 KiB answers at the concurrency.
            let settings_of_round = [
                (1, settings.latency_calls, "hello"),
                (n, settings.calls, "hello"),
                (n, settings.calls / 8, large.as_str()),
            ];
            // Every other round the paths run in the opposite order: a path's place in the round
            // moves its figures (the same binary as `baseline` read up to 15 % apart).
            let order: Vec<_> = if r % 2 == 0 {
                paths.iter().rev().collect()
            } else {
                paths.iter().collect()
            };
            for (concurrency, calls, text) in settings_of_round {
                for &&(path, clients, tool, middle) in &order {
                    phases.push(
                        phase(r, path, clients, tool, text, concurrency, calls, middle, up).await?,
                    );
                }
            }
        }
        drop(paths);
        let scale = scale(settings, &http, &mcp, &upstream, &gateway).await?;
        for client in direct
            .into_iter()
            .chain(proxied)
            .chain(lean)
            .chain(through)
            .chain(stateless)
            .chain(before)
            .chain(before26)
            .chain(oauth.into_iter().flatten())
            .chain(peers.into_iter().flatten())
        {
            let _ = tokio::time::timeout(Duration::from_secs(5), client.cancel()).await;
        }
        anyhow::Ok((phases, scale))
    }
    .await
    .with_context(|| format!("gateway log tail:\n{}", gateway.log_tail()));
    gateway.stop().await;
    if let Some(baseline) = baseline {
        baseline.stop().await;
    }
    for gateway in oauth_gateways {
        gateway.stop().await;
    }
    proxy.stop().await;
    lean_proxy.stop().await;
    upstream.stop().await;
    result
}

/// `scale_concurrency` callers over `scale_sessions` sessions, straight to the upstream and
/// through Tether (one user per session, so as many upstream sessions in the gateway).
async fn scale(
    settings: &CallsSettings,
    http: &reqwest::Client,
    mcp: &str,
    upstream: &Upstream,
    gateway: &Gateway,
) -> anyhow::Result<Vec<ScaleRow>> {
    let sessions = settings.scale_sessions;
    if sessions == 0 {
        return Ok(Vec::new());
    }
    let mut direct = Vec::with_capacity(sessions);
    let mut through = Vec::with_capacity(sessions);
    for i in 0..sessions {
        direct.push(connect(http, &upstream.url, None).await?);
        let client = connect(http, mcp, Some(&jwt(&format!("scale-{i}"))?)).await?;
        tokio::time::timeout(STEP, client.peer().list_all_tools())
            .await
            .context("tools/list through Tether timed out")?
            .context("tools/list through Tether")?;
        through.push(client);
    }
    let mut rows = Vec::new();
    for (path, clients, tool, middle) in [
        (DIRECT, &direct, "echo", None),
        (TETHER, &through, "up__echo", Some(gateway.pid)),
    ] {
        let before = rss_kib(gateway.pid)?;
        let sampler = RssSampler::start(gateway.pid);
        let phase = phase(
            1,
            path,
            clients,
            tool,
            "hello",
            settings.scale_concurrency,
            settings.scale_calls,
            middle,
            upstream.pid,
        )
        .await?;
        rows.push(ScaleRow {
            sessions,
            phase,
            gateway_rss_before_kib: before,
            gateway_rss_peak_kib: sampler.peak().await,
        });
    }
    for client in direct.into_iter().chain(through) {
        let _ = tokio::time::timeout(Duration::from_secs(5), client.cancel()).await;
    }
    Ok(rows)
}
