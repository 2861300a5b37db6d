//! Shared-state backends.

mod fallback;
mod forgotten;
mod keys;
mod oauth;
mod redis;
mod scripts;
mod wires;

pub use self::fallback::FallbackState;
pub use self::forgotten::ForgottenPairs;
pub use self::oauth::{RedisFlowStore, RedisRefreshLock};
pub use self::redis::{RedisState, RedisStateConfig};
pub use self::wires::RedisWires;
