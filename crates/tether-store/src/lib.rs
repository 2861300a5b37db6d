//! Tether's storage: the backends behind tether-core's store traits.
//!
//! [`sql::SqlStore`] keeps tokens (sealed, [`crypto`]), registrations, tool lists and the server
//! catalog in SQLite or PostgreSQL. [`shared::RedisState`] is the core's
//! [`SharedState`](tether_core::SharedState) in Redis, so that several gateway replicas agree on
//! who is reconnecting, on breakers and on per-origin admission. It must not hold rules of its
//! own: every decision is made by tether-core's pure functions (breaker transitions, GCRA), and
//! this crate only applies their results atomically.

pub mod crypto;
pub mod shared;
pub mod sql;
