use std::collections::HashMap;
use std::time::Duration;

use futures::future::join_all;
use tether_core::{ConnectionState, CoreConfig};

use crate::support::*;

#[tokio::test(start_paused = true)]
async fn a_login_storm_of_1000_users_never_exceeds_the_per_origin_limit() {
    let config = CoreConfig::default();
    let limit = config.limits.max_in_flight as usize;
    let per_second = config.limits.per_second as usize;
    // Two servers share one origin, the third has its own.
    let servers = vec![
        http_server("issues", "https://shared.example/issues"),
        http_server("wiki", "https://shared.example/wiki"),
        http_server("chat", "https://chat.example/mcp"),
    ];
    let h = harness(config, servers);
    h.tokens.valid_for_everyone();
    h.connector.set_latency(Duration::from_millis(200));

    let users: Vec<String> = (0..1000).map(|i| format!("user{i}")).collect();
    let scheduled = join_all(users.iter().map(|u| {
        let m = h.manager.clone();
        let u = user(u);
        async move { m.reconnect_servers(&u).await.len() }
    }))
    .await;
    assert!(scheduled.iter().all(|&n| n == 3));
    h.manager.wait_idle().await;

    let calls = h.connector.calls();
    assert_eq!(calls.len(), 3000, "one attempt per pair");
    for origin in ["https://shared.example", "https://chat.example"] {
        let max = h.connector.max_in_flight(origin);
        assert!(max <= limit, "{origin}: {max} in flight");
        assert_eq!(max, limit, "{origin}: the storm should fill the limit");
    }
    // No second holds more starts per origin than the rate plus its burst.
    let mut per_window: HashMap<(String, u64), usize> = HashMap::new();
    let first = calls.iter().map(|c| c.at).min().expect("calls");
    for c in &calls {
        let second = (c.at - first).as_secs();
        *per_window
            .entry((c.origin.to_string(), second))
            .or_default() += 1;
    }
    let busiest = per_window.values().copied().max().unwrap_or(0);
    assert!(
        busiest <= 2 * per_second,
        "busiest second had {busiest} starts"
    );

    for u in users.iter().step_by(97) {
        for s in ["issues", "wiki", "chat"] {
            assert_eq!(
                h.manager.state(&user(u), &server(s)).await,
                ConnectionState::Connected,
                "{u}/{s}"
            );
        }
    }
    let stats = h.manager.stats().await;
    assert_eq!(stats.connected_sessions, 3000);
    assert_eq!(stats.attempts_connected, 3000);
    assert!(stats.admission_waits > 0);
    assert_eq!(stats.tracker.active, 0);
}
