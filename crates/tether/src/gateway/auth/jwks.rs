//! The host's public signing keys (JWKS), fetched over HTTP and cached.
//!
//! Keys are fetched again when the cache is older than its TTL, or when a token names a key id
//! the cache does not hold (key rotation) — but never more often than the minimum refresh
//! interval (counted from the start and from the end of the last fetch), so made-up key ids
//! cannot turn Tether into a load generator against the host: an unknown id within the interval
//! is refused at once. One fetch at a time: requests that need it wait for the one in flight
//! instead of fetching too, while tokens of keys already held are checked without waiting (the
//! cache is never locked across the network). When a fetch fails the keys already held keep
//! being used.

use std::fmt;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use tokio::time::Instant;

use super::error::{AuthConfigError, AuthError};

/// Larger key documents are refused: a key set is a few kilobytes.
const MAX_JWKS_BYTES: usize = 256 * 1024;
/// Keys kept from one document; the rest are ignored.
const MAX_KEYS: usize = 32;
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone)]
struct CachedKey {
    kid: Option<String>,
    alg: Algorithm,
    key: DecodingKey,
}

#[derive(Default)]
struct CacheState {
    keys: Vec<CachedKey>,
    fetched_at: Option<Instant>,
    last_attempt: Option<Instant>,
}

pub(crate) struct JwksCache {
    url: String,
    client: reqwest::Client,
    ttl: Duration,
    min_refresh: Duration,
    /// Never held across an await.
    state: Mutex<CacheState>,
    /// Held for the duration of a fetch: makes it single-flight.
    fetching: tokio::sync::Mutex<()>,
}

impl fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwksCache")
            .field("url", &self.url)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl JwksCache {
    pub(crate) fn new(
        url: &str,
        ttl: Duration,
        min_refresh: Duration,
    ) -> Result<Self, AuthConfigError> {
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(AuthConfigError::BadJwksUrl);
        }
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            // The key URL is configuration; a redirect elsewhere is not something to trust.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|_| AuthConfigError::HttpClient)?;
        Ok(Self {
            url: url.to_owned(),
            client,
            ttl,
            min_refresh,
            state: Mutex::new(CacheState::default()),
            fetching: tokio::sync::Mutex::new(()),
        })
    }

    fn state(&self) -> MutexGuard<'_, CacheState> {
        // Plain field updates only: consistent even after a panic elsewhere.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn may_fetch(&self, state: &CacheState, now: Instant) -> bool {
        state
            .last_attempt
            .is_none_or(|at| now.duration_since(at) >= self.min_refresh)
    }

    /// The key for a token with this header's `kid` and `alg`.
    pub(crate) async fn key(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<DecodingKey, AuthError> {
        let (found, fresh, may_fetch) = {
            let state = self.state();
            let now = Instant::now();
            let fresh = state
                .fetched_at
                .is_some_and(|at| now.duration_since(at) < self.ttl);
            (
                select(&state.keys, kid, alg),
                fresh,
                self.may_fetch(&state, now),
            )
        };
        match found {
            Some(key) if fresh => return Ok(key),
            // A known key past its TTL: one request refreshes the set, the others go on
            // with the key they have rather than wait.
            Some(key) => {
                if !may_fetch {
                    return Ok(key);
                }
                let Ok(_fetching) = self.fetching.try_lock() else {
                    return Ok(key);
                };
                self.refresh().await;
            }
            None => {
                // Waiting is right when a fetch is in flight: it may bring this very key.
                let in_flight = self.fetching.try_lock().is_err();
                if !may_fetch && !in_flight {
                    return self.held(kid, alg);
                }
                let _fetching = self.fetching.lock().await;
                if self.may_fetch(&self.state(), Instant::now()) {
                    self.refresh().await;
                }
            }
        }
        self.held(kid, alg)
    }

    /// The key from the keys held now: refused when they do not have it, unavailable when
    /// there are none (the host's key server never answered).
    fn held(&self, kid: Option<&str>, alg: Algorithm) -> Result<DecodingKey, AuthError> {
        let state = self.state();
        if state.keys.is_empty() {
            return Err(AuthError::KeysUnavailable);
        }
        select(&state.keys, kid, alg).ok_or(AuthError::Invalid)
    }

    /// Fetches the key set (the caller holds `fetching`) and keeps it when it is usable.
    async fn refresh(&self) {
        self.state().last_attempt = Some(Instant::now());
        let fetched = self.fetch().await;
        let mut state = self.state();
        let now = Instant::now();
        // A slow fetch must not leave the interval already run out: count it from the end too.
        state.last_attempt = Some(now);
        match fetched {
            Ok(keys) => {
                state.keys = keys;
                state.fetched_at = Some(now);
            }
            Err(reason) => {
                tracing::warn!(url = %self.url, reason, "could not fetch the host's JWKS");
            }
        }
    }

    async fn fetch(&self) -> Result<Vec<CachedKey>, &'static str> {
        let mut response = self
            .client
            .get(&self.url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|_| "request failed")?;
        if !response.status().is_success() {
            return Err("unexpected HTTP status");
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|_| "read failed")? {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err("document too large");
            }
            body.extend_from_slice(&chunk);
        }
        parse(&body)
    }
}

