//! The SQLite store on real files: round trips, sealing at rest, key rotation, bad input.

use std::path::{Path, PathBuf};

use tether_core::{
    CachedTools, PairKey, ServerName, StoreError, Timestamp, TokenStore, Tool, ToolCache,
};
use tether_oauth::Secret;
use tether_oauth::store::{
    ClientSource, Endpoints, RegistrationRecord, RegistrationStore, TokenEndpointAuthMethod,
    TokenRecord, TokenVault,
};
use tether_store::crypto::Keyring;
use tether_store::sql::SqlStore;

const KEY1: &str = "k1:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
const KEY2: &str = "k2:AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "tether-store-{name}-{}-{nanos}",
            std::process::id()
        ));
        Self(path)
    }

    fn url(&self) -> String {
        format!("sqlite://{}", self.0.join("nested/tether.db").display())
    }

    /// Every byte SQLite wrote: the database and its WAL.
    fn all_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let dir = self.0.join("nested");
        for entry in std::fs::read_dir(&dir).expect("dir exists").flatten() {
            out.extend(std::fs::read(entry.path()).unwrap_or_default());
        }
        out
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

fn record(access: &str, refresh: Option<&str>) -> TokenRecord {
    TokenRecord {
        access_token: Secret::new(access),
        expires_at: Some(Timestamp::from_millis(1_900_000_000_000)),
        scopes: vec!["read".into(), "offline_access".into()],
        refresh_token: refresh.map(Secret::new),
        obtained_at: Timestamp::from_millis(1_800_000_000_000),
        issuer: "https://as.example".into(),
        client_id: "client-1".into(),
        resource: "https://mcp.example/mcp".into(),
    }
}

async fn open(dir: &TempDir, keys: &str) -> SqlStore {
    SqlStore::open(&dir.url(), Keyring::parse(keys).expect("valid keys"))
        .await
        .expect("opens")
}

#[tokio::test]
async fn tokens_round_trip_and_never_sit_in_the_file_in_clear() {
    let dir = TempDir::new("tokens");
    let store = open(&dir, KEY1).await;
    let pair = PairKey::new("alice", "github");
    let access = "at-5f1f8c0e-plaintext-access";
    let refresh = "rt-9a7b1d2c-plaintext-refresh";
    TokenVault::put(&store, &pair, record(access, Some(refresh)))
        .await
        .expect("saved");
    let read = TokenVault::get(&store, &pair)
        .await
        .expect("read")
        .expect("present");
    assert_eq!(read, record(access, Some(refresh)));
    let status = store.token_status(&pair).await.expect("status");
    assert!(status.has_refresh_token);
    assert_eq!(
        status.access_token.and_then(|a| a.expires_at),
        Some(Timestamp::from_millis(1_900_000_000_000))
    );
    assert_eq!(
        store
            .token_status(&PairKey::new("bob", "github"))
            .await
            .expect("status"),
        Default::default()
    );
    store.close().await;
    let bytes = dir.all_bytes();
    assert!(!bytes.is_empty());
    assert!(!contains(&bytes, access), "access token in clear on disk");
    assert!(!contains(&bytes, refresh), "refresh token in clear on disk");
    assert!(
        contains(&bytes, "client-1"),
        "non-secret columns are there (sanity of the scan)"
    );
}

#[tokio::test]
async fn a_rejected_refresh_token_is_removed_only_if_still_current() {
    let dir = TempDir::new("reject");
    let store = open(&dir, KEY1).await;
    let pair = PairKey::new("alice", "github");
    TokenVault::put(&store, &pair, record("a1", Some("r2")))
        .await
        .expect("saved");
    let removed = store
        .remove_refresh_token(&pair, &Secret::new("r1"))
        .await
        .expect("ok");
    assert!(!removed, "a successor already replaced r1");
    assert!(
        store
            .remove_refresh_token(&pair, &Secret::new("r2"))
            .await
            .expect("ok")
    );
    let read = TokenVault::get(&store, &pair)
        .await
        .expect("read")
        .expect("present");
    assert_eq!(read.refresh_token, None);
    assert_eq!(read.access_token, Secret::new("a1"), "the rest is kept");
    assert!(
        !store
            .token_status(&pair)
            .await
            .expect("status")
            .has_refresh_token
    );
    TokenVault::delete(&store, &pair).await.expect("deleted");
    assert!(
        TokenVault::get(&store, &pair)
            .await
            .expect("read")
            .is_none()
    );
}

