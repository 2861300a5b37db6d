//! What can go wrong, sorted by what the caller should do about it.

use tether_core::StoreError;
use tether_core::redact::redact;

use crate::ssrf::SsrfReason;

/// Every message is passed through [`redact`] when it is built, because parts of it come from
/// upstream servers and lower layers that may quote request bodies.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OAuthError {
    /// The pair has no usable tokens: no tokens at all, or the refresh token was rejected
    /// (`invalid_grant`) and has been removed. Only a new authorization helps; do not retry.
    #[error("authorization needed: {0}")]
    NeedsAuthorization(String),
    /// Network failure, timeout, 5xx or 429 at an OAuth endpoint. Tokens were kept; retry with
    /// backoff.
    #[error("temporary OAuth failure: {0}")]
    Transient(String),
    /// A URL learned from the network was refused before any request was sent to it.
    #[error("refused to contact an OAuth endpoint: {0}")]
    Refused(SsrfReason),
    /// The servers answered, but not as the protocol requires (bad metadata, rejected client,
    /// issuer mismatch, ...). Retrying the same way will not help.
    #[error("OAuth protocol error: {0}")]
    Protocol(String),
    /// The callback's `state` names no pending flow: forged, replayed or expired.
    #[error("unknown or expired authorization state")]
    UnknownState,
    /// Tether's own stores failed.
    #[error("OAuth store failed: {0}")]
    Store(#[from] StoreError),
}

impl OAuthError {
    pub(crate) fn needs_authorization(message: impl AsRef<str>) -> Self {
        Self::NeedsAuthorization(redact(message.as_ref()))
    }

    pub(crate) fn transient(message: impl AsRef<str>) -> Self {
        Self::Transient(redact(message.as_ref()))
    }

    pub(crate) fn protocol(message: impl AsRef<str>) -> Self {
        Self::Protocol(redact(message.as_ref()))
    }

    /// The same error with every occurrence of `secrets` in its text replaced. An authorization
    /// server may quote what it was sent (a refresh token or code in `error_description`), and
    /// the pattern-based [`redact`] cannot recognise an opaque token.
    pub(crate) fn without_secrets(self, secrets: &[&str]) -> Self {
        let scrub = |mut text: String| {
            for secret in secrets.iter().filter(|s| s.len() >= 4) {
                text = text.replace(secret, "[redacted]");
            }
            text
        };
        match self {
            Self::NeedsAuthorization(text) => Self::NeedsAuthorization(scrub(text)),
            Self::Transient(text) => Self::Transient(scrub(text)),
            Self::Protocol(text) => Self::Protocol(scrub(text)),
            other @ (Self::Refused(_) | Self::UnknownState | Self::Store(_)) => other,
        }
    }

    /// Whether retrying later (with backoff) may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Transient(_) | Self::Store(StoreError::Unavailable(_))
        )
    }
}
