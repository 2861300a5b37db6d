//! Questions an upstream of the session revisions asks during a call (`elicitation/create`,
//! `sampling/createMessage`, `roots/list` sent back to its client), put to an agent of
//! 2026-07-28, which takes no requests: the call is parked and the agent gets an
//! input-required result carrying the question (SEP-2322); its retry brings the answer, which
//! goes to the upstream as the reply to its request, and the call goes on.
//!
//! A parked call lives in the replica that parked it, like the upstream session it runs on: a
//! retry that reaches another replica is told to call again. At most [`PER_USER`] calls of a
//! user wait at once, each at most [`PATIENCE`]; past that the call is cancelled upstream.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmcp::ErrorData as McpError;
use rmcp::RoleServer;
use rmcp::model::InputRequiredResult;
use rmcp::service::RequestContext;
use serde_json::{Value, json};
use tether_core::{PeerError, ToolResult, UserId};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::relay::{self, ToAgent};
use crate::gateway::mcp::call::UnknownTool;

/// How long a question waits for the agent's retry (a person may be answering it).
const PATIENCE: Duration = Duration::from_secs(10 * 60);
const PER_USER: usize = 16;
/// Marks Tether's own `requestState` (an upstream's passes through untouched).
const STATE_PREFIX: &str = "tether-question:";
/// The key of the one question in `inputRequests` / `inputResponses`.
const QUESTION: &str = "upstream";

pub(super) type CallTask = JoinHandle<Result<ToolResult, UnknownTool>>;

struct Parked {
    user: UserId,
    task: CallTask,
    messages: mpsc::Receiver<ToAgent>,
    reply: oneshot::Sender<Result<Value, PeerError>>,
    at: Instant,
}

impl Parked {
    /// Not resumed in time: the upstream call is cancelled.
    fn give_up(self) {
        self.task.abort();
    }
}

/// The calls waiting for their agents' answers, in this replica.
#[derive(Default)]
pub(crate) struct ParkedCalls {
    calls: Arc<Mutex<HashMap<String, Parked>>>,
}

impl fmt::Debug for ParkedCalls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let waiting = self.calls.lock().map(|c| c.len()).unwrap_or_default();
        f.debug_struct("ParkedCalls")
            .field("waiting", &waiting)
            .finish()
    }
}

/// How far a call got.
pub(super) enum Step {
    Done(Result<ToolResult, UnknownTool>),
    Asks(InputRequiredResult),
}

/// Whether `state` is one of Tether's own (not an upstream's).
pub(super) fn is_ours(state: &str) -> bool {
    state.starts_with(STATE_PREFIX)
}

fn ended(joined: Result<Result<ToolResult, UnknownTool>, tokio::task::JoinError>) -> Step {
    Step::Done(joined.unwrap_or_else(|_| {
        Ok(ToolResult::error_text(
            "The call ended abnormally in the gateway. Retry it.",
        ))
    }))
}

impl ParkedCalls {
    /// Runs the call until it ends or its upstream asks something the agent can answer.
    pub(super) async fn drive(
        &self,
        user: &UserId,
        mut task: CallTask,
        mut messages: mpsc::Receiver<ToAgent>,
        context: &RequestContext<RoleServer>,
    ) -> Step {
        loop {
            tokio::select! {
                biased;
                message = messages.recv() => match message {
                    Some(ToAgent::Notify { method, params }) => {
                        relay::notify(&method, params, context).await;
                    }
                    Some(ToAgent::Ask { method, params, reply }) => {
                        if let Some(refusal) = relay::undeclared(&method, params.as_ref(), context) {
                            let _ = reply.send(Err(refusal));
                            continue;
                        }
                        let question = json!({ "method": method, "params": params });
                        let Ok(question) = serde_json::from_value(question) else {
                            let _ = reply.send(Err(PeerError {
                                code: -32602,
                                message: format!("the {method} request could not be read"),
                            }));
                            continue;
                        };
                        let id = self.park(Parked {
                            user: user.clone(),
                            task,
                            messages,
                            reply,
                            at: Instant::now(),
                        });
                        return Step::Asks(InputRequiredResult::new(
                            Some([(QUESTION.to_owned(), question)].into()),
                            Some(format!("{STATE_PREFIX}{id}")),
                        ));
                    }
                    // The call dropped its way back to the agent: it has ended.
                    None => return ended(task.await),
                },
                joined = &mut task => return ended(joined),
            }
        }
    }

