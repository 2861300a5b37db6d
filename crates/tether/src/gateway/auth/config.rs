//! The `[gateway.host_auth]` table: which tokens of the host platform Tether accepts.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How host tokens are checked. At least one of `hs256_secret_env` and `jwks_url` is needed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostAuthConfig {
    /// The required `iss` claim.
    pub issuer: String,
    /// The required `aud` claim (the token's `aud` must contain it).
    pub audience: String,
    /// Name of the environment variable holding the HS256 secret (at least 32 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hs256_secret_env: Option<String>,
    /// Where the host publishes its RS256/ES256 public keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_url: Option<String>,
    /// Clock skew allowed on `exp` and `nbf`.
    #[serde(default = "default_leeway", with = "humantime_serde")]
    pub leeway: Duration,
    /// How long fetched JWKS keys are used before they are fetched again.
    #[serde(default = "default_jwks_ttl", with = "humantime_serde")]
    pub jwks_ttl: Duration,
    /// The shortest time between two JWKS fetches, so that tokens with made-up key ids cannot
    /// make Tether hammer the host's key endpoint.
    #[serde(default = "default_jwks_min_refresh", with = "humantime_serde")]
    pub jwks_min_refresh: Duration,
    /// The claim listing the user's groups (or roles): an array of strings, or one string of
    /// space-separated names. Servers with `groups` are for members of one of them only.
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
}

fn default_groups_claim() -> String {
    "groups".to_owned()
}

fn default_leeway() -> Duration {
    Duration::from_secs(30)
}

fn default_jwks_ttl() -> Duration {
    Duration::from_secs(600)
}

fn default_jwks_min_refresh() -> Duration {
    Duration::from_secs(30)
}

impl HostAuthConfig {
    /// A configuration with the defaults and neither key source; set one before use.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            hs256_secret_env: None,
            jwks_url: None,
            leeway: default_leeway(),
            jwks_ttl: default_jwks_ttl(),
            jwks_min_refresh: default_jwks_min_refresh(),
            groups_claim: default_groups_claim(),
        }
    }
}
