//! The access token of a busy pair is read from the store once per `remember_tokens_for`, not
//! for every upstream request — and never served once due for refresh, nor after a 401, nor
//! after a write — against the real `oidc-provider` peer on 127.0.0.1, with two authorizers on
//! one store standing for two replicas.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use support::oidc::OidcPeer;
use support::resource::{Discovery, ResourceServer};
use support::{REDIRECT_URI, RequestLog, authorize, authorize_alice};
use tether_core::{PairKey, ServerName, StoreError, Timestamp, UserId};
use tether_oauth::store::MemoryTokenVault;
use tether_oauth::{
    AuthorizerConfig, McpAuthorizer, OAuthError, OAuthStores, Secret, StartOptions, TokenRecord,
    TokenVault,
};

const SERVER: &str = "notes";
const LONG_TTL: u64 = 3600;
const REMEMBER_FOR: Duration = Duration::from_millis(1_500);

fn pair() -> PairKey {
    PairKey::new("alice", SERVER)
}

fn alice() -> UserId {
    UserId::new("alice")
}

fn notes() -> ServerName {
    ServerName::new(SERVER)
}

/// The shared store, counting its reads.
#[derive(Debug, Default)]
struct CountedVault {
    inner: MemoryTokenVault,
    reads: AtomicU32,
}

impl CountedVault {
    fn reads(&self) -> u32 {
        self.reads.load(Ordering::SeqCst)
    }

    /// Alice's record as stored, read without counting.
    async fn record(&self) -> TokenRecord {
        let stored = self.inner.get(&pair()).await.expect("get");
        stored.expect("alice's record")
    }
}

#[async_trait]
impl TokenVault for CountedVault {
    async fn get(&self, pair: &PairKey) -> Result<Option<TokenRecord>, StoreError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.get(pair).await
    }

    async fn put(&self, pair: &PairKey, record: TokenRecord) -> Result<(), StoreError> {
        self.inner.put(pair, record).await
    }

    async fn delete(&self, pair: &PairKey) -> Result<(), StoreError> {
        self.inner.delete(pair).await
    }
}

struct Replicas {
    peer: OidcPeer,
    rs: ResourceServer,
    vault: Arc<CountedVault>,
    /// Serves alice's calls.
    one: Arc<McpAuthorizer>,
    /// Another replica on the same stores.
    two: Arc<McpAuthorizer>,
}

async fn replicas(remember_for: Duration) -> Replicas {
    let peer = OidcPeer::spawn(LONG_TTL).await;
    let rs = ResourceServer::spawn(Discovery::Challenge, &peer.issuer).await;
    let vault = Arc::new(CountedVault::default());
    let stores = OAuthStores {
        vault: vault.clone(),
        ..OAuthStores::in_memory()
    };
    let log = RequestLog::default();
    let new = |stores: OAuthStores| {
        let config = AuthorizerConfig {
            request_observer: Some(log.observer()),
            remember_tokens_for: remember_for,
            ..AuthorizerConfig::default()
        };
        Arc::new(McpAuthorizer::new(config, stores).expect("authorizer builds"))
    };
    let one = new(stores.clone());
    let two = new(stores);
    authorize_alice(&one, SERVER, &rs.url).await;
    Replicas {
        peer,
        rs,
        vault,
        one,
        two,
    }
}

