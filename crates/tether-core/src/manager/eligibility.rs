//! Who is reconnected on login (SPEC §2.2).

use serde::Serialize;

use super::Inner;
use crate::config::ServerConfig;
use crate::ids::PairKey;
use crate::time::Timestamp;

/// Why a server is or is not reconnected on login.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Eligibility {
    Eligible,
    /// Not an OAuth server, and non-OAuth servers are not reconnected on login.
    NotOAuth,
    InCooldown {
        until: Timestamp,
    },
    AlreadyReconnecting,
    AlreadyConnected,
    /// No access token that is still valid, and no refresh token.
    NoUsableToken,
    /// A breaker (the pair's or the origin's) is open: an attempt would be refused anyway.
    CircuitOpen {
        until: Timestamp,
    },
    /// The token store or shared state could not answer; not retried until the next login.
    StoreUnavailable,
}

impl Inner {
    /// The rules in order: cooldown, already reconnecting, already connected, tokens. Tether adds
    /// the breakers, so that a login storm does not even queue attempts that would be refused.
    pub(crate) async fn eligibility(&self, pair: &PairKey, server: &ServerConfig) -> Eligibility {
        if !server.oauth && !self.config.reconnect.include_non_oauth {
            return Eligibility::NotOAuth;
        }
        match self.tracker.cooldown_until(pair).await {
            Ok(Some(until)) => return Eligibility::InCooldown { until },
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(%pair, %error, "tracker unavailable");
                return Eligibility::StoreUnavailable;
            }
        }
        if self.attempts.is_running(pair) {
            return Eligibility::AlreadyReconnecting;
        }
        match self.tracker.is_active(pair).await {
            Ok(true) => return Eligibility::AlreadyReconnecting,
            Ok(false) => {}
            Err(error) => {
                tracing::warn!(%pair, %error, "tracker unavailable");
                return Eligibility::StoreUnavailable;
            }
        }
        if self.sessions.open_session(pair).is_some() {
            return Eligibility::AlreadyConnected;
        }
        if server.oauth {
            match self.tokens.token_status(pair).await {
                Ok(status) if status.can_reconnect(self.clock.now()) => {}
                Ok(_) => return Eligibility::NoUsableToken,
                Err(error) => {
                    tracing::warn!(%pair, %error, "token store unavailable");
                    return Eligibility::StoreUnavailable;
                }
            }
        }
        if let Some(until) = self.breakers.open_until(&server.origin(), pair).await {
            return Eligibility::CircuitOpen { until };
        }
        Eligibility::Eligible
    }
}
