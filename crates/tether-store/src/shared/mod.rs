//! Shared-state backends.

mod keys;
mod redis;
mod scripts;

pub use self::redis::{RedisState, RedisStateConfig};
