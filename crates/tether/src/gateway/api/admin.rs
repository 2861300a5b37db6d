//! `/v1/admin/…`: operator actions behind the admin credential (the one of `/status`): the
//! configuration reload and the server catalog.
//!
//! The credential may be HTTP Basic, which browsers attach on their own; so a request that
//! carries an `Origin` header (every cross-site browser POST does, API clients do not) is
//! refused: a web page cannot make an operator's browser take an admin action.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use serde_json::Value;

use super::error::ApiError;
use crate::gateway::hooks::{CatalogError, CatalogServer, ServerCatalog};
use crate::gateway::state::AppState;

/// The answer refusing a request whose `headers` lack the admin credential (or when none is
/// configured); `None` when the credential is there.
pub(crate) fn admin_refusal(app: &AppState, headers: &HeaderMap) -> Option<Response> {
    let admin = app.admin();
    if !admin.is_configured() {
        return Some(
            ApiError {
                status: StatusCode::NOT_FOUND,
                code: "not_found",
                message: "the admin credential is not configured".into(),
            }
            .into_response(),
        );
    }
    if !admin.allows(headers) {
        let mut response = ApiError {
            status: StatusCode::UNAUTHORIZED,
            code: "unauthorized",
            message: "the admin credential is required".into(),
        }
        .into_response();
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(r#"Basic realm="tether-status", charset="UTF-8""#),
        );
        return Some(response);
    }
    None
}

/// The refusal of an admin action: no credential, or from a web page.
fn action_refusal(app: &AppState, headers: &HeaderMap) -> Option<Response> {
    if let Some(refused) = admin_refusal(app, headers) {
        return Some(refused);
    }
    headers.contains_key(header::ORIGIN).then(|| {
        ApiError {
            status: StatusCode::FORBIDDEN,
            code: "cross_origin",
            message: "admin actions are not taken from web pages".into(),
        }
        .into_response()
    })
}

/// `POST /v1/admin/reload`: the servers are read again from the configuration file and
/// applied (see `Reloader`); answers what changed, or 400 with every problem of the file.
#[utoipa::path(post, path = "/v1/admin/reload", tag = "admin", security(("admin_basic" = []), ("admin_token" = [])),
    responses(
        (status = 200, description = "Applied: the servers added, changed and removed", body = serde_json::Value),
        (status = 400, description = "The file has problems; nothing changed", body = super::error::ErrorBody),
        (status = 401, description = "The admin credential is required", body = super::error::ErrorBody),
        (status = 403, description = "Sent from a web page (an Origin header)", body = super::error::ErrorBody),
        (status = 404, description = "Nothing to reload from, or no admin credential configured", body = super::error::ErrorBody),
    ))]
pub async fn reload(State(app): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(refused) = action_refusal(&app, &headers) {
        return refused;
    }
    let Some(reloader) = app.reloader() else {
        return ApiError {
            status: StatusCode::NOT_FOUND,
            code: "not_found",
            message: "this gateway has nothing to reload from".into(),
        }
        .into_response();
    };
    match reloader.reload().await {
        Ok(changes) => (StatusCode::OK, Json(changes)).into_response(),
        Err(error) => ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_configuration",
            message: error.0,
        }
        .into_response(),
    }
}

pub(crate) fn catalog_error(error: CatalogError) -> Response {
    let (status, code) = match &error {
        CatalogError::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid_server"),
        CatalogError::NotFound => (StatusCode::NOT_FOUND, "unknown_server"),
        CatalogError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
        CatalogError::Disabled => (StatusCode::NOT_FOUND, "not_found"),
        CatalogError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
    };
    ApiError {
        status,
        code,
        message: error.to_string(),
    }
    .into_response()
}

/// The catalog, or the answer when the request may not use it.
fn catalog_for(
    app: &AppState,
    headers: &HeaderMap,
    action: bool,
) -> Result<Arc<dyn ServerCatalog>, Box<Response>> {
    let refused = if action {
        action_refusal(app, headers)
    } else {
        admin_refusal(app, headers)
    };
    if let Some(refused) = refused {
        return Err(Box::new(refused));
    }
    app.catalog()
        .cloned()
        .ok_or_else(|| Box::new(catalog_error(CatalogError::Disabled)))
}

