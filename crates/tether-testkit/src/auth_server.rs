//! A small OAuth 2.1 authorization server for the cases `oidc-provider` cannot express: it is
//! strict where a test needs it strict (the `resource` of every token request compared as a
//! string, the client authentication method the server advertises) and can be told to answer
//! the way odd servers do (RFC 9207 `iss` right, wrong or missing; metadata whose `issuer` is
//! another; no metadata at all, as MCP 2025-03-26 servers with default endpoints; client ID
//! metadata documents).
//!
//! Endpoints: RFC 8414 metadata at `/.well-known/oauth-authorization-server`, `/authorize`
//! (approves at once: 302 to the redirect URI with a code), `/token` (authorization code with
//! PKCE S256, refresh token with rotation), `/register` (RFC 7591), `/introspect` (RFC 7662,
//! unauthenticated). Everything it saw is kept for the test to read ([`AuthServer::seen`]).
//! Loopback only, like every test peer.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Access tokens live this long unless a test says otherwise.
const ACCESS_TOKEN_TTL: u64 = 300;
const DOCUMENT_FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// What the RFC 9207 `iss` parameter of the authorization response carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssResponse {
    /// The issuer, as RFC 9207 says.
    Correct,
    /// Another issuer's identifier (a mix-up attack).
    Wrong,
    /// None at all.
    Missing,
}

#[derive(Debug, Clone)]
pub struct AuthServerConfig {
    /// Publish RFC 8414 metadata; without it clients fall back to MCP 2025-03-26's default
    /// endpoints (`/authorize`, `/token`, `/register` at the origin).
    pub metadata: bool,
    /// The `issuer` the metadata names; `None`: the server's own base URL (as it must be).
    pub metadata_issuer: Option<String>,
    /// `token_endpoint_auth_methods_supported`; the token endpoint accepts a client only with
    /// the method it was registered with, and only methods listed here.
    pub token_auth_methods: Vec<String>,
    /// Dynamic registrations get a client secret (and the first secret-using method listed).
    pub registration_issues_secret: bool,
    /// `authorization_response_iss_parameter_supported`.
    pub advertise_iss: bool,
    pub iss_response: IssResponse,
    /// `client_id_metadata_document_supported`: a client ID that is an https or loopback URL
    /// is fetched and must list the redirect URI.
    pub client_id_metadata_documents: bool,
    /// `scopes_supported`.
    pub scopes_supported: Vec<String>,
    /// When set, token requests whose `resource` is not exactly this string are refused with
    /// `invalid_target` (RFC 8707), as a strict server compares.
    pub expected_resource: Option<String>,
}

impl Default for AuthServerConfig {
    fn default() -> Self {
        Self {
            metadata: true,
            metadata_issuer: None,
            token_auth_methods: vec![
                "client_secret_basic".into(),
                "client_secret_post".into(),
                "none".into(),
            ],
            registration_issues_secret: false,
            advertise_iss: false,
            iss_response: IssResponse::Missing,
            client_id_metadata_documents: false,
            scopes_supported: vec!["mcp:tools".into(), "offline_access".into()],
            expected_resource: None,
        }
    }
}

/// One request to `/authorize`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizeRequest {
    pub client_id: String,
    pub scope: Option<String>,
    pub resource: Option<String>,
}

/// One request to `/token`, and how it was answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    pub grant_type: String,
    /// `client_secret_basic`, `client_secret_post` or `none`, as the client authenticated.
    pub auth_method: String,
    pub resource: Option<String>,
    /// `None` when tokens were issued, else the OAuth error code.
    pub error: Option<String>,
}

/// What the server saw.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    pub registrations: u64,
    pub metadata_documents_fetched: u64,
    pub authorizations: Vec<AuthorizeRequest>,
    pub token_requests: Vec<TokenRequest>,
}

#[derive(Debug, Clone)]
struct Client {
    secret: Option<String>,
    auth_method: String,
    redirect_uris: Vec<String>,
}

#[derive(Debug, Clone)]
struct Code {
    client_id: String,
    redirect_uri: String,
    challenge: String,
    scope: String,
    resource: Option<String>,
}

