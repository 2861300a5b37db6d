//! `GET /status`: the admin page, behind the admin credential. It lists the servers (the
//! configuration file's and the catalog's, with a form to add one and a button to delete a
//! catalog server) and each known user's servers and states, with buttons to reconnect or
//! forget a pair; the forms post to [`super::admin_forms`]. Everything shown is escaped: user
//! ids, server definitions and error texts come from outside. No script runs on the page.

use std::fmt::Write as _;

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};
use futures::future::join_all;

use super::error::ErrorBody;
use super::rows::ServerRow;
use crate::gateway::hooks::CatalogServer;
use crate::gateway::html::escape;
use crate::gateway::state::AppState;

/// Users shown on one page; the rest are counted.
const MAX_USERS_SHOWN: usize = 500;

/// The admin page: servers, users' pairs and their states, with the admin's forms.
#[utoipa::path(get, path = "/status", tag = "admin",
    params(("done" = Option<String>, Query, description = "What the last form did (shown on the page)")),
    security(("admin_basic" = []), ("admin_token" = [])),
    responses(
        (status = 200, description = "The admin page", content_type = "text/html", body = String),
        (status = 401, description = "The admin credential is required", body = ErrorBody),
        (status = 404, description = "No admin credential is configured", body = ErrorBody),
    ))]
pub async fn status_page(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Some(refused) = super::admin::admin_refusal(&app, &headers) {
        return refused;
    }
    let users = app.users().users();
    let total = users.len();
    let shown: Vec<_> = users.into_iter().take(MAX_USERS_SHOWN).collect();
    let manager = app.manager();
    let states = join_all(shown.iter().map(|u| manager.server_states(u))).await;
    let stats = manager.stats().await;

    let mut page = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Tether status</title>\
         <style>body{font-family:sans-serif}table{border-collapse:collapse}\
         td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}</style></head><body>\
         <h1>Tether status</h1>",
    );
    let token = escape(&app.admin().form_token().unwrap_or_default());
    if let Some(done) = query.get("done") {
        let _ = write!(page, "<p id=\"done\"><strong>{}</strong></p>", escape(done));
    }
    let _ = write!(
        page,
        "<p>{total} known users, {} connected sessions, {} reconnecting, {} failed, \
         {} MCP sessions.</p>",
        stats.connected_sessions,
        stats.tracker.active,
        stats.tracker.failed,
        app.session_owners().len()
    );
    if total > shown.len() {
        let _ = write!(page, "<p>Showing the first {} users.</p>", shown.len());
    }
    servers_section(&app, &token, &mut page).await;
    page.push_str(
        "<h2>Users</h2><table id=\"pairs\"><thead><tr><th>user</th><th>server</th><th>state</th>\
         <th>since</th><th>retry at</th><th>last error</th><th>tools</th><th>actions</th>\
         </tr></thead><tbody>",
    );
    for (user, rows) in shown.iter().zip(states) {
        for status in &rows {
            let row = ServerRow::from(status);
            let _ = write!(
                page,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
                 <td>{}</td><td>{}{}</td></tr>",
                escape(user.as_str()),
                escape(&row.name),
                escape(row.state),
                escape(&row.since),
                escape(row.retry_at.as_deref().unwrap_or("")),
                escape(row.last_error.as_deref().unwrap_or("")),
                row.tools,
                pair_button(&token, user.as_str(), &row.name, "reconnect"),
                pair_button(&token, user.as_str(), &row.name, "forget"),
            );
        }
    }
    page.push_str("</tbody></table></body></html>");
    let mut response = Html(page).into_response();
    let headers = response.headers_mut();
    // Nothing on the page is meant to run or to be cached by a shared cache.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; \
             frame-ancestors 'none'",
        ),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The servers: the file's and the catalog's, a delete button for catalog ones, and the form
/// that adds one.
async fn servers_section(app: &AppState, token: &str, page: &mut String) {
    page.push_str(
        "<h2>Servers</h2><table id=\"servers\"><thead><tr><th>server</th><th>source</th>\
         <th>definition</th><th></th></tr></thead><tbody>",
    );
    let listed = match app.catalog() {
        Some(catalog) => catalog.list().await.unwrap_or_default(),
        None => app
            .manager()
            .servers()
            .map(|s| CatalogServer {
                name: s.name.to_string(),
                source: "config",
                definition: serde_json::Value::Null,
                disabled: false,
            })
            .collect(),
    };
    for server in &listed {
        let switch = if app.catalog().is_some() {
            let action = if server.disabled { "enable" } else { "disable" };
            format!(
                "<form method=\"post\" action=\"/status/servers/switch\" style=\"display:inline\">\
                 <input type=\"hidden\" name=\"csrf\" value=\"{token}\">\
                 <input type=\"hidden\" name=\"name\" value=\"{name}\">\
                 <button type=\"submit\" name=\"action\" value=\"{action}\">{action}</button></form>",
                name = escape(&server.name)
            )
        } else {
            String::new()
        };
        let delete = if server.source != "config" {
            format!(
                "<form method=\"post\" action=\"/status/servers/delete\">\
                 <input type=\"hidden\" name=\"csrf\" value=\"{token}\">\
                 <input type=\"hidden\" name=\"name\" value=\"{name}\">\
                 <button type=\"submit\">delete</button></form>",
                name = escape(&server.name)
            )
        } else {
            String::new()
        };
        let _ = write!(
            page,
            "<tr><td>{}</td><td>{}{}</td><td><code>{}</code></td><td>{switch}{delete}</td></tr>",
            escape(&server.name),
            server.source,
            if server.disabled { " (disabled)" } else { "" },
            escape(&server.definition.to_string()),
        );
    }
    page.push_str("</tbody></table>");
    if app.catalog().is_some() {
        let _ = write!(
            page,
            "<form id=\"add-server\" method=\"post\" action=\"/status/servers\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{token}\">\
             <label>name <input name=\"name\" required></label> \
             <label>url <input name=\"url\" required></label> \
             <label>oauth <input type=\"checkbox\" name=\"oauth\"></label> \
             <label>groups <input name=\"groups\" placeholder=\"eng, ops\"></label> \
             <button type=\"submit\">add server</button></form>"
        );
    }
}

fn pair_button(token: &str, user: &str, server: &str, action: &str) -> String {
    format!(
        "<form method=\"post\" action=\"/status/pairs\" style=\"display:inline\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{token}\">\
         <input type=\"hidden\" name=\"user\" value=\"{}\">\
         <input type=\"hidden\" name=\"server\" value=\"{}\">\
         <button type=\"submit\" name=\"action\" value=\"{action}\">{action}</button></form>",
        escape(user),
        escape(server)
    )
}
