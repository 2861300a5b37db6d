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
use std::sync::Mutex;
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
    calls: Mutex<HashMap<String, Parked>>,
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
        id
    }
}
