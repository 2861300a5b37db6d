//! `/v1/me/…`: the authenticated user's own servers.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;
use tether_core::{AttemptOutcome, ServerName, UserId};

use super::error::ApiError;
use super::rows::ServerRow;
use crate::gateway::ServerAccess;
use crate::gateway::auth::{AuthAccess, AuthUser};
use crate::gateway::hooks::CatalogError;
use crate::gateway::state::AppState;

/// `POST /v1/me/reconnect`: reconnect-on-login. Answers as soon as the attempts are scheduled
/// (the core runs them in the background, staggered).
#[utoipa::path(post, path = "/v1/me/reconnect", tag = "me", security(("host_jwt" = [])),
    responses(
        (status = 202, description = "The reconnects scheduled, by server", body = serde_json::Value),
        (status = 401, description = "No acceptable host token", body = super::error::ErrorBody),
    ))]
pub async fn reconnect_all(
    State(app): State<AppState>,
    AuthUser(user): AuthUser,
    AuthAccess(access): AuthAccess,
) -> Response {
    let scheduled = app
        .manager()
        .reconnect_servers_among(&user, |s| access.permits(&s.name))
        .await;
    (StatusCode::ACCEPTED, Json(json!({"scheduled": scheduled}))).into_response()
}

/// `GET /v1/me/servers`: every configured server with the user's state of it.
#[utoipa::path(get, path = "/v1/me/servers", operation_id = "me_list_servers", tag = "me", security(("host_jwt" = [])),
    responses(
        (status = 200, description = "The servers the user may use, with their state", body = [ServerRow]),
        (status = 401, description = "No acceptable host token", body = super::error::ErrorBody),
    ))]
pub async fn list_servers(
    State(app): State<AppState>,
    AuthUser(user): AuthUser,
    AuthAccess(access): AuthAccess,
) -> Json<Vec<ServerRow>> {
    let states = app.manager().server_states(&user).await;
    Json(
        states
            .iter()
            .filter(|s| access.permits(&s.name))
            .map(ServerRow::from)
            .collect(),
    )
}

#[derive(Debug, Serialize)]
struct ReconnectAnswer {
    connected: bool,
    #[serde(flatten)]
    row: ServerRow,
}

/// A configured server the user may use; the others are as unknown as a name never configured.
fn known_server(app: &AppState, access: &ServerAccess, name: &str) -> Result<ServerName, ApiError> {
    let server = ServerName::new(name);
    match app.manager().server(&server) {
        Some(_) if access.permits(&server) => Ok(server),
        _ => Err(ApiError::unknown_server(name)),
    }
}

async fn row_of(app: &AppState, user: &UserId, server: &ServerName) -> Option<ServerRow> {
    app.manager()
        .server_states(user)
        .await
        .iter()
        .find(|s| &s.name == server)
        .map(ServerRow::from)
}

/// `POST /v1/me/servers/{name}/reconnect`: one attempt now; answers when it has ended.
#[utoipa::path(post, path = "/v1/me/servers/{name}/reconnect", tag = "me", security(("host_jwt" = [])),
    params(("name" = String, Path, description = "The server's name")),
    responses(
        (status = 200, description = "The attempt's outcome and the pair's state", body = serde_json::Value),
        (status = 401, description = "No acceptable host token", body = super::error::ErrorBody),
        (status = 404, description = "No such server for this user", body = super::error::ErrorBody),
    ))]
pub async fn reconnect_one(
    State(app): State<AppState>,
    AuthUser(user): AuthUser,
    AuthAccess(access): AuthAccess,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let server = known_server(&app, &access, &name)?;
    let outcome = app
        .manager()
        .reconnect_server_outcome(&user, &server)
        .await
        .map_err(|_| ApiError::unknown_server(&name))?;
    let row = row_of(&app, &user, &server)
        .await
        .ok_or_else(|| ApiError::unknown_server(&name))?;
    Ok(Json(ReconnectAnswer {
        connected: outcome == AttemptOutcome::Connected,
        row,
    })
    .into_response())
}

/// `POST /v1/me/servers` with `{name, url, transport?, oauth?, scopes?}`: a server for this
/// user alone (see `ServerCatalog::create_owned`); 201 with its catalog name and definition.
#[utoipa::path(post, path = "/v1/me/servers", operation_id = "me_add_server", tag = "me", security(("host_jwt" = [])),
    request_body(content = serde_json::Value, description = "`{name, url, transport?, oauth?, scopes?}`"),
    responses(
        (status = 201, description = "Added, for this user alone", body = crate::gateway::hooks::CatalogServer),
        (status = 400, description = "Not a valid server, a refused URL or a key a user may not set", body = super::error::ErrorBody),
        (status = 401, description = "No acceptable host token", body = super::error::ErrorBody),
        (status = 404, description = "Users may not add servers here", body = super::error::ErrorBody),
        (status = 409, description = "Past the per-user limit, or the name is taken", body = super::error::ErrorBody),
    ))]
pub async fn add_server(
    State(app): State<AppState>,
    AuthUser(user): AuthUser,
    body: Result<Json<serde_json::Value>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Some(catalog) = app.catalog().cloned() else {
        return super::admin::catalog_error(CatalogError::Disabled);
    };
    let definition = match super::admin::definition(body) {
        Ok(definition) => definition,
        Err(refused) => return *refused,
    };
    match catalog.create_owned(&user, definition).await {
        Ok(server) => (StatusCode::CREATED, Json(server)).into_response(),
        Err(error) => super::admin::catalog_error(error),
    }
}

/// `DELETE /v1/me/servers/{name}`: the manager forgets the pair (session closed, tool lists
/// dropped) and the [`PairForgetter`](crate::gateway::PairForgetter), when there is one,
/// deletes the pair's tokens.
#[utoipa::path(delete, path = "/v1/me/servers/{name}", operation_id = "me_remove_server", tag = "me", security(("host_jwt" = [])),
    params(("name" = String, Path, description = "The server's name")),
    responses(
        (status = 204, description = "Disconnected, the grant revoked, the tokens deleted (the user's own server: deleted)"),
        (status = 401, description = "No acceptable host token", body = super::error::ErrorBody),
        (status = 404, description = "No such server for this user", body = super::error::ErrorBody),
    ))]
pub async fn remove_server(
    State(app): State<AppState>,
    AuthUser(user): AuthUser,
    AuthAccess(access): AuthAccess,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let own = access.owns(&ServerName::new(&name));
    if own && let Some(catalog) = app.catalog().cloned() {
        // One of the user's own servers: deleted (its sessions closed, its grant revoked, its
        // tokens gone).
        return match catalog.delete_owned(&user, &name).await {
            Ok(()) => Ok(StatusCode::NO_CONTENT),
            Err(error) => Err(ApiError {
                status: StatusCode::CONFLICT,
                code: "not_deleted",
                message: error.to_string(),
            }),
        };
    }
    let server = known_server(&app, &access, &name)?;
    app.manager().forget(&user, &server).await.map_err(|e| {
        tracing::warn!(%user, %server, error = %e, "could not forget the pair's tool list");
        ApiError::internal(
            "forget_failed",
            format!("could not delete the tool list: {e}"),
        )
    })?;
    if let Some(forgetter) = app.forgetter() {
        forgetter.forget(&user, &server).await.map_err(|e| {
            tracing::warn!(%user, %server, error = %e, "could not forget the pair");
            ApiError::internal("forget_failed", e.0)
        })?;
    }
    Ok(StatusCode::NO_CONTENT)
}
