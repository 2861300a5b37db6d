//! `GET /metrics`: the Prometheus text exposition.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use crate::gateway::state::AppState;

/// Prometheus metrics of the gateway, its upstream attempts and its stores.
#[utoipa::path(get, path = "/metrics", tag = "probes", security(()),
    responses((status = 200, description = "Prometheus text exposition (no user ids)",
        content_type = "text/plain", body = String)))]
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
