//! Which user owns which MCP session on `/mcp`, and the middleware that refuses a session id
//! presented by anyone else.
//!
//! rmcp creates a session on `initialize` and afterwards trusts whoever presents its id. The
//! id travels in a header that proxies and logs may see, so a valid JWT of user B with user A's
//! session id must not reach A's session: every request carrying a session id is checked
//! against the owner recorded when the session was created. Ids without an owner record are
//! answered 404 here and never reach rmcp; refused ones get the same 404, so an id's existence
//! is not disclosed to other users.
//!
//! The record is kept until the session is really gone: a DELETE by its owner, or rmcp no
//! longer holding it (idle expiry, shutdown). A 404 from rmcp alone proves nothing: on the
//! 2026-07-28 stateless path a METHOD_NOT_FOUND is a 404 too, while the session lives on.
//!
//! Each session costs a worker task in rmcp, so a user holds at most
//! `max_sessions_per_user`; past it, a request that would open one gets 429 with
//! `Retry-After`. Before refusing, the user's sessions rmcp already ended are let go.

#![allow(
    deprecated,
    reason = "sessions keep their agent's log level (SEP-2577 deprecates logging)"
)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tether_core::FastMap;

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rmcp::model::LoggingLevel;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::session::{SessionId, SessionManager as _};
use tether_core::UserId;

use super::direct::DirectAllowed;
use super::direct_calls::DirectCalls;
use super::jsonrpc::jsonrpc_error_response;
use super::log_threshold;
use crate::gateway::auth::AuthError;
use crate::gateway::state::AppState;

/// rmcp's session header.
pub const SESSION_HEADER: &str = "mcp-session-id";
/// [`SESSION_HEADER`] as a header name: looked up on every request, without parsing it again.
pub(crate) const SESSION: HeaderName = HeaderName::from_static(SESSION_HEADER);

/// Owners are pruned against rmcp's live sessions when the map outgrows this (and then
/// whenever it doubles), so sessions rmcp expired on its own do not accumulate.
const PRUNE_FLOOR: usize = 1024;

/// The longest `Retry-After` suggested when a user is at the session cap: a slot frees when one
/// of their sessions is deleted or idles out, which the gateway cannot predict.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Who owns a session, and when a request of it last went through rmcp (whose session worker
/// ends the session after the idle timeout without one).
#[derive(Debug)]
struct Owner {
    user: UserId,
    through_rmcp: Instant,
    /// The agent declared sampling, elicitation or roots: its calls go through rmcp, which can
    /// put the upstream's requests and progress on the call's event stream.
    interactive: bool,
    /// The level the agent set with `logging/setLevel` (see [`log_threshold`]).
    log_level: Option<LoggingLevel>,
}

/// Put into an `initialize` answer's extensions by the body check: the agent declared
/// sampling, elicitation or roots.
#[derive(Debug, Clone, Copy)]
pub(crate) struct InteractiveAgent;

/// What a presented session id means for the request carrying it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Presented {
    /// Not recorded here: expired, deleted or never issued to anyone.
    Unknown,
    /// Another user's session.
    Foreign,
    /// The caller's, and rmcp must see this request: its idle timer is half run.
    ThroughRmcp,
    /// The caller's, seen by rmcp recently: a call may skip rmcp's worker.
    DirectAllowed,
}

#[derive(Debug, Default)]
struct Owners {
    by_session: FastMap<String, Owner>,
    /// Sessions per user, kept with `by_session` (the session cap is checked on every open).
    per_user: FastMap<UserId, usize>,
}

impl Owners {
    fn insert(&mut self, session: String, owner: Owner) {
        let user = owner.user.clone();
        if let Some(previous) = self.by_session.insert(session, owner) {
            self.uncount(&previous.user);
        }
        *self.per_user.entry(user).or_default() += 1;
    }

    fn remove(&mut self, session: &str) {
        if let Some(owner) = self.by_session.remove(session) {
            self.uncount(&owner.user);
        }
    }

    fn uncount(&mut self, user: &UserId) {
        if let Some(count) = self.per_user.get_mut(user) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.per_user.remove(user);
            }
        }
    }

    fn count(&self, user: &UserId) -> usize {
        self.per_user.get(user).copied().unwrap_or(0)
    }
}

