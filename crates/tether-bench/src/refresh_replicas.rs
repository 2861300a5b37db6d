//! `bench refresh-replicas`: many expiring (user, server) pairs refreshed through two gateway
//! replicas at once, counting what reaches the authorization server.
//!
//! Two `tether serve` processes share a fresh PostgreSQL database and a Redis key prefix, with
//! one OAuth-protected MCP server (the testkit's, introspecting at `oidc-provider` with
//! refresh-token rotation and reuse detection). Then:
//!
//! 1. every user authorizes through the gateways (started on one replica, callback on the
//!    other), so every pair holds a real token family;
//! 2. once every access token has expired, each pair is reconnected on *both* replicas at the
//!    same moment (`POST /v1/me/servers/{name}/reconnect`): each connect needs a usable token;
//! 3. the authorization server's token endpoint counts the requests: with the shared refresh
//!    lease it must be exactly one per pair, none refused, no grant revoked.
//!
//! Build first: `cargo build --release -p tether -p tether-bench -p tether-testkit`; the
//! oidc-provider peer needs `npm ci` in `crates/tether-oauth/tests/peers`.

use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use futures::stream::{self, StreamExt};
use serde_json::Value;
use tether_testkit::{DemoTools, OidcOptions, OidcPeer, ProtectionConfig};

use crate::gateway::procs::{self, Binaries, Gateway};

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Users, each with the one protected server: the expiring pairs.
    #[arg(long, default_value_t = 1000)]
    pairs: usize,
    /// Access token lifetime at the authorization server, in seconds. Every refresh of step 2
    /// must finish within it (a second expiry would ask for more refreshes).
    #[arg(long, default_value_t = 60)]
    ttl_s: u64,
    /// Authorizations in flight during step 1.
    #[arg(long, default_value_t = 16)]
    authorize_concurrency: usize,
    /// Pairs being reconnected at once during step 2 (two requests each, one per replica).
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Redis for the replicas' shared state (a fresh key prefix is used).
    #[arg(long, default_value = "redis://127.0.0.1:6379")]
    redis: String,
}

/// What the authorization server counted.
#[derive(Debug, Clone, Copy)]
struct AsCounts {
    token_requests: usize,
    refresh_grants: u64,
    grant_errors: u64,
    grants_revoked: u64,
}

