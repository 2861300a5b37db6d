//! [`SharedState`] in Redis: what replicas must agree on, one atomic step per key.
//!
//! | concept | key | Redis type | expiry |
//! | --- | --- | --- | --- |
//! | reconnecting | `active:{user}:{server}` | string, `SET NX PX` | active timeout |
//! | failure record | `failed:{user}:{server}` | hash, one script | failure memory |
//! | breaker | `breaker-pair:…`, `breaker-origin:…` | JSON, compare-and-set | a few open periods |
//! | admission slots | `slots:{origin}` | sorted set of leases by expiry, one script | lease TTL |
//! | rate | `rate:{origin}` | GCRA arrival time, compare-and-set | when it is in the past |
//! | counts | `index:active`, `index:failed` | sorted set of keys by expiry | members pruned on count |
//!
//! The statistics (`/metrics`, the status page) are counted from the two indexes, kept beside
//! the entries as they are written and cleared; entries that expired are pruned by score when
//! counting. Probes are unauthenticated and may be polled at any rate, so they must never walk
//! the keyspace (SCAN) per request.
//!
//! Expiry is Redis's own (`PX`), so an entry is gone for every reader at once; the `now` the
//! core passes is used where a value is computed (breaker deadlines, leases, the rate).
//! Errors never carry the URL (it may hold a password) or stored values.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Script};
use tether_core::breaker::{BreakerEvent, BreakerRecord, BreakerVerdict};
use tether_core::config::BreakerConfig;
use tether_core::rate::{RateLimit, gcra};
use tether_core::shared::{BreakerKey, FailedEntry, SlotLease, TrackerStats};
use tether_core::{Origin, PairKey, SharedState, StoreError, Timestamp};

use super::keys::Keys;
use super::scripts;

/// How often a compare-and-set is retried when another writer changed the key in between.
/// Writers of one breaker or rate key are bounded by the admission limit (per replica), so
/// contention is modest; jittered pauses between rounds keep it from turning into starvation.
const CAS_ROUNDS: u32 = 64;

/// Where and how to reach Redis.
#[derive(Clone)]
pub struct RedisStateConfig {
    /// `redis://[user:password@]host:port[/db]`.
    pub url: String,
    /// Prepended to every key, so deployments (and tests) sharing one Redis never collide.
    pub prefix: String,
    /// Limit for one command; a Redis that does not answer in time counts as unavailable.
    pub response_timeout: Duration,
    pub connection_timeout: Duration,
}

impl fmt::Debug for RedisStateConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStateConfig")
            .field("url", &"[redacted]")
            .field("prefix", &self.prefix)
            .field("response_timeout", &self.response_timeout)
            .field("connection_timeout", &self.connection_timeout)
            .finish()
    }
}

impl RedisStateConfig {
    pub fn new(url: impl Into<String>, prefix: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            prefix: prefix.into(),
            response_timeout: Duration::from_secs(2),
            connection_timeout: Duration::from_secs(2),
        }
    }
}

pub struct RedisState {
    /// For connections of their own (a pub/sub subscription cannot share the multiplexed one).
    pub(super) client: redis::Client,
    pub(super) conn: ConnectionManager,
    pub(super) keys: Keys,
    compare_and_set: Script,
    record_failure: Script,
    acquire_slot: Script,
}

impl fmt::Debug for RedisState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisState")
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

pub(super) fn unavailable(op: &str, error: &redis::RedisError) -> StoreError {
    // The kind and category only: a RedisError's text can echo arguments.
    StoreError::Unavailable(format!("redis {op} failed ({:?})", error.kind()))
}

