//! [`AuthorizeRate`]: starts of authorization flows per user and minute. Each start runs
//! discovery against the server and its authorization server and keeps a flow, so a client
//! looping on `…/authorize` must not turn Tether into an amplifier or fill the flow store.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tether_core::UserId;
use tether_core::rate::{RateLimit, gcra};

/// Users tracked at once; past it the idle ones are forgotten (their next start is free).
const MAX_USERS: usize = 100_000;

#[derive(Debug)]
pub struct AuthorizeRate {
    limit: Option<RateLimit>,
    epoch: Instant,
    /// Per user, the GCRA's theoretical arrival time in µs since `epoch`.
    users: Mutex<HashMap<UserId, u64>>,
}

impl AuthorizeRate {
    /// `per_minute` starts with bursts of as many; 0: no limit.
    pub fn per_minute(per_minute: u32) -> Self {
        let limit = (per_minute > 0).then(|| {
            let interval_us = 60_000_000 / u64::from(per_minute);
            RateLimit {
                interval_us,
                tolerance_us: interval_us.saturating_mul(u64::from(per_minute) - 1),
            }
        });
        Self {
            limit,
            epoch: Instant::now(),
            users: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(wait)` when `user` started too many flows lately.
    pub fn check(&self, user: &UserId) -> Result<(), Duration> {
        let Some(limit) = &self.limit else {
            return Ok(());
        };
        let now_us = u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX);
        let mut users = self
            .users
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if users.len() >= MAX_USERS {
            users.retain(|_, tat| *tat > now_us);
            if users.len() >= MAX_USERS {
                users.clear();
            }
        }
        let tat = gcra(users.get(user).copied(), now_us, limit)?;
        users.insert(user.clone(), tat);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_refusals_with_a_wait_per_user() {
        let rate = AuthorizeRate::per_minute(3);
        let (alice, bob) = (UserId::new("alice"), UserId::new("bob"));
        for _ in 0..3 {
            assert!(rate.check(&alice).is_ok());
        }
        let wait = rate.check(&alice).expect_err("the fourth start is refused");
        assert!(
            wait > Duration::from_secs(15) && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
        assert!(rate.check(&bob).is_ok(), "another user is not affected");
        let unlimited = AuthorizeRate::per_minute(0);
        for _ in 0..100 {
            assert!(unlimited.check(&alice).is_ok());
        }
    }
}
