//! `resources/list`, `resources/templates/list` and `resources/read` over the user's servers
//! (URIs as [`uris`](super::uris) forms them).

use rmcp::ErrorData as McpError;
use rmcp::model::{
    ListResourceTemplatesResult, ListResourcesResult, ReadResourceRequestParams,
    ReadResourceResponse,
};
use serde_json::{Map, Value};
use tether_core::{CallContext, ServerName};

use super::AggregatedServer;
use super::surface::{Page, is_input_required};
use crate::gateway::mcp::caller::Caller;

impl AggregatedServer {
    pub(super) async fn resources(
        &self,
        user: &Caller,
        cursor: Option<&str>,
    ) -> Result<ListResourcesResult, McpError> {
        let page = self
            .list_page(user, "resources/list", "resources", "resources", cursor)
            .await?;
        from_json(self.rewrite_page(page, "resources", "uri"))
    }

    pub(super) async fn resource_templates(
        &self,
        user: &Caller,
        cursor: Option<&str>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        let page = self
            .list_page(
                user,
                "resources/templates/list",
                "resources",
                "resourceTemplates",
                cursor,
            )
            .await?;
        from_json(self.rewrite_page(page, "resourceTemplates", "uriTemplate"))
    }

    pub(super) async fn read(
        &self,
        user: &Caller,
        request: ReadResourceRequestParams,
        call: &CallContext,
    ) -> Result<ReadResourceResponse, McpError> {
        let result = self.read_json(user, request, call).await?;
        if result.as_object().is_some_and(is_input_required) {
            return Ok(ReadResourceResponse::InputRequired(from_json(result)?));
        }
        Ok(ReadResourceResponse::Complete(from_json(result)?))
    }

    /// The server's answer to `resources/read` as JSON, its contents' URIs as the agent knows
    /// them (what the direct path streams out without building rmcp's types).
    pub(super) async fn read_json(
        &self,
        user: &Caller,
        request: ReadResourceRequestParams,
        call: &CallContext,
    ) -> Result<Value, McpError> {
        let (server, uri) = self
            .route_uri(&request.uri)
            .ok_or_else(|| unknown_resource(&request.uri))?;
        let mut params = to_params(&request)?;
        params.insert("uri".to_owned(), Value::String(uri));
        let mut result = self
            .ask(user, &server, "resources/read", params, call)
            .await?;
        if result.as_object().is_some_and(is_input_required) {
            return Ok(result);
        }
        if let Some(Value::Array(contents)) = result.get_mut("contents") {
            for content in contents {
                self.wrap_member(&server, content, "uri");
            }
        }
        Ok(result)
    }

    /// `resources/subscribe` (`on`) or `resources/unsubscribe`, passed to the server of the URI;
    /// the session then hears of that resource's updates.
    pub(super) async fn subscribe_to(
        &self,
        user: &Caller,
        uri: &str,
        on: bool,
    ) -> Result<(), McpError> {
        let (server, original) = self.route_uri(uri).ok_or_else(|| unknown_resource(uri))?;
        let method = if on {
            "resources/subscribe"
        } else {
            "resources/unsubscribe"
        };
        // Bounded per session: a client cannot grow the set without end.
        if on && self.subscription_count() >= MAX_SUBSCRIPTIONS {
            return Err(McpError::invalid_request(
                "too many resource subscriptions on this session",
                None,
            ));
        }
        let params = Map::from_iter([("uri".to_owned(), Value::String(original))]);
        self.ask(user, &server, method, params, &CallContext::default())
            .await?;
        let mut subscriptions = self
            .subscriptions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if on {
            subscriptions.insert(uri.to_owned());
        } else {
            subscriptions.remove(uri);
        }
        Ok(())
    }

    fn subscription_count(&self) -> usize {
        self.subscriptions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    pub(super) fn subscribed(&self, uri: &str) -> bool {
        self.subscriptions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(uri)
    }

    /// A page of items whose `member` is a URI (or template): wrapped for their server.
    fn rewrite_page(&self, page: Option<Page>, items: &str, member: &str) -> Value {
        let mut object = Map::new();
        let mut list = Vec::new();
        if let Some(page) = page {
            for mut item in page.items {
                self.wrap_member(&page.server, &mut item, member);
                list.push(item);
            }
            if let Some(next) = page.next {
                object.insert("nextCursor".to_owned(), Value::String(next.encode()));
            }
        }
        object.insert(items.to_owned(), Value::Array(list));
        Value::Object(object)
    }

    fn wrap_member(&self, server: &ServerName, item: &mut Value, member: &str) {
        if let Some(Value::String(uri)) = item.get_mut(member) {
            *uri = self.wrap_uri(server, uri);
        }
    }
}

/// Resource subscriptions one agent session may hold.
const MAX_SUBSCRIPTIONS: usize = 1024;

fn unknown_resource(uri: &str) -> McpError {
    let quoted: String = uri.chars().take(256).collect();
    // -32002: the specification's "resource not found".
    McpError::new(
        rmcp::model::ErrorCode(-32002),
        format!("resource not found: {quoted:?}"),
        None,
    )
}

/// A request's params as the JSON object sent upstream.
pub(super) fn to_params<T: serde::Serialize>(request: &T) -> Result<Map<String, Value>, McpError> {
    match serde_json::to_value(request) {
        Ok(Value::Object(params)) => Ok(params),
        _ => Err(McpError::internal_error(
            "the request could not be forwarded",
            None,
        )),
    }
}

/// An upstream result in rmcp's type; one that does not fit is the upstream's fault.
pub(super) fn from_json<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, McpError> {
    serde_json::from_value(value).map_err(|_| {
        McpError::internal_error("the server's answer is not a valid MCP result", None)
    })
}
