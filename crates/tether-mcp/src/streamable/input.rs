//! Input-required results (SEP-2322, 2026-07-28): instead of sending a request back, a server
//! answers `tools/call`, `prompts/get` or `resources/read` with the questions it needs
//! answered (`inputRequests`: elicitation, sampling, roots) and an opaque `requestState`; the
//! client asks them and sends the same request again with `inputResponses` and the state.
//!
//! Tether asks the agent waiting on the request, the way it relays an earlier revision's
//! server requests; an agent that cannot answer (none waits, or it did not declare the
//! capability) makes the request fail with the agent's refusal, named.

use serde_json::{Map, Value};
use tether_core::{ConnectError, Downstream, METHOD_NOT_FOUND, PeerError};

/// Rounds of questions one request may take (rmcp's `DEFAULT_MRTR_MAX_ROUNDS`).
pub(super) const MAX_ROUNDS: usize = 10;

/// The methods whose results may ask for input.
pub(super) fn may_ask(method: &str) -> bool {
    matches!(method, "tools/call" | "prompts/get" | "resources/read")
}

/// `None` when `result` is complete; else the params of the retry: `params` with the agent's
/// answers as `inputResponses` and the server's `requestState`, echoed exactly.
pub(super) async fn retry_params(
    result: &Value,
    params: &Value,
    downstream: Option<&dyn Downstream>,
) -> Result<Option<Value>, ConnectError> {
    if result.get("resultType").and_then(Value::as_str) != Some("input_required") {
        return Ok(None);
    }
    let requests = result.get("inputRequests").and_then(Value::as_object);
    let state = result.get("requestState").and_then(Value::as_str);
    if requests.is_none() && state.is_none() {
        return Err(ConnectError::Protocol(
            "the server asked for input without saying what".to_owned(),
        ));
    }
    let mut responses = Map::new();
    for (key, request) in requests.into_iter().flatten() {
        let method = request.get("method").and_then(Value::as_str).unwrap_or("");
        if !matches!(
            method,
            "elicitation/create" | "sampling/createMessage" | "roots/list"
        ) {
            return Err(ConnectError::Protocol(
                "the server asked for input of an unknown kind".to_owned(),
            ));
        }
        let answer = match downstream {
            Some(agent) => agent.request(method, request.get("params").cloned()).await,
            None => Err(PeerError {
                code: METHOD_NOT_FOUND,
                message: format!("no agent waits on this request to answer {method}"),
            }),
        };
        match answer {
            Ok(answer) => {
                responses.insert(key.clone(), answer);
            }
            Err(PeerError { code, message }) => {
                return Err(ConnectError::Refused {
                    code,
                    message: format!("the server asked for {method}: {message}"),
                });
            }
        }
    }
    let mut retry = params.as_object().cloned().unwrap_or_default();
    retry.remove("inputResponses");
    retry.remove("requestState");
    if !responses.is_empty() {
        retry.insert("inputResponses".to_owned(), Value::Object(responses));
    }
    if let Some(state) = state {
        retry.insert("requestState".to_owned(), Value::String(state.to_owned()));
    }
    Ok(Some(Value::Object(retry)))
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;
    use serde_json::json;

    use super::*;

    #[derive(Debug)]
    struct Answers;

    #[async_trait]
    impl Downstream for Answers {
        async fn notify(&self, _method: &str, _params: Option<Value>) {}

        async fn request(&self, method: &str, _params: Option<Value>) -> Result<Value, PeerError> {
            match method {
                "elicitation/create" => Ok(json!({"action": "accept", "content": {"name": "Ada"}})),
                _ => Err(PeerError {
                    code: METHOD_NOT_FOUND,
                    message: "not declared".to_owned(),
                }),
            }
        }
    }

    #[tokio::test]
    async fn a_complete_result_needs_no_retry() {
        let done = json!({"content": [], "resultType": "complete"});
        assert!(
            retry_params(&done, &json!({}), None)
                .await
                .expect("ok")
                .is_none()
        );
        assert!(
            retry_params(&json!({"content": []}), &json!({}), None)
                .await
                .expect("ok")
                .is_none()
        );
    }

    #[tokio::test]
    async fn the_agents_answers_and_the_state_go_into_the_retry() {
        let asked = json!({"resultType": "input_required", "requestState": "s1",
            "inputRequests": {"who": {"method": "elicitation/create", "params": {"message": "name?"}}}});
        let params = json!({"name": "ask", "arguments": {"x": 1}, "requestState": "old"});
        let retry = retry_params(&asked, &params, Some(&Answers))
            .await
            .expect("answered")
            .expect("a retry");
        assert_eq!(
            retry,
            json!({"name": "ask", "arguments": {"x": 1}, "requestState": "s1",
                   "inputResponses": {"who": {"action": "accept", "content": {"name": "Ada"}}}})
        );
        let state_only = json!({"resultType": "input_required", "requestState": "s2"});
        let retry = retry_params(&state_only, &json!({"name": "a"}), None)
            .await
            .expect("no questions")
            .expect("a retry");
        assert_eq!(retry, json!({"name": "a", "requestState": "s2"}));
    }

    #[tokio::test]
    async fn an_agent_that_cannot_answer_fails_the_request_naming_the_question() {
        let asked = json!({"resultType": "input_required",
            "inputRequests": {"q": {"method": "sampling/createMessage", "params": {}}}});
        for agent in [None, Some(&Answers as &dyn Downstream)] {
            match retry_params(&asked, &json!({}), agent).await {
                Err(ConnectError::Refused { message, .. }) => {
                    assert!(message.contains("sampling/createMessage"), "{message}");
                }
                other => panic!("{other:?}"),
            }
        }
        let odd = json!({"resultType": "input_required",
            "inputRequests": {"q": {"method": "tools/call", "params": {}}}});
        assert!(matches!(
            retry_params(&odd, &json!({}), Some(&Answers)).await,
            Err(ConnectError::Protocol(_))
        ));
        let empty = json!({"resultType": "input_required"});
        assert!(matches!(
            retry_params(&empty, &json!({}), None).await,
            Err(ConnectError::Protocol(_))
        ));
    }
}
