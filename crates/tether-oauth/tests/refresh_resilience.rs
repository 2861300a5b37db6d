//! Refreshes that outlive their callers, survive a failing store write, give way to a delete,
//! and do not fail a call whose token is still valid — against the real `oidc-provider` peer
//! (rotation with reuse detection) on 127.0.0.1.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use support::oidc::OidcPeer;
use support::resource::{Discovery, ResourceServer};
use support::{AdvancedClock, PAST_HALF_OF_30_S, RequestLog, authorize_alice};
use tether_core::{PairKey, ServerName, StoreError, Timestamp, UserId};
use tether_oauth::store::MemoryTokenVault;
use tether_oauth::{AuthorizerConfig, McpAuthorizer, OAuthStores, Secret, TokenRecord, TokenVault};

const SERVER: &str = "notes";
/// Due for refresh once the test's clock is [`PAST_HALF_OF_30_S`] on.
const SHORT_TTL: u64 = 30;
const LONG_TTL: u64 = 3600;

fn pair() -> PairKey {
    PairKey::new("alice", SERVER)
}

fn new_authorizer(
    log: &RequestLog,
    clock: &AdvancedClock,
    stores: OAuthStores,
) -> Arc<McpAuthorizer> {
    let config = AuthorizerConfig {
        request_observer: Some(log.observer()),
        clock: Arc::new(clock.clone()),
        ..AuthorizerConfig::default()
    };
    Arc::new(McpAuthorizer::new(config, stores).expect("authorizer builds"))
}

/// A pair authorized with a `ttl` token, and the clock the authorizer reads.
async fn authorized(
    ttl: u64,
    stores: OAuthStores,
) -> (OidcPeer, ResourceServer, Arc<McpAuthorizer>, AdvancedClock) {
    let peer = OidcPeer::spawn(ttl).await;
    let rs = ResourceServer::spawn(Discovery::Challenge, &peer.issuer).await;
    let log = RequestLog::default();
    let clock = AdvancedClock::default();
    let authorizer = new_authorizer(&log, &clock, stores);
    authorize_alice(&authorizer, SERVER, &rs.url).await;
    (peer, rs, authorizer, clock)
}

async fn stored(authorizer: &McpAuthorizer) -> Option<TokenRecord> {
    authorizer.stores().vault.get(&pair()).await.expect("vault")
}

