//! What one client may hold of a gateway process, over raw sockets: a slowloris crowd is cut
//! off by the header read timeout while other clients are served and shutdown stays prompt; a
//! trickling body gets 408; past the connection cap new connections wait until a slot frees.

mod support;

use std::time::{Duration, Instant};

use futures::future::join_all;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use support::gateway_process::{GatewayProcess, Launch, TempDir, config_text};
use support::jwt;

const HEADER_TIMEOUT: Duration = Duration::from_secs(2);

fn http_table(header: Duration, body: Duration, max_connections: usize) -> String {
    format!(
        "[gateway.http]\nheader_read_timeout = \"{}ms\"\nbody_read_timeout = \"{}ms\"\nmax_connections = {max_connections}\n",
        header.as_millis(),
        body.as_millis()
    )
}

async fn gateway(dir: &TempDir, rest: &str) -> GatewayProcess {
    GatewayProcess::start(&Launch::new(&dir.path), &config_text(&dir.path, rest)).await
}

/// `count` connections that each send one byte of a request line and then nothing (a
/// slowloris client would send the next byte ten seconds later).
async fn slowloris(gateway: &GatewayProcess, count: usize) -> Vec<TcpStream> {
    let mut sockets = Vec::with_capacity(count);
    for _ in 0..count {
        let mut socket = TcpStream::connect(gateway.addr)
            .await
            .expect("connects to the gateway");
        socket.write_all(b"G").await.expect("writes a byte");
        sockets.push(socket);
    }
    sockets
}

/// Whether the server closed `socket` before `deadline` (EOF or reset).
async fn closed_by(mut socket: TcpStream, deadline: tokio::time::Instant) -> bool {
    let mut buf = Vec::new();
    tokio::time::timeout_at(deadline, socket.read_to_end(&mut buf))
        .await
        .is_ok()
}

/// `GET /healthz` on a new connection, within `bound`.
async fn healthz_within(gateway: &GatewayProcess, bound: Duration) -> bool {
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .timeout(bound)
        .build()
        .expect("a client");
    client
        .get(gateway.url("/healthz"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_sockets_are_cut_off_while_others_are_served_and_shutdown_stays_prompt() {
    let dir = TempDir::new("slowloris");
    let gateway = gateway(&dir, &http_table(HEADER_TIMEOUT, HEADER_TIMEOUT, 10_000)).await;
    let alice = jwt("alice");

    let sockets = slowloris(&gateway, 2_000).await;

    // Clients being served meanwhile are unaffected.
    for _ in 0..5 {
        let started = Instant::now();
        assert!(
            healthz_within(&gateway, Duration::from_secs(2)).await,
            "/healthz"
        );
        let servers = gateway
            .http
            .get(gateway.url("/v1/me/servers"))
            .bearer_auth(&alice)
            .send()
            .await
            .expect("/v1/me/servers answers");
        assert_eq!(servers.status(), 200);
        // Generous for a loaded CI machine; a client queued behind the crowd would wait for
        // the header timeout at least.
        assert!(
            started.elapsed() < HEADER_TIMEOUT,
            "{:?}",
            started.elapsed()
        );
    }

    // The server closes every one of them.
    let deadline = tokio::time::Instant::now() + HEADER_TIMEOUT + Duration::from_secs(8);
    let closed = join_all(sockets.into_iter().map(|s| closed_by(s, deadline))).await;
    let open = closed.iter().filter(|c| !**c).count();
    assert_eq!(open, 0, "{open} slowloris sockets still open");

    // A new crowd in the middle of its headers does not hold up an orderly stop.
    let _crowd = slowloris(&gateway, 200).await;
    let took = gateway
        .terminate_within(HEADER_TIMEOUT + Duration::from_secs(8))
        .await;
    assert!(took.is_some(), "the gateway did not exit after SIGTERM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickling_body_gets_408() {
    let dir = TempDir::new("slow-body");
    let body_timeout = Duration::from_secs(2);
    let gateway = gateway(
        &dir,
        &http_table(Duration::from_secs(30), body_timeout, 100),
    )
    .await;
    // `/mcp` (served by the listener itself) and a route of the router that reads its body.
    for path in ["/mcp", "/v1/me/servers"] {
        let mut socket = TcpStream::connect(gateway.addr).await.expect("connects");
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: 1000\r\n\r\n{{\"jsonrpc\"",
            gateway.addr,
            jwt("alice")
        );
        socket.write_all(head.as_bytes()).await.expect("writes");
        let started = Instant::now();
        let mut response = Vec::new();
        let read = tokio::time::timeout(
            body_timeout + Duration::from_secs(8),
            socket.read_to_end(&mut response),
        )
        .await;
        assert!(read.is_ok(), "{path}: no answer, connection still open");
        let text = String::from_utf8_lossy(&response);
        assert!(text.starts_with("HTTP/1.1 408"), "{path}: {text}");
        assert!(started.elapsed() >= body_timeout - Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_connection_cap_new_connections_wait_for_a_free_slot() {
    let dir = TempDir::new("conn-cap");
    let header_timeout = Duration::from_secs(3);
    let gateway = gateway(&dir, &http_table(header_timeout, header_timeout, 20)).await;
    assert!(healthz_within(&gateway, Duration::from_secs(2)).await);

    let idle: Vec<TcpStream> = slowloris(&gateway, 20).await;
    assert!(
        !healthz_within(&gateway, Duration::from_secs(1)).await,
        "a 21st connection is served while 20 are held"
    );
    // Once the idle ones are cut off, new connections are served again.
    let started = Instant::now();
    let mut served = false;
    while !served && started.elapsed() < Duration::from_secs(15) {
        served = healthz_within(&gateway, Duration::from_secs(2)).await;
    }
    assert!(served, "no connection served after the idle ones timed out");
    drop(idle);
}