/// Parses a JWKS document, keeping only the keys usable for RS256 or ES256 signatures. Keys
/// of other types are skipped one by one rather than failing the whole set (hosts publish
/// encryption keys beside signing keys).
fn parse(body: &[u8]) -> Result<Vec<CachedKey>, &'static str> {
    #[derive(serde::Deserialize)]
    struct Raw {
        keys: Vec<serde_json::Value>,
    }
    let raw: Raw = serde_json::from_slice(body).map_err(|_| "not a JWKS document")?;
    let keys = raw
        .keys
        .into_iter()
        .filter_map(|v| serde_json::from_value::<Jwk>(v).ok())
        .filter_map(|jwk| usable(&jwk))
        .take(MAX_KEYS)
        .collect();
    Ok(keys)
}

fn usable(jwk: &Jwk) -> Option<CachedKey> {
    if matches!(
        jwk.common.public_key_use,
        Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
    ) {
        return None;
    }
    // The key type decides the algorithm; a declared `alg` must agree with it. Symmetric
    // ("oct") keys are never taken from a JWKS: the document is public.
    let alg = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => Algorithm::ES256,
        _ => return None,
    };
    let declared_ok = match jwk.common.key_algorithm {
        None => true,
        Some(KeyAlgorithm::RS256) => alg == Algorithm::RS256,
        Some(KeyAlgorithm::ES256) => alg == Algorithm::ES256,
        Some(_) => false,
    };
    if !declared_ok {
        return None;
    }
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some(CachedKey {
        kid: jwk.common.key_id.clone(),
        alg,
        key,
    })
}

/// The key with this id and algorithm; without an id, the only key of the algorithm.
fn select(keys: &[CachedKey], kid: Option<&str>, alg: Algorithm) -> Option<DecodingKey> {
    let mut candidates = keys.iter().filter(|k| k.alg == alg);
    match kid {
        Some(kid) => candidates
            .find(|k| k.kid.as_deref() == Some(kid))
            .map(|k| k.key.clone()),
        None => {
            let first = candidates.next()?;
            // Ambiguous without a key id: refuse rather than guess.
            candidates.next().is_none().then(|| first.key.clone())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_signature_keys_of_the_supported_kinds_are_kept() {
        let doc = serde_json::json!({"keys": [
            {"kty": "oct", "k": "c2VjcmV0", "kid": "sym"},
            {"kty": "EC", "crv": "P-256", "kid": "ec", "use": "sig",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
             "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty": "EC", "crv": "P-256", "kid": "enc", "use": "enc",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
             "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty": "EC", "crv": "P-256", "kid": "lying", "alg": "HS256",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
             "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty": "weird"}
        ]});
        let keys = parse(doc.to_string().as_bytes()).expect("parses");
        let kids: Vec<_> = keys.iter().map(|k| k.kid.as_deref()).collect();
        assert_eq!(kids, [Some("ec")]);
        assert!(select(&keys, Some("ec"), Algorithm::ES256).is_some());
        assert!(select(&keys, None, Algorithm::ES256).is_some());
        assert!(select(&keys, Some("ec"), Algorithm::RS256).is_none());
        assert!(select(&keys, Some("sym"), Algorithm::ES256).is_none());
    }
}
