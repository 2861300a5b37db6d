//! This replica's live sessions and the state of every pair it has touched.
//!
//! Sessions are per replica (a live MCP session cannot move between processes); what replicas
//! must agree on lives in the shared state instead.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::connector::Session;
use crate::ids::PairKey;
use crate::state::ConnectionState;
use crate::sync::lock;
use crate::time::Timestamp;
use crate::tool_cache::ToolList;

#[derive(Debug)]
struct PairSlot {
    session: Option<Arc<dyn Session>>,
    state: ConnectionState,
    since: Timestamp,
    tools: ToolList,
}

/// A copy of a slot's public part.
#[derive(Debug, Clone)]
pub(crate) struct SlotView {
    pub state: ConnectionState,
    pub since: Timestamp,
    pub tools: ToolList,
}

#[derive(Debug, Default)]
pub(crate) struct SessionTable {
    slots: Mutex<HashMap<PairKey, PairSlot>>,
}

impl SessionTable {
    fn slots(&self) -> std::sync::MutexGuard<'_, HashMap<PairKey, PairSlot>> {
        lock(&self.slots)
    }

    /// The pair's session when it is connected and the transport still thinks it is open.
    pub fn open_session(&self, pair: &PairKey) -> Option<Arc<dyn Session>> {
        let slots = self.slots();
        let slot = slots.get(pair)?;
        match (&slot.state, &slot.session) {
            (ConnectionState::Connected, Some(s)) if s.is_open() => Some(s.clone()),
            _ => None,
        }
    }

    /// The pair's tool list when it is connected and its session open: one lock and an `Arc`
    /// clone, for checks on the call path that must not copy schemas.
    pub fn live_tools(&self, pair: &PairKey) -> Option<ToolList> {
        let slots = self.slots();
        let slot = slots.get(pair)?;
        match (&slot.state, &slot.session) {
            (ConnectionState::Connected, Some(s)) if s.is_open() => Some(slot.tools.clone()),
            _ => None,
        }
    }

    pub fn view(&self, pair: &PairKey) -> Option<SlotView> {
        let slots = self.slots();
        let slot = slots.get(pair)?;
        let mut state = slot.state.clone();
        if state.is_connected() && !slot.session.as_ref().is_some_and(|s| s.is_open()) {
            state = ConnectionState::Disconnected;
        }
        Some(SlotView {
            state,
            since: slot.since,
            tools: slot.tools.clone(),
        })
    }

    /// Whether the pair was ever connected here (so a new attempt is a reconnect).
    pub fn was_connected(&self, pair: &PairKey) -> bool {
        self.slots()
            .get(pair)
            .is_some_and(|s| s.session.is_some() || !s.tools.is_empty())
    }

    /// Sets the state; `since` moves only when the kind of state changes.
    pub fn set_state(&self, pair: &PairKey, state: ConnectionState, now: Timestamp) {
        let mut slots = self.slots();
        match slots.get_mut(pair) {
            Some(slot) => {
                if slot.state.name() != state.name() {
                    slot.since = now;
                }
                slot.state = state;
            }
            None => {
                slots.insert(
                    pair.clone(),
                    PairSlot {
                        session: None,
                        state,
                        since: now,
                        tools: ToolList::from(Vec::new()),
                    },
                );
            }
        }
    }

    /// Stores a new live session; returns the one it replaces, for closing.
    pub fn connected(
        &self,
        pair: &PairKey,
        session: Arc<dyn Session>,
        tools: ToolList,
        now: Timestamp,
    ) -> Option<Arc<dyn Session>> {
        let mut slots = self.slots();
        let previous = slots.insert(
            pair.clone(),
            PairSlot {
                session: Some(session),
                state: ConnectionState::Connected,
                since: now,
                tools,
            },
        );
        previous.and_then(|p| p.session)
    }

    /// Takes the session out (for closing) and sets the state.
    pub fn detach(
        &self,
        pair: &PairKey,
        state: ConnectionState,
        now: Timestamp,
    ) -> Option<Arc<dyn Session>> {
        let mut slots = self.slots();
        let slot = slots.get_mut(pair)?;
        if slot.state.name() != state.name() {
            slot.since = now;
        }
        slot.state = state;
        slot.session.take()
    }

    pub fn connected_count(&self) -> usize {
        self.slots()
            .values()
            .filter(|s| s.state.is_connected())
            .count()
    }

    /// Every live session, taken out, for shutdown.
    pub fn drain_sessions(&self) -> Vec<Arc<dyn Session>> {
        self.slots()
            .values_mut()
            .filter_map(|s| {
                s.state = ConnectionState::Disconnected;
                s.session.take()
            })
            .collect()
    }
}
