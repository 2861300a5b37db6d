//! Redis key layout: `{prefix}:{kind}:{parts…}`.
//!
//! User ids come from the host's JWT and may contain anything, including `:`; they are escaped
//! so that no two (user, server) pairs share a key. Server names and origins cannot contain the
//! escaped characters' escapes, but are escaped too for uniformity.

use tether_core::shared::BreakerKey;
use tether_core::{Origin, PairKey};

#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
}

fn escape(part: &str) -> String {
    part.replace('%', "%25").replace(':', "%3A")
}

impl Keys {
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }

    fn pair(&self, kind: &str, pair: &PairKey) -> String {
        format!(
            "{}:{kind}:{}:{}",
            self.prefix,
            escape(pair.user.as_str()),
            escape(pair.server.as_str())
        )
    }

    /// The pub/sub channel of forgotten pairs (not a key: nothing is stored under it).
    pub fn forgotten_channel(&self) -> String {
        format!("{}:forgotten", self.prefix)
    }

    pub fn active(&self, pair: &PairKey) -> String {
        self.pair("active", pair)
    }

    pub fn failed(&self, pair: &PairKey) -> String {
        self.pair("failed", pair)
    }

    pub fn breaker(&self, key: &BreakerKey) -> String {
        match key {
            BreakerKey::Pair(pair) => self.pair("breaker-pair", pair),
            BreakerKey::Origin(origin) => {
                format!("{}:breaker-origin:{}", self.prefix, escape(origin.as_str()))
            }
        }
    }

    pub fn slots(&self, origin: &Origin) -> String {
        format!("{}:slots:{}", self.prefix, escape(origin.as_str()))
    }

    pub fn rate(&self, origin: &Origin) -> String {
        format!("{}:rate:{}", self.prefix, escape(origin.as_str()))
    }

    pub fn wire(&self, url: &str) -> String {
        format!("{}:wire:{}", self.prefix, escape(url))
    }

    pub fn flow(&self, state: &str) -> String {
        format!("{}:flow:{}", self.prefix, escape(state))
    }

    pub fn refresh_lock(&self, pair: &PairKey) -> String {
        self.pair("refresh-lock", pair)
    }

    /// The sorted set indexing every key of one kind (`active`, `failed`) by its expiry, so
    /// that counting them is one bounded step instead of a SCAN over the keyspace.
    pub fn index(&self, kind: &str) -> String {
        format!("{}:index:{kind}", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_with_separators_do_not_collide() {
        let keys = Keys::new("t");
        let a = keys.active(&PairKey::new("a:b", "c"));
        let b = keys.active(&PairKey::new("a", "b:c"));
        assert_ne!(a, b);
        assert_eq!(a, "t:active:a%3Ab:c");
        assert_eq!(keys.active(&PairKey::new("%3A", "s")), "t:active:%253A:s");
    }
}
