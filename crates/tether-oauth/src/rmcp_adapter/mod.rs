//! Tether's stores seen through rmcp's `CredentialStore` and `StateStore`, so that rmcp's
//! authorization manager reads and writes Tether's records directly.

pub mod credentials;
pub mod state;

pub use credentials::PairCredentialStore;
pub use state::FlowStateStore;
