//! A loopback host of JSON documents a test can change while it runs: the protected resource
//! metadata an authorization test needs in an exact shape (a pathless `resource`, an
//! authorization server that changes), or a client ID metadata document.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

type Documents = Arc<Mutex<HashMap<String, Value>>>;

/// A running host. Dropping it stops it.
#[derive(Debug)]
pub struct DocumentHost {
    pub addr: SocketAddr,
    /// `http://<addr>`, without a trailing slash.
    pub base: String,
    documents: Documents,
    ct: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl DocumentHost {
    /// Serves `document` at `path` (replacing what was there).
    pub fn set(&self, path: &str, document: Value) {
        self.documents
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(path.to_owned(), document);
    }

    /// `http://<addr><path>`
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

impl Drop for DocumentHost {
    fn drop(&mut self) {
        self.ct.cancel();
        self.task.abort();
    }
}

/// Starts an empty host on `127.0.0.1` at any free port: every path answers 404 until set.
pub async fn serve_documents() -> std::io::Result<DocumentHost> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let documents: Documents = Arc::default();
    let router = Router::new().fallback(answer).with_state(documents.clone());
    let ct = CancellationToken::new();
    let task = crate::serving::serve_until_cancelled(listener, router, &ct);
    Ok(DocumentHost {
        addr,
        base: format!("http://{addr}"),
        documents,
        ct,
        task,
    })
}

async fn answer(State(documents): State<Documents>, request: Request) -> Response {
    let found = documents
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(request.uri().path())
        .cloned();
    match found {
        Some(document) => axum::Json(document).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
