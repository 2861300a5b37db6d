use std::time::Duration;

use tether_core::{ConnectionState, CoreConfig};
use tokio::time::Instant;

use crate::support::*;

#[tokio::test(start_paused = true)]
async fn login_returns_the_schedule_at_once_and_starts_servers_500ms_apart() {
    let servers = (0..4)
        .map(|i| http_server(&format!("s{i}"), &format!("https://up{i}.example/mcp")))
        .collect();
    let h = harness(CoreConfig::default(), servers);
    h.tokens.valid_for_everyone();
    h.connector.set_latency(Duration::from_secs(2));
    let start = Instant::now();
    let scheduled = h.manager.reconnect_servers(&user("u")).await;
    assert_eq!(Instant::now(), start, "reconnect_servers must not wait");
    assert_eq!(scheduled.len(), 4);
    assert!(h.connector.calls().is_empty() || h.connector.calls().len() == 1);
    // Scheduled pairs report when they will start.
    assert_eq!(
        h.manager.state(&user("u"), &server("s3")).await,
        ConnectionState::Reconnecting {
            retry_at: Some(T0 + Duration::from_millis(1_500))
        }
    );
    for i in 0..4 {
        assert!(
            h.manager
                .is_reconnecting(&user("u"), &server(&format!("s{i}")))
                .await
        );
    }
    h.manager.wait_idle().await;
    let offsets: Vec<u128> = h
        .connector
        .calls()
        .iter()
        .map(|c| (c.at - start).as_millis())
        .collect();
    assert_eq!(offsets, [0, 500, 1_000, 1_500]);
    for i in 0..4 {
        let name = server(&format!("s{i}"));
        assert_eq!(
            h.manager.state(&user("u"), &name).await,
            ConnectionState::Connected
        );
        assert!(!h.manager.is_reconnecting(&user("u"), &name).await);
    }
}

#[tokio::test(start_paused = true)]
async fn an_active_entry_stops_counting_after_three_minutes_without_any_status_call() {
    let mut s = http_server("slow", "https://slow.example/mcp");
    s.init_timeout = Some(Duration::from_secs(600));
    let h = harness(CoreConfig::default(), vec![s]);
    h.tokens.valid_for_everyone();
    h.connector.set_latency(Duration::from_secs(400));
    assert_eq!(h.manager.reconnect_servers(&user("u")).await.len(), 1);
    tokio::time::sleep(Duration::from_secs(179)).await;
    assert!(h.manager.is_reconnecting(&user("u"), &server("slow")).await);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!h.manager.is_reconnecting(&user("u"), &server("slow")).await);
    assert_eq!(h.manager.stats().await.tracker.active, 0);
    h.manager.wait_idle().await;
}
