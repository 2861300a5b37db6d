//! Part 4: `resources/read` of a binary blob, 64 KiB and 1 MiB, with the same rmcp client
//! through Tether (`tether://up/blob://bytes/{n}`) and straight to the upstream
//! (`blob://bytes/{n}`): latency percentiles, bytes per second, and the gateway's resident
//! memory before and after (a blob must not stay behind, nor be held many times over).

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use base64::Engine;
use rmcp::model::{ReadResourceRequestParams, ResourceContents};

use super::calls::{Client, connect};
use super::procs::{Binaries, Gateway, Upstream, http_client, jwt, rss_kib, servers_toml};

const STEP: Duration = Duration::from_secs(30);

/// One size on one path.
#[derive(Debug, Clone)]
pub struct Reads {
    pub path: &'static str,
    pub bytes: usize,
    pub reads: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub wall: Duration,
}

impl Reads {
    pub fn mib_per_second(&self) -> f64 {
        (self.bytes * self.reads) as f64 / (1024.0 * 1024.0) / self.wall.as_secs_f64().max(1e-9)
    }
}

/// What the part measured.
#[derive(Debug, Clone)]
pub struct Figures {
    pub reads: Vec<Reads>,
    pub gateway_rss_before_kib: u64,
    pub gateway_rss_after_kib: u64,
}

async fn read(client: &Client, uri: &str, bytes: usize) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let result = tokio::time::timeout(
        STEP,
        client
            .peer()
            .read_resource(ReadResourceRequestParams::new(uri)),
    )
    .await
    .with_context(|| format!("reading {uri} timed out"))?
    .with_context(|| format!("reading {uri}"))?;
    let elapsed = started.elapsed();
    let blob = result
        .contents
        .iter()
        .find_map(|c| match c {
            ResourceContents::BlobResourceContents { blob, .. } => Some(blob),
            _ => None,
        })
        .with_context(|| format!("{uri}: no blob"))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(blob)
        .context("the blob is not base64")?;
    ensure!(decoded.len() == bytes, "{uri}: {} bytes", decoded.len());
    Ok(elapsed)
}

async fn phase(
    path: &'static str,
    client: &Client,
    uri: &str,
    bytes: usize,
    reads: usize,
) -> anyhow::Result<Reads> {
    let started = Instant::now();
    let mut latencies = Vec::with_capacity(reads);
    for _ in 0..reads {
        latencies.push(read(client, uri, bytes).await?);
    }
    let wall = started.elapsed();
    latencies.sort_unstable();
    let pick = |q: f64| {
        let i = ((reads as f64 * q).ceil() as usize).clamp(1, reads.max(1)) - 1;
        latencies.get(i).copied().unwrap_or_default()
    };
    Ok(Reads {
        path,
        bytes,
        reads,
        p50: pick(0.5),
        p99: pick(0.99),
        wall,
    })
}

pub async fn run(bins: &Binaries, reads_64k: usize, reads_1m: usize) -> anyhow::Result<Figures> {
    let http = http_client()?;
    let upstream = Upstream::start(&bins.testkit, Duration::ZERO).await?;
    let config = format!(
        "[reconnect]\ninclude_non_oauth = true\n\n[limits]\nper_second = 0\n\n{}",
        servers_toml(&[("up".to_owned(), upstream.url.clone())])
    );
    let gateway = Gateway::start(&bins.tether, "resources", &config).await?;
    let result = async {
        let direct = connect(&http, &upstream.url, None).await?;
        let token = jwt("resources")?;
        let through = connect(&http, &format!("{}/mcp", gateway.base), Some(&token)).await?;
        let mut figures = Vec::new();
        // Warm-up: connections and the gateway's upstream session.
        read(&through, "tether://up/blob://bytes/65536", 65_536).await?;
        read(&direct, "blob://bytes/65536", 65_536).await?;
        let before = rss_kib(gateway.pid)?;
        for (bytes, reads) in [(64 * 1024, reads_64k), (1024 * 1024, reads_1m)] {
            let uri = format!("blob://bytes/{bytes}");
            figures.push(phase("direct", &direct, &uri, bytes, reads).await?);
            let wrapped = format!("tether://up/{uri}");
            figures.push(phase("tether", &through, &wrapped, bytes, reads).await?);
        }
        let after = rss_kib(gateway.pid)?;
        let _ = tokio::time::timeout(Duration::from_secs(5), direct.cancel()).await;
        let _ = tokio::time::timeout(Duration::from_secs(5), through.cancel()).await;
        anyhow::Ok(Figures {
            reads: figures,
            gateway_rss_before_kib: before,
            gateway_rss_after_kib: after,
        })
    }
    .await
    .with_context(|| format!("gateway log tail:\n{}", gateway.log_tail()));
    gateway.stop().await;
    upstream.stop().await;
    result
}
