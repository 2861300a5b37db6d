//! Hash maps for the lookups made on every tool call (sessions, users, servers, verified
//! tokens): std's maps with foldhash, hashbrown's own default hasher, instead of SipHash.
//!
//! SipHash was about 2 % of the gateway's instructions per call (callgrind, about ten lookups
//! of short keys per call). foldhash is seeded at random per process, so keys chosen by a
//! client (a session id, a user id from a verified token) cannot be picked to collide without
//! knowing the seed; and the maps that hold them are bounded.

use std::collections::{HashMap, HashSet};

/// The hasher of [`FastMap`] and [`FastSet`].
pub type FastHasher = foldhash::fast::RandomState;

/// A `HashMap` with [`FastHasher`]; make one with `FastMap::default()`.
pub type FastMap<K, V> = HashMap<K, V, FastHasher>;

/// A `HashSet` with [`FastHasher`]; make one with `FastSet::default()`.
pub type FastSet<T> = HashSet<T, FastHasher>;
