//! `GET /metrics`: the Prometheus text exposition.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use crate::gateway::state::AppState;

pub async fn metrics(State(app): State<AppState>) -> impl IntoResponse {
    let stats = app.manager().stats().await;
    let mut text = app
        .metrics()
        .render(&stats, app.users().len(), app.session_owners().len());
    for source in app.metrics_sources() {
        text.push_str(&source.render());
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
}
