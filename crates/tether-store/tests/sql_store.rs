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
        Self(std::env::temp_dir().join(format!(
            "tether-store-{name}-{}-{}",
            std::process::id(),
            nanos()
        )))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

const POSTGRES_ADMIN: &str = "postgres://root@127.0.0.1:5432/postgres";

/// Where a test's store lives: a fresh SQLite file, or a fresh PostgreSQL database.
enum Fixture {
    Sqlite(TempDir),
    Postgres { name: String },
}

impl Fixture {
    async fn sqlite(name: &str) -> Self {
        Self::Sqlite(TempDir::new(name))
    }

    async fn postgres(name: &str) -> Self {
        use sqlx::Connection;
        let name = format!("tether_test_{name}_{}", nanos());
        let mut admin = sqlx::PgConnection::connect(POSTGRES_ADMIN)
            .await
            .expect("PostgreSQL must run on 127.0.0.1:5432 with trust auth");
        sqlx::Executor::execute(&mut admin, format!("CREATE DATABASE {name}").as_str())
            .await
            .expect("create a test database");
        Self::Postgres { name }
    }

    fn url(&self) -> String {
        match self {
            Self::Sqlite(dir) => format!("sqlite://{}", dir.0.join("nested/tether.db").display()),
            Self::Postgres { name } => format!("postgres://root@127.0.0.1:5432/{name}"),
        }
    }

    /// Every byte the database holds for the given tables' secret-bearing columns: for SQLite
    /// the files themselves (database and WAL), for PostgreSQL the raw column values.
    async fn stored_bytes(&self) -> Vec<u8> {
        match self {
            Self::Sqlite(dir) => {
                let mut out = Vec::new();
                for entry in std::fs::read_dir(dir.0.join("nested"))
                    .expect("dir exists")
                    .flatten()
                {
                    out.extend(std::fs::read(entry.path()).unwrap_or_default());
                }
                out
            }
            Self::Postgres { .. } => {
                use sqlx::{Connection, Row};
                let mut conn = sqlx::PgConnection::connect(&self.url())
                    .await
                    .expect("connect");
                let mut out = Vec::new();
                for query in [
                    "SELECT access_token, COALESCE(refresh_token, ''::bytea), convert_to(client_id, 'UTF8') FROM tokens",
                    "SELECT COALESCE(client_secret, ''::bytea), convert_to(record, 'UTF8'), ''::bytea FROM registrations",
                ] {
                    for row in sqlx::query(query)
                        .fetch_all(&mut conn)
                        .await
                        .expect("read raw")
                    {
                        for i in 0..3 {
                            out.extend(row.get::<Vec<u8>, _>(i));
                        }
                    }
                }
                out
            }
        }
    }

    async fn cleanup(self) {
        if let Self::Postgres { name } = &self {
            use sqlx::Connection;
            if let Ok(mut admin) = sqlx::PgConnection::connect(POSTGRES_ADMIN).await {
                let _ = sqlx::Executor::execute(
                    &mut admin,
                    format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str(),
                )
                .await;
            }
        }
    }
}

/// Runs one case against SQLite and against PostgreSQL.
macro_rules! both_backends {
    ($name:ident, $case:ident) => {
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                let fixture = super::Fixture::sqlite(stringify!($name)).await;
                super::$case(&fixture).await;
                fixture.cleanup().await;
            }
            #[tokio::test]
            async fn postgres() {
                let fixture = super::Fixture::postgres(stringify!($name)).await;
                super::$case(&fixture).await;
                fixture.cleanup().await;
            }
        }
    };
}

both_backends!(tokens, tokens_round_trip_and_never_sit_in_storage_in_clear);
both_backends!(
    reject,
    a_rejected_refresh_token_is_removed_only_if_still_current
);
both_backends!(
    reject_race,
    removing_a_rejected_refresh_token_never_clears_a_successor_saved_meanwhile
);
both_backends!(
    replace,
    a_refresh_save_replaces_only_the_record_it_refreshed
);
both_backends!(
    rotate,
    keys_rotate_and_a_wrong_key_is_a_clear_error_that_loses_nothing
);
both_backends!(
    registrations,
    registrations_keep_their_secret_sealed_and_per_issuer
);
both_backends!(tools, tool_lists_survive_a_restart);
both_backends!(
    catalog,
    the_catalog_keeps_entries_and_bumps_its_version_on_every_write
);

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

async fn open(fixture: &Fixture, keys: &str) -> SqlStore {
    SqlStore::open(&fixture.url(), Keyring::parse(keys).expect("valid keys"))
        .await
        .expect("opens")
}

