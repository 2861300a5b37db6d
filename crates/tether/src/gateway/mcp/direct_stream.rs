//! A direct-path call whose upstream talks back while it runs: the answer starts as plain JSON
//! and becomes an event stream only when the upstream sends a notification for the call
//! (progress, a log message) before its result. The spec lets a server answer a POSTed request
//! either way, so the common call (no notification) keeps the one-body JSON answer.
//!
//! Only calls that carry a progress token are watched: without one the upstream has nothing
//! to address progress to, and the call takes [`direct::answer`](super::direct::answer)'s
//! shorter road. The agent here is a plain one (it declared neither sampling, elicitation nor
//! roots), so the upstream's own requests are refused, as rmcp's path refuses them.

use std::sync::Arc;

use async_trait::async_trait;
use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use futures::future::BoxFuture;
use rmcp::model::RequestId;
use serde_json::{Map, Value, json};
use tether_core::{CallContext, Downstream, METHOD_NOT_FOUND, PeerError, ToolResult};
use tokio::sync::mpsc;

use super::call::{UnknownTool, call_tool};
use super::caller::Caller;
use super::direct::{self, AgentWire};
use super::direct_calls::Running;
use crate::gateway::state::AppState;

const EVENT_STREAM: &str = "text/event-stream";

/// Notifications held for an agent that reads its stream slower than the upstream sends; the
/// upstream's session waits beyond that.
const NOTIFICATIONS_IN_FLIGHT: usize = 64;

/// The way back to a plain agent during one call: notifications into the call's channel.
#[derive(Debug)]
struct Notifications(mpsc::Sender<Value>);

#[async_trait]
impl Downstream for Notifications {
    async fn notify(&self, method: &str, params: Option<Value>) {
        let mut message = json!({"jsonrpc": "2.0", "method": method});
        if let Some(params) = params {
            message["params"] = params;
        }
        // A closed channel means the answer was already sent or the agent left.
        let _ = self.0.send(message).await;
    }

    async fn request(&self, method: &str, _params: Option<Value>) -> Result<Value, PeerError> {
        Err(PeerError {
            code: METHOD_NOT_FOUND,
            message: format!("the agent did not declare the capability for {method}"),
        })
    }
}

type RunningCall = BoxFuture<'static, Result<ToolResult, UnknownTool>>;

/// Makes a call whose `context` carries a progress token and answers it as JSON, or as an
/// event stream from the first notification the upstream sends for it on.
#[expect(
    clippy::too_many_arguments,
    reason = "one call's parts, taken apart once by the caller"
)]
pub(crate) async fn answer(
    app: AppState,
    user: Caller,
    id: RequestId,
    name: String,
    arguments: Option<Map<String, Value>>,
    mut context: CallContext,
    running: Running,
    wire: AgentWire,
) -> Response {
    let (sender, mut notifications) = mpsc::channel(NOTIFICATIONS_IN_FLIGHT);
    // A sender held here as well, dropped only after the receiver: were the call's own to be
    // the last, its drop as the call ends would wake this task while it runs, and the runtime
    // hands such a wake-up to a parked worker (a futex wake, for nothing).
    let held: Arc<dyn Downstream> = Arc::new(Notifications(sender));
    context.downstream = Some(held.clone());
    let mut call: RunningCall =
        Box::pin(async move { call_tool(&app, &user, &name, arguments, &context).await });
    let first = tokio::select! {
        biased;
        // `held` keeps the channel open: it never ends while the call runs.
        Some(first) = notifications.recv() => first,
        outcome = &mut call => match notifications.try_recv() {
            // Notifications sent before the result still go first, on a stream.
            Ok(first) => return stream(first, Streaming {
                notifications, call: Call::Ended(outcome), running, id, wire,
            }),
            Err(_) => {
                drop(notifications);
                drop(held);
                return direct::encode(&id, outcome, wire);
            }
        },
        () = running.cancelled.cancelled() => return direct::cancelled(&id),
    };
    stream(
        first,
        Streaming {
            notifications,
            call: Call::Running(call),
            running,
            id,
            wire,
        },
    )
}

enum Call {
    Running(RunningCall),
    Ended(Result<ToolResult, UnknownTool>),
}

/// What the event stream still has to send.
struct Streaming {
    notifications: mpsc::Receiver<Value>,
    call: Call,
    running: Running,
    id: RequestId,
    wire: AgentWire,
}

enum Next {
    Notification(Value),
    Ended(Result<ToolResult, UnknownTool>),
    Cancelled,
}

impl Streaming {
    /// The next message, and what is left after it (`None` once the answer is sent).
    async fn next(mut self) -> (Value, Option<Self>) {
        if let Call::Running(call) = &mut self.call {
            let next = tokio::select! {
                biased;
                Some(next) = self.notifications.recv() => Next::Notification(next),
                outcome = call => Next::Ended(outcome),
                () = self.running.cancelled.cancelled() => Next::Cancelled,
            };
            match next {
                Next::Notification(next) => return (next, Some(self)),
                Next::Ended(outcome) => self.call = Call::Ended(outcome),
                Next::Cancelled => return (direct::cancelled_message(&self.id), None),
            }
        }
        // The call has ended: what the upstream sent before its result goes first.
        if let Ok(next) = self.notifications.try_recv() {
            return (next, Some(self));
        }
        match self.call {
            Call::Ended(outcome) => (direct::message(&self.id, outcome, self.wire), None),
            Call::Running(_) => (direct::cancelled_message(&self.id), None),
        }
    }
}

/// The event stream: `first`, the notifications that follow, then the answer. Dropping it (the
/// agent closed the request) drops the call, and with it the upstream request.
fn stream(first: Value, streaming: Streaming) -> Response {
    let rest =
        futures::stream::unfold(
            Some(streaming),
            |state| async move { Some(state?.next().await) },
        );
    let events = futures::stream::once(async move { first })
        .chain(rest)
        .map(|message| Ok::<_, std::convert::Infallible>(event(&message)));
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(EVENT_STREAM)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        Body::from_stream(events),
    )
        .into_response()
}

fn event(message: &Value) -> Bytes {
    Bytes::from(format!("event: message\ndata: {message}\n\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_is_one_data_line() {
        let event = event(&json!({"jsonrpc": "2.0", "method": "m", "params": {"t": "a\nb"}}));
        let text = String::from_utf8_lossy(&event);
        assert!(text.starts_with("event: message\ndata: {"), "{text}");
        assert!(text.ends_with("}\n\n"), "{text}");
        assert_eq!(
            text.matches('\n').count(),
            3,
            "newlines in JSON are escaped: {text}"
        );
    }

    #[tokio::test]
    async fn the_upstreams_requests_are_refused_naming_the_capability() {
        let (sender, _receiver) = mpsc::channel(1);
        let refusal = Notifications(sender)
            .request("sampling/createMessage", None)
            .await
            .expect_err("refused");
        assert_eq!(refusal.code, METHOD_NOT_FOUND);
        assert!(refusal.message.contains("sampling/createMessage"));
    }
}
