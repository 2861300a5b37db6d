//! The gateway's HTTP API besides `/mcp`: the user's own servers (`/v1/me/…`, host JWT),
//! health and readiness probes, Prometheus metrics, the operator status page and the operator
//! actions (`/v1/admin/…`, admin credential).

mod admin;
mod admin_forms;
mod error;
mod health;
mod me;
mod metrics;
mod rows;
mod status;

use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::routing::{delete, get, post};

pub use error::ApiError;
pub use rows::ServerRow;

use crate::gateway::auth::require_user;
use crate::gateway::state::AppState;

/// `/v1/me/…` behind the host JWT; the probes, `/metrics` and `/status` (own credential) not.
pub(crate) fn router(app: AppState) -> Router {
    let me = Router::new()
        .route("/v1/me/reconnect", post(me::reconnect_all))
        .route("/v1/me/servers", get(me::list_servers).post(me::add_server))
        .route("/v1/me/servers/{name}/reconnect", post(me::reconnect_one))
        .route("/v1/me/servers/{name}", delete(me::remove_server))
        .layer(from_fn_with_state(app.clone(), require_user));
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::metrics))
        .route("/status", get(status::status_page))
        .route("/status/servers", post(admin_forms::add_server))
        .route("/status/servers/delete", post(admin_forms::delete_server))
        .route("/status/pairs", post(admin_forms::pair_action))
        .route("/v1/admin/reload", post(admin::reload))
        .route(
            "/v1/admin/servers",
            get(admin::list_servers).post(admin::create_server),
        )
        .route(
            "/v1/admin/servers/{name}",
            get(admin::get_server)
                .put(admin::update_server)
                .delete(admin::delete_server),
        )
        .merge(me)
        .with_state(app)
}
