//! `SqlStore::rekey` (behind `tether rekey`) on SQLite and PostgreSQL: every secret re-sealed
//! under the current key so the old key can go, idempotent, never overwriting a token a replica
//! wrote meanwhile, and leaving values no key opens untouched.

use std::sync::Arc;

use tether_core::{PairKey, ServerName, Timestamp};
use tether_oauth::Secret;
use tether_oauth::store::{
    ClientSource, Endpoints, RegistrationRecord, RegistrationStore, TokenEndpointAuthMethod,
    TokenRecord, TokenVault,
};
use tether_store::crypto::Keyring;
use tether_store::sql::{RekeyReport, SqlStore};

const KEY0: &str = "k0:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
const KEY1: &str = "k1:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
const KEY2: &str = "k2:AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";

fn rotated() -> String {
    format!("{KEY2},{KEY1}")
}

/// A fresh database: a SQLite file in a temporary folder, or a PostgreSQL database.
async fn database(backend: &str, label: &str) -> String {
    if backend == "postgres" {
        return tether_testkit::services::postgres_database(label)
            .await
            .expect("PostgreSQL on 127.0.0.1:5432");
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!(
        "tether-rekey-{label}-{}-{nanos}",
        std::process::id()
    ));
    format!("sqlite://{}", dir.join("tether.db").display())
}

async fn open(url: &str, keys: &str) -> SqlStore {
    SqlStore::open(url, Keyring::parse(keys).expect("valid keys"))
        .await
        .expect("opens")
}

fn record(access: &str, refresh: Option<&str>) -> TokenRecord {
    TokenRecord {
        access_token: Secret::new(access),
        expires_at: Some(Timestamp::from_millis(1_900_000_000_000)),
        scopes: vec!["read".into()],
        refresh_token: refresh.map(Secret::new),
        obtained_at: Timestamp::from_millis(1_800_000_000_000),
        issuer: "https://as.example".into(),
        client_id: "client-1".into(),
        resource: "https://mcp.example/mcp".into(),
    }
}

fn registration(secret: Option<&str>) -> RegistrationRecord {
    RegistrationRecord {
        client_id: "dyn-client".into(),
        client_secret: secret.map(Secret::new),
        auth_method: TokenEndpointAuthMethod::ClientSecretBasic,
        source: ClientSource::Dynamic,
        redirect_uris: vec!["http://127.0.0.1:8080/oauth/callback".into()],
        endpoints: Endpoints {
            authorization_endpoint: "https://as.example/auth".into(),
            token_endpoint: "https://as.example/token".into(),
            registration_endpoint: None,
            issuer: Some("https://as.example".into()),
            iss_parameter_supported: false,
        },
        registered_at: Timestamp::from_millis(1),
    }
}

async fn access_token(store: &SqlStore, pair: &PairKey) -> String {
    TokenVault::get(store, pair)
        .await
        .expect("readable")
        .expect("present")
        .access_token
        .expose()
        .to_owned()
}

async fn everything_is_resealed_once_and_the_old_key_can_go(backend: &str) {
    let url = database(backend, "reseal").await;
    let old = open(&url, KEY1).await;
    let pairs: Vec<PairKey> = (0..3)
        .map(|i| PairKey::new(format!("u{i}"), "gh"))
        .collect();
    for (i, pair) in pairs.iter().enumerate() {
        let refresh = (i != 2).then(|| format!("refresh-{i}"));
        TokenVault::put(
            &old,
            pair,
            record(&format!("access-{i}"), refresh.as_deref()),
        )
        .await
        .expect("saved");
    }
    let (gh, linear) = (ServerName::new("gh"), ServerName::new("linear"));
    RegistrationStore::put(&old, &gh, "https://as.example", registration(Some("cs-1")))
        .await
        .expect("saved");
    RegistrationStore::put(&old, &linear, "https://as.example", registration(None))
        .await
        .expect("saved");
    old.close().await;

    let store = open(&url, &rotated()).await;
    let report = store.rekey().await.expect("rekey");
    assert_eq!(
        report,
        RekeyReport {
            resealed: 3 + 2 + 1,
            ..RekeyReport::default()
        }
    );
    assert_eq!(
        store.rekey().await.expect("rekey again"),
        RekeyReport::default(),
        "a second run has nothing to do"
    );
    store.close().await;

    // Only the new key is left: everything still opens.
    let new = open(&url, KEY2).await;
    for (i, pair) in pairs.iter().enumerate() {
        let read = TokenVault::get(&new, pair)
            .await
            .expect("readable")
            .expect("present");
        assert_eq!(read.access_token.expose(), format!("access-{i}"));
        assert_eq!(
            read.refresh_token.as_ref().map(|r| r.expose().to_owned()),
            (i != 2).then(|| format!("refresh-{i}"))
        );
    }
    let read = RegistrationStore::get(&new, &gh, "https://as.example")
        .await
        .expect("readable")
        .expect("present");
    assert_eq!(
        read.client_secret.map(|s| s.expose().to_owned()).as_deref(),
        Some("cs-1")
    );
    new.close().await;
}

