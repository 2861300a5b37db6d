//! A server's list changed (`notifications/*/list_changed`): the pair's tool list is read again
//! from its live session (so the model's next `tools/list`, the stubs and the tool cache follow
//! without reconnecting), and the change is published for the user's open agent sessions.
//!
//! Sessions read the server's own messages only while the user has an agent session open
//! ([`AgentPresence`]): an idle upstream session keeps no reader.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, Weak};

use tokio::sync::broadcast;

use super::Inner;
use crate::connector::{ListKind, SessionEvents};
use crate::ids::{PairKey, ServerName, UserId};
use crate::tool_cache::CachedTools;

/// How many changes an agent session may fall behind before it misses some (it then lists
/// again anyway: a missed change only delays the refresh until its next list).
pub(crate) const CHANGES_BUFFER: usize = 256;

/// Something of one server changed for one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerChange {
    pub user: UserId,
    pub server: ServerName,
    pub change: Change,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// One of its lists (a changed tool list has already been read again).
    List(ListKind),
    /// A resource the user subscribed to, by the URI the server knows.
    ResourceUpdated(String),
    /// The pair connected (after an authorization among others).
    Connected,
    /// A log message of the server outside any request (the params of its
    /// `notifications/message`).
    Message(serde_json::Value),
}

/// The events of one pair's session, held by the session; weak, so that a session outliving
/// the manager keeps nothing alive.
#[derive(Debug)]
pub(crate) struct PairEvents {
    pub(crate) inner: Weak<Inner>,
    pub(crate) pair: PairKey,
}

impl SessionEvents for PairEvents {
    fn list_changed(&self, list: ListKind) {
        let Some(inner) = self.inner.upgrade() else {
            return;
        };
        let pair = self.pair.clone();
        let task = inner.clone();
        inner
            .tasks
            .spawn(async move { task.list_changed(pair, list).await });
    }

    fn resource_updated(&self, uri: &str) {
        if let Some(inner) = self.inner.upgrade() {
            inner.publish(&self.pair, Change::ResourceUpdated(uri.to_owned()));
        }
    }

    fn message(&self, params: serde_json::Value) {
        if let Some(inner) = self.inner.upgrade() {
            inner.publish(&self.pair, Change::Message(params));
        }
    }
}

impl Inner {
    pub(crate) fn events_for(&self, pair: &PairKey) -> Arc<dyn SessionEvents> {
        Arc::new(PairEvents {
            inner: self.me.clone(),
            pair: pair.clone(),
        })
    }

    async fn list_changed(&self, pair: PairKey, list: ListKind) {
        if list == ListKind::Tools {
            let Some(session) = self.sessions.open_session(&pair) else {
                return;
            };
            match session.list_tools().await {
                Ok(tools) => {
                    let tools = self.tool_lists.intern(&pair.server, tools);
                    let now = self.clock.now();
                    let cached = CachedTools {
                        tools: tools.clone(),
                        fetched_at: now,
                    };
                    self.log_store(self.tool_cache.save(&pair, &cached).await, &pair);
                    self.sessions.replace_tools(&pair, &session, tools);
                    tracing::info!(%pair, "tool list changed upstream; refreshed");
                }
                Err(error) => {
                    // The next connect lists again; the old list stays meanwhile.
                    tracing::info!(%pair, %error, "tool list changed but could not be read");
                    return;
                }
            }
        }
        self.publish(&pair, Change::List(list));
    }

    pub(crate) fn publish(&self, pair: &PairKey, change: Change) {
        // Nobody listening is not an error.
        let _ = self.changes.send(ServerChange {
            user: pair.user.clone(),
            server: pair.server.clone(),
            change,
        });
    }

    pub(crate) fn subscribe_changes(&self) -> broadcast::Receiver<ServerChange> {
        self.changes.subscribe()
    }

    fn agents(&self) -> std::sync::MutexGuard<'_, HashMap<UserId, usize>> {
        self.agents.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn agent_arrived(&self, user: &UserId) {
        let first = {
            let mut agents = self.agents();
            let count = agents.entry(user.clone()).or_insert(0);
            *count += 1;
            *count == 1
        };
        if first {
            self.set_listening(user, true);
        }
    }

    fn agent_left(&self, user: &UserId) {
        let last = {
            let mut agents = self.agents();
            match agents.get_mut(user) {
                Some(count) if *count > 1 => {
                    *count -= 1;
                    false
                }
                Some(_) => {
                    agents.remove(user);
                    true
                }
                None => false,
            }
        };
        if last {
            self.set_listening(user, false);
        }
    }

    /// Whether one of the user's agent sessions is open, so a new session should listen.
    pub(crate) fn agent_present(&self, user: &UserId) -> bool {
        self.agents().contains_key(user)
    }

    /// The users with an open agent session.
    pub(crate) fn present_users(&self) -> Vec<UserId> {
        self.agents().keys().cloned().collect()
    }

    fn set_listening(&self, user: &UserId, on: bool) {
        let registry = self.registry();
        for server in registry.iter() {
            let pair = PairKey::new(user.clone(), server.name.clone());
            if let Some(session) = self.sessions.open_session(&pair) {
                session.listen(on);
            }
        }
    }
}

/// An open agent session of a user, for as long as it is held: meanwhile the user's upstream
/// sessions read their servers' own messages.
#[derive(Debug)]
pub struct AgentPresence {
    pub(crate) inner: Weak<Inner>,
    pub(crate) user: UserId,
}

impl Drop for AgentPresence {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.upgrade() {
            inner.agent_left(&self.user);
        }
    }
}