async fn counts(peer: &OidcPeer) -> anyhow::Result<AsCounts> {
    let stats = peer.stats().await?;
    Ok(AsCounts {
        token_requests: stats["tokenRequests"].as_array().map_or(0, Vec::len),
        refresh_grants: stats["grants"]["refresh_token"].as_u64().unwrap_or(0),
        grant_errors: stats["grantErrors"]
            .as_object()
            .map_or(0, |m| m.values().filter_map(Value::as_u64).sum()),
        grants_revoked: stats["grantsRevoked"].as_u64().unwrap_or(0),
    })
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    ensure!(args.pairs > 0, "--pairs must be positive");
    let bins = Binaries::locate()?;
    let http = procs::http_client()?;
    // The browser's steps read redirects instead of following them.
    let browser = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .context("building the HTTP client")?;
    let ports = (
        tether_testkit::services::free_port().await?,
        tether_testkit::services::free_port().await?,
    );
    let public_url = format!("http://127.0.0.1:{}", ports.0);
    let redirect_uri = format!("{public_url}/oauth/callback");

    let peer = OidcPeer::spawn_with(OidcOptions {
        access_token_ttl: args.ttl_s,
        static_redirect_uri: redirect_uri.clone(),
        ..OidcOptions::default()
    })
    .await
    .context("starting oidc-provider (npm ci in crates/tether-oauth/tests/peers)")?;
    let upstream = tether_testkit::serve_protected(
        DemoTools::default(),
        "127.0.0.1:0",
        ProtectionConfig::oidc_peer(&peer.issuer),
    )
    .await
    .context("starting the protected MCP server")?;
    let database = tether_testkit::services::postgres_database("bench_refresh").await?;
    let prefix = format!("tether-bench-refresh-{}", std::process::id());
    let head = format!(
        "public_url = \"{public_url}\"\n\n[storage]\nurl = \"{database}\"\n\n[state]\nurl = \"{}\"\nprefix = \"{prefix}\"\n",
        args.redis
    );
    // No per-second rate and a wide in-flight limit: the figure is about refreshes, not
    // admission. The client registers dynamically (once per issuer, shared in PostgreSQL).
    let rest = format!(
        "[oauth]\nrefresh_ahead = \"0s\"\nreturn_url = \"{RETURN_URL}\"\n\n[limits]\nmax_in_flight = 128\nper_second = 0\n\n\
         [[servers]]\nname = \"alpha\"\nurl = \"{}\"\noauth = true\ninit_timeout = \"30s\"\n",
        upstream.url
    );
    let one = Gateway::start_with(
        &bins.tether,
        "refresh-r1",
        Some(&head),
        &format!("127.0.0.1:{}", ports.0),
        &rest,
    )
    .await?;
    let two = Gateway::start_with(
        &bins.tether,
        "refresh-r2",
        Some(&head),
        &format!("127.0.0.1:{}", ports.1),
        &rest,
    )
    .await?;
    let replicas = [&one, &two];

    // 1. Every user authorizes: started on one replica, the callback on the other.
    let started = Instant::now();
    let results: Vec<anyhow::Result<()>> = stream::iter(0..args.pairs)
        .map(|i| {
            let (start, finish) = (replicas[i % 2], replicas[(i + 1) % 2]);
            let (http, browser, redirect_uri) = (&http, &browser, &redirect_uri);
            async move { authorize(http, browser, start, finish, redirect_uri, &user(i)).await }
        })
        .buffer_unordered(args.authorize_concurrency.max(1))
        .collect()
        .await;
    let failed: Vec<String> = results
        .into_iter()
        .filter_map(|r| r.err().map(|e| format!("{e:#}")))
        .collect();
    if let Some(first) = failed.first() {
        bail!(
            "{} of {} authorizations failed, first: {first}\nreplica 1: {}\nreplica 2: {}",
            failed.len(),
            args.pairs,
            one.log_tail(),
            two.log_tail()
        );
    }
    let authorized_in = started.elapsed();
    let after_authorization = counts(&peer).await?;
    println!(
        "step 1: {} pairs authorized across 2 replicas in {:.1} s ({} token requests)",
        args.pairs,
        authorized_in.as_secs_f64(),
        after_authorization.token_requests
    );

    // 2. Every access token expires (the last was issued just now).
    let wait = Duration::from_secs(args.ttl_s + 2);
    println!(
        "waiting {} s for every access token to expire",
        wait.as_secs()
    );
    tokio::time::sleep(wait).await;

    // 3. Each pair reconnected on both replicas at once.
    let before = counts(&peer).await?;
    let started = Instant::now();
    let outcomes: Vec<anyhow::Result<(bool, bool)>> = stream::iter(0..args.pairs)
        .map(|i| {
            let (http, one, two) = (&http, &one, &two);
            async move {
                let token = procs::jwt(&user(i))?;
                let (a, b) =
                    tokio::join!(reconnect(http, one, &token), reconnect(http, two, &token));
                Ok((a?, b?))
            }
        })
        .buffer_unordered(args.concurrency.max(1))
        .collect()
        .await;
    let elapsed = started.elapsed();
    let mut connected = 0usize;
    let mut errors = Vec::new();
    for outcome in outcomes {
        match outcome {
            Ok((a, b)) => connected += usize::from(a) + usize::from(b),
            Err(e) => errors.push(format!("{e:#}")),
        }
    }
    let after = counts(&peer).await?;
    let token_requests = after.token_requests - before.token_requests;
    let refreshes = after.refresh_grants - before.refresh_grants;
    let refused = after.grant_errors - before.grant_errors;
    let revoked = after.grants_revoked - before.grants_revoked;

    println!();
    println!(
        "| expiring pairs | replicas | reconnects | connected | token requests at the AS | refreshes granted | refused | grants revoked | time | refreshes/s |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    println!(
        "| {} | 2 | {} | {connected} | {token_requests} | {refreshes} | {refused} | {revoked} | {:.2} s | {:.0} |",
        args.pairs,
        args.pairs * 2,
        elapsed.as_secs_f64(),
        refreshes as f64 / elapsed.as_secs_f64()
    );
    if refused > 0 {
        let stats = peer.stats().await?;
        println!(
            "refused at the token endpoint (grant:error → count): {}",
            stats["grantErrors"]
        );
    }
    if let Some(first) = errors.first() {
        println!("{} reconnect requests failed, first: {first}", errors.len());
    }
    ensure!(
        elapsed < Duration::from_secs(args.ttl_s),
        "step 3 took longer than the token lifetime: the counts may include second refreshes"
    );
    ensure!(
        token_requests == args.pairs && refused == 0 && revoked == 0,
        "expected exactly {} token requests, none refused or revoked",
        args.pairs
    );
    one.stop().await;
    two.stop().await;
    upstream.stop().await;
    Ok(())
}

