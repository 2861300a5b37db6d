//! Tether's own persistence for OAuth state, one trait per record kind (SPEC §7), each with an
//! in-memory implementation for a single replica and for tests.
//!
//! The traits carry values in the clear; encryption at rest (SPEC §5) is the job of the
//! persistent implementations, which see (user, server, kind) and can bind it as associated data.

pub mod flow;
pub mod lock;
pub mod recent;
pub mod registration;
pub mod vault;

pub use flow::{
    CallbackParams, FLOW_TTL, FlowRecord, FlowStore, MAX_FLOWS, MAX_FLOWS_PER_USER, MemoryFlowStore,
};
pub use lock::{MemoryRefreshLock, RefreshLock};
pub use recent::{KEEP_RECENT_FOR, RecentTokens};
pub use registration::{
    ClientSource, Endpoints, MemoryRegistrationStore, RegistrationRecord, RegistrationStore,
    TokenEndpointAuthMethod,
};
pub use vault::{MemoryTokenVault, TokenRecord, TokenVault, VaultTokenStatus};
