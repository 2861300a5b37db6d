//! Verification of one host token: signature, algorithm, `exp`/`nbf`, `iss`, `aud`, `sub`.

use std::fmt;
use std::time::SystemTime;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tether_core::{Timestamp, UserId};

use super::UserGroups;
use super::config::HostAuthConfig;
use super::error::{AuthConfigError, AuthError};
use super::jwks::JwksCache;
use super::verified::VerifiedTokens;

/// The longest `sub` accepted: user ids end up in map keys, logs and the operator page.
const MAX_SUBJECT_LEN: usize = 256;
/// Below this an HS256 secret can be brute-forced offline from any token.
const MIN_SECRET_LEN: usize = 32;

/// Checks host tokens. Build it once and share it (it holds the JWKS cache).
pub struct HostAuth {
    issuer: String,
    audience: String,
    leeway_secs: u64,
    hs256: Option<DecodingKey>,
    jwks: Option<JwksCache>,
    verified: VerifiedTokens,
    /// The claim with the user's groups.
    groups_claim: String,
}

impl fmt::Debug for HostAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the secret.
        f.debug_struct("HostAuth")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("hs256", &self.hs256.is_some())
            .field("jwks", &self.jwks)
            .finish()
    }
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    /// Checked by `jsonwebtoken`; read here only to know how long the verification holds.
    #[serde(default)]
    exp: Option<serde_json::Value>,
    /// The others, among them the groups claim.
    #[serde(flatten)]
    rest: std::collections::HashMap<String, serde_json::Value>,
}

/// Unix seconds, the unit of `exp`.
fn unix_now() -> u64 {
    Timestamp::from_system_time(SystemTime::now()).as_millis() / 1000
}

impl HostAuth {
    /// Reads the HS256 secret from the environment variable the configuration names.
    pub fn from_config(config: &HostAuthConfig) -> Result<Self, AuthConfigError> {
        let secret = match &config.hs256_secret_env {
            Some(var) => {
                Some(std::env::var(var).map_err(|_| AuthConfigError::MissingEnv(var.clone()))?)
            }
            None => None,
        };
        let var = config.hs256_secret_env.clone().unwrap_or_default();
        Self::build(config, secret.as_deref().map(str::as_bytes), &var)
    }

    /// Like [`Self::from_config`] with the HS256 secret given directly (tests, embedding).
    pub fn with_hs256_secret(
        config: &HostAuthConfig,
        secret: &[u8],
    ) -> Result<Self, AuthConfigError> {
        Self::build(config, Some(secret), "the given secret")
    }

    fn build(
        config: &HostAuthConfig,
        secret: Option<&[u8]>,
        secret_name: &str,
    ) -> Result<Self, AuthConfigError> {
        if config.issuer.trim().is_empty() {
            return Err(AuthConfigError::Empty("issuer"));
        }
        if config.audience.trim().is_empty() {
            return Err(AuthConfigError::Empty("audience"));
        }
        let hs256 = match secret {
            Some(s) if s.len() < MIN_SECRET_LEN => {
                return Err(AuthConfigError::WeakSecret(secret_name.to_owned()));
            }
            Some(s) => Some(DecodingKey::from_secret(s)),
            None => None,
        };
        let jwks = match &config.jwks_url {
            Some(url) => Some(JwksCache::new(
                url,
                config.jwks_ttl,
                config.jwks_min_refresh,
            )?),
            None => None,
        };
        if hs256.is_none() && jwks.is_none() {
            return Err(AuthConfigError::NoKeySource);
        }
        Ok(Self {
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            leeway_secs: config.leeway.as_secs(),
            hs256,
            jwks,
            verified: VerifiedTokens::default(),
            groups_claim: config.groups_claim.clone(),
        })
    }

    /// The user the token speaks for, if the token is acceptable. A token verified within the
    /// last minute and not expired since is answered from [`VerifiedTokens`].
    pub async fn verify(&self, token: &str) -> Result<UserId, AuthError> {
        Ok(self.verify_caller(token).await?.0)
    }

    /// The user the token speaks for and the groups it gives them.
    pub async fn verify_caller(&self, token: &str) -> Result<(UserId, UserGroups), AuthError> {
        let now = unix_now();
        if let Some(caller) = self.verified.get(token, now) {
            return Ok(caller);
        }
        let (caller, exp) = self.verify_signed(token).await?;
        if let Some(exp) = exp {
            self.verified.insert(
                token,
                caller.clone(),
                exp.saturating_add(self.leeway_secs),
                now,
            );
        }
        Ok(caller)
    }

