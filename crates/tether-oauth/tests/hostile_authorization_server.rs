//! Property tests against an authorization server that answers anything: protected resource
//! metadata, authorization server metadata, registration and token responses of every shape,
//! `WWW-Authenticate` challenges of any text. The authorizer must answer with an `OAuthError`
//! (never panic or hang), never contact an address the network policy refuses, never put a
//! token into an error message, and never lose the stored refresh token to a bad answer.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use proptest::prelude::*;
use serde_json::{Value, json};
use tether_core::{PairKey, ServerName, Timestamp, UserId};
use tether_oauth::store::{
    ClientSource, Endpoints, RegistrationRecord, TokenEndpointAuthMethod, TokenRecord,
};
use tether_oauth::{
    AuthorizerConfig, McpAuthorizer, OAuthError, OAuthStores, Secret, StartOptions,
};
use tether_testkit::json_strategies::{member, object};
use tokio::runtime::Runtime;

const REFRESH_TOKEN: &str = "rt-stored-7f3a9c";
const ISSUED_TOKEN: &str = "at-issued-5b1e2d";
const METADATA_SERVICE: &str = "http://169.254.169.254";

/// What the hostile server answers in the current case.
#[derive(Debug, Clone, Default)]
struct Answers {
    resource_metadata: String,
    server_metadata: String,
    registration: (u16, String),
    token: (u16, String),
}

#[derive(Clone)]
struct Hostile {
    base: String,
    answers: Arc<Mutex<Answers>>,
    /// Hosts of requests the authorizer sent (through its request observer).
    contacted: Arc<Mutex<Vec<String>>>,
}

fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime")
    })
}

fn json_answer(status: u16, body: String) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

impl Hostile {
    fn spawn() -> Self {
        runtime().block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("binds");
            let base = format!("http://{}", listener.local_addr().expect("address"));
            let answers = Arc::new(Mutex::new(Answers::default()));
            let read = |f: fn(&Answers) -> Response| {
                move |State(answers): State<Arc<Mutex<Answers>>>| async move {
                    let answers = answers.lock().map(|a| a.clone()).unwrap_or_default();
                    f(&answers)
                }
            };
            let resource = read(|a| json_answer(200, a.resource_metadata.clone()));
            let server = read(|a| json_answer(200, a.server_metadata.clone()));
            let app = Router::new()
                .route("/.well-known/oauth-protected-resource/mcp", get(resource))
                .route("/.well-known/oauth-protected-resource", get(resource))
                .route("/.well-known/oauth-authorization-server", get(server))
                .route("/.well-known/openid-configuration", get(server))
                .route(
                    "/register",
                    post(read(|a| {
                        json_answer(a.registration.0, a.registration.1.clone())
                    })),
                )
                .route(
                    "/token",
                    post(read(|a| json_answer(a.token.0, a.token.1.clone()))),
                )
                .with_state(answers.clone());
            tokio::spawn(async move {
                let _ = axum::serve(listener, app).await;
            });
            Self {
                base,
                answers,
                contacted: Arc::default(),
            }
        })
    }

    fn authorizer(&self) -> McpAuthorizer {
        let contacted = self.contacted.clone();
        let config = AuthorizerConfig {
            request_timeout: Duration::from_secs(5),
            refresh_wait: Duration::from_secs(5),
            request_observer: Some(Arc::new(move |_: &str, url: &url::Url| {
                if let Ok(mut hosts) = contacted.lock() {
                    hosts.push(url.host_str().unwrap_or_default().to_owned());
                }
            })),
            ..AuthorizerConfig::default()
        };
        McpAuthorizer::new(config, OAuthStores::in_memory()).expect("an authorizer")
    }

    fn set(&self, answers: Answers) {
        if let Ok(mut current) = self.answers.lock() {
            *current = answers;
        }
        if let Ok(mut hosts) = self.contacted.lock() {
            hosts.clear();
        }
    }

    fn contacted_metadata_service(&self) -> bool {
        self.contacted
            .lock()
            .map(|hosts| hosts.iter().any(|h| h == "169.254.169.254"))
            .unwrap_or(false)
    }
}

/// A body: the object, cut short, or not JSON.
fn body(object: impl Strategy<Value = Value>) -> impl Strategy<Value = String> {
    prop_oneof![
        6 => object.prop_map(|v| v.to_string()),
        1 => "[ -~]{0,40}",
        1 => Just(String::new()),
    ]
}

fn status() -> impl Strategy<Value = u16> {
    prop_oneof![
        6 => Just(200u16),
        1 => prop::sample::select(vec![201u16, 400, 401, 429, 500, 503]),
    ]
}

