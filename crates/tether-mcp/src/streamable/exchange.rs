//! One JSON-RPC request and its answer over Streamable HTTP, inside the caller's future: the
//! `POST`, then the answer as a JSON body or read from the response's event stream.
//!
//! On an event stream it does what rmcp's transport worker did for a request: it passes the
//! request's progress and log notifications to the agent's [`Downstream`] (others are skipped),
//! skips answers that are not ours, answers the server's own requests (a `ping` with an empty
//! result; sampling, elicitation and roots with the agent's answer, or "method not found" when
//! no agent waits on this request), and resumes a stream that broke off once the server has sent an event id
//! (SEP-1699: `GET` + `Last-Event-ID`, after the server's `retry` when the stream ended
//! cleanly, with the bounded [`ResumePolicy`](crate::resume::ResumePolicy)). A request whose
//! caller gives up (its future is dropped, e.g. by a timeout) is cancelled with
//! `notifications/cancelled`, as rmcp's client does.
//!
//! It must not decide what a failure means for the session beyond reporting it (the session
//! marks itself lost), and it must not retry a request: a `tools/call` may have run.

use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use rmcp::model::{
    CancelledNotification, CancelledNotificationParam, ClientJsonRpcMessage, ClientNotification,
    ClientResult, CustomResult, ErrorCode, ErrorData, RequestId, ServerJsonRpcMessage,
};
use rmcp::transport::common::client_side_sse::SseRetryPolicy;
use rmcp::transport::streamable_http_client::{SseError, StreamableHttpError};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use sse_stream::Sse;
use tether_core::{ConnectError, Downstream, ListKind, PeerError, SessionEvents, TransportFailure};
use tracing::{debug, trace};

use super::encode::Outbound;
use super::endpoint::{Endpoint, EventStream};
use super::post::Posted;
use super::questions::OpenQuestions;
use crate::error::{self, HttpError};

/// How long the rest of a response stream is read after the answer, so that the HTTP/1.1
/// connection goes back to the pool instead of being cut (rmcp's worker waits as long).
const DRAIN: Duration = Duration::from_millis(50);

/// The bound on the `notifications/cancelled` sent for an abandoned request (rmcp's default
/// for its control messages).
const CANCEL_TIMEOUT: Duration = Duration::from_secs(5);

/// What the server answered to our request.
#[derive(Debug)]
pub(super) enum Answer {
    /// The `result` member, still JSON: the caller knows which type it must be, where rmcp's
    /// untagged `ServerResult` would try up to twenty shapes on every answer.
    Result(RawResult),
    Error(ErrorData),
}

/// A `result` member's JSON text. Cut out of the event it came in, in place: a large result
/// (a resource's contents) is not copied on its way to the caller.
#[derive(Debug)]
pub(super) struct RawResult(String);

impl RawResult {
    pub(super) fn get(&self) -> &str {
        &self.0
    }

    fn from_raw(raw: Box<RawValue>) -> Self {
        Self(Box::<str>::from(raw).into_string())
    }

    /// The part of `text` at `range` (the caller found it by parsing `text`).
    fn within(mut text: String, range: std::ops::Range<usize>) -> Self {
        text.truncate(range.end);
        text.drain(..range.start);
        Self(text)
    }
}

/// Where `part`, a slice of `text`, lies in it.
fn span(text: &str, part: &str) -> Option<std::ops::Range<usize>> {
    let start = (part.as_ptr() as usize).checked_sub(text.as_ptr() as usize)?;
    let end = start.checked_add(part.len())?;
    (end <= text.len() && text.is_char_boundary(start) && text.is_char_boundary(end))
        .then_some(start..end)
}

impl Answer {
    /// The result as `T`, or the error; `what` names the result in a decoding error (which
    /// never quotes the server's data).
    pub(super) fn decode<T: DeserializeOwned>(self, what: &str) -> Result<T, AnswerError> {
        match self {
            Self::Result(raw) => serde_json::from_str(raw.get())
                .map_err(|e| AnswerError::Invalid(format!("invalid {what} ({:?})", e.classify()))),
            Self::Error(data) => Err(AnswerError::Refused(data)),
        }
    }
}