/// Polls (bounded: 100 × 100 ms) until the stored refresh token is no longer `old`.
async fn wait_for_rotation(authorizer: &McpAuthorizer, old: &Option<Secret>) -> TokenRecord {
    for _ in 0..100 {
        if let Some(record) = stored(authorizer).await
            && record.refresh_token != *old
        {
            return record;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the rotated refresh token was never stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_whose_caller_gave_up_still_stores_the_rotated_token() {
    let (peer, rs, authorizer, clock) = authorized(SHORT_TTL, OAuthStores::in_memory()).await;
    let before = stored(&authorizer).await.expect("tokens");
    peer.set_token_mode(0, Duration::from_secs(3)).await;
    clock.advance(PAST_HALF_OF_30_S);

    let gave_up = tokio::time::timeout(
        Duration::from_secs(1),
        authorizer.access_token(&UserId::new("alice"), &ServerName::new(SERVER), &rs.url),
    )
    .await;
    assert!(gave_up.is_err(), "the caller's timeout fires first");

    let after = wait_for_rotation(&authorizer, &before.refresh_token).await;
    peer.set_token_mode(0, Duration::ZERO).await;
    clock.advance(PAST_HALF_OF_30_S);
    let token = authorizer
        .access_token(&UserId::new("alice"), &ServerName::new(SERVER), &rs.url)
        .await
        .expect("the next refresh works");
    assert_ne!(
        token, after.access_token,
        "it refreshed with the stored token"
    );
    assert_eq!(
        peer.refresh_failures().await,
        (0, 0),
        "no invalid_grant, no revoked grant"
    );
    assert_eq!(resource_status(&rs, &token).await, 200);
}

async fn resource_status(rs: &ResourceServer, token: &Secret) -> u16 {
    rs.challenge("/mcp", Some(token.expose())).await.0
}

/// A vault whose next `failures` writes fail as if the database were away.
#[derive(Debug, Default)]
struct FlakyVault {
    inner: MemoryTokenVault,
    failures: AtomicU32,
    writes: AtomicU32,
}

impl FlakyVault {
    fn fail(&self) -> Result<(), StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        let left = self.failures.load(Ordering::SeqCst);
        if left > 0 {
            self.failures.store(left - 1, Ordering::SeqCst);
            return Err(StoreError::Unavailable("test: database away".into()));
        }
        Ok(())
    }
}

#[async_trait]
impl TokenVault for FlakyVault {
    async fn get(&self, pair: &PairKey) -> Result<Option<TokenRecord>, StoreError> {
        self.inner.get(pair).await
    }

    async fn put(&self, pair: &PairKey, record: TokenRecord) -> Result<(), StoreError> {
        self.fail()?;
        self.inner.put(pair, record).await
    }

    async fn delete(&self, pair: &PairKey) -> Result<(), StoreError> {
        self.inner.delete(pair).await
    }

    async fn replace(
        &self,
        pair: &PairKey,
        replaced: Timestamp,
        record: TokenRecord,
    ) -> Result<bool, StoreError> {
        self.fail()?;
        self.inner.replace(pair, replaced, record).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refreshed_token_whose_first_store_write_failed_is_retried_and_stored() {
    let vault = Arc::new(FlakyVault::default());
    let stores = OAuthStores {
        vault: vault.clone(),
        ..OAuthStores::in_memory()
    };
    let (peer, rs, authorizer, clock) = authorized(SHORT_TTL, stores).await;
    let before = stored(&authorizer).await.expect("tokens");
    vault.failures.store(1, Ordering::SeqCst);
    clock.advance(PAST_HALF_OF_30_S);
    let writes = vault.writes.load(Ordering::SeqCst);

    let token = authorizer
        .access_token(&UserId::new("alice"), &ServerName::new(SERVER), &rs.url)
        .await
        .expect("refreshed despite one failed write");
    assert!(
        vault.writes.load(Ordering::SeqCst) >= writes + 2,
        "the write was retried"
    );
    let after = stored(&authorizer).await.expect("tokens");
    assert_eq!(after.access_token, token);
    assert_ne!(
        after.refresh_token, before.refresh_token,
        "the rotation is stored"
    );

    clock.advance(PAST_HALF_OF_30_S);
    let next = authorizer
        .access_token(&UserId::new("alice"), &ServerName::new(SERVER), &rs.url)
        .await
        .expect("the next refresh works");
    assert_ne!(next, token);
    assert_eq!(peer.refresh_failures().await, (0, 0));
    assert_eq!(resource_status(&rs, &next).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_early_refresh_that_fails_transiently_returns_the_still_valid_token() {
    let (peer, rs, authorizer, _) = authorized(LONG_TTL, OAuthStores::in_memory()).await;
    // 2 h left of a 24 h lifetime: due (the last tenth), far from expired.
    let mut record = stored(&authorizer).await.expect("tokens");
    let now = Timestamp::from_system_time(SystemTime::now());
    record.obtained_at = now - Duration::from_secs(22 * 3600);
    record.expires_at = Some(now + Duration::from_secs(2 * 3600));
    authorizer
        .stores()
        .vault
        .put(&pair(), record.clone())
        .await
        .expect("put");
    peer.set_token_mode(503, Duration::ZERO).await;
    let requests = peer.stats().await["tokenRequests"]
        .as_array()
        .map(Vec::len)
        .unwrap_or(0);

    let token = authorizer
        .access_token(&UserId::new("alice"), &ServerName::new(SERVER), &rs.url)
        .await
        .expect("the still-valid token");
    assert_eq!(token, record.access_token);
    let asked = peer.stats().await["tokenRequests"]
        .as_array()
        .map(Vec::len)
        .unwrap_or(0);
    assert_eq!(asked, requests + 1, "the refresh was tried");

    // The authorization server is backing off: the next call is not sent to it.
    let again = authorizer
        .access_token(&UserId::new("alice"), &ServerName::new(SERVER), &rs.url)
        .await
        .expect("the still-valid token again");
    assert_eq!(again, record.access_token);
    let asked_again = peer.stats().await["tokenRequests"]
        .as_array()
        .map(Vec::len)
        .unwrap_or(0);
    assert_eq!(asked_again, asked, "no request during the AS backoff");
    assert_eq!(stored(&authorizer).await, Some(record), "tokens kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_during_a_refresh_in_flight_wins() {
    let (peer, rs, authorizer, clock) = authorized(SHORT_TTL, OAuthStores::in_memory()).await;
    peer.set_token_mode(0, Duration::from_secs(2)).await;
    clock.advance(PAST_HALF_OF_30_S);
    let refreshing = tokio::spawn({
        let (authorizer, url) = (authorizer.clone(), rs.url.clone());
        async move {
            authorizer
                .access_token(&UserId::new("alice"), &ServerName::new(SERVER), &url)
                .await
        }
    });
    // The token request is on its way (the peer holds its answer for 2 s).
    tokio::time::sleep(Duration::from_millis(700)).await;
    authorizer
        .revoke_local(&UserId::new("alice"), &ServerName::new(SERVER))
        .await
        .expect("deleted");
    let _ = tokio::time::timeout(Duration::from_secs(20), refreshing)
        .await
        .expect("the refresh ends");
    // Bounded: a late save would land within the next half second.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(stored(&authorizer).await, None, "the tokens stay deleted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_waits_for_a_refresh_in_flight_to_store_its_tokens() {
    let (peer, rs, authorizer, clock) = authorized(SHORT_TTL, OAuthStores::in_memory()).await;
    let before = stored(&authorizer).await.expect("tokens");
    peer.set_token_mode(0, Duration::from_secs(2)).await;
    clock.advance(PAST_HALF_OF_30_S);
    let caller = tokio::spawn({
        let (authorizer, url) = (authorizer.clone(), rs.url.clone());
        async move {
            authorizer
                .access_token(&UserId::new("alice"), &ServerName::new(SERVER), &url)
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Shutdown: the caller's connection is gone, the refresh must still land.
    caller.abort();
    assert!(
        authorizer.drain(Duration::from_secs(10)).await,
        "drained in time"
    );
    let after = stored(&authorizer).await.expect("tokens");
    assert_ne!(
        after.refresh_token, before.refresh_token,
        "the rotation is stored"
    );
}
