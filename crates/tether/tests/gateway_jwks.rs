//! Host tokens signed with ES256, checked against keys from a JWKS URL served on 127.0.0.1.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::routing::get;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use tether::gateway::auth::{AuthError, HostAuth, HostAuthConfig};
use tether_core::UserId;
use tokio::net::TcpListener;

/// A P-256 test key (PKCS#8 DER), generated for these tests only, and its public point.
const PRIVATE_KEY: &str = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgg5nKrgO5wwgG58z8gDqJpTbfu6Bmse7RMDz5/VzoTQqhRANCAAS3MTMWfy8wUtFbhHI75N2NIiAOXw5hO+mMn/sWDzjTCYa6SK3Ni0rwCD3ZXL8d2TSi9HyXiBoTMS5b/h0OZDo7";
const X: &str = "tzEzFn8vMFLRW4RyO-TdjSIgDl8OYTvpjJ_7Fg840wk";
const Y: &str = "hrpIrc2LSvAIPdlcvx3ZNKL0fJeIGhMxLlv-HQ5kOjs";

fn es256(kid: &str, sub: &str) -> String {
    let der = base64::engine::general_purpose::STANDARD
        .decode(PRIVATE_KEY)
        .expect("test key is base64");
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid.to_owned());
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
        + 600;
    jsonwebtoken::encode(
        &header,
        &json!({"sub": sub, "iss": "https://host.test", "aud": "tether", "exp": exp}),
        &EncodingKey::from_ec_der(&der),
    )
    .expect("signs")
}

/// Serves the public key as a JWKS and counts the fetches.
async fn jwks_server() -> (String, Arc<AtomicUsize>) {
    let fetches = Arc::new(AtomicUsize::new(0));
    let counter = fetches.clone();
    let router = Router::new().route(
        "/jwks",
        get(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            async move {
                axum::Json(json!({"keys": [
                    {"kty": "EC", "crv": "P-256", "kid": "k1", "use": "sig", "alg": "ES256", "x": X, "y": Y}
                ]}))
            }
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (format!("http://{addr}/jwks"), fetches)
}

fn config(url: &str) -> HostAuthConfig {
    let mut config = HostAuthConfig::new("https://host.test", "tether");
    config.jwks_url = Some(url.to_owned());
    config.jwks_min_refresh = Duration::from_secs(60);
    config
}

#[tokio::test]
async fn es256_tokens_are_checked_with_the_hosts_published_keys() {
    let (url, fetches) = jwks_server().await;
    let auth = HostAuth::from_config(&config(&url)).expect("valid config");

    assert_eq!(
        auth.verify(&es256("k1", "alice")).await,
        Ok(UserId::new("alice"))
    );
    assert_eq!(
        auth.verify(&es256("k1", "bob")).await,
        Ok(UserId::new("bob"))
    );
    assert_eq!(fetches.load(Ordering::SeqCst), 1, "keys are cached");

    // An unknown key id is refused, and made-up ids do not trigger a fetch each.
    for _ in 0..5 {
        assert_eq!(
            auth.verify(&es256("k2", "alice")).await,
            Err(AuthError::Invalid)
        );
    }
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        1,
        "refetches are rate limited"
    );

    // With no HS256 secret configured, an HS256 token is never accepted (algorithm confusion).
    let hs = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub": "mallory", "iss": "https://host.test", "aud": "tether", "exp": 4_000_000_000u64}),
        &EncodingKey::from_secret(X.as_bytes()),
    )
    .expect("signs");
    assert_eq!(auth.verify(&hs).await, Err(AuthError::Invalid));
}

#[tokio::test]
async fn an_unreachable_key_server_is_unavailable_not_unauthorized() {
    // A port nobody listens on: bind, note the port, close.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    drop(listener);
    let auth = HostAuth::from_config(&config(&format!("http://{addr}/jwks"))).expect("valid");
    assert_eq!(
        auth.verify(&es256("k1", "alice")).await,
        Err(AuthError::KeysUnavailable)
    );
}

/// Serves the public key as a JWKS, counting fetches; every fetch after the first answers only
/// after `slow` (a key host under load).
async fn slow_jwks_server(slow: Duration) -> (String, Arc<AtomicUsize>) {
    let fetches = Arc::new(AtomicUsize::new(0));
    let counter = fetches.clone();
    let router = Router::new().route(
        "/jwks",
        get(move || {
            let earlier = counter.fetch_add(1, Ordering::SeqCst);
            async move {
                if earlier > 0 {
                    tokio::time::sleep(slow).await;
                }
                axum::Json(json!({"keys": [
                    {"kty": "EC", "crv": "P-256", "kid": "k1", "use": "sig", "alg": "ES256", "x": X, "y": Y}
                ]}))
            }
        }),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (format!("http://{addr}/jwks"), fetches)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_fetch_for_an_unknown_key_does_not_hold_up_tokens_of_known_keys() {
    const MIN_REFRESH: Duration = Duration::from_millis(500);
    const BOUND: Duration = Duration::from_millis(500);
    let (url, fetches) = slow_jwks_server(Duration::from_secs(3)).await;
    let mut config = config(&url);
    config.jwks_min_refresh = MIN_REFRESH;
    let auth = Arc::new(HostAuth::from_config(&config).expect("valid config"));
    assert_eq!(
        auth.verify(&es256("k1", "alice")).await,
        Ok(UserId::new("alice"))
    );
    tokio::time::sleep(MIN_REFRESH + Duration::from_millis(100)).await;

    // A token naming a key the cache does not hold starts a (slow) fetch…
    let unknown = tokio::spawn({
        let auth = auth.clone();
        async move { auth.verify(&es256("rotated", "mallory")).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        2,
        "the refetch is in flight"
    );

    // …while tokens of the known key verify at once.
    for user in ["alice", "bob", "carol"] {
        let verified = tokio::time::timeout(BOUND, auth.verify(&es256("k1", user)))
            .await
            .unwrap_or_else(|_| panic!("{user}'s token waited behind the JWKS fetch"));
        assert_eq!(verified, Ok(UserId::new(user)));
    }

    let refused = tokio::time::timeout(Duration::from_secs(15), unknown)
        .await
        .expect("the fetch ends within the fetch timeout")
        .expect("the task ran");
    assert_eq!(refused, Err(AuthError::Invalid));

    // Unknown ids right after a fetch are refused at once, without fetching again.
    let started = std::time::Instant::now();
    for i in 0..20 {
        assert_eq!(
            auth.verify(&es256(&format!("made-up-{i}"), "mallory"))
                .await,
            Err(AuthError::Invalid)
        );
    }
    assert!(started.elapsed() < BOUND, "{:?}", started.elapsed());
    assert_eq!(fetches.load(Ordering::SeqCst), 2, "one fetch per interval");
}
