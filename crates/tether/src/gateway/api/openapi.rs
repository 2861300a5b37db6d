//! The OpenAPI 3.1 document of the HTTP API, generated from the handlers' annotations (utoipa):
//! the routes of [`super::router`] are registered through `utoipa_axum::routes!`, so a handler
//! is served and documented in one step. `/mcp` (rmcp's Streamable HTTP server) and the
//! document itself are described here; the binary adds its OAuth routes the same way. Served at
//! `GET /openapi.json`.

#![allow(
    dead_code,
    reason = "the functions below exist for their #[utoipa::path] descriptions only"
)]

use utoipa::Modify;
use utoipa::openapi::OpenApi;
use utoipa::openapi::security::{Http, HttpAuthScheme, HttpBuilder, SecurityScheme};

use super::error::ErrorBody;

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Tether",
        version = env!("CARGO_PKG_VERSION"),
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
        description = "Per-user gateway to remote, OAuth-protected MCP servers: the host \
            platform's agents connect to /mcp with the user's host token; /v1/me manages the \
            user's servers; /v1/admin and /status are the operator's."
    ),
    servers((url = "/", description = "This gateway")),
    modifiers(&SecuritySchemes),
    paths(mcp_post, mcp_get, mcp_delete, openapi_json),
    tags(
        (name = "mcp", description = "The user's aggregated MCP server (Streamable HTTP)"),
        (name = "me", description = "The user's own servers (host JWT)"),
        (name = "oauth", description = "Authorizing a user at an MCP server"),
        (name = "admin", description = "The operator's API and page (admin credential)"),
        (name = "probes", description = "Health, readiness and metrics"),
    )
)]
pub(crate) struct ApiDoc;

/// The credentials the operations name: the host platform's JWT for users, the admin
/// credential (Basic or a bearer token) for operators.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "host_jwt",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "admin_basic",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Basic)),
        );
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// A JSON-RPC message to the user's MCP server (an `initialize` opens a session, whose id
/// comes back in `Mcp-Session-Id`).
#[utoipa::path(post, path = "/mcp", tag = "mcp", security(("host_jwt" = [])),
    request_body(content = serde_json::Value, description = "A JSON-RPC 2.0 message"),
    responses(
        (status = 200, description = "The answer: a JSON-RPC message, or an event stream (text/event-stream) of messages ending with it", body = serde_json::Value),
        (status = 202, description = "A notification or response accepted"),
        (status = 400, description = "Not a valid JSON-RPC message", body = serde_json::Value),
        (status = 401, description = "No acceptable host token", body = ErrorBody),
        (status = 403, description = "Host or Origin not allowed (DNS rebinding)", body = serde_json::Value),
        (status = 404, description = "No such session for this user", body = serde_json::Value),
        (status = 429, description = "The user holds the most sessions allowed", body = serde_json::Value),
    ))]
fn mcp_post() {}

/// The session's own event stream: messages of the user's servers outside any request.
#[utoipa::path(get, path = "/mcp", tag = "mcp", security(("host_jwt" = [])),
    responses(
        (status = 200, description = "An event stream (text/event-stream)", content_type = "text/event-stream", body = String),
        (status = 401, description = "No acceptable host token", body = ErrorBody),
        (status = 404, description = "No such session for this user", body = serde_json::Value),
    ))]
fn mcp_get() {}

/// Ends the session.
#[utoipa::path(delete, path = "/mcp", tag = "mcp", security(("host_jwt" = [])),
    responses(
        (status = 200, description = "The session ended"),
        (status = 400, description = "No session id", body = serde_json::Value),
        (status = 401, description = "No acceptable host token", body = ErrorBody),
        (status = 404, description = "No such session for this user", body = serde_json::Value),
    ))]
fn mcp_delete() {}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "probes", security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document of the HTTP API", body = serde_json::Value)))]
fn openapi_json() {}