fn discovery_answers(base: String) -> impl Strategy<Value = (Answers, Option<String>)> {
    let b = base.clone();
    let resource = (
        member(vec![json!(format!("{b}/mcp")), json!(format!("{b}/other"))]),
        member(vec![
            json!([b.clone()]),
            json!([]),
            json!([METADATA_SERVICE]),
            json!(["not a url"]),
        ]),
        member(vec![json!(["read"]), json!([])]),
    )
        .prop_map(|(resource, servers, scopes)| {
            object(vec![
                ("resource", resource),
                ("authorization_servers", servers),
                ("scopes_supported", scopes),
            ])
        });
    let b = base.clone();
    let server = (
        member(vec![json!(b.clone()), json!("https://elsewhere.example")]),
        member(vec![
            json!(format!("{b}/auth")),
            json!(format!("{METADATA_SERVICE}/auth")),
            json!("javascript:alert(1)"),
        ]),
        member(vec![
            json!(format!("{b}/token")),
            json!(format!("{METADATA_SERVICE}/token")),
        ]),
        member(vec![
            json!(format!("{b}/register")),
            json!(format!("{METADATA_SERVICE}/register")),
        ]),
        member(vec![json!(["S256"]), json!(["plain"]), json!([])]),
        member(vec![json!(["code"])]),
    )
        .prop_map(|(issuer, authorize, token, register, pkce, types)| {
            object(vec![
                ("issuer", issuer),
                ("authorization_endpoint", authorize),
                ("token_endpoint", token),
                ("registration_endpoint", register),
                ("code_challenge_methods_supported", pkce),
                ("response_types_supported", types),
            ])
        });
    let registration = (
        member(vec![json!("client-1"), json!("")]),
        member(vec![json!("secret-1")]),
    )
        .prop_map(|(id, secret)| object(vec![("client_id", id), ("client_secret", secret)]));
    let b = base;
    let challenge = prop::option::of(prop_oneof![
        Just(format!(
            r#"Bearer resource_metadata="{b}/.well-known/oauth-protected-resource/mcp", scope="read""#
        )),
        Just(format!(
            r#"Bearer resource_metadata="{METADATA_SERVICE}/prm""#
        )),
        Just(r#"Bearer error="insufficient_scope", scope="a b""#.to_owned()),
        "[ -~]{0,60}",
    ]);
    (
        body(resource),
        body(server),
        status(),
        body(registration),
        challenge,
    )
        .prop_map(
            |(resource_metadata, server_metadata, code, registration, challenge)| {
                (
                    Answers {
                        resource_metadata,
                        server_metadata,
                        registration: (code, registration),
                        token: (500, String::new()),
                    },
                    challenge,
                )
            },
        )
}

fn token_answer() -> impl Strategy<Value = (u16, String)> {
    let success = (
        member(vec![json!(ISSUED_TOKEN), json!("")]),
        member(vec![json!("Bearer"), json!("bearer"), json!("MAC")]),
        member(vec![
            json!(3600),
            json!(-1),
            json!(0),
            json!("3600"),
            json!(1e300),
        ]),
        member(vec![json!("rt-rotated-0c4d"), Value::Null]),
        member(vec![json!("read"), json!(["read"])]),
    )
        .prop_map(|(access, kind, expires, refresh, scope)| {
            object(vec![
                ("access_token", access),
                ("token_type", kind),
                ("expires_in", expires),
                ("refresh_token", refresh),
                ("scope", scope),
            ])
        });
    let error = member(vec![
        json!("invalid_grant"),
        json!("invalid_client"),
        json!("temporarily_unavailable"),
    ])
    .prop_map(|e| {
        object(vec![
            ("error", e),
            ("error_description", Some(json!(REFRESH_TOKEN))),
        ])
    });
    prop_oneof![
        3 => (Just(200u16), body(success)),
        2 => (prop::sample::select(vec![400u16, 401, 429, 500, 503]), body(error)),
        1 => (status(), "[ -~]{0,40}"),
    ]
}

fn hostile() -> &'static Hostile {
    static HOSTILE: OnceLock<Hostile> = OnceLock::new();
    HOSTILE.get_or_init(Hostile::spawn)
}

fn refresh_hostile() -> &'static Hostile {
    static HOSTILE: OnceLock<Hostile> = OnceLock::new();
    HOSTILE.get_or_init(Hostile::spawn)
}