async fn tokens_round_trip_and_never_sit_in_storage_in_clear(dir: &Fixture) {
    let store = open(dir, KEY1).await;
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
    let bytes = dir.stored_bytes().await;
    assert!(!bytes.is_empty());
    assert!(!contains(&bytes, access), "access token in clear on disk");
    assert!(!contains(&bytes, refresh), "refresh token in clear on disk");
    assert!(
        contains(&bytes, "client-1"),
        "non-secret columns are there (sanity of the scan)"
    );
}

async fn a_rejected_refresh_token_is_removed_only_if_still_current(dir: &Fixture) {
    let store = open(dir, KEY1).await;
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

async fn keys_rotate_and_a_wrong_key_is_a_clear_error_that_loses_nothing(dir: &Fixture) {
    let pair = PairKey::new("alice", "github");
    {
        let store = open(dir, KEY1).await;
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
        let wrong = open(dir, KEY2).await;
        let err = TokenVault::get(&wrong, &pair)
            .await
            .expect_err("cannot open");
        assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
        assert!(err.to_string().contains("k1"), "{err}");
        assert!(!err.to_string().contains("old-key"), "{err}");
        wrong.close().await;
    }
    let rotated = open(dir, &format!("{KEY2},{KEY1}")).await;
    let read = TokenVault::get(&rotated, &pair)
        .await
        .expect("read")
        .expect("kept");
    assert_eq!(read.access_token, Secret::new("old-key-access"));
    TokenVault::put(&rotated, &pair, read)
        .await
        .expect("re-sealed");
    rotated.close().await;
    let only_new = open(dir, KEY2).await;
    assert!(
        TokenVault::get(&only_new, &pair)
            .await
            .expect("read")
            .is_some()
    );
}

async fn registrations_keep_their_secret_sealed_and_per_issuer(dir: &Fixture) {
    let store = open(dir, KEY1).await;
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
    // Two replicas registering at once: the first stored registration wins for both.
    let first = RegistrationRecord {
        client_id: "replica-one-client".into(),
        ..registration.clone()
    };
    let second = RegistrationRecord {
        client_id: "replica-two-client".into(),
        client_secret: Some(Secret::new("cs-second-client-secret")),
        ..registration.clone()
    };
    let issuer = "https://third.example";
    let won = RegistrationStore::insert(&store, &server, issuer, first.clone())
        .await
        .expect("inserted");
    assert_eq!(won, first);
    let lost = RegistrationStore::insert(&store, &server, issuer, second)
        .await
        .expect("inserted");
    assert_eq!(
        lost, first,
        "the second insert returns the first registration"
    );
    assert_eq!(
        RegistrationStore::get(&store, &server, issuer)
            .await
            .expect("read"),
        Some(first)
    );
    store.close().await;
    assert!(!contains(
        &dir.stored_bytes().await,
        "cs-plaintext-client-secret"
    ));
}

async fn the_catalog_keeps_entries_and_bumps_its_version_on_every_write(dir: &Fixture) {
    use tether_store::sql::{CatalogEntry, CatalogWrite};
    let store = open(dir, KEY1).await;
    let now = Timestamp::from_millis(7);
    let entry = |name: &str, url: &str| CatalogEntry {
        name: name.to_owned(),
        definition: format!(r#"{{"name":"{name}","url":"{url}"}}"#),
        owner: None,
    };
    let (v0, empty) = store.catalog().await.expect("read");
    assert!(empty.is_empty());
    let a = entry("a", "https://a.example/mcp");
    assert_eq!(
        store.catalog_put(&a, true, now).await.expect("create"),
        CatalogWrite::Done
    );
    assert_eq!(
        store.catalog_put(&a, true, now).await.expect("create"),
        CatalogWrite::Conflict,
        "a name is created once"
    );
    assert_eq!(
        store
            .catalog_put(&entry("b", "x"), false, now)
            .await
            .expect("update"),
        CatalogWrite::Conflict,
        "no such entry to update"
    );
    let v1 = store.catalog_version().await.expect("version");
    assert!(v1 > v0, "a create bumps the version");
    let a2 = entry("a", "https://a2.example/mcp");
    assert_eq!(
        store.catalog_put(&a2, false, now).await.expect("update"),
        CatalogWrite::Done
    );
    store.close().await;

    // Across a restart.
    let store = open(dir, KEY1).await;
    let (v2, entries) = store.catalog().await.expect("read");
    assert!(v2 > v1, "an update bumps the version");
    assert_eq!(entries, [a2]);
    // Deleting a server forgets its tokens and tool lists for every user, and nothing else.
    for user in ["u1", "u2"] {
        store
            .save(
                &PairKey::new(user, "a"),
                &CachedTools {
                    tools: Vec::new().into(),
                    fetched_at: now,
                },
            )
            .await
            .expect("saved");
    }
    store
        .save(
            &PairKey::new("u1", "other"),
            &CachedTools {
                tools: Vec::new().into(),
                fetched_at: now,
            },
        )
        .await
        .expect("saved");
    assert_eq!(
        store.catalog_delete("a").await.expect("delete"),
        CatalogWrite::Done
    );
    assert_eq!(
        store.catalog_delete("a").await.expect("delete"),
        CatalogWrite::Conflict
    );
    store.forget_server("a").await.expect("forgotten");
    assert_eq!(
        store.load(&PairKey::new("u2", "a")).await.expect("read"),
        None
    );
    assert!(
        store
            .load(&PairKey::new("u1", "other"))
            .await
            .expect("read")
            .is_some()
    );
    let (v3, entries) = store.catalog().await.expect("read");
    assert!(v3 > v2 && entries.is_empty());
}

async fn tool_lists_survive_a_restart(dir: &Fixture) {
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
        let store = open(dir, KEY1).await;
        store.save(&pair, &tools).await.expect("saved");
        store.close().await;
    }
    let store = open(dir, KEY1).await;
    assert_eq!(store.load(&pair).await.expect("read"), Some(tools));
    store.remove(&pair).await.expect("removed");
    assert_eq!(store.load(&pair).await.expect("read"), None);
}

#[tokio::test]
async fn bad_storage_urls_are_refused_clearly() {
    for (url, needle) in [
        ("mysql://x", "sqlite:// or postgres://"),
        ("sqlite://", "names no file"),
        ("/tmp/x.db", "sqlite:// or postgres://"),
    ] {
        let err = SqlStore::open(url, Keyring::parse(KEY1).expect("valid"))
            .await
            .expect_err(url)
            .to_string();
        assert!(err.contains(needle), "{url}: {err}");
    }
    let _ = Path::new("unused");
}

async fn a_refresh_save_replaces_only_the_record_it_refreshed(dir: &Fixture) {
    let store = open(dir, KEY1).await;
    let pair = PairKey::new("alice", "github");
    let first = record("a1", Some("r1"));
    TokenVault::put(&store, &pair, first.clone())
        .await
        .expect("saved");
    let mut refreshed = record("a2", Some("r2"));
    refreshed.obtained_at = Timestamp::from_millis(1_800_000_060_000);

    let stale = Timestamp::from_millis(1_700_000_000_000);
    assert!(
        !TokenVault::replace(&store, &pair, stale, refreshed.clone())
            .await
            .expect("ok"),
        "not over a record it did not refresh"
    );
    assert_eq!(
        TokenVault::get(&store, &pair).await.expect("read"),
        Some(first.clone())
    );
    assert!(
        TokenVault::replace(&store, &pair, first.obtained_at, refreshed.clone())
            .await
            .expect("ok")
    );
    assert_eq!(
        TokenVault::get(&store, &pair).await.expect("read"),
        Some(refreshed.clone())
    );

    // Deleted (the user disconnected) while a second refresh was in flight: the delete wins.
    TokenVault::delete(&store, &pair).await.expect("deleted");
    let mut late = record("a3", Some("r3"));
    late.obtained_at = Timestamp::from_millis(1_800_000_120_000);
    assert!(
        !TokenVault::replace(&store, &pair, refreshed.obtained_at, late)
            .await
            .expect("ok")
    );
    assert!(
        TokenVault::get(&store, &pair)
            .await
            .expect("read")
            .is_none()
    );
}

/// A refresh token rejected at the AS is removed while another replica saves its successor:
/// whatever the interleaving, the successor survives. 200 rounds (bounded) to meet the race.
async fn removing_a_rejected_refresh_token_never_clears_a_successor_saved_meanwhile(dir: &Fixture) {
    let store = std::sync::Arc::new(open(dir, KEY1).await);
    let pair = PairKey::new("alice", "github");
    for round in 0..200 {
        let old = format!("r{round}-old");
        let new = format!("r{round}-new");
        TokenVault::put(&*store, &pair, record("a", Some(&old)))
            .await
            .expect("saved");
        let remove = {
            let (store, pair) = (store.clone(), pair.clone());
            tokio::spawn(async move {
                store
                    .remove_refresh_token(&pair, &Secret::new(old))
                    .await
                    .expect("remove")
            })
        };
        TokenVault::put(&*store, &pair, record("a", Some(&new)))
            .await
            .expect("saved");
        remove.await.expect("joined");
        let left = TokenVault::get(&*store, &pair)
            .await
            .expect("read")
            .expect("present");
        assert_eq!(
            left.refresh_token,
            Some(Secret::new(new)),
            "round {round}: the successor was cleared"
        );
    }
}
