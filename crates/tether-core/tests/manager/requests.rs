//! Requests other than `tools/call` (resources, prompts, completion, logging) under the same
//! rules: connected on demand, a server's refusal passed on (redacted), a lost session
//! re-initialized once, a broken transport answered at once with an error naming the server.

use serde_json::json;
use tether_core::{CallContext, ConnectError, CoreConfig, RequestError, TransportFailure};

use crate::support::*;

fn ask(
    h: &Harness,
    who: &str,
) -> impl std::future::Future<Output = Result<serde_json::Value, RequestError>> {
    let manager = h.manager.clone();
    let who = user(who);
    async move {
        manager
            .request(
                &who,
                &server("s"),
                "resources/read",
                Some(json!({"uri": "a://b"})),
                &CallContext::default(),
            )
            .await
            .expect("known server")
    }
}

#[tokio::test(start_paused = true)]
async fn a_request_connects_on_demand_and_gets_the_servers_answer() {
    let h = harness(
        CoreConfig::default(),
        vec![http_server("s", "https://up.example/mcp")],
    );
    h.tokens.valid_for_everyone();
    let answer = ask(&h, "u").await.expect("answered");
    assert_eq!(
        answer,
        json!({"method": "resources/read", "params": {"uri": "a://b"}})
    );
    assert_eq!(h.connector.calls().len(), 1, "one connect on demand");
}

#[tokio::test(start_paused = true)]
async fn a_refusal_is_passed_on_with_its_code_and_without_credentials() {
    let h = harness(
        CoreConfig::default(),
        vec![http_server("s", "https://up.example/mcp")],
    );
    h.tokens.valid_for_everyone();
    ask(&h, "u").await.expect("connected");
    h.connector.fail_calls(
        "u",
        "s",
        vec![ConnectError::Refused {
            code: -32002,
            message: "no resource for Bearer abc.def.ghi".to_owned(),
        }],
    );
    let Err(RequestError::Refused { code, message }) = ask(&h, "u").await else {
        panic!("the server's refusal");
    };
    assert_eq!(code, -32002);
    assert!(!message.contains("abc.def.ghi"), "{message}");
    assert!(message.contains("no resource"), "{message}");
    // The session is fine: the next request is answered.
    assert!(ask(&h, "u").await.is_ok());
    assert_eq!(h.connector.calls().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_lost_session_is_reinitialized_once_and_a_broken_one_answers_at_once() {
    let h = harness(
        CoreConfig::default(),
        vec![http_server("s", "https://up.example/mcp")],
    );
    h.tokens.valid_for_everyone();
    ask(&h, "u").await.expect("connected");
    h.connector
        .fail_calls("u", "s", vec![ConnectError::SessionLost]);
    assert!(ask(&h, "u").await.is_ok(), "answered on a new session");
    assert_eq!(h.connector.calls().len(), 2, "one new initialize");

    h.connector.fail_calls(
        "u",
        "s",
        vec![ConnectError::transport(TransportFailure::Network, "reset")],
    );
    h.connector.set_default("s", Err(refused()));
    let Err(RequestError::Unavailable { message }) = ask(&h, "u").await else {
        panic!("unavailable");
    };
    assert!(message.contains("\"s\" server"), "{message}");
    assert!(message.contains("Retry"), "{message}");
    h.manager.shutdown().await;
}
