//! The Tether gateway as a library, so that the `tether` binary and the integration tests
//! assemble the same pieces.

pub mod gateway;
