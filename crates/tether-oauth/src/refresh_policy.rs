//! When an access token is refreshed before use (SPEC §5).

use std::time::Duration;

use tether_core::Timestamp;

use crate::store::TokenRecord;

/// By default, refresh when less than this is left ([`crate::AuthorizerConfig::refresh_ahead`])...
pub const MIN_REMAINING: Duration = Duration::from_secs(60);
/// ...or less than this share of the token's lifetime (a 10-minute token at 59 s left, a
/// 24-hour token at 2.4 h left), so that long-lived tokens are renewed well before a burst of
/// requests could find them expired.
pub const MIN_REMAINING_FRACTION: f64 = 0.10;

/// Whether `record` should be refreshed before use at `now`, with `ahead` as the least time
/// left. Tokens without an expiry are used until a 401 says otherwise.
///
/// `ahead` is capped at half the token's lifetime: an authorization server that issues tokens
/// shorter than the margin (30 s against the default 60 s) would otherwise see a refresh
/// before every request, since each new token is due the moment it arrives.
pub fn needs_refresh(record: &TokenRecord, now: Timestamp, ahead: Duration) -> bool {
    let Some(expires_at) = record.expires_at else {
        return false;
    };
    let remaining = now.until(expires_at);
    let lifetime = record.obtained_at.until(expires_at);
    remaining.is_zero()
        || remaining < ahead.min(lifetime / 2)
        || remaining.as_secs_f64() < lifetime.as_secs_f64() * MIN_REMAINING_FRACTION
}

/// Whether the token can no longer be used at all.
pub fn is_expired(record: &TokenRecord, now: Timestamp) -> bool {
    record.expires_at.is_some_and(|at| at <= now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn record(obtained_s: u64, expires_s: Option<u64>) -> TokenRecord {
        TokenRecord {
            access_token: Secret::new("a"),
            expires_at: expires_s.map(|s| Timestamp::from_millis(s * 1000)),
            scopes: vec![],
            refresh_token: None,
            obtained_at: Timestamp::from_millis(obtained_s * 1000),
            issuer: "i".into(),
            client_id: "c".into(),
            resource: "r".into(),
        }
    }

    fn at(s: u64) -> Timestamp {
        Timestamp::from_millis(s * 1000)
    }

    #[test]
    fn refreshes_under_a_minute_or_a_tenth_of_the_lifetime() {
        let ahead = MIN_REMAINING;
        // 10 minutes: 61 s left is fine, 59 s is not.
        assert!(!needs_refresh(&record(0, Some(600)), at(539), ahead));
        assert!(needs_refresh(&record(0, Some(600)), at(541), ahead));
        // 24 hours: the 10 % rule fires first (at 2.4 h left).
        assert!(!needs_refresh(&record(0, Some(86_400)), at(77_000), ahead));
        assert!(needs_refresh(&record(0, Some(86_400)), at(78_000), ahead));
        // Expired tokens are always refreshed.
        assert!(needs_refresh(&record(0, Some(600)), at(700), ahead));
        assert!(needs_refresh(&record(0, Some(30)), at(31), ahead));
        assert!(!needs_refresh(&record(0, None), at(1_000_000), ahead));
    }

    #[test]
    fn tokens_shorter_than_the_margin_are_used_for_half_their_lifetime() {
        let ahead = MIN_REMAINING;
        assert!(!needs_refresh(&record(0, Some(30)), at(0), ahead));
        assert!(!needs_refresh(&record(0, Some(30)), at(14), ahead));
        assert!(needs_refresh(&record(0, Some(30)), at(16), ahead));
        // A token that has just expired or was issued already expired.
        assert!(needs_refresh(&record(0, Some(0)), at(0), ahead));
    }

    #[test]
    fn a_shorter_margin_keeps_short_lived_tokens_until_their_last_tenth() {
        let ahead = Duration::ZERO;
        assert!(!needs_refresh(&record(0, Some(30)), at(26), ahead));
        assert!(needs_refresh(&record(0, Some(30)), at(28), ahead));
        assert!(needs_refresh(&record(0, Some(30)), at(31), ahead));
    }
}
