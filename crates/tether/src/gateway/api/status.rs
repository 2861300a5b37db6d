//! `GET /status`: an HTML page for operators listing each known user's servers and states,
//! behind the admin credential. Everything shown is escaped: user ids and error texts come from
//! outside.

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};
use futures::future::join_all;

use super::rows::ServerRow;
use crate::gateway::state::AppState;

/// Users shown on one page; the rest are counted.
const MAX_USERS_SHOWN: usize = 500;

pub async fn status_page(State(app): State<AppState>, headers: HeaderMap) -> Response {
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
    page.push_str(
        "<table><thead><tr><th>user</th><th>server</th><th>state</th><th>since</th>\
         <th>retry at</th><th>last error</th><th>tools</th></tr></thead><tbody>",
    );
    for (user, rows) in shown.iter().zip(states) {
        for status in &rows {
            let row = ServerRow::from(status);
            let _ = write!(
                page,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
                 <td>{}</td></tr>",
                escape(user.as_str()),
                escape(&row.name),
                escape(row.state),
                escape(&row.since),
                escape(row.retry_at.as_deref().unwrap_or("")),
                escape(row.last_error.as_deref().unwrap_or("")),
                row.tools
            );
        }
    }
    page.push_str("</tbody></table></body></html>");
    let mut response = Html(page).into_response();
    let headers = response.headers_mut();
    // Nothing on the page is meant to run or to be cached by a shared cache.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// HTML-escapes text for element content and quoted attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn markup_is_escaped() {
        assert_eq!(
            escape(r#"<script>alert("x&y")</script>'"#),
            "&lt;script&gt;alert(&quot;x&amp;y&quot;)&lt;/script&gt;&#x27;"
        );
    }
}
