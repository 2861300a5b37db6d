//! Test peers on 127.0.0.1: the `oidc-provider` authorization server (node) and a small MCP
//! resource server (axum) that challenges, publishes RFC 9728 metadata and introspects tokens.

#![allow(dead_code)]

pub mod oidc;
pub mod resource;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tether_core::{Clock, ServerName, SystemClock, Timestamp, UserId};
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

/// The system clock, moved forward on demand: a test makes a short-lived token due for refresh
/// without waiting for it. Tokens are refreshed once less than half their lifetime is left
/// (or 60 s, whichever is less), so a 30 s token is due [`PAST_HALF_OF_30_S`] after it was
/// issued, and still valid at the authorization server and the resource server.
#[derive(Debug, Clone, Default)]
pub struct AdvancedClock(Arc<AtomicU64>);

pub const PAST_HALF_OF_30_S: Duration = Duration::from_secs(16);

impl AdvancedClock {
    pub fn advance(&self, by: Duration) {
        let millis = u64::try_from(by.as_millis()).expect("a test's advance fits");
        self.0.fetch_add(millis, Ordering::SeqCst);
    }
}

impl Clock for AdvancedClock {
    fn now(&self) -> Timestamp {
        SystemClock.now() + Duration::from_millis(self.0.load(Ordering::SeqCst))
    }
}

/// An authorizer whose expiry decisions read `clock`.
pub fn authorizer_on(log: &RequestLog, clock: &AdvancedClock) -> McpAuthorizer {
    authorizer_with(
        log,
        AuthorizerConfig {
            clock: Arc::new(clock.clone()),
            ..AuthorizerConfig::default()
        },
    )
}

pub fn authorizer(log: &RequestLog) -> McpAuthorizer {
    authorizer_with(log, AuthorizerConfig::default())
}

pub fn authorizer_with(log: &RequestLog, mut config: AuthorizerConfig) -> McpAuthorizer {
    config.request_observer = Some(log.observer());
    McpAuthorizer::new(config, OAuthStores::in_memory()).expect("authorizer builds")
}

/// Alice authorizes `server` at `server_url` with the default options; panics if she cannot.
pub async fn authorize_alice(authorizer: &McpAuthorizer, server: &str, server_url: &str) {
    authorize(
        authorizer,
        "alice",
        server,
        server_url,
        StartOptions::new(REDIRECT_URI),
    )
    .await
    .expect("authorized");
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
