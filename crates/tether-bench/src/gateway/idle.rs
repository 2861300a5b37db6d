//! Part 2: memory per idle upstream session of the gateway. N users with one server each; the
//! gateway's RSS (`/proc/<pid>/status`) with one warm-up pair connected, then with all N pairs
//! connected and idle, divided by N.

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use futures::{StreamExt, TryStreamExt};

use super::procs::{
    Binaries, Gateway, Upstream, http_client, jwt, open_fds, rss_kib, servers_toml,
};
use super::storm::wait_connected;

#[derive(Debug, Clone)]
pub struct IdleResult {
    pub sessions: usize,
    pub rss_before_kib: u64,
    pub rss_after_kib: u64,
    pub fds_delta: i64,
    pub connect_time: Duration,
    pub upstream_rss_delta_kib: i64,
}

impl IdleResult {
    pub fn bytes_per_session(&self) -> f64 {
        (self.rss_after_kib as f64 - self.rss_before_kib as f64) * 1024.0
            / self.sessions.max(1) as f64
    }
}

pub async fn run(
    bins: &Binaries,
    sessions: usize,
    http_concurrency: usize,
    settle: Duration,
) -> anyhow::Result<IdleResult> {
    let http = http_client()?;
    let upstream = Upstream::start(&bins.testkit, Duration::ZERO).await?;
    let config = format!(
        "[reconnect]\ninclude_non_oauth = true\n\n[limits]\nper_second = 0\n\n{}",
        servers_toml(&[("up".to_owned(), upstream.url.clone())])
    );
    let gateway = Gateway::start(&bins.tether, "idle", &config).await?;
    let result = async {
        // Warm-up: the per-origin HTTP client, the store, first-use allocations.
        let warm = [jwt("idle-warm-up")?];
        gateway.reconnect(&http, &warm[0]).await?;
        let started = Instant::now();
        let warmed = wait_connected(
            &gateway,
            &http,
            &warm,
            1,
            1,
            started,
            Duration::from_secs(10),
        )
        .await?;
        ensure!(warmed.last.is_some(), "the warm-up pair did not connect");
        tokio::time::sleep(settle).await;
        let rss_before_kib = rss_kib(gateway.pid)?;
        let upstream_before = rss_kib(upstream.pid)?;
        let fds_before = open_fds(gateway.pid);

        let tokens: Vec<String> = (0..sessions)
            .map(|i| jwt(&format!("idle-{i}")))
            .collect::<anyhow::Result<_>>()?;
        let started = Instant::now();
        futures::stream::iter(&tokens)
            .map(|t| gateway.reconnect(&http, t))
            .buffer_unordered(http_concurrency.max(1))
            .try_collect::<Vec<()>>()
            .await
            .context("the reconnects")?;
        let deadline = Duration::from_secs(60)
            + Duration::from_millis(10).saturating_mul(u32::try_from(sessions).unwrap_or(u32::MAX));
        let connected = wait_connected(
            &gateway,
            &http,
            &tokens,
            1,
            http_concurrency,
            started,
            deadline,
        )
        .await?;
        let connect_time = connected.last.with_context(|| {
            format!(
                "only {} of {sessions} sessions connected within {deadline:?}",
                connected.pairs
            )
        })?;
        tokio::time::sleep(settle).await;
        let rss_after_kib = rss_kib(gateway.pid)?;
        let upstream_after = rss_kib(upstream.pid)?;
        let fds_after = open_fds(gateway.pid);
        anyhow::Ok(IdleResult {
            sessions,
            rss_before_kib,
            rss_after_kib,
            fds_delta: fds_after as i64 - fds_before as i64,
            connect_time,
            upstream_rss_delta_kib: upstream_after as i64 - upstream_before as i64,
        })
    }
    .await
    .with_context(|| format!("gateway log tail:\n{}", gateway.log_tail()));
    gateway.stop().await;
    upstream.stop().await;
    result
}