#[derive(Debug)]
pub struct SessionOwners {
    owners: Mutex<Owners>,
    /// Calls of these sessions running on the direct path.
    direct_calls: Arc<DirectCalls>,
    sessions: Arc<LocalSessionManager>,
    prune_at: AtomicUsize,
}

impl SessionOwners {
    pub(crate) fn new(sessions: Arc<LocalSessionManager>) -> Self {
        Self {
            owners: Mutex::new(Owners::default()),
            direct_calls: Arc::default(),
            sessions,
            prune_at: AtomicUsize::new(PRUNE_FLOOR),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Owners> {
        // Single map operations only: consistent even after a panic elsewhere.
        self.owners.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn direct_calls(&self) -> &Arc<DirectCalls> {
        &self.direct_calls
    }

    pub fn owner(&self, session: &str) -> Option<UserId> {
        self.lock()
            .by_session
            .get(session)
            .map(|owner| owner.user.clone())
    }

    /// Classifies a session id presented by `user`. `idle_timeout` is rmcp's: a request is sent
    /// through rmcp whenever the last one it saw is half that old.
    fn presented(&self, session: &str, user: &UserId, idle_timeout: Duration) -> Presented {
        let mut owners = self.lock();
        let Some(owner) = owners.by_session.get_mut(session) else {
            return Presented::Unknown;
        };
        if &owner.user != user {
            return Presented::Foreign;
        }
        let now = Instant::now();
        // A session with a log level has its calls' messages filtered on rmcp's path.
        let plain = !owner.interactive && owner.log_level.is_none();
        if plain && now.duration_since(owner.through_rmcp) < idle_timeout / 2 {
            return Presented::DirectAllowed;
        }
        owner.through_rmcp = now;
        Presented::ThroughRmcp
    }

    /// Records the level `session`'s agent asked for, and returns the most verbose level any
    /// session of the same user asked for: the level their shared upstream sessions are given.
    /// `None` for a session not recorded here.
    pub(crate) fn set_log_level(&self, session: &str, level: LoggingLevel) -> Option<LoggingLevel> {
        let mut owners = self.lock();
        let owner = owners.by_session.get_mut(session)?;
        owner.log_level = Some(level);
        let user = owner.user.clone();
        owners
            .by_session
            .values()
            .filter(|owner| owner.user == user)
            .filter_map(|owner| owner.log_level)
            .reduce(log_threshold::most_verbose)
    }

    /// The level `session`'s agent set, if it did.
    pub(crate) fn log_level(&self, session: &str) -> Option<LoggingLevel> {
        self.lock()
            .by_session
            .get(session)
            .and_then(|owner| owner.log_level)
    }

    /// Whether rmcp still holds the session (it ends sessions on its own: idle timeout,
    /// shutdown).
    pub(crate) async fn is_live(&self, session: &str) -> bool {
        self.sessions.sessions.read().await.contains_key(session)
    }

    /// Open MCP sessions known to the gateway.
    pub fn len(&self) -> usize {
        self.lock().by_session.len()
    }

    /// Whether `user` may open one more session under `cap`. At the cap, the user's sessions
    /// rmcp has ended on its own (idle, closed stream) are let go first.
    async fn has_room(&self, user: &UserId, cap: usize) -> bool {
        let theirs: Vec<String> = {
            let owners = self.lock();
            if owners.count(user) < cap {
                return true;
            }
            owners
                .by_session
                .iter()
                .filter(|(_, owner)| &owner.user == user)
                .map(|(id, _)| id.clone())
                .collect()
        };
        let live = self.sessions.sessions.read().await;
        let ended: Vec<&String> = theirs
            .iter()
            .filter(|id| !live.contains_key(id.as_str()))
            .collect();
        let mut owners = self.lock();
        for id in ended {
            owners.remove(id);
        }
        owners.count(user) < cap
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records a session rmcp has just opened for `user`, or refuses it when the user already
    /// holds `cap` (the early check in [`guard_sessions`] does not reserve a slot, so initializes
    /// sent at once can all pass it; this count, under the same lock as the insert, cannot be
    /// passed). A refused session is closed in rmcp.
    async fn record(&self, session: String, user: UserId, interactive: bool, cap: usize) -> bool {
        let recorded = {
            let mut owners = self.lock();
            if owners.count(&user) >= cap {
                Err(session)
            } else {
                owners.insert(
                    session,
                    Owner {
                        user,
                        through_rmcp: Instant::now(),
                        interactive,
                        log_level: None,
                    },
                );
                Ok(owners.by_session.len())
            }
        };
        let len = match recorded {
            Ok(len) => len,
            Err(session) => {
                let id: SessionId = session.into();
                if let Err(error) = self.sessions.close_session(&id).await {
                    tracing::debug!(%error, "a session past the cap was already gone");
                }
                return false;
            }
        };
        if len >= self.prune_at.load(Ordering::Relaxed) {
            self.prune().await;
        }
        true
    }

    fn forget(&self, session: &str) {
        self.lock().remove(session);
    }

    async fn prune(&self) {
        let live: std::collections::HashSet<String> = self
            .sessions
            .sessions
            .read()
            .await
            .keys()
            .map(|id| id.to_string())
            .collect();
        let remaining = {
            let mut owners = self.lock();
            let ended: Vec<String> = owners
                .by_session
                .keys()
                .filter(|id| !live.contains(*id))
                .cloned()
                .collect();
            for id in &ended {
                owners.remove(id);
            }
            owners.by_session.len()
        };
        self.prune_at
            .store((remaining * 2).max(PRUNE_FLOOR), Ordering::Relaxed);
    }
}

/// A check of `/mcp` (after authentication, see
/// [`McpEndpoint::handle`](super::McpEndpoint::handle)): refuses other users' session ids and
/// records the owner of sessions as they are created.
pub(crate) async fn guard_sessions<F, Fut>(
    app: &AppState,
    mut request: Request,
    next: F,
) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    let Some(user) = request.extensions().get::<UserId>().cloned() else {
        return AuthError::Missing.into_response();
    };
    let session = match request.headers().get(SESSION) {
        None => None,
        Some(value) => match value.to_str() {
            Ok(id) => Some(id.to_owned()),
            Err(_) => {
                return jsonrpc_error_response(
                    StatusCode::BAD_REQUEST,
                    None,
                    rmcp::model::ErrorCode::INVALID_REQUEST,
                    "invalid session id",
                );
            }
        },
    };
    let owners = app.session_owners();
    if let Some(id) = &session {
        match owners.presented(id, &user, app.mcp_config().session_idle_timeout) {
            Presented::Foreign => {
                tracing::warn!(%user, "MCP session id presented by a user who does not own it");
                return session_not_found();
            }
            Presented::Unknown => return session_not_found(),
            Presented::DirectAllowed => {
                request.extensions_mut().insert(DirectAllowed);
            }
            Presented::ThroughRmcp => {}
        }
    }
    // A POST without a session id is what opens one (`initialize`).
    if session.is_none() && request.method() == Method::POST {
        let cap = app.mcp_config().max_sessions_per_user;
        if !owners.has_room(&user, cap).await {
            return too_many_sessions(&user, app.mcp_config().session_idle_timeout, cap);
        }
    }
    let is_delete = request.method() == Method::DELETE;
    let response = next(request).await;
    match session {
        None => {
            if let Some(created) = response
                .headers()
                .get(SESSION)
                .and_then(|v| v.to_str().ok())
            {
                let interactive = response.extensions().get::<InteractiveAgent>().is_some();
                let cap = app.mcp_config().max_sessions_per_user;
                if !owners
                    .record(created.to_owned(), user.clone(), interactive, cap)
                    .await
                {
                    return too_many_sessions(&user, app.mcp_config().session_idle_timeout, cap);
                }
            }
        }
        Some(id) => {
            let deleted = is_delete && response.status().is_success();
            if deleted || (response.status() == StatusCode::NOT_FOUND && !owners.is_live(&id).await)
            {
                owners.forget(&id);
            }
        }
    }
    response
}

fn too_many_sessions(user: &UserId, idle_timeout: Duration, cap: usize) -> Response {
    tracing::info!(%user, cap, "MCP session refused: the user holds the most allowed");
    let mut response = jsonrpc_error_response(
        StatusCode::TOO_MANY_REQUESTS,
        None,
        rmcp::model::ErrorCode::INVALID_REQUEST,
        &format!(
            "this user already holds {cap} open MCP sessions: close one (DELETE /mcp) or retry later"
        ),
    );
    let retry_after = idle_timeout.min(MAX_RETRY_AFTER).as_secs().max(1);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    response
}

fn session_not_found() -> Response {
    jsonrpc_error_response(
        StatusCode::NOT_FOUND,
        None,
        rmcp::model::ErrorCode::INVALID_REQUEST,
        "session not found",
    )
}