/// `GET /v1/admin/servers`: the file's servers (`source: "config"`), then the catalog's.
#[utoipa::path(get, path = "/v1/admin/servers", operation_id = "admin_list_servers", tag = "admin", security(("admin_basic" = []), ("admin_token" = [])),
    responses(
        (status = 200, description = "Every server and where it comes from", body = [CatalogServer]),
        (status = 401, description = "The admin credential is required", body = super::error::ErrorBody),
        (status = 404, description = "The catalog or the admin credential is not configured", body = super::error::ErrorBody),
    ))]
pub async fn list_servers(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let catalog = match catalog_for(&app, &headers, false) {
        Ok(catalog) => catalog,
        Err(refused) => return *refused,
    };
    match catalog.list().await {
        Ok(servers) => Json(servers).into_response(),
        Err(error) => catalog_error(error),
    }
}

/// `GET /v1/admin/servers/{name}`
#[utoipa::path(get, path = "/v1/admin/servers/{name}", operation_id = "admin_get_server", tag = "admin", security(("admin_basic" = []), ("admin_token" = [])),
    params(("name" = String, Path, description = "The server's name")),
    responses(
        (status = 200, description = "The server", body = CatalogServer),
        (status = 401, description = "The admin credential is required", body = super::error::ErrorBody),
        (status = 404, description = "No such server", body = super::error::ErrorBody),
    ))]
pub async fn get_server(
    State(app): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    let catalog = match catalog_for(&app, &headers, false) {
        Ok(catalog) => catalog,
        Err(refused) => return *refused,
    };
    match catalog.list().await {
        Ok(servers) => match servers.into_iter().find(|s| s.name == name) {
            Some(server) => Json(server).into_response(),
            None => catalog_error(CatalogError::NotFound),
        },
        Err(error) => catalog_error(error),
    }
}

/// A JSON body as a server definition, or the answer refusing it.
pub(crate) fn definition(body: Result<Json<Value>, JsonRejection>) -> Result<Value, Box<Response>> {
    body.map(|Json(definition)| definition)
        .map_err(|rejection| Box::new(catalog_error(CatalogError::Invalid(rejection.body_text()))))
}

/// The catalog and the definition of an admin action that writes, or the answer refusing it.
fn write_request(
    app: &AppState,
    headers: &HeaderMap,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<(Arc<dyn ServerCatalog>, Value), Box<Response>> {
    Ok((catalog_for(app, headers, true)?, definition(body)?))
}

/// `POST /v1/admin/servers` with a `[[servers]]` entry as JSON: 201 with the server.
#[utoipa::path(post, path = "/v1/admin/servers", operation_id = "admin_create_server", tag = "admin", security(("admin_basic" = []), ("admin_token" = [])),
    request_body(content = serde_json::Value, description = "A `[[servers]]` entry as JSON"),
    responses(
        (status = 201, description = "Added; effective on every replica within the poll interval", body = CatalogServer),
        (status = 400, description = "Not a valid server, or a refused URL", body = super::error::ErrorBody),
        (status = 401, description = "The admin credential is required", body = super::error::ErrorBody),
        (status = 403, description = "Sent from a web page (an Origin header)", body = super::error::ErrorBody),
        (status = 409, description = "The name is taken", body = super::error::ErrorBody),
    ))]
pub async fn create_server(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<Value>, JsonRejection>,
) -> Response {
    let (catalog, definition) = match write_request(&app, &headers, body) {
        Ok(request) => request,
        Err(refused) => return *refused,
    };
    match catalog.create(definition).await {
        Ok(server) => (StatusCode::CREATED, Json(server)).into_response(),
        Err(error) => catalog_error(error),
    }
}

