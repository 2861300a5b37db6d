//! API errors as JSON: `{"error": code, "message": text}` with the matching status.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Texts are shown to the caller: no secrets, no upstream bodies.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

/// The body of every API error, as the OpenAPI document names it.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// A stable code (`unknown_server`, `unauthorized`, …).
    pub error: String,
    /// What went wrong, for people.
    pub message: String,
}

/// Quoted client input is cut to this length.
const MAX_QUOTED: usize = 128;

impl ApiError {
    pub fn unknown_server(name: &str) -> Self {
        let name: String = name.chars().take(MAX_QUOTED).collect();
        Self {
            status: StatusCode::NOT_FOUND,
            code: "unknown_server",
            message: format!("no server named {name:?} is configured"),
        }
    }

    pub fn internal(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            axum::Json(json!({"error": self.code, "message": self.message})),
        )
            .into_response()
    }
}
