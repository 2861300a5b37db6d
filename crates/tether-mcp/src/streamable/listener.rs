//! The session's own event stream (`GET`), where a server sends what belongs to no request:
//! list changes and updates of subscribed resources among them. It is read only while the user has an agent session open to hear
//! of them (the core switches it with [`Session::listen`](tether_core::Session::listen)), so an
//! idle upstream session stays a few hundred bytes with no task and no connection.
//!
//! A server without such a stream (405, or no event stream) is left alone; a stream that ends
//! or breaks is opened again after a growing pause, a bounded number of times in a row.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;
use tether_core::{ListKind, ServerName, SessionEvents};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::endpoint::Endpoint;
use super::questions::OpenQuestions;

/// Failed or empty openings in a row before the listener gives up until the next switch-on.
const MAX_FAILURES: u32 = 6;

/// Starts reading; cancel the token to stop.
pub(super) fn spawn(
    server: ServerName,
    endpoint: Endpoint,
    events: Arc<dyn SessionEvents>,
    questions: Arc<OpenQuestions>,
) -> CancellationToken {
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    tokio::spawn(async move {
        tokio::select! {
            () = run(&server, &endpoint, events.as_ref(), &questions) => {}
            () = stop.cancelled() => {}
        }
    });
    cancel
}

async fn run(
    server: &ServerName,
    endpoint: &Endpoint,
    events: &dyn SessionEvents,
    questions: &OpenQuestions,
) {
    let mut failures = 0u32;
    while failures < MAX_FAILURES {
        match endpoint.listen_stream().await {
            Ok(mut stream) => {
                let mut heard = false;
                while let Some(Ok(event)) = stream.next().await {
                    heard = true;
                    if let Some(params) = event.data.as_deref().and_then(withdrawal) {
                        questions.withdraw(params.as_deref());
                        continue;
                    }
                    match event.data.as_deref().and_then(server_change) {
                        Some(Heard::List(list)) => events.list_changed(list),
                        Some(Heard::Resource(uri)) => events.resource_updated(&uri),
                        Some(Heard::Message(params)) => events.message(params),
                        None => {}
                    }
                }
                failures = if heard { 0 } else { failures + 1 };
            }
            Err(error) => {
                let error = crate::error::from_http(&error);
                debug!(%server, %error, "no event stream of the session");
                if matches!(error, tether_core::ConnectError::Protocol(_)) {
                    // 405 and kin: the server offers no such stream.
                    return;
                }
                failures += 1;
            }
        }
        tokio::time::sleep(Duration::from_secs(1 << failures.min(6))).await;
    }
}

/// The params of a `notifications/cancelled` (the server withdrawing one of its requests).
fn withdrawal(data: &str) -> Option<Option<Box<serde_json::value::RawValue>>> {
    if !data.contains("notifications/cancelled") {
        return None;
    }
    #[derive(serde::Deserialize)]
    struct Notification {
        method: String,
        params: Option<Box<serde_json::value::RawValue>>,
    }
    let message: Notification = serde_json::from_str(data).ok()?;
    (message.method == "notifications/cancelled").then_some(message.params)
}

/// What a message on the session's stream says changed.
#[derive(Debug, PartialEq, Eq)]
enum Heard {
    List(ListKind),
    Resource(String),
    /// A log message outside any request.
    Message(Value),
}

fn server_change(data: &str) -> Option<Heard> {
    if !data.contains("list_changed")
        && !data.contains("resources/updated")
        && !data.contains("notifications/message")
    {
        return None;
    }
    let message: Value = serde_json::from_str(data).ok()?;
    Some(match message.get("method")?.as_str()? {
        "notifications/tools/list_changed" => Heard::List(ListKind::Tools),
        "notifications/prompts/list_changed" => Heard::List(ListKind::Prompts),
        "notifications/resources/list_changed" => Heard::List(ListKind::Resources),
        "notifications/resources/updated" => {
            Heard::Resource(message.get("params")?.get("uri")?.as_str()?.to_owned())
        }
        "notifications/message" => Heard::Message(message.get("params")?.clone()),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_changes_are_heard() {
        assert_eq!(
            server_change(r#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}"#),
            Some(Heard::List(ListKind::Tools))
        );
        assert_eq!(
            server_change(
                r#"{"jsonrpc":"2.0","method":"notifications/prompts/list_changed","params":{}}"#
            ),
            Some(Heard::List(ListKind::Prompts))
        );
        assert_eq!(
            server_change(
                r#"{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"a://b"}}"#
            ),
            Some(Heard::Resource("a://b".to_owned()))
        );
        assert_eq!(
            server_change(r#"{"jsonrpc":"2.0","method":"ping","id":1}"#),
            None
        );
        assert_eq!(server_change("list_changed but not json"), None);
        assert_eq!(
            server_change(
                r#"{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"x"}}"#
            ),
            Some(Heard::Message(
                serde_json::json!({"level": "info", "data": "x"})
            ))
        );
        assert_eq!(
            server_change(r#"{"jsonrpc":"2.0","method":"notifications/resources/updated"}"#),
            None
        );
    }
}
