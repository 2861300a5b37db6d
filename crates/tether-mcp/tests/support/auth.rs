//! Access tokens in tests: a gate in front of a test server that accepts exactly one bearer
//! token (which the test rotates), and a scripted [`BearerSource`].

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tether_core::{ConnectError, ServerName, UserId};
use tether_mcp::{Bearer, BearerSource};

/// Which token the gate lets through, and what it saw.
#[derive(Debug, Default)]
pub struct Gate {
    accepted: Mutex<String>,
    /// Whether a 401 carries a `WWW-Authenticate` challenge (rmcp reports the two differently).
    pub challenge: AtomicBool,
    pub passed: AtomicUsize,
    pub rejected: AtomicUsize,
    /// Requests that came without any `Authorization` header.
    pub anonymous: AtomicUsize,
    /// GET requests let through (event streams opened).
    pub streams: AtomicUsize,
}

impl Gate {
    pub fn accepting(token: &str) -> Arc<Self> {
        let gate = Self::default();
        gate.accept(token);
        gate.challenge.store(true, Ordering::SeqCst);
        Arc::new(gate)
    }

    /// From now on only `token` is accepted.
    pub fn accept(&self, token: &str) {
        *self.accepted.lock().expect("gate lock") = token.to_owned();
    }

    /// Waits (up to 5 s) until a client opened its standalone event stream: rmcp opens it in
    /// the background after `initialize`, and a test that rotates tokens must not race it.
    pub async fn wait_for_stream(&self) {
        for _ in 0..100 {
            if self.streams.load(Ordering::SeqCst) > 0 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("the client never opened its event stream");
    }

    /// `None` lets the request through; otherwise the 401 to answer with.
    fn refusal(&self, request: &Request<Body>) -> Option<Response> {
        let header = request
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        let expected = format!("Bearer {}", self.accepted.lock().expect("gate lock"));
        match header {
            Some(value) if value == expected => {
                self.passed.fetch_add(1, Ordering::SeqCst);
                if request.method() == axum::http::Method::GET {
                    self.streams.fetch_add(1, Ordering::SeqCst);
                }
                None
            }
            other => {
                if other.is_none() {
                    self.anonymous.fetch_add(1, Ordering::SeqCst);
                }
                self.rejected.fetch_add(1, Ordering::SeqCst);
                let body = "token secret-in-body rejected";
                Some(if self.challenge.load(Ordering::SeqCst) {
                    (
                        StatusCode::UNAUTHORIZED,
                        [(
                            "www-authenticate",
                            r#"Bearer realm="secret-realm", error="invalid_token""#,
                        )],
                        body,
                    )
                        .into_response()
                } else {
                    (StatusCode::UNAUTHORIZED, body).into_response()
                })
            }
        }
    }
}

/// `router` behind `gate`: every request needs the accepted token.
pub fn require_token(router: Router, gate: Arc<Gate>) -> Router {
    router.layer(middleware::from_fn(
        move |request: Request<Body>, next: Next| {
            let gate = gate.clone();
            async move {
                match gate.refusal(&request) {
                    None => next.run(request).await,
                    Some(refusal) => refusal,
                }
            }
        },
    ))
}

/// A [`BearerSource`] whose answers the test sets.
#[derive(Debug, Default)]
pub struct ScriptedSource {
    current: Mutex<Option<String>>,
    /// What the next `rejected` call hands out; `None` → `Err(NeedsAuthorization)`.
    refreshed: Mutex<Option<String>>,
    pub bearer_calls: AtomicUsize,
    pub rejected_calls: AtomicUsize,
}

impl ScriptedSource {
    pub fn with_token(token: &str) -> Arc<Self> {
        let source = Self::default();
        source.set_current(token);
        Arc::new(source)
    }

    /// As if the token had been refreshed in the background.
    pub fn set_current(&self, token: &str) {
        *self.current.lock().expect("source lock") = Some(token.to_owned());
    }

    /// The token the next refresh (`rejected`) yields.
    pub fn refresh_to(&self, token: &str) {
        *self.refreshed.lock().expect("source lock") = Some(token.to_owned());
    }

    pub fn bearer_calls(&self) -> usize {
        self.bearer_calls.load(Ordering::SeqCst)
    }

    pub fn rejected_calls(&self) -> usize {
        self.rejected_calls.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl BearerSource for ScriptedSource {
    async fn bearer(
        &self,
        _user: &UserId,
        _server: &ServerName,
        _url: &str,
    ) -> Result<Option<Bearer>, ConnectError> {
        self.bearer_calls.fetch_add(1, Ordering::SeqCst);
        Ok(self
            .current
            .lock()
            .expect("source lock")
            .clone()
            .map(Bearer::new))
    }

    async fn rejected(
        &self,
        _user: &UserId,
        _server: &ServerName,
        _url: &str,
        _rejected: &Bearer,
    ) -> Result<Option<Bearer>, ConnectError> {
        self.rejected_calls.fetch_add(1, Ordering::SeqCst);
        match self.refreshed.lock().expect("source lock").take() {
            Some(token) => {
                self.set_current(&token);
                Ok(Some(Bearer::new(token)))
            }
            None => Err(ConnectError::NeedsAuthorization {
                authorization_url: None,
                scope: None,
            }),
        }
    }
}