fn assert_no_secret(error: &OAuthError) -> Result<(), TestCaseError> {
    let text = error.to_string();
    for secret in [REFRESH_TOKEN, ISSUED_TOKEN, "secret-1", "rt-rotated-0c4d"] {
        prop_assert!(!text.contains(secret), "{secret} in {text:?}");
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn any_metadata_or_challenge_ends_in_a_clear_error_or_a_sound_flow(
        (answers, challenge) in discovery_answers(hostile().base.clone())
    ) {
        let peer = hostile();
        peer.set(answers);
        let authorizer = peer.authorizer();
        let mut options = StartOptions::new("http://127.0.0.1:9/callback");
        options.challenge = challenge;
        let started = runtime().block_on(async {
            tokio::time::timeout(
                Duration::from_secs(30),
                authorizer.start(
                    &UserId::new("alice"),
                    &ServerName::new("alpha"),
                    &format!("{}/mcp", peer.base),
                    options,
                ),
            )
            .await
        });
        let started = started.map_err(|_| TestCaseError::fail("start() hung"))?;
        prop_assert!(!peer.contacted_metadata_service(), "a refused address was contacted");
        match started {
            Ok(start) => prop_assert!(
                start.authorization_url.starts_with(&format!("{}/auth?", peer.base)),
                "{}", start.authorization_url
            ),
            Err(error) => assert_no_secret(&error)?,
        }
    }

    #[test]
    fn any_token_response_keeps_the_refresh_token_unless_the_grant_is_refused(
        token in token_answer()
    ) {
        let peer = refresh_hostile();
        let refused_grant = token.1.contains("invalid_grant");
        let issued = serde_json::from_str::<Value>(&token.1)
            .ok()
            .and_then(|answer| answer["access_token"].as_str().map(str::to_owned));
        peer.set(Answers { token, ..Answers::default() });
        let authorizer = peer.authorizer();
        let pair = PairKey::new("alice", "alpha");
        let stores = authorizer.stores().clone();
        let outcome = runtime().block_on(async {
            let registration = RegistrationRecord {
                client_id: "client-1".into(),
                client_secret: Some(Secret::new("secret-1")),
                auth_method: TokenEndpointAuthMethod::ClientSecretPost,
                source: ClientSource::Preregistered,
                redirect_uris: vec!["http://127.0.0.1:9/callback".into()],
                endpoints: Endpoints {
                    authorization_endpoint: format!("{}/auth", peer.base),
                    token_endpoint: format!("{}/token", peer.base),
                    registration_endpoint: None,
                    issuer: Some(peer.base.clone()),
                    iss_parameter_supported: false,
                },
                registered_at: Timestamp::from_millis(1),
            };
            stores
                .registrations
                .put(&pair.server, &peer.base, registration)
                .await
                .expect("stored");
            let resource = format!("{}/mcp", peer.base);
            let expired = TokenRecord {
                access_token: Secret::new("at-expired-91ab"),
                expires_at: Some(Timestamp::from_millis(1_000)),
                scopes: vec!["read".into()],
                refresh_token: Some(Secret::new(REFRESH_TOKEN)),
                obtained_at: Timestamp::from_millis(1),
                issuer: peer.base.clone(),
                client_id: "client-1".into(),
                resource: resource.clone(),
            };
            stores.vault.put(&pair, expired).await.expect("stored");
            let outcome = tokio::time::timeout(
                Duration::from_secs(30),
                authorizer.access_token(&pair.user, &pair.server, &resource),
            )
            .await;
            let stored = stores.vault.get(&pair).await.expect("readable");
            (outcome, stored)
        });
        let (outcome, stored) = outcome;
        let outcome = outcome.map_err(|_| TestCaseError::fail("access_token() hung"))?;
        match outcome {
            Ok(token) => {
                // The token the authorization server issued, and only one it may issue.
                prop_assert_eq!(Some(token.expose()), issued.as_deref());
                prop_assert!(token.expose().bytes().all(|b| b.is_ascii_graphic()));
                let stored = stored.ok_or_else(|| TestCaseError::fail("tokens vanished"))?;
                prop_assert_eq!(stored.access_token.expose(), token.expose());
                prop_assert!(stored.refresh_token.is_some(), "a refresh token is kept");
            }
            Err(error) => {
                assert_no_secret(&error)?;
                if !(refused_grant && matches!(error, OAuthError::NeedsAuthorization(_))) {
                    let kept = stored
                        .and_then(|s| s.refresh_token)
                        .map(|r| r.expose().to_owned());
                    prop_assert_eq!(
                        kept.as_deref(),
                        Some(REFRESH_TOKEN),
                        "a bad answer ({}) must not lose the refresh token", error
                    );
                }
            }
        }
    }
}
