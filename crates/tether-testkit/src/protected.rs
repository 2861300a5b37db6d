//! An OAuth-protected MCP server: an rmcp Streamable HTTP service at `/mcp` behind a middleware
//! that wants `Authorization: Bearer` and checks the token by RFC 7662 introspection at the
//! authorization server, plus RFC 9728 protected resource metadata at
//! `/.well-known/oauth-protected-resource/mcp` (or a path only the challenge names) naming the
//! issuer and the resource.
//!
//! - no token, or an inactive one, or one for another audience: 401 with
//!   `WWW-Authenticate: Bearer resource_metadata="…", scope="…"` (and `error="invalid_token"`
//!   when a token was sent);
//! - a token without the required scope: 403 `insufficient_scope`.
//!
//! It records what a test may want to look at: the tokens it accepted, the scopes they carried
//! and the values of request headers. Loopback only, like every test peer.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rmcp::ServerHandler;
use rmcp::transport::streamable_http_server::{
    StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Requests whose headers are kept for [`ProtectedServer::header_values`] (the oldest go).
const MAX_RECORDED_REQUESTS: usize = 512;
const INTROSPECTION_TIMEOUT: Duration = Duration::from_secs(10);
/// RFC 9728's well-known location for the resource `/mcp`.
pub const WELL_KNOWN_METADATA_PATH: &str = "/.well-known/oauth-protected-resource/mcp";

/// How the protected server checks tokens and what it advertises.
#[derive(Debug, Clone)]
pub struct ProtectionConfig {
    /// The authorization server's issuer, named in the resource metadata.
    pub issuer: String,
    /// The RFC 7662 introspection endpoint.
    pub introspection_endpoint: String,
    /// `(client_id, client_secret)` sent with HTTP Basic to the introspection endpoint, when the
    /// authorization server wants the resource server to authenticate (oidc-provider does).
    pub introspection_client: Option<(String, String)>,
    /// The scope every request needs; also the `scope` of the 401 challenge.
    pub required_scope: String,
    /// `scopes_supported` in the resource metadata.
    pub scopes_supported: Vec<String>,
    /// Check that the token's `aud` is this server's `/mcp` URL (the RFC 8707 resource).
    pub check_audience: bool,
    /// Where the RFC 9728 metadata is served (and what the challenge's `resource_metadata`
    /// names): by default the well-known path-aware location
    /// `/.well-known/oauth-protected-resource/mcp`; another path can only be found through the
    /// challenge.
    pub metadata_path: String,
}

impl ProtectionConfig {
    /// For `oidc.mjs` (see [`crate::OidcPeer`]): introspection as its `resource-server` client,
    /// `mcp:tools` required and advertised, audience checked.
    pub fn oidc_peer(issuer: &str) -> Self {
        Self {
            issuer: issuer.to_owned(),
            introspection_endpoint: format!("{issuer}/token/introspection"),
            introspection_client: Some((
                crate::oidc::RESOURCE_SERVER_CLIENT_ID.to_owned(),
                crate::oidc::RESOURCE_SERVER_CLIENT_SECRET.to_owned(),
            )),
            required_scope: "mcp:tools".to_owned(),
            scopes_supported: vec!["mcp:tools".to_owned()],
            check_audience: true,
            metadata_path: WELL_KNOWN_METADATA_PATH.to_owned(),
        }
    }
}

#[derive(Debug, Default)]
struct Seen {
    /// Tokens introspected as active (and accepted or not for scope).
    tokens: Vec<String>,
    /// The `scope` of each active token introspected.
    scopes: Vec<String>,
    /// Header maps of the last requests to `/mcp`.
    requests: std::collections::VecDeque<HeaderMap>,
    /// Requests answered 401 or 403.
    refused: u64,
}

#[derive(Debug)]
struct Shared {
    config: ProtectionConfig,
    base: String,
    http: reqwest::Client,
    seen: Mutex<Seen>,
    /// Starts as `config.required_scope`; a test may raise it ([`ProtectedServer::require_scope`]).
    required_scope: Mutex<String>,
}

impl Shared {
    fn metadata_url(&self) -> String {
        format!("{}{}", self.base, self.config.metadata_path)
    }

    fn resource(&self) -> String {
        format!("{}/mcp", self.base)
    }

    fn required_scope(&self) -> String {
        self.required_scope
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        // A panicking test thread may poison it; the data is still fine to read.
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A protected server running in this process. Dropping it stops it.
#[derive(Debug)]
pub struct ProtectedServer {
    pub addr: SocketAddr,
    /// `http://<addr>`
    pub base: String,
    /// `http://<addr>/mcp`: the MCP endpoint and the protected resource.
    pub url: String,
    /// Where the RFC 9728 metadata is served.
    pub metadata_url: String,
    shared: Arc<Shared>,
    ct: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl ProtectedServer {
    /// Access tokens that introspected as active, in order.
    pub fn accepted_tokens(&self) -> Vec<String> {
        self.shared.seen().tokens.clone()
    }

    /// The `scope` of every active token introspected, in order.
    pub fn token_scopes(&self) -> Vec<String> {
        self.shared.seen().scopes.clone()
    }

    /// The values of header `name` on the recorded requests to `/mcp` (the last
    /// 512 requests).
    pub fn header_values(&self, name: &str) -> Vec<String> {
        self.shared
            .seen()
            .requests
            .iter()
            .flat_map(|headers| headers.get_all(name).iter())
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect()
    }

    /// From now on every request needs `scope` (tokens without it get a 403
    /// `insufficient_scope` naming it): the server asking for more, as a step-up test needs.
    pub fn require_scope(&self, scope: &str) {
        *self
            .shared
            .required_scope
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = scope.to_owned();
    }

    /// Requests to `/mcp` answered 401 or 403.
    pub fn refused(&self) -> u64 {
        self.shared.seen().refused
    }

    /// Stops and waits (at most 5 s) for the connections to close.
    pub async fn stop(mut self) {
        self.ct.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut self.task).await;
    }
}

impl Drop for ProtectedServer {
    fn drop(&mut self) {
        self.ct.cancel();
        self.task.abort();
    }
}

/// Serves `handler` at `/mcp` behind bearer-token introspection on `addr` (a loopback address;
/// `127.0.0.1:0` for any port).
pub async fn serve_protected<S>(
    handler: S,
    addr: &str,
    config: ProtectionConfig,
) -> std::io::Result<ProtectedServer>
where
    S: ServerHandler + Clone + Send + Sync + 'static,
{
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    if !addr.ip().is_loopback() {
        return Err(std::io::Error::other("test peers listen on loopback only"));
    }
    let base = format!("http://{addr}");
    let http = reqwest::Client::builder()
        .timeout(INTROSPECTION_TIMEOUT)
        .no_proxy()
        .build()
        .map_err(std::io::Error::other)?;
    let shared = Arc::new(Shared {
        required_scope: Mutex::new(config.required_scope.clone()),
        config,
        base: base.clone(),
        http,
        seen: Mutex::new(Seen::default()),
    });
    let ct = CancellationToken::new();
    let service: StreamableHttpService<S, LocalSessionManager> = StreamableHttpService::new(
        move || Ok(handler.clone()),
        Default::default(),
        StreamableHttpServerConfig::default()
            .with_sse_keep_alive(None)
            .with_cancellation_token(ct.child_token()),
    );
    let router = Router::new()
        .nest_service("/mcp", service)
        .layer(middleware::from_fn_with_state(shared.clone(), guard))
        .route(&shared.config.metadata_path, get(resource_metadata))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(shared.clone());
    let task = crate::serving::serve_until_cancelled(listener, router, &ct);
    Ok(ProtectedServer {
        addr,
        url: shared.resource(),
        metadata_url: shared.metadata_url(),
        base,
        shared,
        ct,
        task,
    })
}

async fn resource_metadata(State(shared): State<Arc<Shared>>) -> Response {
    let body = json!({
        "resource": shared.resource(),
        "authorization_servers": [shared.config.issuer],
        "scopes_supported": shared.config.scopes_supported,
        "bearer_methods_supported": ["header"],
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn refusal(shared: &Shared, status: StatusCode, challenge: String) -> Response {
    shared.seen().refused += 1;
    (status, [(header::WWW_AUTHENTICATE, challenge)], "").into_response()
}

fn unauthorized(shared: &Shared, error: Option<&str>) -> Response {
    let error = error
        .map(|e| format!(r#"error="{e}", "#))
        .unwrap_or_default();
    let challenge = format!(
        r#"Bearer {error}resource_metadata="{}", scope="{}""#,
        shared.metadata_url(),
        shared.required_scope()
    );
    refusal(shared, StatusCode::UNAUTHORIZED, challenge)
}

async fn guard(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    {
        let mut seen = shared.seen();
        if seen.requests.len() >= MAX_RECORDED_REQUESTS {
            seen.requests.pop_front();
        }
        seen.requests.push_back(request.headers().clone());
    }
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned);
    let Some(token) = token else {
        return unauthorized(&shared, None);
    };
    let Some(info) = introspect(&shared, &token).await else {
        return (StatusCode::BAD_GATEWAY, "introspection failed").into_response();
    };
    if info["active"].as_bool() != Some(true) {
        return unauthorized(&shared, Some("invalid_token"));
    }
    let scope = info["scope"].as_str().unwrap_or_default().to_owned();
    {
        let mut seen = shared.seen();
        seen.tokens.push(token);
        seen.scopes.push(scope.clone());
    }
    if shared.config.check_audience && !audience_matches(&info["aud"], &shared.resource()) {
        return unauthorized(&shared, Some("invalid_token"));
    }
    let required = shared.required_scope();
    if !scope.split_whitespace().any(|s| s == required) {
        let challenge = format!(
            r#"Bearer error="insufficient_scope", scope="{required}", resource_metadata="{}""#,
            shared.metadata_url()
        );
        return refusal(&shared, StatusCode::FORBIDDEN, challenge);
    }
    next.run(request).await
}

/// `aud` is a string or an array of strings (RFC 7662 §2.2, RFC 7519 §4.1.3).
fn audience_matches(aud: &Value, resource: &str) -> bool {
    let same = |a: &str| a.trim_end_matches('/') == resource.trim_end_matches('/');
    match aud {
        Value::String(a) => same(a),
        Value::Array(values) => values.iter().filter_map(Value::as_str).any(same),
        _ => false,
    }
}

/// The introspection response, or `None` when the authorization server could not be asked.
async fn introspect(shared: &Shared, token: &str) -> Option<Value> {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("token", token)
        .append_pair("token_type_hint", "access_token")
        .finish();
    let mut request = shared
        .http
        .post(&shared.config.introspection_endpoint)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::ACCEPT, "application/json")
        .body(body);
    if let Some((id, secret)) = &shared.config.introspection_client {
        request = request.basic_auth(id, Some(secret));
    }
    let response = request.send().await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    let text = response.text().await.ok()?;
    serde_json::from_str(&text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audience_is_a_string_or_a_list() {
        let r = "http://127.0.0.1:1/mcp";
        assert!(audience_matches(&json!(r), r));
        assert!(audience_matches(&json!(["x", r]), r));
        assert!(!audience_matches(&json!("http://127.0.0.1:2/mcp"), r));
        assert!(!audience_matches(&Value::Null, r));
    }
}
