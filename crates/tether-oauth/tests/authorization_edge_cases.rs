//! The authorization cases of the MCP 2025-11-25 and 2026-07-28 texts that `oidc-provider` cannot
//! express, against the testkit's strict authorization server ([`tether_testkit::AuthServer`])
//! and protected resource metadata published exactly as each case needs it.

mod support;

use serde_json::json;
use support::{REDIRECT_URI, RequestLog, authorize, authorizer};
use tether_core::{PairKey, ServerName, UserId};
use tether_oauth::{McpAuthorizer, OAuthError, StartOptions};
use tether_testkit::{
    AuthServer, AuthServerConfig, DocumentHost, IssResponse, serve_auth_server, serve_documents,
};

const PRM_ROOT: &str = "/.well-known/oauth-protected-resource";

fn alice() -> UserId {
    UserId::new("alice")
}

fn server() -> ServerName {
    ServerName::new("notes")
}

async fn auth_server(config: AuthServerConfig) -> AuthServer {
    serve_auth_server(config)
        .await
        .expect("the authorization server starts")
}

/// A resource at `host.base` (pathless) whose metadata names `issuer`.
async fn resource_naming(issuer: &str, scopes: Option<&[&str]>) -> DocumentHost {
    let host = serve_documents().await.expect("the document host starts");
    publish(&host, issuer, scopes);
    host
}

fn publish(host: &DocumentHost, issuer: &str, scopes: Option<&[&str]>) {
    let mut metadata = json!({ "resource": host.base, "authorization_servers": [issuer] });
    if let Some(scopes) = scopes {
        metadata["scopes_supported"] = json!(scopes);
    }
    host.set(PRM_ROOT, metadata);
}

/// start → headless authorization → complete, for alice's `notes` with default options.
async fn authorize_alice(authorizer: &McpAuthorizer, server_url: &str) -> Result<(), OAuthError> {
    authorize(
        authorizer,
        "alice",
        "notes",
        server_url,
        StartOptions::new(REDIRECT_URI),
    )
    .await
}

/// The start of alice's authorization for `notes` (the URL to send her to).
async fn start_alice(
    authorizer: &McpAuthorizer,
    server_url: &str,
    options: StartOptions,
) -> Result<tether_oauth::AuthorizationStart, OAuthError> {
    authorizer
        .start(&alice(), &server(), server_url, options)
        .await
}

/// A refresh, forced by reporting the current access token for `server_url` as rejected.
async fn refresh(authorizer: &McpAuthorizer, server_url: &str) -> Result<(), OAuthError> {
    let current = authorizer
        .access_token(&alice(), &server(), server_url)
        .await?;
    let fresh = authorizer
        .access_token_after_rejection(&alice(), &server(), server_url, &current)
        .await?;
    assert_ne!(fresh, current, "the refresh issued a new access token");
    Ok(())
}

