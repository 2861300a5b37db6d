//! An authorization lands only on the user who started it (issue: a user could attach another
//! person's account to their own agent). The gateway as a process, with oidc-provider and a
//! protected rmcp server: Bob starts a flow and gets Alice to finish it, in her browser or with
//! the authorization server's URL in another browser; nothing is stored for Bob, the code is
//! never exchanged, and Alice's own authorization is unaffected. The normal flow (begin, callback,
//! the host's confirmation) runs in every OAuth e2e test through the support helpers.
//!
//! Needs `npm ci` in crates/tether-oauth/tests/peers.

mod support;

use serde_json::{Value, json};

use support::gateway_process::{
    GatewayProcess, OAuthPeers, add_args, authorize_through_gateway, browser_authorizes,
    browser_get, call, completion_code, gateway_with_alpha, result_text,
};
use support::{jwt, mcp_client};

async fn code_exchanges(peers: &OAuthPeers) -> Value {
    let stats = peers.peer.stats().await.expect("peer stats");
    stats["grants"]["authorization_code"].clone()
}

async fn start_link(gateway: &GatewayProcess, token: &str) -> String {
    let (status, body) = gateway.post(token, "/v1/me/servers/alpha/authorize").await;
    assert_eq!(status, 200, "{body}");
    let link = body["authorization_url"]
        .as_str()
        .unwrap_or_else(|| panic!("no authorization_url in {body}"))
        .to_owned();
    assert!(
        link.starts_with(&gateway.url("/oauth/begin/")),
        "links point at Tether's /oauth/begin, never at the authorization server: {link}"
    );
    link
}

/// Bob has nothing, and Alice's own authorization still works.
async fn assert_nothing_for_bob_and_alice_unaffected(
    gateway: &GatewayProcess,
    alice: &str,
    bob: &str,
) {
    let row = gateway.row(bob, "alpha").await;
    assert_ne!(row["state"], "connected", "nothing stored for Bob: {row}");
    assert_eq!(row["tools"], 0, "{row}");
    let (status, body) = gateway.post(bob, "/v1/me/servers/alpha/reconnect").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["connected"], false, "Bob has no tokens: {body}");
    let client = mcp_client(&gateway.base, alice).await;
    let result = call(&client, "alpha__add", add_args(40, 2)).await;
    assert_eq!(result_text(&result), "42", "Alice is unaffected: {result}");
    let _ = client.cancel().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_link_started_by_one_user_and_finished_by_another_stores_nothing() {
    let (_dir, peers, gateway) = gateway_with_alpha("binding-user").await;
    let (alice, bob) = (jwt("alice"), jwt("bob"));

    // Alice's own authorization, the normal way: begin, callback, her host page's confirmation.
    let mine = authorize_through_gateway(&gateway, &alice, "alpha").await;
    assert_eq!(mine.status, 200, "{}", mine.page);
    let exchanges = code_exchanges(&peers).await;

    // Bob starts a flow and sends the link to Alice; her browser opens it and she approves.
    let link = start_link(&gateway, &bob).await;
    let (_, _, answer, _) =
        browser_authorizes(&gateway, &gateway, &gateway.redirect_uri(), &link).await;
    assert_eq!(
        answer.status, 303,
        "the callback hands over to the host: {answer:?}"
    );
    let code = completion_code(&answer);

    // Alice's host page confirms with her token: refused, and the code is spent.
    let (status, body) = gateway
        .post_json(&alice, "/v1/me/oauth/complete", &json!({ "code": code }))
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"], "forbidden", "{body}");
    let (status, body) = gateway
        .post_json(&bob, "/v1/me/oauth/complete", &json!({ "code": code }))
        .await;
    assert_eq!(
        status, 400,
        "the refused code cannot be confirmed by Bob: {body}"
    );
    assert_eq!(
        code_exchanges(&peers).await,
        exchanges,
        "the authorization code was never exchanged"
    );
    assert_nothing_for_bob_and_alice_unaffected(&gateway, &alice, &bob).await;
    let logs = gateway.logs();
    assert!(
        logs.contains("started by one user was finished by another"),
        "the refusal is logged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flow_is_finished_only_in_the_browser_that_opened_its_link() {
    let (_dir, peers, gateway) = gateway_with_alpha("binding-browser").await;
    let (alice, bob) = (jwt("alice"), jwt("bob"));
    let mine = authorize_through_gateway(&gateway, &alice, "alpha").await;
    assert_eq!(mine.status, 200, "{}", mine.page);
    let exchanges = code_exchanges(&peers).await;

    // Bob opens his link in his browser: bound to it.
    let link = start_link(&gateway, &bob).await;
    let begun = browser_get(&gateway, &link, None).await;
    assert_eq!(begun.status, 303, "{begun:?}");
    let cookie = begun.cookie.clone().expect("a binding cookie");
    let authorization_url = begun
        .location
        .clone()
        .expect("the authorization server's URL");
    // The same browser may open it again; another browser may not.
    let again = browser_get(&gateway, &link, Some(&cookie)).await;
    assert_eq!(again.status, 303, "{again:?}");
    assert_eq!(again.location.as_deref(), Some(authorization_url.as_str()));
    let stranger = browser_get(&gateway, &link, None).await;
    assert_eq!(stranger.status, 403, "{stranger:?}");
    assert!(
        stranger.body.contains("opened in another browser"),
        "{}",
        stranger.body
    );

    // Bob sends the authorization server's URL to Alice, whose browser has no cookie.
    let response = tether_oauth::headless::authorize(&authorization_url, &gateway.redirect_uri())
        .await
        .expect("the authorization server approves without a person");
    let mut callback = url::Url::parse(&gateway.redirect_uri()).expect("a URL");
    callback
        .query_pairs_mut()
        .append_pair("code", response.code.expose())
        .append_pair("state", &response.state);
    if let Some(issuer) = &response.issuer {
        callback.query_pairs_mut().append_pair("iss", issuer);
    }
    let refused = browser_get(&gateway, callback.as_str(), None).await;
    assert_eq!(refused.status, 403, "{refused:?}");
    assert!(
        refused.body.contains("finished in another browser"),
        "{}",
        refused.body
    );
    assert!(
        refused.location.is_none(),
        "no completion code is handed out"
    );

    // The flow is spent: not even Bob's browser can finish it now.
    let late = browser_get(&gateway, callback.as_str(), Some(&cookie)).await;
    assert_eq!(late.status, 400, "{late:?}");
    assert_eq!(code_exchanges(&peers).await, exchanges, "no code exchange");
    assert_nothing_for_bob_and_alice_unaffected(&gateway, &alice, &bob).await;
}
