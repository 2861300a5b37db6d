//! Step-up authorization (MCP 2025-11-25 "Scope challenge handling"): the server starts asking
//! for a scope the user's token lacks and answers 403 `insufficient_scope`. The user sees a
//! needs-authorization state naming the wider scope, the next authorization asks for the scopes
//! held plus the new one, and calls work again. A scope the authorization server never grants
//! ends, after a bounded number of re-authorizations, in a clear refusal instead of a loop.
//! Real peers: the gateway process, oidc-provider, the OAuth-protected rmcp server.
//!
//! Needs `npm ci` in crates/tether-oauth/tests/peers.

mod support;

use std::time::Duration;

use support::gateway_process::{
    add_args, authorize_through_gateway, call, follow_authorization, gateway_with_alpha,
    result_text,
};
use support::{jwt, mcp_client};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn insufficient_scope_asks_the_user_for_the_wider_scope_then_calls_work_again() {
    let (_dir, peers, gateway) = gateway_with_alpha("step-up").await;
    let alice = jwt("alice");
    let first = authorize_through_gateway(&gateway, &alice, "alpha").await;
    assert_eq!(first.status, 200, "{}", first.page);
    let client = mcp_client(&gateway.base, &alice).await;
    assert_eq!(
        result_text(&call(&client, "alpha__add", add_args(1, 2)).await),
        "3"
    );

    // The server now wants mcp:admin, which the token lacks.
    peers.server.require_scope("mcp:admin");
    let stub = call(&client, "alpha__add", add_args(2, 3)).await;
    let text = result_text(&stub);
    assert_eq!(stub["isError"], true, "{stub}");
    assert!(
        text.contains("wider access") && text.contains("\"mcp:admin\""),
        "{text}"
    );
    let row = gateway.row(&alice, "alpha").await;
    assert_eq!(row["state"], "needs_authorization", "{row}");
    assert_eq!(row["scope"], "mcp:admin", "{row}");
    let link = text
        .split_whitespace()
        .find(|word| word.starts_with(&gateway.url("/oauth/begin/")))
        .unwrap_or_else(|| panic!("no authorization link in the stub: {text}"))
        .to_owned();

    // Following it authorizes the union of the scopes; the call works again.
    let second = follow_authorization(&gateway, &link, &alice).await;
    assert_eq!(second.status, 200, "{}", second.page);
    let scopes = peers.server.token_scopes();
    let mut result = Default::default();
    for _ in 0..50 {
        result = call(&client, "alpha__add", add_args(40, 2)).await;
        if result_text(&result) == "42" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(result_text(&result), "42", "{result}");
    let granted = peers
        .server
        .token_scopes()
        .into_iter()
        .skip(scopes.len())
        .last()
        .unwrap_or_default();
    let granted: Vec<&str> = granted.split_whitespace().collect();
    assert!(
        granted.contains(&"mcp:admin") && granted.contains(&"mcp:tools"),
        "the new token holds the old and the new scope: {granted:?}"
    );

    // A scope the authorization server never grants: two re-authorizations, then a refusal.
    peers.server.require_scope("mcp:never");
    let mut refusal = None;
    for attempt in 0..4 {
        let stub = call(&client, "alpha__add", add_args(1, 1)).await;
        assert_eq!(stub["isError"], true, "attempt {attempt}: {stub}");
        let (status, body) = gateway.post(&alice, "/v1/me/servers/alpha/authorize").await;
        if status != 200 {
            refusal = Some((attempt, status, body));
            break;
        }
        let link = body["authorization_url"].as_str().unwrap_or_default();
        let again = follow_authorization(&gateway, link, &alice).await;
        assert_eq!(again.status, 200, "{}", again.page);
    }
    let (attempt, status, body) = refusal.expect("the step-up bound refuses a third attempt");
    assert_eq!(attempt, 2, "two re-authorizations were allowed: {body}");
    assert_eq!(status, 502, "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("insufficient_scope")),
        "{body}"
    );
    let _ = client.cancel().await;
}