async fn a_token_written_during_a_rekey_is_never_replaced_by_an_older_one(backend: &str) {
    const PAIRS: usize = 400;
    let url = database(backend, "concurrent").await;
    let old = open(&url, KEY1).await;
    let pairs: Vec<PairKey> = (0..PAIRS)
        .map(|i| PairKey::new(format!("u{i}"), "gh"))
        .collect();
    for pair in &pairs {
        TokenVault::put(&old, pair, record("gen-1", Some("r-1")))
            .await
            .expect("saved");
    }
    old.close().await;

    // A replica refreshing every pair while the operator's rekey runs.
    let replica = Arc::new(open(&url, &rotated()).await);
    let operator = open(&url, &rotated()).await;
    let writer = {
        let (replica, pairs) = (replica.clone(), pairs.clone());
        tokio::spawn(async move {
            for pair in pairs.iter().rev() {
                TokenVault::put(replica.as_ref(), pair, record("gen-2", Some("r-2")))
                    .await
                    .expect("saved");
            }
        })
    };
    let report = operator.rekey().await.expect("rekey");
    writer.await.expect("the writer finishes");
    assert_eq!(report.unreadable, 0, "{report:?}");
    assert_eq!(report.remaining_under_old_keys, 0, "{report:?}");
    for pair in &pairs {
        assert_eq!(
            access_token(&operator, pair).await,
            "gen-2",
            "{pair}: {report:?}"
        );
    }
    let rest = operator.rekey().await.expect("rekey again");
    assert_eq!(rest, RekeyReport::default());
    operator.close().await;
    replica.close().await;
}

async fn values_no_key_opens_are_counted_and_left_alone(backend: &str) {
    let url = database(backend, "unreadable").await;
    let lost = PairKey::new("u-lost", "gh");
    let kept = PairKey::new("u-kept", "gh");
    let ancient = open(&url, KEY0).await;
    TokenVault::put(&ancient, &lost, record("sealed-with-k0", None))
        .await
        .expect("saved");
    ancient.close().await;
    let old = open(&url, KEY1).await;
    TokenVault::put(&old, &kept, record("sealed-with-k1", None))
        .await
        .expect("saved");
    old.close().await;

    let store = open(&url, &rotated()).await;
    let report = store.rekey().await.expect("rekey");
    assert_eq!(report.resealed, 1, "{report:?}");
    assert_eq!(report.unreadable, 1, "{report:?}");
    assert_eq!(report.remaining_under_old_keys, 1, "{report:?}");
    store.close().await;
    let with_k0 = open(&url, &format!("{KEY2},{KEY0}")).await;
    assert_eq!(
        access_token(&with_k0, &lost).await,
        "sealed-with-k0",
        "untouched"
    );
    assert_eq!(access_token(&with_k0, &kept).await, "sealed-with-k1");
    with_k0.close().await;
}

macro_rules! both_backends {
    ($name:ident, $case:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$case("sqlite").await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$case("postgres").await;
            }
        }
    };
}

both_backends!(reseal, everything_is_resealed_once_and_the_old_key_can_go);
both_backends!(
    concurrent,
    a_token_written_during_a_rekey_is_never_replaced_by_an_older_one
);
both_backends!(unreadable, values_no_key_opens_are_counted_and_left_alone);
