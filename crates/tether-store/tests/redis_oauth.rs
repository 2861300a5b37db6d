//! Flow state and refresh leases in real Redis: single use across replicas, sealed at rest,
//! owner-only release.

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use redis::AsyncCommands;
use tether_core::{PairKey, Timestamp};
use tether_oauth::Secret;
use tether_oauth::store::{CallbackParams, FlowRecord, FlowStore, RefreshLock};
use tether_store::crypto::Keyring;
use tether_store::shared::{ForgottenPairs, RedisState, RedisStateConfig};
use tokio::sync::mpsc;

const REDIS: &str = "redis://127.0.0.1:6379";

fn prefix(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("tether-test:{test}:{nanos}")
}

async fn state(prefix: &str) -> RedisState {
    RedisState::connect(RedisStateConfig::new(REDIS, prefix))
        .await
        .expect("Redis must run on 127.0.0.1:6379")
}

fn keyring() -> Arc<Keyring> {
    Arc::new(Keyring::parse(&Keyring::generate_setting()).expect("valid"))
}

fn flow() -> FlowRecord {
    FlowRecord {
        user: "alice".into(),
        server: "github".into(),
        server_url: "https://mcp.example/mcp".into(),
        resource: "https://mcp.example/mcp".into(),
        issuer: "https://as.example".into(),
        client_id: "client".into(),
        pkce_verifier: Secret::new("verifier-plaintext-9d8c7b"),
        redirect_uri: "https://tether.example/oauth/callback".into(),
        requested_scopes: vec!["read".into()],
        created_at: Timestamp::from_millis(1),
        authorization_url: Some("https://as.example/authorize?state=state-abc".into()),
        browser_binding: Some("binding-digest".into()),
        callback: Some(CallbackParams {
            state: "state-abc".into(),
            code: Secret::new("codeplaintext-5e4f"),
            issuer: None,
        }),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_started_on_one_replica_is_taken_once_on_another_and_sealed_at_rest() {
    let prefix = prefix("flows");
    let keys = keyring();
    let one = state(&prefix).await.flow_store(keys.clone());
    let two = Arc::new(state(&prefix).await.flow_store(keys));
    one.put("state-abc", flow()).await.expect("saved");

    let mut raw = redis::Client::open(REDIS)
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("connects");
    let stored: Vec<u8> = raw
        .get(format!("{prefix}:flow:state-abc"))
        .await
        .expect("read raw");
    assert!(!stored.is_empty());
    assert!(
        !stored.windows(8).any(|w| w == b"verifier"),
        "the verifier must not sit in Redis in clear"
    );
    assert!(
        !stored.windows(13).any(|w| w == b"codeplaintext"),
        "an authorization code kept for the host's confirmation must not sit in Redis in clear"
    );
    let ttl: i64 = raw
        .pttl(format!("{prefix}:flow:state-abc"))
        .await
        .expect("pttl");
    assert!(
        ttl > 0 && ttl <= 600_000,
        "flows expire after 10 min: {ttl}"
    );

    // Twenty concurrent callbacks for one state, on the other replica: exactly one wins.
    let taken = join_all((0..20).map(|_| {
        let two = two.clone();
        tokio::spawn(async move { two.take("state-abc").await })
    }))
    .await;
    let winners: Vec<FlowRecord> = taken
        .into_iter()
        .filter_map(|r| r.expect("join").expect("take"))
        .collect();
    assert_eq!(winners.len(), 1);
    assert_eq!(winners[0], flow());
    assert_eq!(
        two.take("state-abc").await.expect("take"),
        None,
        "single use"
    );
    assert_eq!(two.take("forged").await.expect("take"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_leases_have_one_owner_and_expire() {
    let prefix = prefix("leases");
    let one = state(&prefix).await.refresh_lock();
    let two = state(&prefix).await.refresh_lock();
    let pair = PairKey::new("alice", "github");
    let ttl = Duration::from_millis(300);
    assert!(one.try_acquire(&pair, "replica-1", ttl).await.expect("ok"));
    assert!(!two.try_acquire(&pair, "replica-2", ttl).await.expect("ok"));
    assert!(one.still_held(&pair, "replica-1").await.expect("ok"));
    assert!(!two.still_held(&pair, "replica-2").await.expect("ok"));
    assert!(
        !two.release(&pair, "replica-2").await.expect("ok"),
        "not the owner"
    );
    assert!(one.still_held(&pair, "replica-1").await.expect("ok"));
    assert!(one.release(&pair, "replica-1").await.expect("ok"));
    assert!(two.try_acquire(&pair, "replica-2", ttl).await.expect("ok"));
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert!(
        !two.still_held(&pair, "replica-2").await.expect("ok"),
        "expired"
    );
    assert!(one.try_acquire(&pair, "replica-1", ttl).await.expect("ok"));
}

/// What `heard` receives first while `from` publishes `pair` again every 100 ms (50 times at
/// most): the subscriptions start in the background, and a notice sent before is lost.
async fn first_heard(
    from: &ForgottenPairs,
    pair: &PairKey,
    heard: &mut mpsc::Receiver<PairKey>,
) -> Option<PairKey> {
    for _ in 0..50 {
        from.publish(pair).await.expect("published");
        if let Ok(got) = tokio::time::timeout(Duration::from_millis(100), heard.recv()).await {
            return got;
        }
    }
    None
}

/// A pair forgotten on one replica reaches the other replicas of the same prefix, not the one
/// that forgot it, nor a deployment with another prefix; a message that is not a notice is
/// skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forgotten_pair_reaches_the_other_replicas_only() {
    let prefix = prefix("forgotten");
    let (one, two) = (
        state(&prefix).await.forgotten_pairs(),
        state(&prefix).await.forgotten_pairs(),
    );
    let elsewhere = state(&format!("{prefix}-other")).await.forgotten_pairs();
    let (mut heard_one, mut heard_two, mut heard_elsewhere) =
        (one.subscribe(), two.subscribe(), elsewhere.subscribe());
    let pair = PairKey::new("ali:ce", "github");

    assert_eq!(
        first_heard(&one, &pair, &mut heard_two).await,
        Some(pair.clone()),
        "replica two heard replica one"
    );

    // Garbage on the channel, then a notice from two: one hears the notice only.
    let mut raw = redis::Client::open(REDIS)
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("connects");
    let channel = format!("{prefix}:forgotten");
    // Both replicas listen before the garbage goes out, so that one does receive it.
    let mut subscribers = 0;
    for _ in 0..50 {
        let counts: Vec<(String, u64)> = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(&channel)
            .query_async(&mut raw)
            .await
            .expect("PUBSUB NUMSUB");
        subscribers = counts.first().map_or(0, |(_, n)| *n);
        if subscribers == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(subscribers, 2, "both replicas subscribed");
    let _: i64 = raw
        .publish(&channel, "not a notice")
        .await
        .expect("published");
    let other = PairKey::new("bob", "linear");
    assert_eq!(
        first_heard(&two, &other, &mut heard_one).await,
        Some(other.clone()),
        "one heard two's notice first: not its own, not the garbage"
    );
    assert!(
        heard_elsewhere.try_recv().is_err(),
        "another deployment heard nothing"
    );
}
