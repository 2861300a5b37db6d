//! End-to-end authorization against real peers on 127.0.0.1: `oidc-provider` (node) as the
//! authorization server and a small axum MCP resource server.

mod support;

use std::time::Duration;

use support::oidc::OidcPeer;
use support::resource::{Discovery, ResourceServer};
use support::{
    AdvancedClock, PAST_HALF_OF_30_S, REDIRECT_URI, RequestLog, authorize, authorize_alice,
    authorizer, authorizer_on, authorizer_with,
};
use tether_core::{PairKey, ServerName, UserId};
use tether_oauth::headless;
use tether_oauth::store::ClientSource;
use tether_oauth::{
    AuthorizerConfig, McpAuthorizer, OAuthError, PreregisteredClient, Secret, SsrfReason,
    StartOptions, TokenEndpointAuthMethod,
};

const SERVER: &str = "notes";
/// Long enough that no refresh happens on its own (refresh starts at 10 % / 60 s left).
const LONG_TTL: u64 = 3600;
/// Short enough that every `access_token()` refreshes (less than 60 s left from the start).
const SHORT_TTL: u64 = 30;

fn user(name: &str) -> UserId {
    UserId::new(name)
}

fn server() -> ServerName {
    ServerName::new(SERVER)
}

async fn resource_status(rs: &ResourceServer, path: &str, token: &Secret) -> u16 {
    rs.challenge(path, Some(token.expose())).await.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_via_www_authenticate_then_full_headless_flow() {
    let peer = OidcPeer::spawn(LONG_TTL).await;
    let rs = ResourceServer::spawn(Discovery::Challenge, &peer.issuer).await;
    let log = RequestLog::default();
    let authorizer = authorizer(&log);

    let (status, challenge) = rs.challenge("/mcp", None).await;
    assert_eq!(status, 401);
    let challenge = challenge.expect("401 carries WWW-Authenticate");
    assert!(challenge.contains("resource_metadata="), "{challenge}");

    let start = authorizer
        .start(
            &user("alice"),
            &server(),
            &rs.url,
            StartOptions::new(REDIRECT_URI).with_challenge(challenge),
        )
        .await
        .expect("start");
    let url = url::Url::parse(&start.authorization_url).expect("authorization URL");
    assert!(
        start
            .authorization_url
            .starts_with(&format!("{}/auth?", peer.issuer))
    );
    let query: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(
        query.get("code_challenge_method").map(String::as_str),
        Some("S256")
    );
    assert_eq!(query.get("resource"), Some(&rs.url));
    assert_eq!(
        query.get("scope").map(String::as_str),
        Some("mcp:tools offline_access")
    );
    assert_eq!(query.get("state"), Some(&start.state));
    assert!(start.state.len() >= 22, "state carries at least 128 bits");
    // The challenge pointed at the metadata, so no well-known guessing happened.
    assert!(log.paths().iter().any(|p| p == "/custom/prm"));
    assert!(
        !log.paths()
            .iter()
            .any(|p| p.starts_with("/.well-known/oauth-protected-resource"))
    );

    let response = headless::authorize(&start.authorization_url, REDIRECT_URI)
        .await
        .expect("headless authorization");
    let (u, s) = authorizer
        .complete(
            &response.state,
            response.code.expose(),
            response.issuer.as_deref(),
        )
        .await
        .expect("complete");
    assert_eq!((u, s), (user("alice"), server()));

    let record = authorizer
        .stores()
        .vault
        .get(&PairKey::new("alice", SERVER))
        .await
        .expect("vault")
        .expect("tokens stored");
    assert!(
        record.refresh_token.is_some(),
        "offline_access yields a refresh token"
    );
    assert!(
        record.scopes.iter().any(|s| s == "mcp:tools"),
        "{:?}",
        record.scopes
    );
    assert_eq!(record.resource, rs.url);
    assert_eq!(record.issuer, peer.issuer);

    let token = authorizer
        .access_token(&user("alice"), &server(), &rs.url)
        .await
        .expect("access token");
    assert_eq!(resource_status(&rs, "/mcp", &token).await, 200);

    // The callback's state is single use.
    let replay = authorizer
        .complete(
            &response.state,
            response.code.expose(),
            response.issuer.as_deref(),
        )
        .await;
    assert_eq!(replay, Err(OAuthError::UnknownState));
    let forged = authorizer.complete("forged-state", "some-code", None).await;
    assert_eq!(forged, Err(OAuthError::UnknownState));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_via_well_known_path_aware() {
    let peer = OidcPeer::spawn(LONG_TTL).await;
    let rs = ResourceServer::spawn(Discovery::WellKnownPathAware, &peer.issuer).await;
    let log = RequestLog::default();
    let authorizer = authorizer(&log);
    authorize_alice(&authorizer, SERVER, &rs.url).await;
    let paths = log.paths();
    assert!(
        paths
            .iter()
            .any(|p| p == "/.well-known/oauth-protected-resource/mcp"),
        "{paths:?}"
    );
    assert!(
        !paths
            .iter()
            .any(|p| p == "/.well-known/oauth-protected-resource"),
        "{paths:?}"
    );
    let token = authorizer
        .access_token(&user("alice"), &server(), &rs.url)
        .await
        .expect("token");
    assert_eq!(resource_status(&rs, "/mcp", &token).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_via_well_known_root_fallback() {
    let peer = OidcPeer::spawn(LONG_TTL).await;
    let rs = ResourceServer::spawn(Discovery::WellKnownRoot, &peer.issuer).await;
    let log = RequestLog::default();
    let authorizer = authorizer(&log);
    authorize_alice(&authorizer, SERVER, &rs.url).await;
    let paths = log.paths();
    let path_aware = paths
        .iter()
        .position(|p| p == "/.well-known/oauth-protected-resource/mcp")
        .expect("path-aware location tried");
    let root = paths
        .iter()
        .position(|p| p == "/.well-known/oauth-protected-resource")
        .expect("root location tried");
    assert!(path_aware < root, "root is the fallback: {paths:?}");
    let token = authorizer
        .access_token(&user("alice"), &server(), &rs.url)
        .await
        .expect("token");
    assert_eq!(resource_status(&rs, "/mcp", &token).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamic_registration_happens_once_for_two_users() {
    let peer = OidcPeer::spawn(LONG_TTL).await;
    let rs = ResourceServer::spawn(Discovery::Challenge, &peer.issuer).await;
    let log = RequestLog::default();
    let authorizer = authorizer(&log);
    for name in ["alice", "bob"] {
        authorize(
            &authorizer,
            name,
            SERVER,
            &rs.url,
            StartOptions::new(REDIRECT_URI),
        )
        .await
        .expect("authorized");
    }
    assert_eq!(
        peer.stats().await["registrations"],
        1,
        "one registration at the AS"
    );
    let registration = authorizer
        .stores()
        .registrations
        .get(&server(), &peer.issuer)
        .await
        .expect("store")
        .expect("registration stored under (server, issuer)");
    assert_eq!(registration.source, ClientSource::Dynamic);
    assert_eq!(registration.auth_method, TokenEndpointAuthMethod::None);
    for name in ["alice", "bob"] {
        let token = authorizer
            .access_token(&user(name), &server(), &rs.url)
            .await
            .expect("token");
        assert_eq!(resource_status(&rs, "/mcp", &token).await, 200);
    }
}

/// Alice authorized for [`SERVER`] at an `oidc-provider` issuing 30 s tokens, with the clock
/// the authorizer reads (advance it [`PAST_HALF_OF_30_S`] to make her token due).
async fn alice_authorized_short_lived() -> (OidcPeer, ResourceServer, McpAuthorizer, AdvancedClock)
{
    let peer = OidcPeer::spawn(SHORT_TTL).await;
    let rs = ResourceServer::spawn(Discovery::Challenge, &peer.issuer).await;
    let clock = AdvancedClock::default();
    let authorizer = authorizer_on(&RequestLog::default(), &clock);
    authorize_alice(&authorizer, SERVER, &rs.url).await;
    (peer, rs, authorizer, clock)
}

async fn preregistered_flow(client: PreregisteredClient, expect_basic_header: bool) {
    let peer = OidcPeer::spawn(SHORT_TTL).await;
    let rs = ResourceServer::spawn(Discovery::Challenge, &peer.issuer).await;
    let log = RequestLog::default();
    let clock = AdvancedClock::default();
    let authorizer = authorizer_on(&log, &clock);
    authorize(
        &authorizer,
        "alice",
        SERVER,
        &rs.url,
        StartOptions::new(REDIRECT_URI).with_client(client),
    )
    .await
    .expect("authorized");
    // Past half its lifetime: this refreshes, authenticating the client a second time.
    clock.advance(PAST_HALF_OF_30_S);
    let token = authorizer
        .access_token(&user("alice"), &server(), &rs.url)
        .await
        .expect("token");
    assert_eq!(resource_status(&rs, "/mcp", &token).await, 200);
    let stats = peer.stats().await;
    assert_eq!(stats["registrations"], 0, "no dynamic registration");
    assert_eq!(stats["grants"]["authorization_code"], 1);
    assert_eq!(stats["grants"]["refresh_token"], 1);
    let requests = stats["tokenRequests"].as_array().expect("token requests");
    assert_eq!(requests.len(), 2);
    for request in requests {
        assert_eq!(request["basicAuth"], expect_basic_header, "{stats}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preregistered_confidential_client_with_client_secret_basic() {
    preregistered_flow(
        PreregisteredClient {
            client_id: "confidential-basic".into(),
            client_secret: Some(Secret::new("basic-secret-0123456789abcdef")),
            auth_method: None,
        },
        true,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preregistered_confidential_client_with_client_secret_post() {
    preregistered_flow(
        PreregisteredClient {
            client_id: "confidential-post".into(),
            client_secret: Some(Secret::new("post-secret-0123456789abcdef")),
            auth_method: Some(TokenEndpointAuthMethod::ClientSecretPost),
        },
        false,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preregistered_public_client_authenticates_with_none() {
    preregistered_flow(
        PreregisteredClient {
            client_id: "public-client".into(),
            client_secret: None,
            auth_method: None,
        },
        false,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_rotates_the_refresh_token_and_the_old_one_is_dead() {
    let (peer, rs, authorizer, clock) = alice_authorized_short_lived().await;
    let pair = PairKey::new("alice", SERVER);
    let before = authorizer
        .stores()
        .vault
        .get(&pair)
        .await
        .expect("vault")
        .expect("tokens");
    let old_refresh = before.refresh_token.clone().expect("refresh token");

    clock.advance(PAST_HALF_OF_30_S);
    let token = authorizer
        .access_token(&user("alice"), &server(), &rs.url)
        .await
        .expect("refreshed");
    assert_ne!(token, before.access_token, "a new access token");
    let after = authorizer
        .stores()
        .vault
        .get(&pair)
        .await
        .expect("vault")
        .expect("tokens");
    assert_eq!(after.access_token, token, "the new access token is stored");
    let new_refresh = after.refresh_token.clone().expect("rotated refresh token");
    assert_ne!(
        new_refresh, old_refresh,
        "the refresh token rotated and was stored"
    );
    assert_eq!(peer.grant_count("refresh_token").await, 1);
    assert_eq!(resource_status(&rs, "/mcp", &token).await, 200);

    // The AS no longer accepts the old refresh token.
    let (status, error) = peer
        .refresh_raw(&before.client_id, old_refresh.expose(), &rs.url)
        .await;
    assert_eq!((status, error.as_deref()), (400, Some("invalid_grant")));
}

/// A token shorter-lived than the 60 s margin is used for half its lifetime, not refreshed
/// before every request (each new token would be due the moment it arrived).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_shorter_lived_than_the_margin_is_not_refreshed_on_every_call() {
    let (peer, rs, authorizer, clock) = alice_authorized_short_lived().await;
    let mut tokens = Vec::new();
    for round in 0..2 {
        for _ in 0..4 {
            let token = authorizer
                .access_token(&user("alice"), &server(), &rs.url)
                .await
                .expect("token");
            tokens.push(token);
        }
        assert_eq!(
            peer.grant_count("refresh_token").await,
            round,
            "one refresh per half lifetime, not one per call"
        );
        clock.advance(PAST_HALF_OF_30_S);
    }
    assert!(tokens[..4].windows(2).all(|w| w[0] == w[1]));
    assert!(tokens[4..].windows(2).all(|w| w[0] == w[1]));
    assert_ne!(
        tokens[0], tokens[4],
        "the second round's token is the refreshed one"
    );
    assert_eq!(resource_status(&rs, "/mcp", &tokens[4]).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_grant_needs_authorization_and_removes_the_refresh_token() {
    let (peer, rs, authorizer, clock) = alice_authorized_short_lived().await;
    let pair = PairKey::new("alice", SERVER);
    let record = authorizer
        .stores()
        .vault
        .get(&pair)
        .await
        .expect("vault")
        .expect("tokens");
    let refresh = record.refresh_token.clone().expect("refresh token");
    peer.revoke(&record.client_id, refresh.expose()).await;
    assert_eq!(
        peer.stats().await["grantsRevoked"],
        1,
        "the AS revoked the grant"
    );

    clock.advance(PAST_HALF_OF_30_S);
    let error = authorizer
        .access_token(&user("alice"), &server(), &rs.url)
        .await
        .expect_err("the revoked refresh token is rejected");
    assert!(
        matches!(error, OAuthError::NeedsAuthorization(_)),
        "{error:?}"
    );
    let shown = format!("{error} {error:?}");
    assert!(!shown.contains(refresh.expose()), "{shown}");
    let left = authorizer
        .stores()
        .vault
        .get(&pair)
        .await
        .expect("vault")
        .expect("record");
    assert!(
        left.refresh_token.is_none(),
        "the dead refresh token is removed"
    );
    // No retry loop: later calls do not ask the AS again. The unexpired access token is
    // still handed out until the MCP server rejects it; after that the pair needs
    // authorization.
    let token_requests = peer.stats().await["tokenRequests"].clone();
    let again = authorizer
        .access_token(&user("alice"), &server(), &rs.url)
        .await;
    assert_eq!(again.as_ref(), Ok(&record.access_token));
    let after_401 = authorizer
        .access_token_after_rejection(&user("alice"), &server(), &rs.url, &record.access_token)
        .await;
    assert!(
        matches!(after_401, Err(OAuthError::NeedsAuthorization(_))),
        "{after_401:?}"
    );
    assert_eq!(peer.stats().await["tokenRequests"], token_requests);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_authorization_server_is_transient_and_keeps_the_tokens() {
    let peer = OidcPeer::spawn(SHORT_TTL).await;
    let rs = ResourceServer::spawn(Discovery::Challenge, &peer.issuer).await;
    let log = RequestLog::default();
    let authorizer = authorizer(&log);
    authorize_alice(&authorizer, SERVER, &rs.url).await;
    let pair = PairKey::new("alice", SERVER);
    let before = authorizer
        .stores()
        .vault
        .get(&pair)
        .await
        .expect("vault")
        .expect("tokens");
    // Expired: a token still valid would be handed out despite the failed refresh.
    let mut before = before;
    before.expires_at = Some(before.obtained_at);
    authorizer
        .stores()
        .vault
        .put(&pair, before.clone())
        .await
        .expect("vault");
    drop(peer);
    // The node process needs a moment to go away; bounded.
    let mut error = None;
    for _ in 0..50 {
        match authorizer
            .access_token(&user("alice"), &server(), &rs.url)
            .await
        {
            Err(e) => {
                error = Some(e);
                break;
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let error = error.expect("refresh fails once the AS is gone");
    assert!(matches!(error, OAuthError::Transient(_)), "{error:?}");
    assert!(error.is_transient());
    let after = authorizer
        .stores()
        .vault
        .get(&pair)
        .await
        .expect("vault")
        .expect("kept");
    assert_eq!(after.refresh_token, before.refresh_token, "tokens are kept");
}

/// Callers that find the token due at once share one refresh. The refreshed token is not due
/// again, so a caller the scheduler starts only after the refresh has ended uses it rather
/// than refreshing once more.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_access_token_calls_refresh_once() {
    let (peer, rs, authorizer, clock) = alice_authorized_short_lived().await;
    let authorizer = std::sync::Arc::new(authorizer);
    clock.advance(PAST_HALF_OF_30_S);
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let (authorizer, url) = (authorizer.clone(), rs.url.clone());
            tokio::spawn(async move {
                authorizer
                    .access_token(&user("alice"), &server(), &url)
                    .await
            })
        })
        .collect();
    let mut tokens = Vec::new();
    for call in calls {
        let token = tokio::time::timeout(Duration::from_secs(30), call)
            .await
            .expect("bounded")
            .expect("task")
            .expect("token");
        tokens.push(token);
    }
    assert_eq!(
        peer.grant_count("refresh_token").await,
        1,
        "exactly one refresh request"
    );
    assert!(
        tokens.windows(2).all(|w| w[0] == w[1]),
        "everyone got the refreshed token"
    );
    assert_eq!(resource_status(&rs, "/mcp", &tokens[0]).await, 200);
}

async fn assert_refused_without_contact(authorization_server: &str, host: &str) {
    let peer = OidcPeer::spawn(LONG_TTL).await;
    let rs = ResourceServer::spawn_with(
        Discovery::Challenge,
        &peer.issuer,
        Some(vec![authorization_server.to_owned()]),
    )
    .await;
    let log = RequestLog::default();
    let authorizer = authorizer(&log);
    let result = authorizer
        .start(
            &user("alice"),
            &server(),
            &rs.url,
            StartOptions::new(REDIRECT_URI),
        )
        .await;
    assert!(matches!(result, Err(OAuthError::Refused(_))), "{result:?}");
    assert!(
        !log.any_to_host(host),
        "no request to {host}: {:?}",
        log.urls()
    );
    assert!(
        log.urls()
            .iter()
            .all(|url| url.host_str() == Some("127.0.0.1")),
        "{:?}",
        log.urls()
    );
    assert_eq!(peer.stats().await["registrations"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssrf_metadata_service_authorization_server_is_refused() {
    assert_refused_without_contact("http://169.254.169.254", "169.254.169.254").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssrf_private_authorization_server_is_refused() {
    assert_refused_without_contact("http://10.0.0.1", "10.0.0.1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssrf_internal_endpoints_in_authorization_server_metadata_are_refused() {
    // A loopback "authorization server" (allowed: the MCP server is loopback) whose metadata
    // names internal token and registration endpoints.
    let peer = OidcPeer::spawn(LONG_TTL).await;
    let rs = ResourceServer::spawn_with(
        Discovery::Challenge,
        &peer.issuer,
        Some(vec!["{self}/as".to_owned()]),
    )
    .await;
    let log = RequestLog::default();
    let authorizer = authorizer(&log);
    let result = authorizer
        .start(
            &user("alice"),
            &server(),
            &rs.url,
            StartOptions::new(REDIRECT_URI),
        )
        .await;
    match result {
        Err(OAuthError::Refused(SsrfReason::Private(_) | SsrfReason::MetadataService(_))) => {}
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert!(
        log.paths()
            .iter()
            .any(|p| p == "/.well-known/oauth-authorization-server/as")
    );
    assert!(!log.any_to_host("10.0.0.1") && !log.any_to_host("169.254.169.254"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn step_up_on_insufficient_scope_then_bounded() {
    let peer = OidcPeer::spawn(LONG_TTL).await;
    let rs = ResourceServer::spawn(Discovery::Challenge, &peer.issuer).await;
    let log = RequestLog::default();
    let authorizer = authorizer_with(
        &log,
        AuthorizerConfig {
            max_scope_upgrades: 2,
            ..AuthorizerConfig::default()
        },
    );
    authorize_alice(&authorizer, SERVER, &rs.url).await;
    let token = authorizer
        .access_token(&user("alice"), &server(), &rs.url)
        .await
        .expect("token");

    // mcp:admin can be granted: one step-up fixes it.
    let (status, challenge) = rs.challenge("/mcp/admin", Some(token.expose())).await;
    assert_eq!(status, 403);
    let challenge = challenge.expect("403 carries a challenge");
    let start = authorizer
        .step_up(
            &user("alice"),
            &server(),
            &rs.url,
            &challenge,
            StartOptions::new(REDIRECT_URI),
        )
        .await
        .expect("step-up starts");
    assert!(
        start.authorization_url.contains("mcp%3Aadmin"),
        "{}",
        start.authorization_url
    );
    let response = headless::authorize(&start.authorization_url, REDIRECT_URI)
        .await
        .expect("headless");
    authorizer
        .complete(
            &response.state,
            response.code.expose(),
            response.issuer.as_deref(),
        )
        .await
        .expect("complete");
    let token = authorizer
        .access_token(&user("alice"), &server(), &rs.url)
        .await
        .expect("token");
    assert_eq!(resource_status(&rs, "/mcp/admin", &token).await, 200);
    assert_eq!(
        resource_status(&rs, "/mcp", &token).await,
        200,
        "old scopes kept"
    );

    // mcp:forbidden is never granted: re-authorization stops after the configured bound.
    let mut attempts = 0;
    let outcome = loop {
        assert!(attempts <= 5, "the step-up bound must stop this loop");
        let token = authorizer
            .access_token(&user("alice"), &server(), &rs.url)
            .await
            .expect("token");
        let (status, challenge) = rs.challenge("/mcp/forbidden", Some(token.expose())).await;
        assert_eq!(status, 403);
        let challenge = challenge.expect("challenge");
        match authorizer
            .step_up(
                &user("alice"),
                &server(),
                &rs.url,
                &challenge,
                StartOptions::new(REDIRECT_URI),
            )
            .await
        {
            Ok(start) => {
                attempts += 1;
                let response = headless::authorize(&start.authorization_url, REDIRECT_URI)
                    .await
                    .expect("headless");
                authorizer
                    .complete(
                        &response.state,
                        response.code.expose(),
                        response.issuer.as_deref(),
                    )
                    .await
                    .expect("complete");
            }
            Err(error) => break error,
        }
    };
    assert_eq!(attempts, 2);
    assert!(matches!(outcome, OAuthError::Protocol(_)), "{outcome:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_in_error_display_or_debug() {
    let peer = OidcPeer::spawn(LONG_TTL).await;
    let rs = ResourceServer::spawn(Discovery::Challenge, &peer.issuer).await;
    let log = RequestLog::default();
    let authorizer = authorizer(&log);
    let start = authorizer
        .start(
            &user("alice"),
            &server(),
            &rs.url,
            StartOptions::new(REDIRECT_URI),
        )
        .await
        .expect("start");
    // A wrong code for a real state: the AS refuses, and the error must not echo the code.
    let bogus_code = "bogus-authorization-code-0123456789";
    let error = authorizer
        .complete(&start.state, bogus_code, Some(&peer.issuer))
        .await
        .expect_err("a wrong code is refused");
    assert!(matches!(error, OAuthError::Protocol(_)), "{error:?}");
    let shown = format!("{error} / {error:?}");
    assert!(!shown.contains(bogus_code), "{shown}");

    // Tokens and flows print without their values.
    authorize_alice(&authorizer, SERVER, &rs.url).await;
    let record = authorizer
        .stores()
        .vault
        .get(&PairKey::new("alice", SERVER))
        .await
        .expect("vault")
        .expect("tokens");
    let shown = format!("{record:?}");
    assert!(!shown.contains(record.access_token.expose()), "{shown}");
    let refresh = record.refresh_token.as_ref().expect("refresh token");
    assert!(!shown.contains(refresh.expose()), "{shown}");
    let registration = authorizer
        .stores()
        .registrations
        .get(&server(), &peer.issuer)
        .await
        .expect("store")
        .expect("registration");
    assert!(format!("{registration:?}").contains(&registration.client_id));
}
