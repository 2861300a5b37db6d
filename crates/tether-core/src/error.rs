//! Errors of the stores the core reads through its traits.

/// A token store, tool cache or shared-state backend could not answer.
///
/// The message must never contain a secret: backends describe the operation and the cause
/// (connection refused, timeout), not the values involved.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum StoreError {
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
}
