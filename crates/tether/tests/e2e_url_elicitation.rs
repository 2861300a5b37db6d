//! A server that needs the user's authorization, told to an agent the way MCP says it: the
//! agent declared URL-mode elicitation, so its call is answered with the `-32042` "URL
//! elicitation required" error carrying Tether's own `/oauth/begin` link; once the user has
//! authorized through that link, `notifications/elicitation/complete` arrives and the retried
//! call works. An agent without the capability keeps the stub text with the same kind of link.
//! Real peers: the gateway process, oidc-provider, the OAuth-protected rmcp server.
//!
//! Needs `npm ci` in crates/tether-oauth/tests/peers.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, ClientCapabilities, ClientConfig, CustomNotification, Implementation,
};
use rmcp::service::NotificationContext;
use rmcp::{ClientHandler, RoleClient};
use serde_json::{Value, json};

use support::gateway_process::{
    add_args, call, follow_authorization, gateway_with_alpha, result_text,
};
use support::{jwt, mcp_client};

/// An agent that can send its user to a URL, and keeps the completions it is told of.
#[derive(Clone, Default)]
struct UrlAgent {
    completed: Arc<Mutex<Vec<Value>>>,
}

impl ClientHandler for UrlAgent {
    fn get_info(&self) -> ClientConfig {
        let capabilities: ClientCapabilities =
            serde_json::from_value(json!({"elicitation": {"url": {}}})).expect("capabilities");
        ClientConfig::new(capabilities, Implementation::new("url-agent", "1"))
    }

    async fn on_custom_notification(
        &self,
        notification: CustomNotification,
        _context: NotificationContext<RoleClient>,
    ) {
        if notification.method == "notifications/elicitation/complete"
            && let Ok(mut completed) = self.completed.lock()
        {
            completed.push(notification.params.unwrap_or_default());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_agent_with_url_elicitation_is_sent_to_tethers_link_and_told_when_it_is_done() {
    let (_dir, _peers, gateway) = gateway_with_alpha("url-elicitation").await;
    let alice = jwt("alice");

    // An agent without the capability gets the stub, with Tether's link in its text.
    let plain = mcp_client(&gateway.base, &jwt("bob")).await;
    let stub = call(&plain, "alpha__add", add_args(1, 2)).await;
    assert_eq!(stub["isError"], true, "{stub}");
    assert!(
        result_text(&stub).contains(&gateway.url("/oauth/begin/")),
        "{stub}"
    );
    let _ = plain.cancel().await;

    // The agent that can open a URL gets the specification's error instead.
    let agent = UrlAgent::default();
    let client = support::mcp_agent(&gateway.base, &alice, agent.clone()).await;
    let mut params = CallToolRequestParams::new("alpha__add".to_owned());
    params.arguments = add_args(40, 2).as_object().cloned();
    let error = tokio::time::timeout(
        Duration::from_secs(30),
        client.peer().call_tool(params.clone()),
    )
    .await
    .expect("answered")
    .expect_err("a URL elicitation is required");
    let rmcp::ServiceError::McpError(error) = error else {
        panic!("a JSON-RPC error, not {error:?}");
    };
    assert_eq!(error.code.0, -32042, "{error:?}");
    let data = error.data.clone().unwrap_or_default();
    let elicitation = &data["elicitations"][0];
    assert_eq!(elicitation["mode"], "url", "{data}");
    let link = elicitation["url"].as_str().expect("a link").to_owned();
    assert!(
        link.starts_with(&gateway.url("/oauth/begin/")),
        "Tether's own link, never the authorization server's: {link}"
    );
    let id = elicitation["elicitationId"]
        .as_str()
        .expect("an id")
        .to_owned();

    // The user opens the link and approves; the host page confirms.
    let authorized = follow_authorization(&gateway, &link, &alice).await;
    assert_eq!(authorized.status, 200, "{}", authorized.page);
    let mut completed = Vec::new();
    for _ in 0..100 {
        completed = agent.completed.lock().expect("completions").clone();
        if !completed.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        completed,
        [json!({"elicitationId": id})],
        "{}",
        gateway.logs()
    );

    // The retried call works.
    let result = tokio::time::timeout(Duration::from_secs(30), client.peer().call_tool(params))
        .await
        .expect("answered")
        .expect("a result");
    let result = serde_json::to_value(result).expect("serializes");
    assert_eq!(result_text(&result), "42", "{result}");
    let _ = client.cancel().await;
    gateway.kill().await;
}
