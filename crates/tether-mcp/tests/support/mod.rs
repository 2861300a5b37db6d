//! Test helpers shared by the integration tests. Each test file uses a different subset, so
//! unused items in one of them are expected.
#![allow(dead_code)]

pub mod auth;
pub mod legacy;
pub mod server;
pub mod tools;

use std::sync::Arc;
use std::time::Duration;

use tether_core::{
    AuthorizationMode, ConnectError, ConnectRequest, ServerConfig, TransportConfig,
    TransportFailure, UserId,
};

/// A connect request for `transport` with a short, test-sized timeout.
pub fn request(transport: TransportConfig) -> ConnectRequest {
    ConnectRequest {
        user: UserId::from("alice"),
        server: Arc::new(ServerConfig {
            name: "upstream".into(),
            transport,
            oauth: false,
            init_timeout: None,
        }),
        timeout: Duration::from_secs(10),
        authorization: AuthorizationMode::NeverInteractive,
        events: None,
    }
}

pub fn http(url: &str) -> TransportConfig {
    TransportConfig::StreamableHttp {
        url: url.to_owned(),
    }
}

pub fn sse(url: &str) -> TransportConfig {
    TransportConfig::Sse {
        url: url.to_owned(),
    }
}

/// The kind of a transport failure, `None` for any other error.
pub fn failure_kind(error: &ConnectError) -> Option<TransportFailure> {
    match error {
        ConnectError::Transport { kind, .. } => Some(*kind),
        _ => None,
    }
}