/// `PUT /v1/admin/servers/{name}`: replaces the entry; live sessions reopen with it.
#[utoipa::path(put, path = "/v1/admin/servers/{name}", operation_id = "admin_update_server", tag = "admin", security(("admin_basic" = []), ("admin_token" = [])),
    params(("name" = String, Path, description = "The server's name")),
    request_body(content = serde_json::Value, description = "A `[[servers]]` entry as JSON"),
    responses(
        (status = 200, description = "Replaced", body = CatalogServer),
        (status = 400, description = "Not a valid server, or a refused URL", body = super::error::ErrorBody),
        (status = 401, description = "The admin credential is required", body = super::error::ErrorBody),
        (status = 403, description = "Sent from a web page (an Origin header)", body = super::error::ErrorBody),
        (status = 404, description = "No such catalog server", body = super::error::ErrorBody),
        (status = 409, description = "A server of the file, or a user's own", body = super::error::ErrorBody),
    ))]
pub async fn update_server(
    State(app): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Json<Value>, JsonRejection>,
) -> Response {
    let (catalog, definition) = match write_request(&app, &headers, body) {
        Ok(request) => request,
        Err(refused) => return *refused,
    };
    match catalog.update(&name, definition).await {
        Ok(server) => Json(server).into_response(),
        Err(error) => catalog_error(error),
    }
}

/// `POST /v1/admin/servers/{name}/disable` (and `/enable`): switches a server off (kept,
/// not served, its sessions closed) or on again, on every replica.
#[utoipa::path(post, path = "/v1/admin/servers/{name}/disable", tag = "admin",
    security(("admin_basic" = []), ("admin_token" = [])),
    params(("name" = String, Path, description = "The server's name")),
    responses(
        (status = 204, description = "Switched off"),
        (status = 401, description = "The admin credential is required", body = super::error::ErrorBody),
        (status = 403, description = "Sent from a web page (an Origin header)", body = super::error::ErrorBody),
        (status = 404, description = "No such server", body = super::error::ErrorBody),
    ))]
pub async fn disable_server(
    State(app): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    switch(&app, &headers, &name, false).await
}

/// `POST /v1/admin/servers/{name}/enable`: switches a server on again.
#[utoipa::path(post, path = "/v1/admin/servers/{name}/enable", tag = "admin",
    security(("admin_basic" = []), ("admin_token" = [])),
    params(("name" = String, Path, description = "The server's name")),
    responses(
        (status = 204, description = "Switched on"),
        (status = 401, description = "The admin credential is required", body = super::error::ErrorBody),
        (status = 403, description = "Sent from a web page (an Origin header)", body = super::error::ErrorBody),
        (status = 404, description = "No such server", body = super::error::ErrorBody),
    ))]
pub async fn enable_server(
    State(app): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    switch(&app, &headers, &name, true).await
}

async fn switch(app: &AppState, headers: &HeaderMap, name: &str, enabled: bool) -> Response {
    let catalog = match catalog_for(app, headers, true) {
        Ok(catalog) => catalog,
        Err(refused) => return *refused,
    };
    match catalog.set_enabled(name, enabled).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(error) => catalog_error(error),
    }
}

/// `DELETE /v1/admin/servers/{name}`: 204.
#[utoipa::path(delete, path = "/v1/admin/servers/{name}", operation_id = "admin_delete_server", tag = "admin", security(("admin_basic" = []), ("admin_token" = [])),
    params(("name" = String, Path, description = "The server's name")),
    responses(
        (status = 204, description = "Deleted, with its sessions; its grants are revoked and its tokens deleted"),
        (status = 401, description = "The admin credential is required", body = super::error::ErrorBody),
        (status = 403, description = "Sent from a web page (an Origin header)", body = super::error::ErrorBody),
        (status = 404, description = "No such catalog server", body = super::error::ErrorBody),
        (status = 409, description = "A server of the file", body = super::error::ErrorBody),
    ))]
pub async fn delete_server(
    State(app): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    let catalog = match catalog_for(&app, &headers, true) {
        Ok(catalog) => catalog,
        Err(refused) => return *refused,
    };
    match catalog.delete(&name).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(error) => catalog_error(error),
    }
}