fn user(i: usize) -> String {
    format!("refresh-user-{i}")
}

/// Where the gateways send the browser back with a completion code (never fetched).
const RETURN_URL: &str = "http://127.0.0.1:9/host/oauth-return";

/// A user's authorization of `alpha`: `POST …/authorize` on `start`, the browser at Tether's
/// `/oauth/begin` link, the authorization server's steps without a person, `GET /oauth/callback`
/// on `finish`, and the host page's `POST /v1/me/oauth/complete` on `finish`.
async fn authorize(
    http: &reqwest::Client,
    browser: &reqwest::Client,
    start: &Gateway,
    finish: &Gateway,
    redirect_uri: &str,
    user: &str,
) -> anyhow::Result<()> {
    let token = procs::jwt(user)?;
    let response = http
        .post(format!("{}/v1/me/servers/alpha/authorize", start.base))
        .bearer_auth(&token)
        .send()
        .await
        .context("POST …/authorize")?;
    ensure!(
        response.status().is_success(),
        "authorize: {}",
        response.status()
    );
    let body: Value = serde_json::from_slice(&response.bytes().await?)?;
    let link = body["authorization_url"]
        .as_str()
        .context("no authorization_url")?;
    let begun = browser.get(link).send().await.context("GET /oauth/begin")?;
    let header = |response: &reqwest::Response, name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let url = header(&begun, "location").context("/oauth/begin sent no Location")?;
    let cookie = header(&begun, "set-cookie")
        .and_then(|c| c.split(';').next().map(str::to_owned))
        .context("/oauth/begin set no cookie")?;
    let approved = tether_oauth::headless::authorize(&url, redirect_uri)
        .await
        .map_err(|e| anyhow::anyhow!("headless authorization: {e}"))?;
    let mut callback = url::Url::parse(&format!("{}/oauth/callback", finish.base))?;
    {
        let mut query = callback.query_pairs_mut();
        query.append_pair("code", approved.code.expose());
        query.append_pair("state", &approved.state);
        if let Some(issuer) = &approved.issuer {
            query.append_pair("iss", issuer);
        }
    }
    let response = browser
        .get(callback)
        .header("cookie", cookie)
        .send()
        .await
        .context("GET /oauth/callback")?;
    let location = header(&response, "location")
        .with_context(|| format!("callback: {} without a redirect", response.status()))?;
    let completion_code = url::Url::parse(&location)?
        .query_pairs()
        .find(|(k, _)| k == "completion_code")
        .map(|(_, v)| v.into_owned())
        .context("no completion_code")?;
    let response = http
        .post(format!("{}/v1/me/oauth/complete", finish.base))
        .bearer_auth(&token)
        .json(&serde_json::json!({ "code": completion_code }))
        .send()
        .await
        .context("POST /v1/me/oauth/complete")?;
    ensure!(
        response.status().is_success(),
        "complete: {}",
        response.status()
    );
    Ok(())
}

/// `POST /v1/me/servers/alpha/reconnect`: whether it connected.
async fn reconnect(http: &reqwest::Client, gateway: &Gateway, token: &str) -> anyhow::Result<bool> {
    let response = http
        .post(format!("{}/v1/me/servers/alpha/reconnect", gateway.base))
        .bearer_auth(token)
        .send()
        .await
        .context("POST …/reconnect")?;
    ensure!(
        response.status().is_success(),
        "reconnect: {}",
        response.status()
    );
    let body: Value = serde_json::from_slice(&response.bytes().await?)?;
    Ok(body["connected"] == true)
}