#[derive(Debug, Clone)]
struct Grant {
    client_id: String,
    scope: String,
    resource: Option<String>,
}

#[derive(Debug, Default)]
struct Books {
    clients: HashMap<String, Client>,
    codes: HashMap<String, Code>,
    refresh_tokens: HashMap<String, Grant>,
    access_tokens: HashMap<String, Grant>,
    seen: Seen,
}

#[derive(Debug)]
struct Shared {
    config: AuthServerConfig,
    issuer: String,
    books: Mutex<Books>,
    counter: AtomicU64,
    http: reqwest::Client,
}

impl Shared {
    fn books(&self) -> std::sync::MutexGuard<'_, Books> {
        self.books
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn mint(&self, prefix: &str) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        format!("{prefix}-{n}-{nanos:x}")
    }
}

/// A running authorization server. Dropping it stops it.
#[derive(Debug)]
pub struct AuthServer {
    pub addr: SocketAddr,
    /// `http://<addr>`: the issuer identifier.
    pub issuer: String,
    shared: Arc<Shared>,
    ct: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl AuthServer {
    pub fn seen(&self) -> Seen {
        self.shared.books().seen.clone()
    }

    /// The RFC 7662 introspection endpoint.
    pub fn introspection_endpoint(&self) -> String {
        format!("{}/introspect", self.issuer)
    }
}

impl Drop for AuthServer {
    fn drop(&mut self) {
        self.ct.cancel();
        self.task.abort();
    }
}

/// Starts the server on `127.0.0.1` at any free port.
pub async fn serve_auth_server(config: AuthServerConfig) -> std::io::Result<AuthServer> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let issuer = format!("http://{addr}");
    let http = reqwest::Client::builder()
        .timeout(DOCUMENT_FETCH_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .map_err(std::io::Error::other)?;
    let shared = Arc::new(Shared {
        config,
        issuer: issuer.clone(),
        books: Mutex::default(),
        counter: AtomicU64::new(1),
        http,
    });
    let router = Router::new()
        .route("/.well-known/oauth-authorization-server", get(metadata))
        .route("/authorize", get(authorize))
        .route("/token", post(token))
        .route("/register", post(register))
        .route("/introspect", post(introspect))
        .with_state(shared.clone());
    let ct = CancellationToken::new();
    let task = crate::serving::serve_until_cancelled(listener, router, &ct);
    Ok(AuthServer {
        addr,
        issuer,
        shared,
        ct,
        task,
    })
}

async fn metadata(State(shared): State<Arc<Shared>>) -> Response {
    if !shared.config.metadata {
        return StatusCode::NOT_FOUND.into_response();
    }
    let base = &shared.issuer;
    let config = &shared.config;
    axum::Json(json!({
        "issuer": config.metadata_issuer.clone().unwrap_or_else(|| base.clone()),
        "authorization_endpoint": format!("{base}/authorize"),
        "token_endpoint": format!("{base}/token"),
        "registration_endpoint": format!("{base}/register"),
        "introspection_endpoint": format!("{base}/introspect"),
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": config.token_auth_methods,
        "scopes_supported": config.scopes_supported,
        "authorization_response_iss_parameter_supported": config.advertise_iss,
        "client_id_metadata_document_supported": config.client_id_metadata_documents,
    }))
    .into_response()
}

fn oauth_error(status: StatusCode, code: &str) -> Response {
    (status, axum::Json(json!({ "error": code }))).into_response()
}

async fn register(State(shared): State<Arc<Shared>>, body: String) -> Response {
    let Ok(request) = serde_json::from_str::<Value>(&body) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_client_metadata");
    };
    let redirect_uris: Vec<String> = request["redirect_uris"]
        .as_array()
        .map(|uris| {
            uris.iter()
                .filter_map(|u| u.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if redirect_uris.is_empty() {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_redirect_uri");
    }
    let methods = &shared.config.token_auth_methods;
    let (secret, auth_method) = if shared.config.registration_issues_secret {
        let method = methods
            .iter()
            .find(|m| m.starts_with("client_secret_"))
            .cloned()
            .unwrap_or_else(|| "client_secret_basic".into());
        (Some(shared.mint("secret")), method)
    } else {
        (None, "none".to_owned())
    };
    let client_id = shared.mint("client");
    let mut books = shared.books();
    books.seen.registrations += 1;
    books.clients.insert(
        client_id.clone(),
        Client {
            secret: secret.clone(),
            auth_method: auth_method.clone(),
            redirect_uris: redirect_uris.clone(),
        },
    );
    let mut answer = json!({
        "client_id": client_id,
        "redirect_uris": redirect_uris,
        "token_endpoint_auth_method": auth_method,
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
    });
    if let Some(secret) = secret {
        answer["client_secret"] = json!(secret);
    }
    (StatusCode::CREATED, axum::Json(answer)).into_response()
}

/// A client ID that is a URL, looked up through its metadata document (and then kept).
async fn metadata_document_client(shared: &Shared, client_id: &str) -> Option<Client> {
    let url = url::Url::parse(client_id).ok()?;
    if url.host_str() != Some("127.0.0.1") && url.scheme() != "https" {
        return None;
    }
    let body = shared
        .http
        .get(url.as_str())
        .send()
        .await
        .ok()?
        .bytes()
        .await
        .ok()?;
    let document: Value = serde_json::from_slice(&body).ok()?;
    shared.books().seen.metadata_documents_fetched += 1;
    if document["client_id"].as_str() != Some(client_id) {
        return None;
    }
    let redirect_uris = document["redirect_uris"]
        .as_array()?
        .iter()
        .filter_map(|u| u.as_str().map(str::to_owned))
        .collect();
    let client = Client {
        secret: None,
        auth_method: "none".into(),
        redirect_uris,
    };
    shared
        .books()
        .clients
        .insert(client_id.to_owned(), client.clone());
    Some(client)
}

async fn authorize(
    State(shared): State<Arc<Shared>>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let param = |name: &str| params.get(name).cloned();
    let (Some(client_id), Some(redirect_uri), Some(challenge)) = (
        param("client_id"),
        param("redirect_uri"),
        param("code_challenge"),
    ) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request");
    };
    if param("code_challenge_method").as_deref() != Some("S256")
        || param("response_type").as_deref() != Some("code")
    {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request");
    }
    let known = shared.books().clients.get(&client_id).cloned();
    let client = match known {
        Some(client) => Some(client),
        None if shared.config.client_id_metadata_documents => {
            metadata_document_client(&shared, &client_id).await
        }
        None => None,
    };
    let Some(client) = client else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_client");
    };
    if !client.redirect_uris.contains(&redirect_uri) {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_redirect_uri");
    }
    let code = shared.mint("code");
    let scope = param("scope").unwrap_or_default();
    {
        let mut books = shared.books();
        books.seen.authorizations.push(AuthorizeRequest {
            client_id: client_id.clone(),
            scope: param("scope"),
            resource: param("resource"),
        });
        books.codes.insert(
            code.clone(),
            Code {
                client_id,
                redirect_uri: redirect_uri.clone(),
                challenge,
                scope,
                resource: param("resource"),
            },
        );
    }
    let Ok(mut location) = url::Url::parse(&redirect_uri) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_redirect_uri");
    };
    {
        let mut query = location.query_pairs_mut();
        query.append_pair("code", &code);
        if let Some(state) = param("state") {
            query.append_pair("state", &state);
        }
        match shared.config.iss_response {
            IssResponse::Correct => {
                query.append_pair("iss", &shared.issuer);
            }
            IssResponse::Wrong => {
                query.append_pair("iss", "http://127.0.0.1:1/another-issuer");
            }
            IssResponse::Missing => {}
        }
    }
    (
        StatusCode::FOUND,
        [(header::LOCATION, location.to_string())],
    )
        .into_response()
}