#[tokio::test]
async fn keys_rotate_and_a_wrong_key_is_a_clear_error_that_loses_nothing() {
    let dir = TempDir::new("rotate");
    let pair = PairKey::new("alice", "github");
    {
        let store = open(&dir, KEY1).await;
        TokenVault::put(
            &store,
            &pair,
            record("old-key-access", Some("old-key-refresh")),
        )
        .await
        .expect("saved");
        store.close().await;
    }
    {
        let wrong = open(&dir, KEY2).await;
        let err = TokenVault::get(&wrong, &pair)
            .await
            .expect_err("cannot open");
        assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
        assert!(err.to_string().contains("k1"), "{err}");
        assert!(!err.to_string().contains("old-key"), "{err}");
        wrong.close().await;
    }
    let rotated = open(&dir, &format!("{KEY2},{KEY1}")).await;
    let read = TokenVault::get(&rotated, &pair)
        .await
        .expect("read")
        .expect("kept");
    assert_eq!(read.access_token, Secret::new("old-key-access"));
    TokenVault::put(&rotated, &pair, read)
        .await
        .expect("re-sealed");
    rotated.close().await;
    let only_new = open(&dir, KEY2).await;
    assert!(
        TokenVault::get(&only_new, &pair)
            .await
            .expect("read")
            .is_some()
    );
}

#[tokio::test]
async fn registrations_keep_their_secret_sealed_and_per_issuer() {
    let dir = TempDir::new("registrations");
    let store = open(&dir, KEY1).await;
    let server = ServerName::new("github");
    let registration = RegistrationRecord {
        client_id: "dyn-client-77".into(),
        client_secret: Some(Secret::new("cs-plaintext-client-secret")),
        auth_method: TokenEndpointAuthMethod::ClientSecretBasic,
        source: ClientSource::Dynamic,
        redirect_uris: vec!["http://127.0.0.1:8080/oauth/callback".into()],
        endpoints: Endpoints {
            authorization_endpoint: "https://as.example/auth".into(),
            token_endpoint: "https://as.example/token".into(),
            registration_endpoint: Some("https://as.example/reg".into()),
            issuer: Some("https://as.example".into()),
            iss_parameter_supported: true,
        },
        registered_at: Timestamp::from_millis(1),
    };
    RegistrationStore::put(&store, &server, "https://as.example", registration.clone())
        .await
        .expect("saved");
    let read = RegistrationStore::get(&store, &server, "https://as.example")
        .await
        .expect("read")
        .expect("present");
    assert_eq!(read, registration);
    assert!(
        RegistrationStore::get(&store, &server, "https://other.example")
            .await
            .expect("read")
            .is_none()
    );
    store.close().await;
    assert!(!contains(&dir.all_bytes(), "cs-plaintext-client-secret"));
}

#[tokio::test]
async fn tool_lists_survive_a_restart() {
    let dir = TempDir::new("tools");
    let pair = PairKey::new("alice", "github");
    let tools = CachedTools {
        tools: vec![Tool::new(
            "search",
            serde_json::json!({"type": "object", "properties": {"q": {"type": "string"}}}),
        )]
        .into(),
        fetched_at: Timestamp::from_millis(42),
    };
    {
        let store = open(&dir, KEY1).await;
        store.save(&pair, &tools).await.expect("saved");
        store.close().await;
    }
    let store = open(&dir, KEY1).await;
    assert_eq!(store.load(&pair).await.expect("read"), Some(tools));
    store.remove(&pair).await.expect("removed");
    assert_eq!(store.load(&pair).await.expect("read"), None);
}

#[tokio::test]
async fn bad_storage_urls_are_refused_clearly() {
    for (url, needle) in [
        ("postgres://x", "sqlite://"),
        ("sqlite://", "names no file"),
        ("/tmp/x.db", "sqlite://"),
    ] {
        let err = SqlStore::open(url, Keyring::parse(KEY1).expect("valid"))
            .await
            .expect_err(url)
            .to_string();
        assert!(err.contains(needle), "{url}: {err}");
    }
    let _ = Path::new("unused");
}
