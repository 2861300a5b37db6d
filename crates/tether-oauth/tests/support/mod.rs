//! Test peers on 127.0.0.1: the `oidc-provider` authorization server (node) and a small MCP
//! resource server (axum) that challenges, publishes RFC 9728 metadata and introspects tokens.

#![allow(dead_code)]

pub mod oidc;
pub mod resource;

use std::sync::{Arc, Mutex};

use tether_core::{ServerName, UserId};
use tether_oauth::headless;
use tether_oauth::http::RequestObserver;
use tether_oauth::{AuthorizerConfig, McpAuthorizer, OAuthStores, StartOptions};
use url::Url;

/// The redirect URI the pre-registered clients of the peer are registered with.
pub const REDIRECT_URI: &str = "http://127.0.0.1:9/callback";

/// Every request the authorizer sent: (method, URL without query).
#[derive(Clone, Default)]
pub struct RequestLog(pub Arc<Mutex<Vec<(String, Url)>>>);

impl RequestLog {
    pub fn observer(&self) -> RequestObserver {
        let log = self.0.clone();
        Arc::new(move |method: &str, url: &Url| {
            log.lock()
                .expect("request log lock")
                .push((method.to_owned(), url.clone()));
        })
    }

    pub fn urls(&self) -> Vec<Url> {
        self.0
            .lock()
            .expect("request log lock")
            .iter()
            .map(|(_, url)| url.clone())
            .collect()
    }

    pub fn any_to_host(&self, host: &str) -> bool {
        self.urls().iter().any(|url| url.host_str() == Some(host))
    }

    pub fn paths(&self) -> Vec<String> {
        self.urls()
            .iter()
            .map(|url| url.path().to_owned())
            .collect()
    }
}

pub fn authorizer(log: &RequestLog) -> McpAuthorizer {
    authorizer_with(log, AuthorizerConfig::default())
}

pub fn authorizer_with(log: &RequestLog, mut config: AuthorizerConfig) -> McpAuthorizer {
    config.request_observer = Some(log.observer());
    McpAuthorizer::new(config, OAuthStores::in_memory()).expect("authorizer builds")
}

/// start → headless authorization at the AS → complete.
pub async fn authorize(
    authorizer: &McpAuthorizer,
    user: &str,
    server: &str,
    server_url: &str,
    options: StartOptions,
) -> Result<(), tether_oauth::OAuthError> {
    let redirect = options.redirect_uri.clone();
    let start = authorizer
        .start(
            &UserId::new(user),
            &ServerName::new(server),
            server_url,
            options,
        )
        .await?;
    let response = headless::authorize(&start.authorization_url, &redirect)
        .await
        .expect("headless authorization reaches the redirect URI");
    assert_eq!(response.state, start.state, "state comes back unchanged");
    let (u, s) = authorizer
        .complete(
            &response.state,
            response.code.expose(),
            response.issuer.as_deref(),
        )
        .await?;
    assert_eq!((u.as_str(), s.as_str()), (user, server));
    Ok(())
}
