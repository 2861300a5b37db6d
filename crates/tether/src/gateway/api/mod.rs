//! The gateway's HTTP API besides `/mcp`: the user's own servers (`/v1/me/…`, host JWT),
//! health and readiness probes, Prometheus metrics, the operator status page and the operator
//! actions (`/v1/admin/…`, admin credential).

mod admin;
mod admin_forms;
mod error;
mod health;
mod me;
mod metrics;
mod openapi;
mod rows;
mod status;

use axum::Router;
use axum::extract::State;
use axum::middleware::from_fn_with_state;
use axum::routing::get;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use error::{ApiError, ErrorBody};
pub use rows::ServerRow;

use crate::gateway::auth::require_user;
use crate::gateway::state::AppState;

/// `/v1/me/…` behind the host JWT; the probes, `/metrics`, `/status` and `/v1/admin/…` (own
/// credential) not. Every route is registered with its description: the document (served at
/// `/openapi.json`) is made from the same registrations.
pub(crate) fn router(app: AppState) -> (Router, utoipa::openapi::OpenApi) {
    let me = OpenApiRouter::new()
        .routes(routes!(me::reconnect_all))
        .routes(routes!(me::list_servers, me::add_server))
        .routes(routes!(me::reconnect_one))
        .routes(routes!(me::remove_server))
        .layer(from_fn_with_state(app.clone(), require_user));
    let (router, doc) = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(metrics::metrics))
        .routes(routes!(status::status_page))
        .routes(routes!(admin_forms::add_server))
        .routes(routes!(admin_forms::delete_server))
        .routes(routes!(admin_forms::switch_server))
        .routes(routes!(admin_forms::pair_action))
        .routes(routes!(admin::reload))
        .routes(routes!(admin::disable_server))
        .routes(routes!(admin::enable_server))
        .routes(routes!(admin::list_servers, admin::create_server))
        .routes(routes!(
            admin::get_server,
            admin::update_server,
            admin::delete_server
        ))
        .merge(me)
        .with_state(app.clone())
        .split_for_parts();
    let router = router.route("/openapi.json", get(openapi_json).with_state(app));
    (router, doc)
}

/// `GET /openapi.json`: the document as assembled (the binary's routes included).
async fn openapi_json(State(app): State<AppState>) -> axum::Json<serde_json::Value> {
    axum::Json(app.api_doc())
}
