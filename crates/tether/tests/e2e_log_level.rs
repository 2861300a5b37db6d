//! `logging/setLevel` from an agent is the agent's business with its upstream servers, never
//! the gateway's own log level: the gateway process runs at `info`, an agent asks for `debug`,
//! the upstream gets the level and the gateway's log stays at `info`.

mod support;

use std::time::Duration;

#[allow(deprecated, reason = "logging is what the test exercises")]
use rmcp::model::{LoggingLevel, SetLevelRequestParams};
use tether_testkit::{DemoTools, serve_streamable_http};

use support::gateway_process::{
    GatewayProcess, Launch, TempDir, add_args, call, config_text, result_text,
};
use support::{jwt, mcp_client};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agents_set_level_reaches_the_upstream_and_leaves_the_gateways_log_level_alone() {
    let tools = DemoTools::default();
    let upstream = serve_streamable_http(tools.clone(), "127.0.0.1:0")
        .await
        .expect("the upstream starts");
    let dir = TempDir::new("log-level");
    let config = config_text(
        &dir.path,
        &format!("[[servers]]\nname = \"demo\"\nurl = \"{}\"\n", upstream.url),
    );
    let mut launch = Launch::new(&dir.path);
    launch.rust_log = "info".to_owned();
    let gateway = GatewayProcess::start(&launch, &config).await;
    let client = mcp_client(&gateway.base, &jwt("alice")).await;
    assert_eq!(
        result_text(&call(&client, "demo__add", add_args(1, 2)).await),
        "3"
    );

    #[allow(deprecated, reason = "logging is what the test exercises")]
    tokio::time::timeout(
        Duration::from_secs(30),
        client
            .peer()
            .set_level(SetLevelRequestParams::new(LoggingLevel::Debug)),
    )
    .await
    .expect("answered")
    .expect("logging/setLevel");
    assert_eq!(
        tools.log_level().as_deref(),
        Some("debug"),
        "the upstream got it"
    );

    // Work that logs at debug level in the gateway (connects, calls, list reads).
    for i in 0..5 {
        assert_eq!(
            result_text(&call(&client, "demo__add", add_args(i, 1)).await),
            (i + 1).to_string()
        );
    }
    let _ = client.cancel().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let logs = gateway.logs();
    assert!(logs.contains(" INFO "), "the gateway logs at info: {logs}");
    assert!(
        !logs.contains(" DEBUG ") && !logs.contains(" TRACE "),
        "the gateway's own level did not follow the agent's: {logs}"
    );
    gateway.kill().await;
    upstream.stop().await;
}