/// How the client authenticated, and as whom: (method, client_id, secret presented).
fn client_authentication(
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Option<(&'static str, String, Option<String>)> {
    if let Some(basic) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
    {
        let decoded = String::from_utf8(STANDARD.decode(basic.trim()).ok()?).ok()?;
        let (id, secret) = decoded.split_once(':')?;
        let id = url::form_urlencoded::parse(format!("x={id}").as_bytes())
            .next()?
            .1
            .into_owned();
        let secret = url::form_urlencoded::parse(format!("x={secret}").as_bytes())
            .next()?
            .1
            .into_owned();
        return Some(("client_secret_basic", id, Some(secret)));
    }
    let id = form.get("client_id")?.clone();
    match form.get("client_secret") {
        Some(secret) => Some(("client_secret_post", id, Some(secret.clone()))),
        None => Some(("none", id, None)),
    }
}

async fn token(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: String) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let grant_type = form.get("grant_type").cloned().unwrap_or_default();
    let authentication = client_authentication(&headers, &form);
    let mut record = TokenRequest {
        grant_type: grant_type.clone(),
        auth_method: authentication
            .as_ref()
            .map(|(m, _, _)| (*m).to_owned())
            .unwrap_or_default(),
        resource: form.get("resource").cloned(),
        error: None,
    };
    let outcome = issue(&shared, &grant_type, authentication, &form);
    let response = match outcome {
        Ok(answer) => axum::Json(answer).into_response(),
        Err((status, code)) => {
            record.error = Some(code.to_owned());
            oauth_error(status, code)
        }
    };
    shared.books().seen.token_requests.push(record);
    response
}

