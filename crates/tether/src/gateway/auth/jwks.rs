//! The host's public signing keys (JWKS), fetched over HTTP and cached.
//!
//! Keys are fetched again when the cache is older than its TTL, or when a token names a key id
//! the cache does not hold (key rotation) — but never more often than the minimum refresh
//! interval, so made-up key ids cannot turn Tether into a load generator against the host. One
//! fetch at a time: concurrent requests wait for it instead of fetching too. When a fetch fails
//! the keys already held keep being used.

use std::fmt;
use std::time::Duration;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use tokio::sync::Mutex;
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
    state: Mutex<CacheState>,
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
        })
    }

    /// The key for a token with this header's `kid` and `alg`.
    pub(crate) async fn key(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<DecodingKey, AuthError> {
        // Held across the fetch on purpose: that makes the fetch single-flight.
        let mut state = self.state.lock().await;
        let now = Instant::now();
        let fresh = state
            .fetched_at
            .is_some_and(|at| now.duration_since(at) < self.ttl);
        let found = select(&state.keys, kid, alg);
        if fresh && let Some(key) = found {
            return Ok(key);
        }
        let may_fetch = state
            .last_attempt
            .is_none_or(|at| now.duration_since(at) >= self.min_refresh);
        if may_fetch {
            state.last_attempt = Some(now);
            match self.fetch().await {
                Ok(keys) => {
                    state.keys = keys;
                    state.fetched_at = Some(now);
                }
                Err(reason) => {
                    tracing::warn!(url = %self.url, reason, "could not fetch the host's JWKS");
                    if state.keys.is_empty() {
                        return Err(AuthError::KeysUnavailable);
                    }
                }
            }
        }
        select(&state.keys, kid, alg).ok_or(AuthError::Invalid)
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