pub(super) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl RedisState {
    /// Connects (reconnecting by itself later when Redis goes away and comes back).
    pub async fn connect(config: RedisStateConfig) -> Result<Self, StoreError> {
        let client = redis::Client::open(config.url.as_str())
            .map_err(|_| StoreError::Unavailable("the Redis URL is not valid".to_owned()))?;
        let manager_config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(config.response_timeout))
            .set_connection_timeout(Some(config.connection_timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let conn = client
            .get_connection_manager_with_config(manager_config)
            .await
            .map_err(|e| unavailable("connect", &e))?;
        Ok(Self {
            client,
            conn,
            keys: Keys::new(&config.prefix),
            compare_and_set: Script::new(scripts::COMPARE_AND_SET),
            record_failure: Script::new(scripts::RECORD_FAILURE),
            acquire_slot: Script::new(scripts::ACQUIRE_SLOT),
        })
    }

    /// One round trip that touches no key, for readiness probes.
    pub async fn ping(&self) -> Result<(), StoreError> {
        redis::cmd("PING")
            .query_async::<()>(&mut self.conn())
            .await
            .map_err(|e| unavailable("ping", &e))
    }

    fn conn(&self) -> ConnectionManager {
        // A handle onto one multiplexed connection: cloning is cheap and commands pipeline.
        self.conn.clone()
    }

    async fn cas(
        &self,
        key: &str,
        expected: &str,
        new: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let written: i64 = self
            .compare_and_set
            .key(key)
            .arg(expected)
            .arg(new)
            .arg(millis(ttl))
            .invoke_async(&mut self.conn())
            .await
            .map_err(|e| unavailable("compare-and-set", &e))?;
        Ok(written == 1)
    }

    /// Entries of `kind` unexpired at `now`: prunes the expired from the index, then counts it.
    async fn count(&self, kind: &str, now: Timestamp) -> Result<usize, StoreError> {
        let index = self.keys.index(kind);
        let (count,): (usize,) = redis::pipe()
            .atomic()
            .zrembyscore(&index, "-inf", now.as_millis())
            .ignore()
            .zcard(&index)
            .query_async(&mut self.conn())
            .await
            .map_err(|e| unavailable("count", &e))?;
        Ok(count)
    }

    /// Writes `key` into the index of `kind` until `expires`.
    async fn index_until(
        &self,
        kind: &str,
        key: &str,
        expires: Timestamp,
    ) -> Result<(), StoreError> {
        self.conn()
            .zadd::<_, _, _, ()>(self.keys.index(kind), key, expires.as_millis())
            .await
            .map_err(|e| unavailable("index", &e))
    }

    /// Deletes `key` and its index entry in one step.
    async fn delete_indexed(&self, kind: &str, key: &str) -> Result<(), StoreError> {
        redis::pipe()
            .atomic()
            .del(key)
            .ignore()
            .zrem(self.keys.index(kind), key)
            .ignore()
            .query_async::<()>(&mut self.conn())
            .await
            .map_err(|e| unavailable("del", &e))
    }
}

/// How long a breaker record is kept: long enough to outlive its longest open period and probe,
/// so that doubling is remembered; after that a fresh record is equivalent.
fn breaker_ttl(config: &BreakerConfig) -> Duration {
    config.open_cap.max(config.probe_timeout).saturating_mul(4)
}

#[async_trait]
impl SharedState for RedisState {
    async fn try_mark_active(
        &self,
        pair: &PairKey,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let key = self.keys.active(pair);
        let set: Option<String> = redis::cmd("SET")
            .arg(&key)
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(millis(ttl))
            .query_async(&mut self.conn())
            .await
            .map_err(|e| unavailable("set", &e))?;
        if set.is_some() {
            self.index_until("active", &key, now + ttl).await?;
        }
        Ok(set.is_some())
    }

    async fn mark_active(
        &self,
        pair: &PairKey,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let key = self.keys.active(pair);
        redis::pipe()
            .atomic()
            .pset_ex(&key, 1, millis(ttl))
            .ignore()
            .zadd(self.keys.index("active"), &key, (now + ttl).as_millis())
            .ignore()
            .query_async::<()>(&mut self.conn())
            .await
            .map_err(|e| unavailable("set", &e))
    }

    async fn is_active(&self, pair: &PairKey, _now: Timestamp) -> Result<bool, StoreError> {
        self.conn()
            .exists(self.keys.active(pair))
            .await
            .map_err(|e| unavailable("exists", &e))
    }

    async fn clear_active(&self, pair: &PairKey) -> Result<(), StoreError> {
        self.delete_indexed("active", &self.keys.active(pair)).await
    }

    async fn record_failure(
        &self,
        pair: &PairKey,
        error: &str,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<FailedEntry, StoreError> {
        let key = self.keys.failed(pair);
        let (attempts, last_failure, last_error): (u32, u64, String) = self
            .record_failure
            .key(&key)
            .arg(now.as_millis())
            .arg(error)
            .arg(millis(ttl))
            .invoke_async(&mut self.conn())
            .await
            .map_err(|e| unavailable("record failure", &e))?;
        self.index_until("failed", &key, now + ttl).await?;
        Ok(FailedEntry {
            attempts,
            last_failure: Timestamp::from_millis(last_failure),
            last_error,
        })
    }

    async fn failure(
        &self,
        pair: &PairKey,
        _now: Timestamp,
    ) -> Result<Option<FailedEntry>, StoreError> {
        let fields: Vec<(String, String)> = self
            .conn()
            .hgetall(self.keys.failed(pair))
            .await
            .map_err(|e| unavailable("hgetall", &e))?;
        if fields.is_empty() {
            return Ok(None);
        }
        let get = |name: &str| {
            fields
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let corrupt = || StoreError::Corrupt(format!("failure record of {pair}"));
        let attempts = get("attempts")
            .and_then(|v| v.parse().ok())
            .ok_or_else(corrupt)?;
        let last_failure = get("last_failure")
            .and_then(|v| v.parse().ok())
            .ok_or_else(corrupt)?;
        Ok(Some(FailedEntry {
            attempts,
            last_failure: Timestamp::from_millis(last_failure),
            last_error: get("last_error").unwrap_or_default().to_owned(),
        }))
    }

    async fn clear_failure(&self, pair: &PairKey) -> Result<(), StoreError> {
        self.delete_indexed("failed", &self.keys.failed(pair)).await
    }

    async fn tracker_stats(&self, now: Timestamp) -> Result<TrackerStats, StoreError> {
        Ok(TrackerStats {
            active: self.count("active", now).await?,
            failed: self.count("failed", now).await?,
        })
    }

    async fn breaker(&self, key: &BreakerKey) -> Result<BreakerRecord, StoreError> {
        let raw: Option<String> = self
            .conn()
            .get(self.keys.breaker(key))
            .await
            .map_err(|e| unavailable("get", &e))?;
        decode_breaker(key, raw.as_deref())
    }

    async fn breaker_apply(
        &self,
        key: &BreakerKey,
        event: BreakerEvent,
        config: &BreakerConfig,
        now: Timestamp,
    ) -> Result<BreakerVerdict, StoreError> {
        let redis_key = self.keys.breaker(key);
        for round in 0..CAS_ROUNDS {
            contention_pause(round).await;
            let raw: Option<String> = self
                .conn()
                .get(&redis_key)
                .await
                .map_err(|e| unavailable("get", &e))?;
            let record = decode_breaker(key, raw.as_deref())?;
            let (next, verdict) = record.apply(event, now, config);
            if next == record {
                return Ok(verdict);
            }
            let new = if next.is_pristine() {
                String::new()
            } else {
                serde_json::to_string(&next)
                    .map_err(|e| StoreError::Corrupt(format!("breaker {key}: {e}")))?
            };
            let expected = raw.unwrap_or_default();
            if self
                .cas(&redis_key, &expected, &new, breaker_ttl(config))
                .await?
            {
                return Ok(verdict);
            }
        }
        Err(StoreError::Unavailable(format!(
            "breaker {key} kept changing under {CAS_ROUNDS} updates"
        )))
    }

    async fn breaker_reset(&self, key: &BreakerKey) -> Result<(), StoreError> {
        self.conn()
            .del::<_, ()>(self.keys.breaker(key))
            .await
            .map_err(|e| unavailable("del", &e))
    }

    async fn acquire_slot(
        &self,
        origin: &Origin,
        max: u32,
        lease_ttl: Duration,
        now: Timestamp,
    ) -> Result<Option<SlotLease>, StoreError> {
        let lease = SlotLease(rand::random::<u64>());
        let taken: i64 = self
            .acquire_slot
            .key(self.keys.slots(origin))
            .arg(now.as_millis())
            .arg(max)
            .arg(lease.0)
            .arg((now + lease_ttl).as_millis())
            .arg(millis(lease_ttl))
            .invoke_async(&mut self.conn())
            .await
            .map_err(|e| unavailable("acquire slot", &e))?;
        Ok((taken == 1).then_some(lease))
    }

    async fn release_slot(&self, origin: &Origin, lease: SlotLease) -> Result<(), StoreError> {
        self.conn()
            .zrem::<_, _, ()>(self.keys.slots(origin), lease.0)
            .await
            .map_err(|e| unavailable("release slot", &e))
    }

    async fn take_rate(
        &self,
        origin: &Origin,
        limit: &RateLimit,
        now_us: u64,
    ) -> Result<Option<Duration>, StoreError> {
        let key = self.keys.rate(origin);
        for round in 0..CAS_ROUNDS {
            contention_pause(round).await;
            let raw: Option<String> = self
                .conn()
                .get(&key)
                .await
                .map_err(|e| unavailable("get", &e))?;
            let tat = raw.as_deref().and_then(|v| v.parse::<u64>().ok());
            match gcra(tat, now_us, limit) {
                Err(wait) => return Ok(Some(wait)),
                Ok(next) => {
                    // Once the arrival time is in the past the key means nothing: let it expire.
                    let ttl =
                        Duration::from_micros(next.saturating_sub(now_us)) + Duration::from_secs(1);
                    if self
                        .cas(&key, raw.as_deref().unwrap_or(""), &next.to_string(), ttl)
                        .await?
                    {
                        return Ok(None);
                    }
                }
            }
        }
        Err(StoreError::Unavailable(format!(
            "rate of {origin} kept changing under {CAS_ROUNDS} updates"
        )))
    }
}

/// Nothing before the first round; then a random pause up to 1 ms × 2^round (capped at 16 ms), so
/// that writers that collided do not collide again in lockstep.
async fn contention_pause(round: u32) {
    if round == 0 {
        return;
    }
    let ceiling_us = 1_000u64 << round.min(4);
    let pause = rand::random_range(0..ceiling_us);
    tokio::time::sleep(Duration::from_micros(pause)).await;
}

fn decode_breaker(key: &BreakerKey, raw: Option<&str>) -> Result<BreakerRecord, StoreError> {
    match raw {
        None => Ok(BreakerRecord::default()),
        Some(text) => serde_json::from_str(text)
            .map_err(|e| StoreError::Corrupt(format!("breaker {key}: {e}"))),
    }
}
