//! Who is calling: the host platform's JWT (its `sub` is the [`tether_core::UserId`]) on every
//! user request, and the operator credential on `/status`.
//!
//! Owns token verification (HS256 with a shared secret; RS256/ES256 with keys from the host's
//! JWKS; successes remembered for up to a minute), the axum layer that turns a request's bearer
//! token into a `UserId` in the request extensions, and the 401 answers. Tokens are never
//! logged, echoed or put in error texts.

mod admin;
mod config;
mod error;
mod groups;
mod jwks;
mod layer;
mod verified;
mod verify;

pub use admin::AdminCredentials;
pub use config::HostAuthConfig;
pub use error::{AuthConfigError, AuthError};
pub use groups::UserGroups;
pub(crate) use layer::authenticated;
pub use layer::{AuthAccess, AuthUser, require_user};
pub use verify::HostAuth;
