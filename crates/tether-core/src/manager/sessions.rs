//! This replica's live sessions and the state of every pair it has touched.
//!
//! Sessions are per replica (a live MCP session cannot move between processes); what replicas
//! must agree on lives in the shared state instead.

use crate::FastMap;
use std::sync::atomic::{AtomicU64, Ordering};
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
    /// When the session last carried a call (or was opened), for closing idle sessions.
    last_used: Timestamp,
    /// Which slot of the pair this is: a slot removed (the pair forgotten, its server removed)
    /// and made again is another, and an attempt begun on the old one may not fill it.
    generation: u64,
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
    slots: Mutex<FastMap<PairKey, PairSlot>>,
    generations: AtomicU64,
}

impl SessionTable {
    fn slots(&self) -> std::sync::MutexGuard<'_, FastMap<PairKey, PairSlot>> {
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

    /// Sets the state; `since` moves only when the kind of state changes. Returns the slot's
    /// generation (see [`connected`](Self::connected)).
    pub fn set_state(&self, pair: &PairKey, state: ConnectionState, now: Timestamp) -> u64 {
        let mut slots = self.slots();
        match slots.get_mut(pair) {
            Some(slot) => {
                if slot.state.name() != state.name() {
                    slot.since = now;
                }
                slot.state = state;
                slot.generation
            }
            None => {
                let generation = self.generations.fetch_add(1, Ordering::Relaxed);
                slots.insert(
                    pair.clone(),
                    PairSlot {
                        session: None,
                        state,
                        since: now,
                        tools: ToolList::from(Vec::new()),
                        last_used: now,
                        generation,
                    },
                );
                generation
            }
        }
    }

    /// Stores a new live session in the slot of `generation` (the one its attempt began on);
    /// returns the session it replaces, for closing. `Err` gives `session` back when that slot
    /// is gone: the pair was forgotten or its server removed while it connected.
    pub fn connected(
        &self,
        pair: &PairKey,
        generation: u64,
        session: Arc<dyn Session>,
        tools: ToolList,
        now: Timestamp,
    ) -> Result<Option<Arc<dyn Session>>, Arc<dyn Session>> {
        let mut slots = self.slots();
        let Some(slot) = slots
            .get_mut(pair)
            .filter(|slot| slot.generation == generation)
        else {
            return Err(session);
        };
        slot.state = ConnectionState::Connected;
        slot.since = now;
        slot.tools = tools;
        slot.last_used = now;
        Ok(slot.session.replace(session))
    }

    /// The tools of the pair's live session, read again; ignored when `session` is no longer
    /// the pair's (it was replaced meanwhile, with its own fresh list).
    pub fn replace_tools(&self, pair: &PairKey, session: &Arc<dyn Session>, tools: ToolList) {
        let mut slots = self.slots();
        if let Some(slot) = slots.get_mut(pair)
            && slot
                .session
                .as_ref()
                .is_some_and(|s| Arc::ptr_eq(s, session))
        {
            slot.tools = tools;
        }
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

    /// The pair's session carried a call now.
    pub fn touch(&self, pair: &PairKey, now: Timestamp) {
        if let Some(slot) = self.slots().get_mut(pair) {
            slot.last_used = now;
        }
    }

    /// Takes out (for closing) every live session unused since `now - timeout`; their pairs
    /// become disconnected, so that the next call connects on demand.
    pub fn take_idle(
        &self,
        now: Timestamp,
        timeout: std::time::Duration,
    ) -> Vec<(PairKey, Arc<dyn Session>)> {
        let mut slots = self.slots();
        let mut idle = Vec::new();
        for (pair, slot) in slots.iter_mut() {
            if slot.session.is_none() || slot.last_used + timeout > now {
                continue;
            }
            if let Some(session) = slot.session.take() {
                slot.state = ConnectionState::Disconnected;
                slot.since = now;
                idle.push((pair.clone(), session));
            }
        }
        idle
    }

    /// The earliest moment a live session may become idle.
    pub fn next_idle_check(&self, timeout: std::time::Duration) -> Option<Timestamp> {
        self.slots()
            .values()
            .filter(|s| s.session.is_some())
            .map(|s| s.last_used + timeout)
            .min()
    }

    pub fn connected_count(&self) -> usize {
        self.slots()
            .values()
            .filter(|s| s.state.is_connected())
            .count()
    }

    /// Forgets every pair of `server` (its state and tool list), returning their live sessions
    /// for closing.
    pub fn remove_server(
        &self,
        server: &crate::ids::ServerName,
    ) -> Vec<(PairKey, Option<Arc<dyn Session>>)> {
        let mut slots = self.slots();
        let pairs: Vec<PairKey> = slots
            .keys()
            .filter(|pair| &pair.server == server)
            .cloned()
            .collect();
        pairs
            .into_iter()
            .filter_map(|pair| {
                let slot = slots.remove(&pair)?;
                Some((pair, slot.session))
            })
            .collect()
    }

    /// Takes the pair's slot out, returning its session (for closing).
    pub fn remove(&self, pair: &PairKey) -> Option<Arc<dyn Session>> {
        self.slots().remove(pair).and_then(|slot| slot.session)
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
