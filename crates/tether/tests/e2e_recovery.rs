//! Recovery after a short outage, as users see it: 50 agents (one user each) call a tool through
//! the gateway process's `/mcp` every 2 s; the upstream (an rmcp server behind an outage switch)
//! answers every request `503` with `Retry-After: 1` for 20 s, then recovers. Measured: upstream
//! requests per agent while down, and the time from recovery until every agent's calls succeed
//! again. Before the origin breaker owned such outages, 120 s after recovery no agent could call
//! (each pair sat in a 5-minute cooldown, and every straggler doubled the breaker's open period);
//! before it honoured `Retry-After`, its own 30 s first open period kept them out for 14 s.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rmcp::model::CallToolRequestParams;
use tether_testkit::{DemoTools, serve_demo_with_outage};
use tokio::sync::Mutex;

use support::gateway_process::{
    GatewayProcess, Launch, TempDir, add_args, config_text, result_text,
};
use support::{jwt, mcp_client};

const AGENTS: usize = 50;
const PERIOD: Duration = Duration::from_secs(2);
const OUTAGE: Duration = Duration::from_secs(20);
/// How long the test waits for every agent after recovery before it gives up.
const PATIENCE: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_agents_are_back_soon_after_a_20_second_outage_without_hammering_the_upstream() {
    let dir = TempDir::new("recovery");
    let (upstream, outage) = serve_demo_with_outage(DemoTools::default(), "127.0.0.1:0")
        .await
        .expect("the upstream starts");
    let config = config_text(
        &dir.path,
        &format!(
            "[gateway.mcp]\nmax_sessions_per_user = 4\n\n[[servers]]\nname = \"demo\"\nurl = \"{}\"\n",
            upstream.url
        ),
    );
    let gateway = GatewayProcess::start(&Launch::new(&dir.path), &config).await;

    // Every agent connects and calls once while the upstream is healthy.
    let mut clients = Vec::new();
    for i in 0..AGENTS {
        let client = mcp_client(&gateway.base, &jwt(&format!("agent-{i}"))).await;
        clients.push(Arc::new(client));
    }
    for client in &clients {
        assert!(call_succeeds(client).await, "a healthy upstream answers");
    }

    // Each agent calls every PERIOD and records when its calls succeed.
    let successes: Arc<Mutex<Vec<Vec<Instant>>>> = Arc::new(Mutex::new(vec![Vec::new(); AGENTS]));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for (i, client) in clients.iter().enumerate() {
        let (client, successes, stop) = (client.clone(), successes.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            // Spread the agents over the period, as real traffic would be.
            tokio::time::sleep(PERIOD.mul_f64(i as f64 / AGENTS as f64)).await;
            let deadline = Instant::now() + OUTAGE + PATIENCE + Duration::from_secs(10);
            while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                if call_succeeds(&client).await {
                    successes.lock().await[i].push(Instant::now());
                }
                tokio::time::sleep(PERIOD).await;
            }
        }));
    }

    tokio::time::sleep(PERIOD).await;
    outage.set_down(true);
    tokio::time::sleep(OUTAGE).await;
    let refused_while_down = outage.refused();
    outage.set_down(false);
    let recovered = Instant::now();

    // Wait until every agent has succeeded after recovery.
    let back_after = loop {
        let lasts: Vec<Option<Duration>> = successes
            .lock()
            .await
            .iter()
            .map(|times| {
                times
                    .iter()
                    .find(|t| **t > recovered)
                    .map(|t| t.duration_since(recovered))
            })
            .collect();
        if lasts.iter().all(Option::is_some) {
            break lasts.into_iter().flatten().max().unwrap_or_default();
        }
        assert!(
            recovered.elapsed() < PATIENCE,
            "{} of {AGENTS} agents still failing {PATIENCE:?} after recovery\n{}",
            lasts.iter().filter(|l| l.is_none()).count(),
            support::gateway_process::tail(&gateway.logs(), 30)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    stop.store(true, Ordering::SeqCst);
    for task in tasks {
        let _ = task.await;
    }
    let per_agent = refused_while_down as f64 / AGENTS as f64;
    println!(
        "outage of {OUTAGE:?}: {refused_while_down} upstream requests while down ({per_agent:.2} per agent); \
         every agent back {:.1} s after recovery",
        back_after.as_secs_f64()
    );
    assert!(
        per_agent <= 3.0,
        "{refused_while_down} requests while down: {per_agent:.2} per agent"
    );
    // The upstream's `Retry-After: 1` sets the origin breaker's open period, so a probe finds it
    // back within about a second; then every agent's next call (every 2 s) reconnects.
    assert!(
        back_after <= Duration::from_secs(10),
        "every agent back {back_after:?} after recovery"
    );
    for client in clients {
        if let Ok(client) = Arc::try_unwrap(client) {
            let _ = client.cancel().await;
        }
    }
    gateway.kill().await;
    upstream.stop().await;
}

async fn call_succeeds(
    client: &rmcp::service::RunningService<rmcp::RoleClient, rmcp::model::ClientConfig>,
) -> bool {
    let mut params = CallToolRequestParams::new("demo__add".to_owned());
    params.arguments = add_args(2, 3).as_object().cloned();
    match tokio::time::timeout(Duration::from_secs(10), client.peer().call_tool(params)).await {
        Ok(Ok(result)) => {
            let value = serde_json::to_value(&result).unwrap_or_default();
            value["isError"] != true && result_text(&value) == "5"
        }
        _ => false,
    }
}