    /// The full check: signature, algorithm and claims. Also the token's `exp`, when it is a
    /// whole number of seconds.
    async fn verify_signed(
        &self,
        token: &str,
    ) -> Result<((UserId, UserGroups), Option<u64>), AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Malformed)?;
        // The algorithm decides the key source, and each source accepts only its own
        // algorithms: an HS256 token is never checked against a public key (the classic
        // algorithm-confusion attack) and an RS256/ES256 token never against the secret.
        let key = match header.alg {
            Algorithm::HS256 => self.hs256.clone().ok_or(AuthError::Invalid)?,
            Algorithm::RS256 | Algorithm::ES256 => {
                let jwks = self.jwks.as_ref().ok_or(AuthError::Invalid)?;
                jwks.key(header.kid.as_deref(), header.alg).await?
            }
            _ => return Err(AuthError::Invalid),
        };
        let mut validation = Validation::new(header.alg);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.validate_nbf = true;
        validation.leeway = self.leeway_secs;
        let data = jsonwebtoken::decode::<Claims>(token, &key, &validation).map_err(|e| match e
            .kind()
        {
            ErrorKind::ExpiredSignature => AuthError::Expired,
            ErrorKind::InvalidToken | ErrorKind::Base64(_) | ErrorKind::Utf8(_) => {
                AuthError::Malformed
            }
            _ => AuthError::Invalid,
        })?;
        let Claims { sub, exp, rest } = data.claims;
        if sub.is_empty() || sub.len() > MAX_SUBJECT_LEN || sub.chars().any(char::is_control) {
            return Err(AuthError::Invalid);
        }
        let groups = UserGroups::from_claim(rest.get(&self.groups_claim));
        Ok((
            (UserId::from(sub), groups),
            exp.as_ref().and_then(serde_json::Value::as_u64),
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::time::{SystemTime, UNIX_EPOCH};

    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn auth() -> HostAuth {
        HostAuth::with_hs256_secret(&HostAuthConfig::new("host", "tether"), SECRET)
            .expect("valid config")
    }

    fn now() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_secs()
    }

    fn token(claims: serde_json::Value) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET),
        )
        .expect("signs")
    }

    #[tokio::test]
    async fn a_good_token_gives_its_subject() {
        let t = token(json!({"sub": "alice", "iss": "host", "aud": "tether", "exp": now() + 60}));
        assert_eq!(auth().verify(&t).await, Ok(UserId::new("alice")));
    }

    #[tokio::test]
    async fn wrong_claims_and_keys_are_refused() {
        let exp = now() + 60;
        for (claims, expected) in [
            (
                json!({"sub": "a", "iss": "host", "aud": "tether", "exp": now() - 3600}),
                AuthError::Expired,
            ),
            (
                json!({"sub": "a", "iss": "other", "aud": "tether", "exp": exp}),
                AuthError::Invalid,
            ),
            (
                json!({"sub": "a", "iss": "host", "aud": "other", "exp": exp}),
                AuthError::Invalid,
            ),
            (
                json!({"iss": "host", "aud": "tether", "exp": exp}),
                AuthError::Invalid,
            ),
            (
                json!({"sub": "", "iss": "host", "aud": "tether", "exp": exp}),
                AuthError::Invalid,
            ),
            (
                json!({"sub": "a", "iss": "host", "aud": "tether"}),
                AuthError::Invalid,
            ),
        ] {
            assert_eq!(
                auth().verify(&token(claims.clone())).await,
                Err(expected),
                "{claims}"
            );
        }
        let forged = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &json!({"sub": "a", "iss": "host", "aud": "tether", "exp": exp}),
            &EncodingKey::from_secret(b"another secret of thirty-two bytes!"),
        )
        .expect("signs");
        assert_eq!(auth().verify(&forged).await, Err(AuthError::Invalid));
        assert_eq!(auth().verify("not-a-jwt").await, Err(AuthError::Malformed));
    }

    #[tokio::test]
    async fn the_groups_claim_comes_with_the_user_and_is_remembered_with_it() {
        let auth = auth();
        let t = token(
            json!({"sub": "alice", "iss": "host", "aud": "tether", "exp": now() + 60, "groups": ["eng"]}),
        );
        for _ in 0..2 {
            let (user, groups) = auth.verify_caller(&t).await.expect("accepted");
            assert_eq!(user, UserId::new("alice"));
            assert!(groups.contains("eng") && !groups.contains("fin"));
        }
    }

    #[tokio::test]
    async fn a_verified_token_is_remembered_and_only_that_token() {
        let auth = auth();
        let exp = now() + 60;
        let good = token(json!({"sub": "alice", "iss": "host", "aud": "tether", "exp": exp}));
        assert_eq!(auth.verify(&good).await, Ok(UserId::new("alice")));
        assert_eq!(
            auth.verified.get(&good, now()).map(|(user, _)| user),
            Some(UserId::new("alice")),
            "remembered"
        );
        assert_eq!(auth.verify(&good).await, Ok(UserId::new("alice")));
        // The same claims with another signature, and a token cut short: checked in full.
        let (signed, _) = good.rsplit_once('.').expect("three parts");
        let tampered = format!("{signed}.AAAA");
        assert_eq!(auth.verify(&tampered).await, Err(AuthError::Invalid));
        assert_eq!(auth.verify(signed).await, Err(AuthError::Malformed));
        assert_eq!(auth.verified.get(&tampered, now()), None);
        // An expired token is never remembered.
        let old = token(json!({"sub": "bob", "iss": "host", "aud": "tether", "exp": now() - 3600}));
        assert_eq!(auth.verify(&old).await, Err(AuthError::Expired));
        assert_eq!(auth.verified.get(&old, now()), None);
    }

    #[test]
    fn weak_or_missing_keys_are_configuration_errors() {
        let config = HostAuthConfig::new("host", "tether");
        assert!(matches!(
            HostAuth::with_hs256_secret(&config, b"short"),
            Err(AuthConfigError::WeakSecret(_))
        ));
        assert!(matches!(
            HostAuth::from_config(&config),
            Err(AuthConfigError::NoKeySource)
        ));
        let mut config = config;
        config.hs256_secret_env = Some("TETHER_TEST_SURELY_UNSET_VARIABLE".to_owned());
        assert!(matches!(
            HostAuth::from_config(&config),
            Err(AuthConfigError::MissingEnv(_))
        ));
    }
}
