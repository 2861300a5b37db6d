//! The admin page's actions (`POST /status/…`, HTML forms): add or delete a catalog server,
//! reconnect or forget a user's pair. Each answers with a redirect back to the page.
//!
//! A browser attaches a remembered Basic credential to any request to the page's origin, also
//! one another site's page makes it send. So besides the credential a form must carry the
//! page's form token (derived from the credential, see `AdminCredentials::form_token`), which
//! another site cannot read, and an `Origin` header, when there is one, must be the page's own.

use std::sync::Arc;

use axum::Form;
use axum::extract::State;
use axum::extract::rejection::FormRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use tether_core::{ServerName, UserId};

use super::admin::admin_refusal;
use super::error::{ApiError, ErrorBody};
use crate::gateway::hooks::ServerCatalog;
use crate::gateway::state::AppState;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct NewServer {
    csrf: String,
    name: String,
    url: String,
    #[serde(default)]
    oauth: Option<String>,
    /// Comma- or space-separated; empty: everyone.
    #[serde(default)]
    groups: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct NamedServer {
    csrf: String,
    name: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ServerSwitch {
    csrf: String,
    name: String,
    /// `disable` or `enable`.
    action: String,
}

impl PageForm for ServerSwitch {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct PairAction {
    csrf: String,
    user: String,
    server: String,
    /// `reconnect` or `forget`.
    action: String,
}

/// What every form of the admin page answers (for the OpenAPI document).
#[derive(utoipa::IntoResponses)]
#[allow(
    dead_code,
    reason = "it describes the answers; the handlers build them"
)]
enum FormAnswers {
    /// Back to the page, with what happened
    #[response(status = 303)]
    Back,
    /// Not a readable form
    #[response(status = 400)]
    BadForm(#[to_schema] ErrorBody),
    /// The admin credential is required
    #[response(status = 401)]
    Unauthorized(#[to_schema] ErrorBody),
    /// Not a form of the admin page
    #[response(status = 403)]
    Forbidden(#[to_schema] ErrorBody),
}

/// A form that carries the page's form token.
trait PageForm {
    fn csrf(&self) -> &str;
}

impl PageForm for NewServer {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

impl PageForm for NamedServer {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

impl PageForm for PairAction {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// The form, if it is the admin's own: the credential first (401), then a readable form
/// (400), then the page's token and origin (403).
fn admitted<T: PageForm>(
    app: &AppState,
    headers: &HeaderMap,
    form: Result<Form<T>, FormRejection>,
) -> Result<T, Box<Response>> {
    if let Some(refused) = admin_refusal(app, headers) {
        return Err(Box::new(refused));
    }
    let Form(form) = form.map_err(|rejection| {
        Box::new(
            ApiError {
                status: StatusCode::BAD_REQUEST,
                code: "bad_form",
                message: rejection.body_text(),
            }
            .into_response(),
        )
    })?;
    match form_refusal(app, headers, form.csrf()) {
        Some(refused) => Err(Box::new(refused)),
        None => Ok(form),
    }
}

/// [`admitted`] for a form that changes the catalog, with the catalog; without one, back to
/// the page saying so.
fn admitted_to_catalog<T: PageForm>(
    app: &AppState,
    headers: &HeaderMap,
    form: Result<Form<T>, FormRejection>,
) -> Result<(T, Arc<dyn ServerCatalog>), Box<Response>> {
    let form = admitted(app, headers, form)?;
    let catalog = app
        .catalog()
        .cloned()
        .ok_or_else(|| Box::new(back("the server catalog is not enabled")))?;
    Ok((form, catalog))
}

/// The refusal of a form that is not the page's own.
fn form_refusal(app: &AppState, headers: &HeaderMap, csrf: &str) -> Option<Response> {
    let same_origin = match headers.get(header::ORIGIN) {
        None => true,
        Some(origin) => {
            let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
            let origin = origin.to_str().ok();
            matches!((origin, host), (Some(origin), Some(host))
                if origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://")) == Some(host))
        }
    };
    (!same_origin || !app.admin().accepts_form_token(csrf)).then(|| {
        ApiError {
            status: StatusCode::FORBIDDEN,
            code: "forbidden",
            message: "this form did not come from the admin page".into(),
        }
        .into_response()
    })
}

/// Back to the page, with what happened in the query (shown at the top).
fn back(message: &str) -> Response {
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("done", message)
        .finish();
    let mut response = Redirect::to(&format!("/status?{query}")).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `POST /status/servers`: adds a catalog server.
#[utoipa::path(post, path = "/status/servers", operation_id = "form_add_server", tag = "admin",
    request_body(content = NewServer, content_type = "application/x-www-form-urlencoded"),
    security(("admin_basic" = []), ("admin_token" = [])),
    responses(FormAnswers))]
pub async fn add_server(
    State(app): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<NewServer>, FormRejection>,
) -> Response {
    let (form, catalog) = match admitted_to_catalog(&app, &headers, form) {
        Ok(admitted) => admitted,
        Err(refused) => return *refused,
    };
    let groups: Vec<&str> = form
        .groups
        .split([',', ' '])
        .map(str::trim)
        .filter(|g| !g.is_empty())
        .collect();
    let mut definition = json!({"name": form.name.trim(), "url": form.url.trim()});
    if form.oauth.is_some() {
        definition["oauth"] = Value::Bool(true);
    }
    if !groups.is_empty() {
        definition["groups"] = json!(groups);
    }
    match catalog.create(definition).await {
        Ok(server) => back(&format!("added {}", server.name)),
        Err(error) => back(&format!("not added: {error}")),
    }
}

/// `POST /status/servers/delete`: deletes a catalog server (with every user's tokens of it).
#[utoipa::path(post, path = "/status/servers/delete", operation_id = "form_delete_server", tag = "admin",
    request_body(content = NamedServer, content_type = "application/x-www-form-urlencoded"),
    security(("admin_basic" = []), ("admin_token" = [])),
    responses(FormAnswers))]
pub async fn delete_server(
    State(app): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<NamedServer>, FormRejection>,
) -> Response {
    let (form, catalog) = match admitted_to_catalog(&app, &headers, form) {
        Ok(admitted) => admitted,
        Err(refused) => return *refused,
    };
    match catalog.delete(&form.name).await {
        Ok(()) => back(&format!("deleted {}", form.name)),
        Err(error) => back(&format!("not deleted: {error}")),
    }
}

/// `POST /status/servers/switch`: switches a server off (kept, not served) or on again.
#[utoipa::path(post, path = "/status/servers/switch", tag = "admin",
    request_body(content = ServerSwitch, content_type = "application/x-www-form-urlencoded"),
    security(("admin_basic" = []), ("admin_token" = [])),
    responses(FormAnswers))]
pub async fn switch_server(
    State(app): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<ServerSwitch>, FormRejection>,
) -> Response {
    let (form, catalog) = match admitted_to_catalog(&app, &headers, form) {
        Ok(admitted) => admitted,
        Err(refused) => return *refused,
    };
    let enabled = match form.action.as_str() {
        "enable" => true,
        "disable" => false,
        _ => return back("unknown action"),
    };
    match catalog.set_enabled(&form.name, enabled).await {
        Ok(()) => back(&format!("{}d {}", form.action, form.name)),
        Err(error) => back(&format!("not {}d: {error}", form.action)),
    }
}

/// `POST /status/pairs`: reconnects a user's pair now, or forgets it (session closed, tokens
/// and tool list deleted, as the user's own `DELETE /v1/me/servers/{name}`).
#[utoipa::path(post, path = "/status/pairs", tag = "admin",
    request_body(content = PairAction, content_type = "application/x-www-form-urlencoded"),
    security(("admin_basic" = []), ("admin_token" = [])),
    responses(FormAnswers))]
pub async fn pair_action(
    State(app): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<PairAction>, FormRejection>,
) -> Response {
    let form = match admitted(&app, &headers, form) {
        Ok(form) => form,
        Err(refused) => return *refused,
    };
    let user = UserId::from(form.user);
    let server = ServerName::new(&form.server);
    let manager = app.manager();
    if manager.server(&server).is_none() {
        return back("no such server");
    }
    match form.action.as_str() {
        "reconnect" => match manager.reconnect_server_outcome(&user, &server).await {
            Ok(outcome) => back(&format!("reconnect {server}: {outcome:?}")),
            Err(_) => back("no such server"),
        },
        "forget" => {
            if let Err(error) = manager.forget(&user, &server).await {
                return back(&format!(
                    "not forgotten: could not delete the tool list: {error}"
                ));
            }
            if let Some(forgetter) = app.forgetter()
                && let Err(error) = forgetter.forget(&user, &server).await
            {
                return back(&format!("not forgotten: {error}"));
            }
            back(&format!("forgot {server} for the user"))
        }
        _ => back("unknown action"),
    }
}
