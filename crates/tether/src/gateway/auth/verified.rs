//! Host tokens verified a moment ago, so that an agent's stream of requests with the same
//! token costs one hash and a map lookup instead of a signature check and two JSON parses each
//! (the largest part of the gateway's own work on a tool call after HTTP itself).
//!
//! Keys are SHA-256 digests of the token: no token is kept, and two tokens never share an entry.
//! An entry lasts until the token expires (as the verifier would judge it, leeway included) and
//! at most [`MAX_AGE_SECS`], so a JWKS key the host withdraws stops being honoured as soon as
//! the key cache lets go of it plus at most that long. Only successes are kept; a refused token
//! is checked again every time.

use std::sync::Mutex;
use tether_core::FastMap;

use sha2::{Digest, Sha256};
use tether_core::UserId;

use super::UserGroups;

/// The longest an entry is trusted, in seconds.
pub(crate) const MAX_AGE_SECS: u64 = 60;
/// Entries kept at most; a full map first drops what has expired, then everything.
const MAX_ENTRIES: usize = 4096;

type TokenDigest = [u8; 32];

#[derive(Debug)]
struct Entry {
    user: UserId,
    groups: UserGroups,
    /// Unix seconds; the entry is used while `now < until`.
    until: u64,
}

#[derive(Debug, Default)]
pub(crate) struct VerifiedTokens {
    entries: Mutex<FastMap<TokenDigest, Entry>>,
}

fn digest(token: &str) -> TokenDigest {
    Sha256::digest(token.as_bytes()).into()
}

impl VerifiedTokens {
    /// The user of `token` if it was verified and is still good at `now` (Unix seconds).
    pub(crate) fn get(&self, token: &str, now: u64) -> Option<(UserId, UserGroups)> {
        let key = digest(token);
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        match entries.get(&key) {
            Some(entry) if now < entry.until => Some((entry.user.clone(), entry.groups.clone())),
            Some(_) => {
                entries.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Records that `token` speaks for `user` until `good_until` (Unix seconds, the verifier's
    /// own limit), trusted for at most [`MAX_AGE_SECS`] from `now`.
    pub(crate) fn insert(
        &self,
        token: &str,
        (user, groups): (UserId, UserGroups),
        good_until: u64,
        now: u64,
    ) {
        let until = good_until.min(now.saturating_add(MAX_AGE_SECS));
        if until <= now {
            return;
        }
        let key = digest(token);
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(&key) {
            entries.retain(|_, entry| now < entry.until);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(
            key,
            Entry {
                user,
                groups,
                until,
            },
        );
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().map(|e| e.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str) -> (UserId, UserGroups) {
        (UserId::from(id.to_owned()), UserGroups::default())
    }

    #[test]
    fn an_entry_answers_until_the_token_expires() {
        let cache = VerifiedTokens::default();
        cache.insert("token-a", user("alice"), 1_030, 1_000);
        assert_eq!(cache.get("token-a", 1_000), Some(user("alice")));
        assert_eq!(cache.get("token-a", 1_029), Some(user("alice")));
        assert_eq!(cache.get("token-a", 1_030), None, "expired with the token");
        assert_eq!(cache.len(), 0, "an expired entry is dropped when met");
    }

    #[test]
    fn an_entry_is_trusted_for_at_most_a_minute() {
        let cache = VerifiedTokens::default();
        cache.insert("token-a", user("alice"), 100_000, 1_000);
        assert_eq!(
            cache.get("token-a", 1_000 + MAX_AGE_SECS - 1),
            Some(user("alice"))
        );
        assert_eq!(cache.get("token-a", 1_000 + MAX_AGE_SECS), None);
    }

    #[test]
    fn tokens_do_not_share_entries() {
        let cache = VerifiedTokens::default();
        cache.insert("token-a", user("alice"), 2_000, 1_000);
        cache.insert("token-b", user("bob"), 2_000, 1_000);
        assert_eq!(cache.get("token-a", 1_001), Some(user("alice")));
        assert_eq!(cache.get("token-b", 1_001), Some(user("bob")));
        assert_eq!(cache.get("token-a ", 1_001), None);
        assert_eq!(cache.get("token-c", 1_001), None);
    }

    #[test]
    fn a_token_already_expired_is_not_kept() {
        let cache = VerifiedTokens::default();
        cache.insert("token-a", user("alice"), 1_000, 1_000);
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn the_map_stays_bounded() {
        let cache = VerifiedTokens::default();
        for i in 0..MAX_ENTRIES {
            cache.insert(&format!("old-{i}"), user("u"), 1_010, 1_000);
        }
        assert_eq!(cache.len(), MAX_ENTRIES);
        // Full of expired entries: they make room.
        cache.insert("new", user("v"), 2_000, 1_020);
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.get("new", 1_021), Some(user("v")));
        // Full of live entries: all go, the new one stays.
        for i in 0..MAX_ENTRIES {
            cache.insert(&format!("live-{i}"), user("u"), 2_000, 1_020);
        }
        assert!(cache.len() <= MAX_ENTRIES);
        cache.insert("newest", user("w"), 2_000, 1_021);
        assert!(cache.len() <= MAX_ENTRIES);
        assert_eq!(cache.get("newest", 1_022), Some(user("w")));
    }
}
