//! Lua scripts: each makes one multi-command step atomic on one key.
//!
//! They hold no rules. The decisions (breaker transitions, the rate's arithmetic) are made in
//! Rust by tether-core's pure functions; [`COMPARE_AND_SET`] then writes the result only if the
//! key still holds what the decision was based on, so replicas never overwrite each other.

/// `KEYS[1]`; `ARGV`: expected value (`""` = absent), new value (`""` = delete), TTL in ms.
/// Returns 1 when written, 0 when the key changed meanwhile.
pub const COMPARE_AND_SET: &str = r"
local current = redis.call('GET', KEYS[1])
if current == false then current = '' end
if current ~= ARGV[1] then return 0 end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
return 1
";

/// One more failure: `KEYS[1]` hash; `ARGV`: now (ms), error text, TTL (ms).
/// Returns `{attempts, last_failure, last_error}`.
pub const RECORD_FAILURE: &str = r"
local attempts = redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('HSET', KEYS[1], 'last_failure', ARGV[1], 'last_error', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {attempts, ARGV[1], ARGV[2]}
";

/// An admission slot: `KEYS[1]` sorted set of lease ids scored by expiry; `ARGV`: now (ms),
/// max, lease id, lease expiry (ms), key TTL (ms). Expired leases (holders that vanished) are
/// dropped first. Returns 1 when the slot was taken, 0 when all are held.
pub const ACQUIRE_SLOT: &str = r"
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
";

/// Deletes `KEYS[1]` only if it holds `ARGV[1]` (a lease released by its owner only).
/// Returns 1 when deleted.
pub const DELETE_IF_EQUAL: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";
