use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tether_core::{
    AccessTokenStatus, ConnectError, ConnectRequest, Connector, CoreConfig, Origin, PairKey,
    ReconnectionManager, ServerConfig, ServerName, Session, StoreError, TokenStatus, TokenStore,
    Tool, ToolResult, TransportConfig, UserId,
};

use crate::memory::{live_heap_bytes, rss_kib};

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    #[arg(long, default_value_t = 10_000)]
    users: usize,
    #[arg(long, default_value_t = 5)]
    servers: usize,
    /// Per-origin in-flight limit.
    #[arg(long, default_value_t = 8)]
    max_in_flight: u32,
    /// Per-origin starts per second (0: off; a rate would only measure itself).
    #[arg(long, default_value_t = 0)]
    per_second: u32,
    /// Run one phase with this stagger in this process (used by the parent run).
    #[arg(long)]
    stagger_ms: Option<u64>,
}

impl Default for Args {
    fn default() -> Self {
        Self {
            users: 10_000,
            servers: 5,
            max_in_flight: 8,
            per_second: 0,
            stagger_ms: None,
        }
    }
}

/// Answers at once; tracks peak concurrency per origin so the run proves the limiter held.
#[derive(Debug, Default)]
struct InstantConnector {
    in_flight: Mutex<HashMap<Origin, (usize, usize)>>,
}

impl InstantConnector {
    fn peak_per_origin(&self) -> usize {
        let map = self
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        map.values().map(|(_, peak)| *peak).max().unwrap_or(0)
    }
}

#[derive(Debug)]
struct IdleSession;

#[async_trait]
impl Session for IdleSession {
    async fn list_tools(&self) -> Result<Vec<Tool>, ConnectError> {
        Ok(vec![Tool::new(
            "search",
            serde_json::json!({"type": "object", "properties": {"q": {"type": "string"}}}),
        )])
    }

    async fn call_tool(
        &self,
        _name: &str,
        _arguments: Option<serde_json::Map<String, serde_json::Value>>,
    ) -> Result<ToolResult, ConnectError> {
        Ok(ToolResult::default())
    }

    fn is_open(&self) -> bool {
        true
    }

    async fn close(&self) {}
}

#[async_trait]
impl Connector for InstantConnector {
    async fn connect(&self, request: ConnectRequest) -> Result<Arc<dyn Session>, ConnectError> {
        let origin = request.server.origin();
        {
            let mut map = self
                .in_flight
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let (now, peak) = map.entry(origin.clone()).or_default();
            *now += 1;
            *peak = (*peak).max(*now);
        }
        // One scheduler turn, so that attempts really overlap and the limit is exercised.
        tokio::task::yield_now().await;
        if let Some((now, _)) = self
            .in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_mut(&origin)
        {
            *now -= 1;
        }
        Ok(Arc::new(IdleSession))
    }
}

#[derive(Debug)]
struct AllValid;

#[async_trait]
impl TokenStore for AllValid {
    async fn token_status(&self, _pair: &PairKey) -> Result<TokenStatus, StoreError> {
        Ok(TokenStatus {
            access_token: Some(AccessTokenStatus { expires_at: None }),
            has_refresh_token: true,
        })
    }
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    if let Some(stagger_ms) = args.stagger_ms {
        return run_phase(&args, Duration::from_millis(stagger_ms)).await;
    }
    let pairs = args.users * args.servers;
    println!(
        "login storm: {} users × {} servers = {pairs} pairs, {} origins, max_in_flight {} per origin, rate {}",
        args.users,
        args.servers,
        args.servers,
        args.max_in_flight,
        if args.per_second == 0 {
            "off".to_owned()
        } else {
            format!("{}/s", args.per_second)
        }
    );
    println!(
        "{:<10} {:>10} {:>10} {:>12} {:>10} {:>10} {:>12} {:>15}",
        "stagger",
        "schedule",
        "all done",
        "attempts/s",
        "peak/orig",
        "peak RSS",
        "RSS/pair",
        "live heap/pair"
    );
    // Each phase in a fresh process, so that one phase's freed memory does not hide the next
    // one's growth.
    let exe = std::env::current_exe()?;
    for stagger_ms in [500u64, 0] {
        let status = std::process::Command::new(&exe)
            .args([
                "login-storm",
                "--users",
                &args.users.to_string(),
                "--servers",
                &args.servers.to_string(),
                "--max-in-flight",
                &args.max_in_flight.to_string(),
                "--per-second",
                &args.per_second.to_string(),
                "--stagger-ms",
                &stagger_ms.to_string(),
            ])
            .status()?;
        anyhow::ensure!(
            status.success(),
            "phase with stagger {stagger_ms} ms failed"
        );
    }
    Ok(())
}

async fn run_phase(args: &Args, stagger: Duration) -> anyhow::Result<()> {
    let mut config = CoreConfig::default();
    config.reconnect.stagger = stagger;
    config.limits.max_in_flight = args.max_in_flight;
    config.limits.per_second = args.per_second;
    config.limits.queue_timeout = Duration::from_secs(3600);
    let servers: Vec<ServerConfig> = (0..args.servers)
        .map(|i| ServerConfig {
            name: ServerName::new(format!("server{i}")),
            transport: TransportConfig::StreamableHttp {
                url: format!("https://upstream{i}.example/mcp"),
            },
            oauth: true,
            init_timeout: None,
        })
        .collect();
    let connector = Arc::new(InstantConnector::default());
    let manager =
        ReconnectionManager::builder(config, servers, connector.clone(), Arc::new(AllValid))
            .build()?;
    let users: Vec<UserId> = (0..args.users)
        .map(|i| UserId::new(format!("user-{i}")))
        .collect();
    let (rss_before, _) = rss_kib();
    let heap_before = live_heap_bytes();

    let start = Instant::now();
    let mut scheduling = tokio::task::JoinSet::new();
    for user in users {
        let manager = manager.clone();
        scheduling.spawn(async move { manager.reconnect_servers(&user).await.len() });
    }
    let mut scheduled = 0;
    while let Some(n) = scheduling.join_next().await {
        scheduled += n?;
    }
    let schedule_time = start.elapsed();
    manager.wait_idle().await;
    let total = start.elapsed();

    let stats = manager.stats().await;
    let (_, peak) = rss_kib();
    let heap_after = live_heap_bytes();
    anyhow::ensure!(
        scheduled == args.users * args.servers,
        "scheduled {scheduled}"
    );
    anyhow::ensure!(
        stats.connected_sessions == scheduled,
        "connected {} of {scheduled}",
        stats.connected_sessions
    );
    let peak_in_flight = connector.peak_per_origin();
    anyhow::ensure!(
        peak_in_flight <= args.max_in_flight as usize,
        "{peak_in_flight} attempts in flight to one origin"
    );
    let pairs = scheduled as u64;
    println!(
        "{:<10} {:>8.0}ms {:>8.0}ms {:>12.0} {:>10} {:>6} MiB {:>10} B {:>13} B",
        format!("{} ms", stagger.as_millis()),
        schedule_time.as_secs_f64() * 1e3,
        total.as_secs_f64() * 1e3,
        scheduled as f64 / total.as_secs_f64(),
        peak_in_flight,
        peak / 1024,
        peak.saturating_sub(rss_before) * 1024 / pairs,
        heap_after.saturating_sub(heap_before) / pairs,
    );
    manager.shutdown().await;
    Ok(())
}