/// Why an [`Answer`] is not the result wanted.
#[derive(Debug)]
pub(super) enum AnswerError {
    /// A JSON-RPC error answer.
    Refused(ErrorData),
    /// A result of another shape; the text is fixed apart from serde's error category.
    Invalid(String),
}

/// A server message, read only as far as routing it needs; its result stays in its text.
#[derive(Debug, Deserialize)]
struct Incoming<'a> {
    #[serde(default)]
    id: Option<RequestId>,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    params: Option<Box<RawValue>>,
    #[serde(default, borrow)]
    result: Option<&'a RawValue>,
    #[serde(default)]
    error: Option<ErrorData>,
}

/// What an [`Incoming`] message is.
enum Routed {
    /// A request of the server to us, to be answered.
    Request {
        id: RequestId,
        method: String,
        params: Option<Box<RawValue>>,
    },
    Notification {
        method: String,
        params: Option<Box<RawValue>>,
    },
    Answer {
        id: Option<RequestId>,
        answer: Answer,
    },
    /// Not a JSON-RPC message we can use.
    Other,
}

/// A server message from its text, or `None` when the text is not one.
fn route(text: String) -> Option<Routed> {
    let incoming = match serde_json::from_str::<Incoming<'_>>(&text) {
        Ok(incoming) => incoming,
        Err(e) => {
            debug!(category = ?e.classify(), "skipped an event that is not a JSON-RPC message");
            return None;
        }
    };
    Some(match incoming {
        Incoming {
            method: Some(method),
            id: Some(id),
            params,
            ..
        } => Routed::Request { id, method, params },
        Incoming {
            method: Some(method),
            params,
            ..
        } => Routed::Notification { method, params },
        Incoming {
            result: Some(result),
            id: id @ Some(_),
            ..
        } => {
            let answer = match span(&text, result.get()) {
                Some(range) => RawResult::within(text, range),
                None => RawResult(result.get().to_owned()),
            };
            Routed::Answer {
                id,
                answer: Answer::Result(answer),
            }
        }
        Incoming {
            error: Some(error),
            id,
            ..
        } => Routed::Answer {
            id,
            answer: Answer::Error(error),
        },
        _ => Routed::Other,
    })
}

/// Where in the session's life the request is sent.
#[derive(Debug, Clone, Copy)]
pub(super) enum Phase<'d> {
    /// `initialize`: server requests on its stream are skipped (rmcp's worker skips them too;
    /// the session does not exist yet), and it is never cancelled (the spec forbids it).
    Handshake,
    /// A request on the open session, and who listens to what its stream carries.
    Session(Listeners<'d>),
}

/// Who hears what a request's stream carries besides its answer.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Listeners<'d> {
    /// The agent waiting on the request: progress, log messages, the server's requests.
    pub(crate) downstream: Option<&'d dyn Downstream>,
    /// The session's owner: list changes.
    pub(crate) events: Option<&'d dyn SessionEvents>,
    /// The session's questions being answered, which the server may withdraw.
    pub(crate) questions: Option<&'d OpenQuestions>,
}

/// Why no answer came. The texts are fixed phrases: no server data, no URL, no token.
#[derive(Debug, thiserror::Error)]
pub(super) enum ExchangeError {
    /// The `POST` failed: rmcp's typed HTTP error (status, network, body limit, 404 on our
    /// session id, …), mapped by [`crate::error::from_http`].
    #[error("the request could not be sent")]
    Send(#[source] HttpError),
    #[error("the server's event stream ended before the answer")]
    EndedEarly,
    /// The stream broke off and could not be resumed (no event id, resumption off or refused,
    /// or the attempts used up). `session_gone` when a resumption was answered 404 for our
    /// session id.
    #[error("the server's event stream broke off and could not be resumed")]
    Unresumable { session_gone: bool },
    /// The resumption was refused for lack of authorization (after the token refresh).
    #[error("resuming the server's event stream needs authorization")]
    ResumeUnauthorized,
    #[error("an event of the server's stream exceeded the size limit")]
    TooLarge,
    /// Not an answer to our request (202 to a request, a JSON body with another id).
    #[error("the server answered with an unexpected message")]
    Unexpected,
}

impl ExchangeError {
    /// Whether the session is known to be gone on the server.
    pub(super) fn session_gone(&self) -> bool {
        match self {
            Self::Send(e) => matches!(e, StreamableHttpError::SessionExpired),
            Self::Unresumable { session_gone } => *session_gone,
            _ => false,
        }
    }

