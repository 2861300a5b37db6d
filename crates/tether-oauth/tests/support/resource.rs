//! A protected MCP resource, as far as authorization goes: 401 with a challenge, RFC 9728
//! metadata, bearer tokens checked by introspection at the OIDC peer, 403 `insufficient_scope`.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Where the resource publishes its metadata, and so how a client must find it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Discovery {
    /// Only at a custom path named by `resource_metadata` in the 401 challenge.
    Challenge,
    /// Only at `/.well-known/oauth-protected-resource/mcp`; the challenge names no metadata.
    WellKnownPathAware,
    /// Only at `/.well-known/oauth-protected-resource`; the challenge names no metadata.
    WellKnownRoot,
}

pub struct ResourceServer {
    pub base: String,
    /// The MCP endpoint (the protected resource).
    pub url: String,
    task: JoinHandle<()>,
}

struct Shared {
    discovery: Discovery,
    base: String,
    /// The real authorization server, where tokens are introspected.
    introspection_issuer: String,
    /// What the metadata names as authorization servers (may be hostile).
    authorization_servers: Vec<String>,
}

impl Shared {
    fn metadata_url(&self) -> String {
        match self.discovery {
            Discovery::Challenge => format!("{}/custom/prm", self.base),
            Discovery::WellKnownPathAware => {
                format!("{}/.well-known/oauth-protected-resource/mcp", self.base)
            }
            Discovery::WellKnownRoot => {
                format!("{}/.well-known/oauth-protected-resource", self.base)
            }
        }
    }

    fn pointer(&self) -> String {
        match self.discovery {
            Discovery::Challenge => format!(r#"resource_metadata="{}", "#, self.metadata_url()),
            _ => String::new(),
        }
    }
}

impl ResourceServer {
    pub async fn spawn(discovery: Discovery, issuer: &str) -> Self {
        Self::spawn_with(discovery, issuer, None).await
    }

    /// `authorization_servers`: what the metadata advertises; default the real issuer. The
    /// placeholder `{self}` is replaced with this server's base URL (for a fake AS).
    pub async fn spawn_with(
        discovery: Discovery,
        issuer: &str,
        authorization_servers: Option<Vec<String>>,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("local addr"));
        let authorization_servers = authorization_servers
            .unwrap_or_else(|| vec![issuer.to_owned()])
            .into_iter()
            .map(|s| s.replace("{self}", &base))
            .collect();
        let shared = Arc::new(Shared {
            discovery,
            base: base.clone(),
            introspection_issuer: issuer.to_owned(),
            authorization_servers,
        });
        let metadata_path = shared.metadata_url()[base.len()..].to_owned();
        let app = Router::new()
            .route("/mcp", get(tools).post(tools))
            .route("/mcp/admin", get(admin))
            .route("/mcp/forbidden", get(forbidden))
            .route(&metadata_path, get(metadata))
            .route(
                "/.well-known/oauth-authorization-server/as",
                get(fake_as_metadata),
            )
            .with_state(shared);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            url: format!("{base}/mcp"),
            base,
            task,
        }
    }

    /// The `WWW-Authenticate` header of an unauthenticated request to `path`.
    pub async fn challenge(&self, path: &str, token: Option<&str>) -> (u16, Option<String>) {
        let mut request = reqwest::Client::new().get(format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("resource request");
        let header = response
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        (response.status().as_u16(), header)
    }
}

impl Drop for ResourceServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn metadata(State(shared): State<Arc<Shared>>) -> Response {
    json_response(json!({
        "resource": format!("{}/mcp", shared.base),
        "authorization_servers": shared.authorization_servers,
        "scopes_supported": ["mcp:tools"],
        "bearer_methods_supported": ["header"],
    }))
}

/// Authorization server metadata whose endpoints point at internal addresses.
async fn fake_as_metadata(State(shared): State<Arc<Shared>>) -> Response {
    json_response(json!({
        "issuer": format!("{}/as", shared.base),
        "authorization_endpoint": format!("{}/as/auth", shared.base),
        "token_endpoint": "http://10.0.0.1/token",
        "registration_endpoint": "http://169.254.169.254/register",
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
    }))
}

async fn tools(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    protected(&shared, &headers, "mcp:tools").await
}

async fn admin(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    protected(&shared, &headers, "mcp:admin").await
}

async fn forbidden(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    protected(&shared, &headers, "mcp:forbidden").await
}

fn json_response(value: Value) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

fn challenge(status: StatusCode, value: String) -> Response {
    (status, [(header::WWW_AUTHENTICATE, value)], "").into_response()
}

async fn introspect(issuer: &str, token: &str) -> Value {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("token", token)
        .finish();
    let response = reqwest::Client::new()
        .post(format!("{issuer}/token/introspection"))
        .basic_auth("resource-server", Some("rs-secret-0123456789abcdef"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await;
    match response {
        Ok(response) => response
            .text()
            .await
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or(Value::Null),
        Err(_) => Value::Null,
    }
}

async fn protected(shared: &Shared, headers: &HeaderMap, required: &str) -> Response {
    let unauthorized = |extra: &str| {
        challenge(
            StatusCode::UNAUTHORIZED,
            format!(r#"Bearer {extra}{}scope="mcp:tools""#, shared.pointer()),
        )
    };
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let Some(token) = token else {
        return unauthorized("");
    };
    let info = introspect(&shared.introspection_issuer, token).await;
    if info["active"].as_bool() != Some(true)
        || info["aud"].as_str() != Some(&format!("{}/mcp", shared.base))
    {
        return unauthorized(r#"error="invalid_token", "#);
    }
    let scopes = info["scope"].as_str().unwrap_or_default();
    if !scopes.split_whitespace().any(|s| s == required) {
        return challenge(
            StatusCode::FORBIDDEN,
            format!(
                r#"Bearer error="insufficient_scope", scope="{required}", {}error_description="needs {required}""#,
                shared.pointer()
            ),
        );
    }
    (StatusCode::OK, "ok").into_response()
}
