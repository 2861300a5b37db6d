//! The server's requests to its client (elicitation, sampling, roots) that the agent is
//! answering right now, so that the server can withdraw one (`notifications/cancelled` naming
//! its id) wherever that notification arrives: on the request's own event stream or on the
//! session's stream (where rmcp's server sends it). Withdrawing drops the question to the agent,
//! which tells the agent.

use std::sync::{Mutex, PoisonError};

use rmcp::model::RequestId;
use serde_json::value::RawValue;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Default)]
pub(crate) struct OpenQuestions {
    open: Mutex<Vec<(RequestId, CancellationToken)>>,
}

/// One open question; dropping it (answered, or the call ended) closes it.
pub(super) struct Asked<'q> {
    questions: &'q OpenQuestions,
    id: RequestId,
    pub(super) withdrawn: CancellationToken,
}

impl Drop for Asked<'_> {
    fn drop(&mut self) {
        self.questions
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|(id, _)| *id != self.id);
    }
}

impl OpenQuestions {
    pub(super) fn ask(&self, id: RequestId) -> Asked<'_> {
        let withdrawn = CancellationToken::new();
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((id.clone(), withdrawn.clone()));
        Asked {
            questions: self,
            id,
            withdrawn,
        }
    }

    /// The server withdrew request `id` (the params of its `notifications/cancelled`).
    pub(super) fn withdraw(&self, params: Option<&RawValue>) {
        let Some(id) = withdrawn_request(params) else {
            return;
        };
        for (asked, token) in self
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            if *asked == id {
                token.cancel();
            }
        }
    }
}

/// The request a `notifications/cancelled` withdraws.
fn withdrawn_request(params: Option<&RawValue>) -> Option<RequestId> {
    let params: rmcp::model::CancelledNotificationParam =
        serde_json::from_str(params?.get()).ok()?;
    params.request_id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_withdrawal_reaches_the_open_question_of_that_id_only() {
        let questions = OpenQuestions::default();
        let first = questions.ask(RequestId::Number(1));
        let second = questions.ask(RequestId::Number(2));
        let raw = RawValue::from_string(r#"{"requestId":2,"reason":"x"}"#.to_owned()).expect("raw");
        questions.withdraw(Some(&raw));
        assert!(!first.withdrawn.is_cancelled());
        assert!(second.withdrawn.is_cancelled());
        drop(first);
        drop(second);
        assert!(questions.open.lock().expect("lock").is_empty());
    }
}