    /// The core's error for a request on an open session.
    ///
    /// A stream that could not be resumed is a network failure of this request, not a lost
    /// session, even when the session turned out to be gone: the core re-runs requests that
    /// fail with `SessionLost`, and the server may already have run this one.
    pub(super) fn into_connect_error(self) -> ConnectError {
        match self {
            Self::Send(e) => error::from_http(&e),
            Self::EndedEarly => ConnectError::transport(
                TransportFailure::Network,
                "the server's event stream ended before the answer",
            ),
            Self::Unresumable { .. } => ConnectError::transport(
                TransportFailure::Network,
                "the server's event stream broke off and could not be resumed",
            ),
            Self::ResumeUnauthorized => ConnectError::NeedsAuthorization {
                authorization_url: None,
                scope: None,
            },
            Self::TooLarge => ConnectError::Protocol(
                "an event of the server's answer exceeded the size limit".to_owned(),
            ),
            Self::Unexpected => {
                ConnectError::Protocol("the server answered with an unexpected message".to_owned())
            }
        }
    }
}

/// Sends `request` with `id` and waits for its answer.
pub(super) async fn request(
    endpoint: &Endpoint,
    id: RequestId,
    request: Outbound<'_>,
    listeners: Listeners<'_>,
) -> Result<Answer, ExchangeError> {
    let mut guard = AbandonGuard {
        endpoint,
        id: Some(id.clone()),
    };
    // No inner async block: with one (awaited in place) this future measured 6.2 KB where
    // the block itself took 2.5 KB, and every request's future carries it.
    let result = match endpoint.send_request(id.clone(), request).await {
        Ok(response) => read_answer(endpoint, &id, response, Phase::Session(listeners)).await,
        Err(e) => Err(ExchangeError::Send(e)),
    };
    guard.id = None;
    result
}

/// Reads the answer to request `id` from the response to its `POST`.
pub(super) async fn read_answer(
    endpoint: &Endpoint,
    id: &RequestId,
    response: Posted,
    phase: Phase<'_>,
) -> Result<Answer, ExchangeError> {
    match response {
        Posted::Message(message) => json_answer(*message, id).ok_or(ExchangeError::Unexpected),
        Posted::Json(body) => json_body_answer(body, id).ok_or(ExchangeError::Unexpected),
        Posted::Events(stream) => read_stream(endpoint, id, stream, phase).await,
        // 202 Accepted to a request: it must be answered.
        Posted::Accepted => Err(ExchangeError::Unexpected),
    }
}

/// A JSON body as the answer to request `id`, if it is one; its result is cut out of the
/// body's text in place, as from an event.
fn json_body_answer(body: bytes::Bytes, id: &RequestId) -> Option<Answer> {
    let text = String::from_utf8(Vec::from(body)).ok()?;
    match route(text)? {
        Routed::Answer { id: theirs, answer } if is_ours(id, theirs.as_ref()) => Some(answer),
        _ => None,
    }
}

/// A JSON answer (which rmcp's client has already typed) as the answer to request `id`, if it
/// is one.
fn json_answer(message: ServerJsonRpcMessage, id: &RequestId) -> Option<Answer> {
    let (theirs, answer) = match message {
        ServerJsonRpcMessage::Response(response) => (
            Some(response.id),
            Answer::Result(RawResult::from_raw(
                serde_json::value::to_raw_value(&response.result).ok()?,
            )),
        ),
        ServerJsonRpcMessage::Error(error) => (error.id, Answer::Error(error.error)),
        _ => return None,
    };
    is_ours(id, theirs.as_ref()).then_some(answer)
}

/// Whether an answer with id `theirs` answers request `ours`. An error without an id counts
/// (only errors come without one): the spec lets a server omit the id it could not read, and
/// only our request is on this stream.
fn is_ours(ours: &RequestId, theirs: Option<&RequestId>) -> bool {
    theirs.is_none_or(|theirs| same_id(ours, theirs))
}

/// rmcp's rule: the same id, or our number echoed as a string.
fn same_id(ours: &RequestId, theirs: &RequestId) -> bool {
    ours == theirs
        || matches!((ours, theirs), (RequestId::Number(n), RequestId::String(s)) if s.parse::<i64>().ok() == Some(*n))
}

/// How a response stream stopped.
enum Break {
    Ended,
    Failed(SseError),
}

/// What the stream told us about resuming it.
#[derive(Debug, Default)]
struct Resumption {
    last_event_id: Option<String>,
    /// The server's `retry` field, the wait it asks for before a reconnect.
    server_retry: Option<Duration>,
}

impl Resumption {
    /// Notes an event's `id` and `retry`; returns its JSON-RPC message, if it carries one.
    fn observe(&mut self, event: Sse) -> Option<Routed> {
        if let Some(retry) = event.retry {
            self.server_retry = Some(Duration::from_millis(retry));
        }
        if let Some(id) = event.id {
            self.last_event_id = Some(id);
        }
        // Only message events carry JSON-RPC (rmcp's rule); a priming event's empty data and
        // data that is not a message are skipped (rmcp skips them too).
        if !matches!(event.event.as_deref(), None | Some("" | "message")) {
            return None;
        }
        let data = event.data?;
        if data.trim().is_empty() {
            return None;
        }
        route(data)
    }
}

async fn read_stream(
    endpoint: &Endpoint,
    id: &RequestId,
    mut stream: EventStream,
    phase: Phase<'_>,
) -> Result<Answer, ExchangeError> {
    let mut resumption = Resumption::default();
    // The server's requests being answered by the agent, read beside the stream so that the
    // server can withdraw one (`notifications/cancelled`) while the agent thinks.
    let own = OpenQuestions::default();
    // Made at the first server request: an empty `FuturesUnordered` already allocates a task
    // the size of these futures, on every request.
    let mut answering = None;
    let questions = match phase {
        Phase::Session(Listeners {
            questions: Some(questions),
            ..
        }) => questions,
        _ => &own,
    };
    loop {
        let stopped = loop {
            let next = tokio::select! {
                Some(()) = next_answered(&mut answering), if has_pending(answering.as_ref()) => continue,
                next = stream.next() => next,
            };
            let event = match next {
                Some(Ok(event)) => event,
                Some(Err(e)) => break Break::Failed(e),
                None => break Break::Ended,
            };
            let Some(message) = resumption.observe(event) else {
                continue;
            };
            match message {
                Routed::Request {
                    id: request,
                    method,
                    params,
                } => match phase {
                    Phase::Session(listeners) => {
                        let asked = questions.ask(request.clone());
                        answering
                            .get_or_insert_with(FuturesUnordered::new)
                            .push(async move {
                                let withdrawn = asked.withdrawn.clone();
                                tokio::select! {
                                    () = answer_server_request(
                                        endpoint,
                                        request,
                                        &method,
                                        params,
                                        listeners.downstream,
                                    ) => {}
                                    // Dropping the question tells the agent it was withdrawn.
                                    () = withdrawn.cancelled() => {}
                                }
                            });
                    }
                    Phase::Handshake => debug!("skipped a server request during initialize"),
                },
                Routed::Notification { method, params } if method == CANCELLED => {
                    questions.withdraw(params.as_deref());
                }
                Routed::Notification { method, params } => match (phase, list_kind(&method)) {
                    (Phase::Session(listeners), Some(list)) => {
                        if let Some(events) = listeners.events {
                            events.list_changed(list);
                        }
                    }
                    (Phase::Session(listeners), None) if FORWARDED.contains(&method.as_str()) => {
                        if let Some(downstream) = listeners.downstream {
                            downstream.notify(&method, json_params(params)).await;
                        }
                    }
                    _ => trace!(method, "skipped a server notification"),
                },
                Routed::Answer { id: theirs, answer } if is_ours(id, theirs.as_ref()) => {
                    let _ = tokio::time::timeout(DRAIN, async {
                        while stream.next().await.is_some() {}
                    })
                    .await;
                    return Ok(answer);
                }
                Routed::Answer { .. } => debug!("skipped an answer to another request"),
                Routed::Other => debug!("skipped a message that is not JSON-RPC"),
            }
        };
        stream = resume(endpoint, &mut resumption, stopped).await?;
    }
}

fn has_pending<F>(answering: Option<&FuturesUnordered<F>>) -> bool {
    answering.is_some_and(|a| !a.is_empty())
}

/// The next server request the agent finished answering.
async fn next_answered<F: Future<Output = ()>>(
    answering: &mut Option<FuturesUnordered<F>>,
) -> Option<()> {
    answering.as_mut()?.next().await
}

const CANCELLED: &str = "notifications/cancelled";

/// Re-opens a stream that stopped before the answer, the way rmcp's `SseAutoReconnectStream`
/// does for request streams: only after an event id; after a clean end, first waits the
/// server's `retry` (the spec's MUST) or our first delay; after a failure, reconnects at once;
/// after a failed reconnect, waits the longer of our next delay and the server's `retry`.
/// With `attempts = 0` it never resumes (what the setting documents).
async fn resume(
    endpoint: &Endpoint,
    resumption: &mut Resumption,
    stopped: Break,
) -> Result<EventStream, ExchangeError> {
    if let Break::Failed(e) = &stopped
        && is_too_large(e)
    {
        // The server would send the same event again.
        return Err(ExchangeError::TooLarge);
    }
    let Some(last_event_id) = resumption.last_event_id.clone() else {
        // Nothing to resume from: the server never gave the stream an id.
        return Err(match stopped {
            Break::Ended => ExchangeError::EndedEarly,
            Break::Failed(_) => ExchangeError::Unresumable {
                session_gone: false,
            },
        });
    };
    let policy = endpoint.resume;
    if policy.attempts == 0 {
        return Err(ExchangeError::Unresumable {
            session_gone: false,
        });
    }
    let mut wait = match stopped {
        Break::Ended => resumption
            .server_retry
            .take()
            .or_else(|| policy.retry(0))
            .unwrap_or(Duration::ZERO),
        Break::Failed(_) => Duration::ZERO,
    };
    let mut failed = 0;
    loop {
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        let error = match endpoint.resume_stream(&last_event_id).await {
            Ok(stream) => {
                debug!("resumed the server's event stream");
                return Ok(stream);
            }
            Err(error) => error,
        };
        if let Some(last) = final_resume_error(endpoint, &error) {
            return Err(last);
        }
        failed += 1;
        let Some(delay) = policy.retry(failed) else {
            debug!(
                attempts = failed,
                "giving up resuming the server's event stream"
            );
            return Err(ExchangeError::Unresumable {
                session_gone: false,
            });
        };
        wait = resumption
            .server_retry
            .map_or(delay, |server| server.max(delay));
    }
}

/// A resumption failure that another attempt cannot change (rmcp stops on the first three).
fn final_resume_error(endpoint: &Endpoint, error: &HttpError) -> Option<ExchangeError> {
    match error {
        StreamableHttpError::ServerDoesNotSupportSse => Some(ExchangeError::Unresumable {
            session_gone: false,
        }),
        StreamableHttpError::AuthRequired(_) | StreamableHttpError::InsufficientScope(_) => {
            Some(ExchangeError::ResumeUnauthorized)
        }
        // rmcp's GET reports other statuses through `error_for_status`.
        StreamableHttpError::Client(e) => match e.status().map(|s| s.as_u16()) {
            Some(401 | 403) => Some(ExchangeError::ResumeUnauthorized),
            Some(404) if endpoint.session_id.is_some() => {
                Some(ExchangeError::Unresumable { session_gone: true })
            }
            _ => None,
        },
        _ => None,
    }
}

/// Whether the stream failed because an event outgrew rmcp's limit. rmcp's error type for it
/// is private, so its text is the only sign; should the wording change, such a stream is
/// resumed (a bounded number of times) before it fails.
fn is_too_large(error: &SseError) -> bool {
    matches!(error, SseError::Body(e) if e.to_string().contains("exceeded the maximum size"))
}

/// Notifications on a request's stream that belong to the agent waiting on it.
const FORWARDED: [&str; 2] = ["notifications/progress", "notifications/message"];

fn list_kind(method: &str) -> Option<ListKind> {
    match method {
        "notifications/tools/list_changed" => Some(ListKind::Tools),
        "notifications/prompts/list_changed" => Some(ListKind::Prompts),
        "notifications/resources/list_changed" => Some(ListKind::Resources),
        _ => None,
    }
}

fn json_params(params: Option<Box<RawValue>>) -> Option<serde_json::Value> {
    params.and_then(|raw| serde_json::from_str(raw.get()).ok())
}

/// Answers a request the server sent on a response stream: `ping` here, anything else by the
/// agent waiting on the request (which refuses what it did not declare). A failed answer is
/// the server's problem: the request we wait for goes on.
async fn answer_server_request(
    endpoint: &Endpoint,
    id: RequestId,
    method: &str,
    params: Option<Box<RawValue>>,
    downstream: Option<&dyn Downstream>,
) {
    let reply = match (method, downstream) {
        ("ping", _) => ClientJsonRpcMessage::response(ClientResult::empty(()), id),
        (_, Some(downstream)) => match downstream.request(method, json_params(params)).await {
            Ok(result) => {
                ClientJsonRpcMessage::response(ClientResult::CustomResult(CustomResult(result)), id)
            }
            Err(PeerError { code, message }) => ClientJsonRpcMessage::error(
                ErrorData::new(ErrorCode(code), message, None),
                Some(id),
            ),
        },
        // A plain agent's call (answered on the gateway's direct path) or no call at all.
        (_, None) => ClientJsonRpcMessage::error(
            ErrorData::new(
                ErrorCode::METHOD_NOT_FOUND,
                format!(
                    "{method}: the agent did not declare the capability, or no agent waits on \
                     this request"
                ),
                None,
            ),
            Some(id),
        ),
    };
    if let Err(e) = endpoint.post(reply).await {
        debug!(error = %error::from_http(&e), "answering a server request failed");
    }
}

/// Armed while a session request is pending; dropped armed (the caller stopped waiting), it
/// sends `notifications/cancelled` for the request from a short-lived task, so the server
/// does not keep working on a result nobody reads. The only task this module starts, and
/// only for an abandoned request.
struct AbandonGuard<'a> {
    endpoint: &'a Endpoint,
    id: Option<RequestId>,
}

