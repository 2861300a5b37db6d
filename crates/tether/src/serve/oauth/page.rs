//! The small HTML pages the browser sees at the end of a flow.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use tether::gateway::html::escape;

pub(super) fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t}</title></head>\
         <body style=\"font-family:sans-serif;max-width:40em;margin:4em auto\"><h1>{t}</h1><p>{b}</p></body></html>",
        t = escape(title),
        b = escape(body)
    );
    (status, Html(html)).into_response()
}
