//! Part 1: a login storm through the gateway. `POST /v1/me/reconnect` for every user at once
//! (bounded client concurrency), then `GET /v1/me/servers` until every pair is connected; the
//! upstreams count their concurrent `initialize` requests.

use std::time::{Duration, Instant};

use anyhow::Context;
use futures::{StreamExt, TryStreamExt};

use super::procs::{Binaries, Gateway, Upstream, http_client, jwt, rss_kib, servers_toml};

/// Poll interval while waiting for the pairs.
const POLL: Duration = Duration::from_millis(25);
/// Users polled (the last ones fired) before everyone is.
const SAMPLE: usize = 10;

#[derive(Debug, Clone)]
pub struct StormSettings {
    pub users: usize,
    pub servers: usize,
    pub max_in_flight: u32,
    /// `None`: the configured default (20/s).
    pub per_second: Option<u32>,
    pub init_delay: Duration,
    pub http_concurrency: usize,
    pub deadline: Duration,
}

#[derive(Debug, Clone)]
pub struct StormResult {
    /// All `POST /v1/me/reconnect` answered 202.
    pub scheduled: Duration,
    /// When the last pair was seen connected (an upper bound: poll granularity).
    pub all_connected: Option<Duration>,
    pub connected_pairs: usize,
    /// Per upstream: the most concurrent `initialize` requests, and how many there were.
    pub peaks: Vec<u64>,
    pub initialized: Vec<u64>,
    pub gateway_rss_kib: u64,
}

/// What [`wait_connected`] found.
#[derive(Debug, Clone, Copy)]
pub struct Connected {
    pub pairs: usize,
    /// When the last user was first seen with all its servers connected, from `since`.
    pub last: Option<Duration>,
}

/// Polls `GET /v1/me/servers` until every user has `per_user` connected servers: first a sample
/// (the last users), then everyone still pending, round after round, until `deadline` after
/// `since`. Returns the pairs connected at the end.
pub async fn wait_connected(
    gateway: &Gateway,
    http: &reqwest::Client,
    tokens: &[String],
    per_user: usize,
    concurrency: usize,
    since: Instant,
    deadline: Duration,
) -> anyhow::Result<Connected> {
    let mut seen: Vec<Option<Duration>> = vec![None; tokens.len()];
    let mut pairs_of: Vec<usize> = vec![0; tokens.len()];
    let sample: Vec<usize> = (tokens.len().saturating_sub(SAMPLE)..tokens.len()).collect();
    let mut sampling = true;
    while since.elapsed() < deadline {
        let pending: Vec<usize> = if sampling {
            sample
                .iter()
                .copied()
                .filter(|&i| seen[i].is_none())
                .collect()
        } else {
            (0..tokens.len()).filter(|&i| seen[i].is_none()).collect()
        };
        if pending.is_empty() {
            if sampling {
                sampling = false;
                continue;
            }
            break;
        }
        let answers: Vec<(usize, usize, Duration)> = futures::stream::iter(pending)
            .map(|i| async move {
                let (connected, _) = gateway.connected(http, &tokens[i]).await?;
                anyhow::Ok((i, connected, since.elapsed()))
            })
            .buffer_unordered(concurrency.max(1))
            .try_collect()
            .await?;
        for (i, connected, at) in answers {
            pairs_of[i] = connected;
            if connected >= per_user {
                seen[i] = Some(at);
            }
        }
        tokio::time::sleep(POLL).await;
    }
    let pairs = pairs_of.iter().sum();
    let last = if seen.iter().all(Option::is_some) {
        seen.iter().flatten().max().copied()
    } else {
        None
    };
    Ok(Connected { pairs, last })
}

pub async fn run(bins: &Binaries, settings: StormSettings) -> anyhow::Result<StormResult> {
    let http = http_client()?;
    let mut upstreams = Vec::new();
    for _ in 0..settings.servers {
        upstreams.push(Upstream::start(&bins.testkit, settings.init_delay).await?);
    }
    let servers: Vec<(String, String)> = upstreams
        .iter()
        .enumerate()
        .map(|(i, u)| (format!("s{i}"), u.url.clone()))
        .collect();
    let per_second = settings
        .per_second
        .map(|n| format!("per_second = {n}\n"))
        .unwrap_or_default();
    let config = format!(
        "[reconnect]\ninclude_non_oauth = true\n\n[limits]\nmax_in_flight = {}\n{per_second}\n{}",
        settings.max_in_flight,
        servers_toml(&servers)
    );
    let gateway = Gateway::start(&bins.tether, "storm", &config).await?;
    let tokens: Vec<String> = (0..settings.users)
        .map(|i| jwt(&format!("storm-{i}")))
        .collect::<anyhow::Result<_>>()?;

    let result = async {
        let started = Instant::now();
        futures::stream::iter(&tokens)
            .map(|t| gateway.reconnect(&http, t))
            .buffer_unordered(settings.http_concurrency.max(1))
            .try_collect::<Vec<()>>()
            .await
            .context("the login storm")?;
        let scheduled = started.elapsed();
        let connected = wait_connected(
            &gateway,
            &http,
            &tokens,
            settings.servers,
            settings.http_concurrency,
            started,
            settings.deadline,
        )
        .await?;
        let mut peaks = Vec::new();
        let mut initialized = Vec::new();
        for upstream in &upstreams {
            let stats = upstream.stats(&http).await?;
            peaks.push(stats.peak_initializing);
            initialized.push(stats.initialized);
        }
        anyhow::Ok(StormResult {
            scheduled,
            all_connected: connected.last,
            connected_pairs: connected.pairs,
            peaks,
            initialized,
            gateway_rss_kib: rss_kib(gateway.pid).unwrap_or(0),
        })
    }
    .await
    .with_context(|| format!("gateway log tail:\n{}", gateway.log_tail()));
    gateway.stop().await;
    for upstream in upstreams {
        upstream.stop().await;
    }
    result
}
