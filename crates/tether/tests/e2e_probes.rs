//! The unauthenticated probes (`/metrics`, `/readyz`) against a gateway process on a private
//! Redis: anyone can call them as often as they like, so they must not cost a walk over the
//! Redis keyspace per request. `INFO commandstats` of the private server counts what they cost.
//!
//! Needs `redis-server` and `redis-cli` (the shared Redis runs on the same binaries).

mod support;

use std::time::Duration;

use tether_testkit::services::PrivateRedis;
use tokio::process::Command;

use support::gateway_process::{GatewayProcess, Launch, TempDir, config_with};

const HITS: usize = 50;

/// How many times Redis ran `command` since the last `CONFIG RESETSTAT`.
async fn command_calls(redis: &PrivateRedis, command: &str) -> u64 {
    let output = Command::new("redis-cli")
        .args(["-p", &redis.port.to_string(), "INFO", "commandstats"])
        .output()
        .await
        .expect("redis-cli runs");
    let text = String::from_utf8_lossy(&output.stdout);
    let prefix = format!("cmdstat_{command}:calls=");
    text.lines()
        .find_map(|line| line.trim().strip_prefix(prefix.as_str()))
        .and_then(|rest| rest.split(',').next())
        .and_then(|calls| calls.parse().ok())
        .unwrap_or(0)
}

async fn reset_stats(redis: &PrivateRedis) {
    let status = Command::new("redis-cli")
        .args(["-p", &redis.port.to_string(), "CONFIG", "RESETSTAT"])
        .status()
        .await
        .expect("redis-cli runs");
    assert!(status.success(), "CONFIG RESETSTAT");
}

async fn gateway_on(redis: &PrivateRedis, dir: &TempDir) -> GatewayProcess {
    let head = format!(
        "[storage]\nurl = \"sqlite://{}\"\n\n[state]\nurl = \"{}\"\nprefix = \"probes\"\n",
        dir.path.join("tether.db").display(),
        redis.url()
    );
    GatewayProcess::start(&Launch::new(&dir.path), &config_with(&head, "", "")).await
}

async fn hit(gateway: &GatewayProcess, path: &str) {
    for _ in 0..HITS {
        let response = tokio::time::timeout(
            Duration::from_secs(10),
            gateway.http.get(gateway.url(path)).send(),
        )
        .await
        .expect("the probe answers within 10 s")
        .expect("the probe answers");
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_pings_redis_and_never_scans() {
    let redis = PrivateRedis::start().await.expect("a private redis-server");
    let dir = TempDir::new("probes-ready");
    let gateway = gateway_on(&redis, &dir).await;
    reset_stats(&redis).await;

    hit(&gateway, "/readyz").await;

    assert_eq!(command_calls(&redis, "scan").await, 0, "SCAN for /readyz");
    assert!(
        command_calls(&redis, "ping").await >= HITS as u64,
        "each readiness check asks Redis whether it answers"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_counts_tracker_entries_without_scanning_redis() {
    let redis = PrivateRedis::start().await.expect("a private redis-server");
    let dir = TempDir::new("probes-metrics");
    let gateway = gateway_on(&redis, &dir).await;
    reset_stats(&redis).await;

    hit(&gateway, "/metrics").await;

    assert_eq!(command_calls(&redis, "scan").await, 0, "SCAN for /metrics");
}