    /// The agent's retry with the answer to a parked call's question: the call goes on.
    pub(super) async fn resume(
        &self,
        user: &UserId,
        state: &str,
        responses: Option<Value>,
        context: &RequestContext<RoleServer>,
    ) -> Result<Step, McpError> {
        let id = state.strip_prefix(STATE_PREFIX).unwrap_or_default();
        let parked = {
            let mut calls = self
                .calls
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match calls.get(id) {
                Some(parked) if parked.user == *user => calls.remove(id),
                _ => None,
            }
        };
        let Some(parked) = parked else {
            return Err(McpError::invalid_params(
                "the question this answers has expired or was asked by another gateway \
                 replica; call the tool again",
                None,
            ));
        };
        let answer = responses
            .and_then(|mut r| r.get_mut(QUESTION).map(Value::take))
            .ok_or_else(|| PeerError {
                code: -32602,
                message: "the agent's retry carried no answer".to_owned(),
            });
        let Parked {
            task,
            messages,
            reply,
            ..
        } = parked;
        let _ = reply.send(answer);
        Ok(self.drive(user, task, messages, context).await)
    }

    fn park(&self, parked: Parked) -> String {
        let id = format!("{:032x}", rand::random::<u128>());
        let mut calls = self
            .calls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let expired: Vec<String> = calls
            .iter()
            .filter(|(_, p)| p.at.elapsed() >= PATIENCE)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            if let Some(p) = calls.remove(&id) {
                p.give_up();
            }
        }
        let mine: Vec<(String, Instant)> = calls
            .iter()
            .filter(|(_, p)| p.user == parked.user)
            .map(|(id, p)| (id.clone(), p.at))
            .collect();
        if mine.len() >= PER_USER
            && let Some((oldest, _)) = mine.iter().min_by_key(|(_, at)| *at)
            && let Some(p) = calls.remove(oldest)
        {
            p.give_up();
        }
        calls.insert(id.clone(), parked);
        // Not answered in time: the call is cancelled even if no other call is parked later.
        let waiting = Arc::downgrade(&self.calls);
        let expiring = id.clone();
        tokio::spawn(async move {
            tokio::time::sleep(PATIENCE).await;
            let Some(calls) = waiting.upgrade() else {
                return;
            };
            let expired = calls
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(&expiring);
            if let Some(parked) = expired {
                parked.give_up();
            }
        });
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiting_call(user: &str) -> (Parked, tokio::sync::oneshot::Receiver<()>) {
        let (dropped, watch) = tokio::sync::oneshot::channel::<()>();
        // The "call" waits forever; its end (abort) drops `dropped`, which `watch` sees.
        let task = tokio::spawn(async move {
            let _held = dropped;
            std::future::pending::<()>().await;
            Ok(ToolResult::error_text("never"))
        });
        let (_sender, messages) = mpsc::channel(1);
        let (reply, _answer) = oneshot::channel();
        let parked = Parked {
            user: UserId::new(user),
            task,
            messages,
            reply,
            at: Instant::now(),
        };
        (parked, watch)
    }

    #[tokio::test(start_paused = true)]
    async fn an_unanswered_question_is_given_up_after_its_patience() {
        let calls = ParkedCalls::default();
        let (parked, watch) = waiting_call("alice");
        let id = calls.park(parked);
        assert!(calls.calls.lock().expect("lock").contains_key(&id));
        tokio::time::sleep(PATIENCE + Duration::from_secs(1)).await;
        assert!(calls.calls.lock().expect("lock").is_empty(), "expired");
        assert!(watch.await.is_err(), "the upstream call was cancelled");
    }

    #[tokio::test]
    async fn a_user_waits_on_at_most_a_bounded_number_of_questions() {
        let calls = ParkedCalls::default();
        let mut watches = Vec::new();
        for _ in 0..PER_USER + 2 {
            let (parked, watch) = waiting_call("alice");
            calls.park(parked);
            watches.push(watch);
        }
        let (bob, _bob_watch) = waiting_call("bob");
        calls.park(bob);
        assert_eq!(calls.calls.lock().expect("lock").len(), PER_USER + 1);
        // Two of alice's (the oldest) were given up: their calls ended; the others still wait.
        let mut ended = 0;
        for watch in watches {
            if let Ok(Err(_)) = tokio::time::timeout(Duration::from_millis(200), watch).await {
                ended += 1;
            }
        }
        assert_eq!(ended, 2);
    }
}