fn grant_types(auth: &AuthServer) -> Vec<String> {
    auth.seen()
        .token_requests
        .iter()
        .map(|r| r.grant_type.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_requests_carry_the_resource_exactly_as_published_even_without_a_path() {
    let host = serve_documents().await.expect("host");
    let auth = auth_server(AuthServerConfig {
        // `http://127.0.0.1:PORT`, which a URL parser turns into `http://127.0.0.1:PORT/`.
        expected_resource: Some(host.base.clone()),
        ..AuthServerConfig::default()
    })
    .await;
    publish(&host, &auth.issuer, Some(&["mcp:tools"]));
    let log = RequestLog::default();
    let authorizer = authorizer(&log);

    authorize_alice(&authorizer, &host.base)
        .await
        .expect("the code exchange names the resource as published");
    refresh(&authorizer, &host.base)
        .await
        .expect("the refresh names the resource as published");

    let seen = auth.seen();
    assert_eq!(
        seen.authorizations[0].resource.as_deref(),
        Some(&*host.base)
    );
    assert_eq!(grant_types(&auth), ["authorization_code", "refresh_token"]);
    for request in &seen.token_requests {
        assert_eq!(
            request.resource.as_deref(),
            Some(&*host.base),
            "{request:?}"
        );
        assert_eq!(request.error, None, "{request:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_only_token_endpoint_is_sent_client_secret_post() {
    let auth = auth_server(AuthServerConfig {
        token_auth_methods: vec!["client_secret_post".into()],
        registration_issues_secret: true,
        ..AuthServerConfig::default()
    })
    .await;
    let host = resource_naming(&auth.issuer, Some(&["mcp:tools"])).await;
    let authorizer = authorizer(&RequestLog::default());

    authorize_alice(&authorizer, &host.base)
        .await
        .expect("the code exchange authenticates the way the server allows");
    refresh(&authorizer, &host.base)
        .await
        .expect("so does the refresh");

    let seen = auth.seen();
    assert_eq!(seen.registrations, 1);
    assert_eq!(grant_types(&auth), ["authorization_code", "refresh_token"]);
    for request in &seen.token_requests {
        assert_eq!(request.auth_method, "client_secret_post", "{request:?}");
        assert_eq!(request.error, None, "{request:?}");
    }
}

/// RFC 9207: the callback's `iss` must be the issuer's when present, and present when the
/// server advertises it; a refused response never reaches the token endpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_authorization_responses_iss_is_checked() {
    let cases = [
        (true, IssResponse::Correct, true),
        (true, IssResponse::Wrong, false),
        (true, IssResponse::Missing, false),
        (false, IssResponse::Wrong, false),
        (false, IssResponse::Correct, true),
        (false, IssResponse::Missing, true),
    ];
    for (advertise_iss, iss_response, accepted) in cases {
        let auth = auth_server(AuthServerConfig {
            advertise_iss,
            iss_response,
            ..AuthServerConfig::default()
        })
        .await;
        let host = resource_naming(&auth.issuer, Some(&["mcp:tools"])).await;
        let authorizer = authorizer(&RequestLog::default());
        let outcome = authorize_alice(&authorizer, &host.base).await;
        let case = format!("advertised {advertise_iss}, iss {iss_response:?}");
        let stored = authorizer
            .stores()
            .vault
            .get(&PairKey::new(alice(), server()))
            .await
            .expect("vault");
        if accepted {
            outcome.unwrap_or_else(|e| panic!("{case}: refused: {e}"));
            assert!(stored.is_some(), "{case}");
        } else {
            let error = outcome.expect_err(&case);
            assert!(stored.is_none(), "{case}: tokens stored");
            assert!(
                auth.seen().token_requests.is_empty(),
                "{case}: the code was exchanged"
            );
            assert!(!error.to_string().is_empty());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_whose_issuer_is_another_server_is_refused() {
    let auth = auth_server(AuthServerConfig {
        metadata_issuer: Some("http://127.0.0.1:1/someone-else".into()),
        ..AuthServerConfig::default()
    })
    .await;
    let host = resource_naming(&auth.issuer, Some(&["mcp:tools"])).await;
    let authorizer = authorizer(&RequestLog::default());

    let error = start_alice(&authorizer, &host.base, StartOptions::new(REDIRECT_URI))
        .await
        .expect_err("a mismatching issuer is refused");
    assert!(error.to_string().contains("issuer"), "{error}");
    assert_eq!(auth.seen().registrations, 0, "nothing registered with it");
}

/// MCP 2025-03-26: no protected resource metadata; the MCP server's origin is the
/// authorization server, with RFC 8414 metadata there or, without any, the default endpoints.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2025_03_26_server_is_authorized_at_its_origin_with_or_without_metadata() {
    for metadata in [true, false] {
        let auth = auth_server(AuthServerConfig {
            metadata,
            ..AuthServerConfig::default()
        })
        .await;
        let log = RequestLog::default();
        let authorizer = authorizer(&log);
        let server_url = format!("{}/mcp", auth.issuer);
        authorize_alice(&authorizer, &server_url)
            .await
            .unwrap_or_else(|e| panic!("metadata {metadata}: {e}"));
        refresh(&authorizer, &server_url)
            .await
            .unwrap_or_else(|e| panic!("metadata {metadata}: refresh: {e}"));
        let paths = log.paths();
        assert!(paths.contains(&"/register".to_owned()), "{paths:?}");
        assert!(paths.contains(&"/token".to_owned()), "{paths:?}");
        assert!(
            paths.contains(&"/.well-known/oauth-authorization-server".to_owned()),
            "the origin's metadata is looked for first: {paths:?}"
        );
        assert_eq!(auth.seen().registrations, 1);
        assert_eq!(grant_types(&auth), ["authorization_code", "refresh_token"]);
    }
}

/// The resource's metadata names a new authorization server: the next authorization registers
/// with it and the old server's tokens are dropped at once (they cannot work any more).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_authorization_server_gets_a_new_registration_and_the_old_tokens_go() {
    let old = auth_server(AuthServerConfig::default()).await;
    let new = auth_server(AuthServerConfig::default()).await;
    let host = resource_naming(&old.issuer, Some(&["mcp:tools"])).await;
    let authorizer = authorizer(&RequestLog::default());
    let pair = PairKey::new(alice(), server());
    authorize_alice(&authorizer, &host.base)
        .await
        .expect("authorized with the first server");
    let first = authorizer.stores().vault.get(&pair).await.expect("vault");
    assert_eq!(first.map(|r| r.issuer), Some(old.issuer.clone()));

    publish(&host, &new.issuer, Some(&["mcp:tools"]));
    let start = start_alice(&authorizer, &host.base, StartOptions::new(REDIRECT_URI))
        .await
        .expect("a flow at the new server starts");
    assert!(
        start.authorization_url.starts_with(&new.issuer),
        "{}",
        start.authorization_url
    );
    assert_eq!(
        new.seen().registrations,
        1,
        "registered with the new server"
    );
    let kept = authorizer.stores().vault.get(&pair).await.expect("vault");
    assert!(kept.is_none(), "the old server's tokens were dropped");

    authorize_alice(&authorizer, &host.base)
        .await
        .expect("authorized with the new server");
    refresh(&authorizer, &host.base)
        .await
        .expect("refreshed at the new server");
    let record = authorizer.stores().vault.get(&pair).await.expect("vault");
    assert_eq!(record.map(|r| r.issuer), Some(new.issuer.clone()));
    assert_eq!(grant_types(&old), ["authorization_code"]);
    assert_eq!(
        grant_types(&new),
        ["authorization_code", "refresh_token"],
        "the refresh went to the new server"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_id_metadata_document_replaces_registration_where_supported() {
    let auth = auth_server(AuthServerConfig {
        client_id_metadata_documents: true,
        ..AuthServerConfig::default()
    })
    .await;
    let host = resource_naming(&auth.issuer, Some(&["mcp:tools"])).await;
    let client_id = host.url("/tether-client.json");
    host.set(
        "/tether-client.json",
        json!({
            "client_id": client_id,
            "client_name": "Tether",
            "redirect_uris": [REDIRECT_URI],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        }),
    );
    let authorizer = authorizer(&RequestLog::default());
    let mut options = StartOptions::new(REDIRECT_URI);
    options.client_metadata_url = Some(client_id.clone());

    authorize(&authorizer, "alice", "notes", &host.base, options)
        .await
        .expect("authorized with the metadata document as the client");
    refresh(&authorizer, &host.base).await.expect("refreshed");

    let seen = auth.seen();
    assert_eq!(seen.registrations, 0, "no dynamic registration");
    assert!(seen.metadata_documents_fetched >= 1);
    assert_eq!(seen.authorizations[0].client_id, client_id);
    for request in &seen.token_requests {
        assert_eq!(request.auth_method, "none", "{request:?}");
        assert_eq!(request.error, None, "{request:?}");
    }
}

/// The scope asked for: the challenge's, else the resource's `scopes_supported`, else none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scope_comes_from_the_challenge_then_the_resource_metadata_then_is_omitted() {
    let auth = auth_server(AuthServerConfig {
        scopes_supported: vec!["mcp:tools".into(), "mcp:admin".into()],
        ..AuthServerConfig::default()
    })
    .await;
    let authorizer = authorizer(&RequestLog::default());
    let scope_of = |url: &str| {
        url::Url::parse(url)
            .expect("authorization URL")
            .query_pairs()
            .find(|(k, _)| k == "scope")
            .map(|(_, v)| v.into_owned())
    };

    let host = resource_naming(&auth.issuer, Some(&["mcp:tools"])).await;
    let challenge = format!(
        r#"Bearer resource_metadata="{}", scope="mcp:admin""#,
        host.url(PRM_ROOT)
    );
    let from_challenge = start_alice(
        &authorizer,
        &host.base,
        StartOptions::new(REDIRECT_URI).with_challenge(challenge),
    )
    .await
    .expect("start");
    assert_eq!(
        scope_of(&from_challenge.authorization_url).as_deref(),
        Some("mcp:admin")
    );

    let from_metadata = start_alice(&authorizer, &host.base, StartOptions::new(REDIRECT_URI))
        .await
        .expect("start");
    assert_eq!(
        scope_of(&from_metadata.authorization_url).as_deref(),
        Some("mcp:tools")
    );

    let bare = resource_naming(&auth.issuer, None).await;
    let omitted = start_alice(&authorizer, &bare.base, StartOptions::new(REDIRECT_URI))
        .await
        .expect("start");
    assert_eq!(scope_of(&omitted.authorization_url), None);
}