async fn token_requests(peer: &OidcPeer) -> usize {
    peer.stats().await["tokenRequests"]
        .as_array()
        .map(Vec::len)
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_pairs_token_is_read_once_and_a_401_reads_the_store_again() {
    let r = replicas(Duration::from_secs(60)).await;
    let reads = r.vault.reads();
    let first = r
        .one
        .access_token(&alice(), &notes(), &r.rs.url)
        .await
        .expect("token");
    for _ in 0..50 {
        let again = r
            .one
            .access_token(&alice(), &notes(), &r.rs.url)
            .await
            .expect("token");
        assert_eq!(again, first);
    }
    assert_eq!(r.vault.reads(), reads + 1, "51 requests, one store read");
    assert_eq!(r.rs.challenge("/mcp", Some(first.expose())).await.0, 200);

    // The other replica refreshes (the MCP server rejected the token there): replica one still
    // serves what it remembers, until the MCP server rejects that token there too.
    let asked = token_requests(&r.peer).await;
    let rotated = r
        .two
        .access_token_after_rejection(&alice(), &notes(), &r.rs.url, &first)
        .await
        .expect("refreshed");
    assert_ne!(rotated, first);
    assert_eq!(token_requests(&r.peer).await, asked + 1);
    assert_eq!(
        r.one
            .access_token(&alice(), &notes(), &r.rs.url)
            .await
            .expect("token"),
        first,
        "another replica's rotation is not seen before the entry ages out or a 401"
    );
    let after_401 = r
        .one
        .access_token_after_rejection(&alice(), &notes(), &r.rs.url, &first)
        .await
        .expect("the stored successor");
    assert_eq!(
        after_401, rotated,
        "read from the store, not refreshed again"
    );
    assert_eq!(
        token_requests(&r.peer).await,
        asked + 1,
        "one refresh in all"
    );
    assert_eq!(
        r.one
            .access_token(&alice(), &notes(), &r.rs.url)
            .await
            .expect("token"),
        rotated
    );
    assert_eq!(r.rs.challenge("/mcp", Some(rotated.expose())).await.0, 200);
    assert_eq!(r.peer.refresh_failures().await, (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_replicas_rotation_is_seen_once_the_entry_ages_out() {
    let r = replicas(REMEMBER_FOR).await;
    let first = r
        .one
        .access_token(&alice(), &notes(), &r.rs.url)
        .await
        .expect("token");
    let rotated = r
        .two
        .access_token_after_rejection(&alice(), &notes(), &r.rs.url, &first)
        .await
        .expect("refreshed");
    assert_eq!(
        r.one
            .access_token(&alice(), &notes(), &r.rs.url)
            .await
            .expect("token"),
        first
    );
    tokio::time::sleep(REMEMBER_FOR + Duration::from_millis(200)).await;
    assert_eq!(
        r.one
            .access_token(&alice(), &notes(), &r.rs.url)
            .await
            .expect("token"),
        rotated
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_writes_and_a_forgotten_server_are_seen_at_once() {
    let r = replicas(Duration::from_secs(60)).await;
    let first = r
        .one
        .access_token(&alice(), &notes(), &r.rs.url)
        .await
        .expect("token");

    // A write through the authorizer's own vault (as a flow's new tokens are saved).
    let mut replaced = r.vault.record().await;
    replaced.access_token = Secret::new("at-written-by-this-replica");
    r.one
        .stores()
        .vault
        .put(&pair(), replaced)
        .await
        .expect("put");
    let token = r
        .one
        .access_token(&alice(), &notes(), &r.rs.url)
        .await
        .expect("token");
    assert_eq!(token.expose(), "at-written-by-this-replica");
    assert_ne!(token, first);

    // The tokens deleted in the store directly (a catalog delete), then forgotten.
    r.vault.inner.delete(&pair()).await.expect("delete");
    assert!(
        r.one
            .access_token(&alice(), &notes(), &r.rs.url)
            .await
            .is_ok(),
        "still remembered"
    );
    r.one.forget_remembered(&notes());
    let gone = r.one.access_token(&alice(), &notes(), &r.rs.url).await;
    assert!(
        matches!(gone, Err(OAuthError::NeedsAuthorization(_))),
        "{gone:?}"
    );

    // A disconnect through the authorizer.
    authorize(
        &r.one,
        "alice",
        SERVER,
        &r.rs.url,
        StartOptions::new(REDIRECT_URI),
    )
    .await
    .expect("authorized again");
    r.one
        .access_token(&alice(), &notes(), &r.rs.url)
        .await
        .expect("token");
    r.one
        .revoke_local(&alice(), &notes())
        .await
        .expect("deleted");
    let gone = r.one.access_token(&alice(), &notes(), &r.rs.url).await;
    assert!(
        matches!(gone, Err(OAuthError::NeedsAuthorization(_))),
        "{gone:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_due_for_refresh_is_never_served_from_memory() {
    let r = replicas(Duration::from_secs(60)).await;
    // 2 h left of a 24 h lifetime: due (the last tenth); no refresh token, so the due token is
    // handed out as it is, each time from the store.
    let mut record = r.vault.record().await;
    let now = Timestamp::from_system_time(SystemTime::now());
    record.obtained_at = now - Duration::from_secs(22 * 3600);
    record.expires_at = Some(now + Duration::from_secs(2 * 3600));
    record.refresh_token = None;
    r.one
        .stores()
        .vault
        .put(&pair(), record.clone())
        .await
        .expect("put");
    let reads = r.vault.reads();
    for _ in 0..3 {
        let token = r
            .one
            .access_token(&alice(), &notes(), &r.rs.url)
            .await
            .expect("token");
        assert_eq!(token, record.access_token);
    }
    assert!(
        r.vault.reads() >= reads + 3,
        "every call read the store ({} reads)",
        r.vault.reads() - reads
    );
}
