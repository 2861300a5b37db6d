//! A 1 MiB binary resource read through the gateway process costs it a bounded amount of
//! memory: the peak resident memory of `tether serve` is measured around the reads (`VmHWM`,
//! reset just before), with the testkit's rmcp server as the upstream.

mod support;

use std::time::Duration;

use base64::Engine as _;
use rmcp::model::ReadResourceRequestParams;
use tether_testkit::{DemoTools, blob_bytes, serve_streamable_http};

use support::gateway_process::{
    GatewayProcess, Launch, TempDir, add_args, call, config_text, result_text,
};
use support::{jwt, mcp_client};

const MIB: u64 = 1024;

/// What the gateway may hold at its peak for one 1 MiB read at a time, beyond what it held
/// before. The contents travel as base64 (1.33 MiB) and are parsed from the upstream's answer
/// and written into the agent's: a handful of copies, never one per read made.
const PEAK_GROWTH_BOUND_KIB: u64 = 16 * MIB;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_a_one_mebibyte_blob_keeps_the_gateways_peak_memory_bounded() {
    let upstream = serve_streamable_http(DemoTools::default(), "127.0.0.1:0")
        .await
        .expect("the upstream starts");
    let dir = TempDir::new("resource-memory");
    let config = config_text(
        &dir.path,
        &format!("[[servers]]\nname = \"demo\"\nurl = \"{}\"\n", upstream.url),
    );
    let gateway = GatewayProcess::start(&Launch::new(&dir.path), &config).await;
    let client = mcp_client(&gateway.base, &jwt("alice")).await;
    assert_eq!(
        result_text(&call(&client, "demo__add", add_args(1, 2)).await),
        "3"
    );
    let read = || async {
        let params = ReadResourceRequestParams::new("tether://demo/blob://bytes/1048576");
        let result =
            tokio::time::timeout(Duration::from_secs(30), client.peer().read_resource(params))
                .await
                .expect("answered in time")
                .expect("resources/read");
        let value = serde_json::to_value(&result).expect("serializes");
        let blob = value["contents"][0]["blob"]
            .as_str()
            .expect("a blob")
            .to_owned();
        base64::engine::general_purpose::STANDARD
            .decode(blob)
            .expect("base64")
    };
    // One read first, so that what is allocated once (buffers, the session) is not counted.
    assert_eq!(read().await.len(), 1 << 20);
    let before = gateway.peak_rss_kib();
    gateway.reset_peak_rss();
    let settled = gateway.peak_rss_kib();
    for _ in 0..8 {
        assert!(
            read().await == blob_bytes(1 << 20),
            "the bytes arrive unchanged"
        );
    }
    let peak = gateway.peak_rss_kib();
    let growth = peak.saturating_sub(settled);
    println!(
        "gateway peak RSS: {before} KiB after the first read; {settled} KiB settled, \
         {peak} KiB at the peak of 8 more reads (+{growth} KiB)"
    );
    assert!(
        growth <= PEAK_GROWTH_BOUND_KIB,
        "8 reads of 1 MiB raised the gateway's peak by {growth} KiB (bound {PEAK_GROWTH_BOUND_KIB} KiB)"
    );
    let _ = client.cancel().await;
    gateway.kill().await;
    upstream.stop().await;
}
