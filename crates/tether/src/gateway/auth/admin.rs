//! The operator credential for `/status`: a bearer token, or HTTP Basic user and password,
//! read from the environment. Compared in constant time.

use std::fmt;

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::error::AuthConfigError;
use crate::gateway::config::AdminConfig;

/// Who may read the operator page; with nothing configured, nobody.
#[derive(Clone, Default)]
pub struct AdminCredentials {
    token: Option<String>,
    basic: Option<(String, String)>,
}

impl fmt::Debug for AdminCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminCredentials")
            .field("token", &self.token.is_some())
            .field("basic_user", &self.basic.as_ref().map(|(u, _)| u))
            .finish()
    }
}

impl AdminCredentials {
    /// Reads the secrets named by the configuration from the environment.
    pub fn from_config(config: &AdminConfig) -> Result<Self, AuthConfigError> {
        let read = |var: &String| {
            std::env::var(var)
                .ok()
                .filter(|v| !v.is_empty())
                .ok_or_else(|| AuthConfigError::MissingEnv(var.clone()))
        };
        let token = config.token_env.as_ref().map(read).transpose()?;
        let basic = match (&config.basic_user, &config.password_env) {
            (Some(user), Some(var)) => Some((user.clone(), read(var)?)),
            (None, None) => None,
            _ => {
                return Err(AuthConfigError::Empty(
                    "admin.basic_user / admin.password_env",
                ));
            }
        };
        Ok(Self { token, basic })
    }

    /// Credentials given directly (tests, embedding).
    pub fn new(token: Option<String>, basic: Option<(String, String)>) -> Self {
        Self { token, basic }
    }

    pub fn is_configured(&self) -> bool {
        self.token.is_some() || self.basic.is_some()
    }

    /// The token the admin page's forms carry against cross-site requests: derived from the
    /// credential (so every replica with it agrees, and it changes with it), never the
    /// credential itself. `None` when no credential is configured.
    pub fn form_token(&self) -> Option<String> {
        use sha2::{Digest, Sha256};
        if !self.is_configured() {
            return None;
        }
        let mut hash = Sha256::new();
        hash.update(b"tether admin form token\0");
        hash.update(self.token.as_deref().unwrap_or_default().as_bytes());
        hash.update(b"\0");
        if let Some((user, password)) = &self.basic {
            hash.update(user.as_bytes());
            hash.update(b"\0");
            hash.update(password.as_bytes());
        }
        Some(hash.finalize().iter().map(|b| format!("{b:02x}")).collect())
    }

    /// Whether `given` is the form token, compared in constant time.
    pub fn accepts_form_token(&self, given: &str) -> bool {
        self.form_token()
            .is_some_and(|token| constant_time_eq(token.as_bytes(), given.as_bytes()))
    }

    /// Whether the request's Authorization header carries a configured credential.
    pub fn allows(&self, headers: &HeaderMap) -> bool {
        let Some(value) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
            return false;
        };
        let Some((scheme, rest)) = value.trim().split_once(' ') else {
            return false;
        };
        let rest = rest.trim();
        if scheme.eq_ignore_ascii_case("bearer") {
            return self
                .token
                .as_ref()
                .is_some_and(|t| constant_time_eq(t.as_bytes(), rest.as_bytes()));
        }
        if scheme.eq_ignore_ascii_case("basic") {
            let Some((user, password)) = &self.basic else {
                return false;
            };
            let Ok(decoded) = STANDARD.decode(rest) else {
                return false;
            };
            let expected = format!("{user}:{password}");
            return constant_time_eq(expected.as_bytes(), &decoded);
        }
        false
    }
}

/// Equal without an early exit on the first differing byte (the length is not secret).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            AUTHORIZATION,
            HeaderValue::from_str(value).expect("valid header"),
        );
        h
    }

    #[test]
    fn bearer_and_basic_credentials_are_checked() {
        let creds = AdminCredentials::new(
            Some("admin-token".into()),
            Some(("ops".into(), "pw".into())),
        );
        assert!(creds.allows(&headers("Bearer admin-token")));
        assert!(!creds.allows(&headers("Bearer admin-tokeN")));
        let basic = STANDARD.encode("ops:pw");
        assert!(creds.allows(&headers(&format!("Basic {basic}"))));
        let wrong = STANDARD.encode("ops:nope");
        assert!(!creds.allows(&headers(&format!("Basic {wrong}"))));
        assert!(!creds.allows(&HeaderMap::new()));
        assert!(!AdminCredentials::default().allows(&headers("Bearer admin-token")));
    }
}
