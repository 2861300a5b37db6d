use std::time::Duration;

use futures::future::join_all;
use tether_core::CoreConfig;

use crate::support::*;

#[tokio::test(start_paused = true)]
async fn fifty_concurrent_requests_for_one_pair_make_one_connect() {
    let h = harness(
        CoreConfig::default(),
        vec![http_server("s", "https://up.example/mcp")],
    );
    h.tokens.valid_for_everyone();
    h.connector.set_latency(Duration::from_millis(300));
    let results = join_all((0..50).map(|_| {
        let m = h.manager.clone();
        async move { m.reconnect_server(&user("u"), &server("s")).await }
    }))
    .await;
    assert!(results.iter().all(|&ok| ok));
    assert_eq!(h.connector.calls().len(), 1);

    // Calls arriving while disconnected also share the one connect they trigger.
    h.manager.disconnect(&user("u"), &server("s")).await;
    let results = join_all((0..50).map(|i| {
        let m = h.manager.clone();
        async move {
            m.call_tool(&user("u"), &server("s"), "search", None)
                .await
                .map(|r| (i, r.is_error))
        }
    }))
    .await;
    assert!(results.iter().all(|r| matches!(r, Ok((_, false)))));
    assert_eq!(h.connector.calls().len(), 2);
}
