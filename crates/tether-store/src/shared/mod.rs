//! Shared-state backends.

mod keys;
mod oauth;
mod redis;
mod scripts;

pub use self::oauth::{RedisFlowStore, RedisRefreshLock};
pub use self::redis::{RedisState, RedisStateConfig};
