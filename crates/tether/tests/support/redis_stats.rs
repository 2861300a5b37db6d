//! What a private Redis was asked: `INFO commandstats` through `redis-cli`, so a test can say
//! which commands a request cost.

use tether_testkit::services::PrivateRedis;
use tokio::process::Command;

/// How many times Redis ran `command` since the last `CONFIG RESETSTAT`.
pub async fn command_calls(redis: &PrivateRedis, command: &str) -> u64 {
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

pub async fn reset_stats(redis: &PrivateRedis) {
    let status = Command::new("redis-cli")
        .args(["-p", &redis.port.to_string(), "CONFIG", "RESETSTAT"])
        .status()
        .await
        .expect("redis-cli runs");
    assert!(status.success(), "CONFIG RESETSTAT");
}
