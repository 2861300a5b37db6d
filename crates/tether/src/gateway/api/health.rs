//! `/healthz` (the process answers) and `/readyz` (it should get traffic: not shutting down and
//! every registered [`ReadinessCheck`](crate::gateway::ReadinessCheck) passes).

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use futures::future::join_all;
use serde_json::{Value, json};

use crate::gateway::state::AppState;

/// A check that takes longer counts as failed: a probe must answer quickly.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "probes", security(()),
    responses((status = 200, description = "The process answers", body = serde_json::Value)))]
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Readiness: not shutting down, and every dependency check passes.
#[utoipa::path(get, path = "/readyz", tag = "probes", security(()),
    responses(
        (status = 200, description = "Ready: every check passes", body = serde_json::Value),
        (status = 503, description = "Not ready (shutting down, or a check failed)", body = serde_json::Value),
    ))]
pub async fn readyz(State(app): State<AppState>) -> (StatusCode, Json<Value>) {
    let results = join_all(app.readiness_checks().iter().map(|check| async move {
        let result = tokio::time::timeout(CHECK_TIMEOUT, check.check()).await;
        let error = match result {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.0),
            Err(_) => Some("timed out".to_owned()),
        };
        (check.name().to_owned(), error, check.detail())
    }))
    .await;
    let shutting_down = app.is_shutting_down();
    let ready = !shutting_down && results.iter().all(|(_, e, _)| e.is_none());
    let checks: Vec<Value> = results
        .into_iter()
        .map(|(name, error, detail)| {
            json!({"name": name, "ok": error.is_none(), "error": error, "detail": detail})
        })
        .collect();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({
            "ready": ready,
            "shutting_down": shutting_down,
            "servers": app.manager().servers().count(),
            "checks": checks,
        })),
    )
}
