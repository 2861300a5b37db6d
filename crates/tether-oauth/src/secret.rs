//! A credential value that can be carried around but not printed.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An access token, refresh token, client secret or PKCE verifier.
///
/// `Debug` prints `[redacted]` and there is no `Display`, so a secret cannot reach a log line or
/// an error message through formatting; reading it takes an explicit [`Secret::expose`].
/// Comparison is by value (stores need it to tell a replaced refresh token from the current one);
/// it is not constant-time because no comparison here is against attacker-chosen input.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for the one place that must send it (a header, a form field, a store).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let secret = Secret::new("s3cr3t-value");
        assert_eq!(format!("{secret:?}"), "[redacted]");
        assert_eq!(format!("{:?}", Some(&secret)), "Some([redacted])");
        assert_eq!(secret.expose(), "s3cr3t-value");
    }
}