impl Drop for AbandonGuard<'_> {
    fn drop(&mut self) {
        let Some(id) = self.id.take() else { return };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let endpoint = self.endpoint.clone();
        runtime.spawn(async move {
            let cancel =
                ClientJsonRpcMessage::notification(ClientNotification::CancelledNotification(
                    CancelledNotification::new(CancelledNotificationParam::new(
                        Some(id),
                        Some("request abandoned by the caller".to_owned()),
                    )),
                ));
            match tokio::time::timeout(CANCEL_TIMEOUT, endpoint.post(cancel)).await {
                Ok(Ok(_)) => debug!("cancelled an abandoned request"),
                Ok(Err(e)) => debug!(error = %error::from_http(&e), "cancelling a request failed"),
                Err(_) => debug!("cancelling a request timed out"),
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_match_our_id_or_its_string_form() {
        let ours = RequestId::Number(7);
        assert!(same_id(&ours, &RequestId::Number(7)));
        assert!(same_id(&ours, &RequestId::String("7".into())));
        assert!(!same_id(&ours, &RequestId::Number(8)));
        assert!(!same_id(&ours, &RequestId::String("x".into())));
    }

    #[test]
    fn events_update_the_resumption_state_and_only_messages_pass() {
        let mut resumption = Resumption::default();
        let priming = Sse {
            event: None,
            data: Some(String::new()),
            id: Some("ev-1".into()),
            retry: Some(300),
        };
        assert!(resumption.observe(priming).is_none());
        assert_eq!(resumption.last_event_id.as_deref(), Some("ev-1"));
        assert_eq!(resumption.server_retry, Some(Duration::from_millis(300)));
        let other = Sse {
            event: Some("endpoint".into()),
            data: Some(r#"{"jsonrpc":"2.0","id":1,"result":{}}"#.into()),
            id: None,
            retry: None,
        };
        assert!(resumption.observe(other).is_none(), "not a message event");
        let answer = Sse {
            event: Some("message".into()),
            data: Some(r#"{"jsonrpc":"2.0","id":1,"result":{}}"#.into()),
            id: Some("ev-2".into()),
            retry: None,
        };
        let message = resumption.observe(answer).expect("a message");
        assert!(matches!(
            message,
            Routed::Answer {
                id: Some(RequestId::Number(1)),
                answer: Answer::Result(_)
            }
        ));
        assert_eq!(resumption.last_event_id.as_deref(), Some("ev-2"));
    }

    #[test]
    fn errors_without_an_id_are_ours_errors_for_others_are_not() {
        let error = |id: Option<RequestId>| {
            ServerJsonRpcMessage::error(ErrorData::new(ErrorCode::INTERNAL_ERROR, "x", None), id)
        };
        let ours = RequestId::Number(3);
        assert!(json_answer(error(None), &ours).is_some());
        assert!(json_answer(error(Some(RequestId::Number(3))), &ours).is_some());
        assert!(json_answer(error(Some(RequestId::Number(4))), &ours).is_none());
    }

    #[test]
    fn a_result_is_cut_out_of_its_message_as_sent() {
        let text =
            r#"{"jsonrpc":"2.0","id":9,"result":{"contents":[{"uri":"é://x","blob":"QUJD"}]} }"#;
        let Some(Routed::Answer {
            answer: Answer::Result(raw),
            ..
        }) = route(text.to_owned())
        else {
            panic!("an answer");
        };
        assert_eq!(raw.get(), r#"{"contents":[{"uri":"é://x","blob":"QUJD"}]}"#);
        assert_eq!(span("abc", "abc"), Some(0..3));
        assert_eq!(span("abc", "xyz"), None, "not a part of the text");
    }

    #[test]
    fn server_messages_are_routed_by_their_members() {
        let route = |text: &str| route(text.to_owned()).expect("parses");
        assert!(matches!(
            route(r#"{"jsonrpc":"2.0","id":"s1","method":"ping"}"#),
            Routed::Request { method, .. } if method == "ping"
        ));
        assert!(matches!(
            route(r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{}}"#),
            Routed::Notification { method, params: Some(_) } if method == "notifications/progress"
        ));
        let Routed::Answer {
            id: Some(RequestId::Number(2)),
            answer,
        } = route(r#"{"jsonrpc":"2.0","id":2,"result":{"content":[],"isError":true}}"#)
        else {
            panic!("an answer to request 2");
        };
        let result: tether_core::ToolResult = answer.decode("tool result").expect("a tool result");
        assert!(result.is_error);
        assert!(matches!(
            route(r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"no"}}"#),
            Routed::Answer {
                id: None,
                answer: Answer::Error(_)
            }
        ));
        assert!(matches!(
            route(r#"{"jsonrpc":"2.0","id":5}"#),
            Routed::Other
        ));
        assert!(matches!(
            Answer::Result(RawResult::from_raw(
                serde_json::value::to_raw_value(&"text").expect("raw")
            ))
            .decode::<tether_core::ToolResult>("tool result"),
            Err(AnswerError::Invalid(_))
        ));
    }
}