type Refusal = (StatusCode, &'static str);

fn issue(
    shared: &Shared,
    grant_type: &str,
    authentication: Option<(&'static str, String, Option<String>)>,
    form: &HashMap<String, String>,
) -> Result<Value, Refusal> {
    let invalid_client = (StatusCode::UNAUTHORIZED, "invalid_client");
    let (method, client_id, secret) = authentication.ok_or(invalid_client)?;
    let mut books = shared.books();
    let client = books.clients.get(&client_id).ok_or(invalid_client)?;
    let allowed = shared.config.token_auth_methods.iter().any(|m| m == method);
    if !allowed || client.auth_method != method || client.secret != secret {
        return Err(invalid_client);
    }
    let resource = form.get("resource").cloned();
    if let Some(expected) = &shared.config.expected_resource
        && resource.as_ref() != Some(expected)
    {
        return Err((StatusCode::BAD_REQUEST, "invalid_target"));
    }
    let invalid_grant = (StatusCode::BAD_REQUEST, "invalid_grant");
    let grant = match grant_type {
        "authorization_code" => {
            let code = form.get("code").ok_or(invalid_grant)?;
            let code = books.codes.remove(code).ok_or(invalid_grant)?;
            let verifier = form.get("code_verifier").ok_or(invalid_grant)?;
            let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
            if code.client_id != client_id
                || Some(&code.redirect_uri) != form.get("redirect_uri")
                || computed != code.challenge
            {
                return Err(invalid_grant);
            }
            if code.resource != resource {
                return Err((StatusCode::BAD_REQUEST, "invalid_target"));
            }
            Grant {
                client_id,
                scope: code.scope,
                resource,
            }
        }
        "refresh_token" => {
            let token = form.get("refresh_token").ok_or(invalid_grant)?;
            let grant = books.refresh_tokens.remove(token).ok_or(invalid_grant)?;
            if grant.client_id != client_id {
                return Err(invalid_grant);
            }
            if grant.resource != resource {
                return Err((StatusCode::BAD_REQUEST, "invalid_target"));
            }
            grant
        }
        _ => return Err((StatusCode::BAD_REQUEST, "unsupported_grant_type")),
    };
    let access = shared.mint("at");
    let refresh = shared.mint("rt");
    books.access_tokens.insert(access.clone(), grant.clone());
    books.refresh_tokens.insert(refresh.clone(), grant.clone());
    Ok(json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": ACCESS_TOKEN_TTL,
        "refresh_token": refresh,
        "scope": grant.scope,
    }))
}

async fn introspect(State(shared): State<Arc<Shared>>, body: String) -> Response {
    let token = url::form_urlencoded::parse(body.as_bytes())
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let answer = match shared.books().access_tokens.get(&token) {
        Some(grant) => json!({
            "active": true,
            "scope": grant.scope,
            "client_id": grant.client_id,
            "aud": grant.resource,
        }),
        None => json!({ "active": false }),
    };
    axum::Json(answer).into_response()
}
