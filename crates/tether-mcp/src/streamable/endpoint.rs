//! Where one Streamable HTTP session's requests go and what each carries: the MCP endpoint, the
//! `Mcp-Session-Id` the server assigned, the negotiated `MCP-Protocol-Version`, and (through
//! [`AuthorizedClient`]) the access token, asked anew for every request.
//!
//! It sends through rmcp's [`StreamableHttpClient`] implementation, so the wire details stay
//! rmcp's: `Accept` headers, the session and `Last-Event-ID` headers, JSON or event-stream
//! answers, the byte limits on bodies and events, and the typed errors [`crate::error`] maps.
//! It owns no task and no buffer: every method is one HTTP request of its caller.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;

use futures::stream::BoxStream;
use reqwest::header::{HeaderName, HeaderValue};
use rmcp::model::{ClientJsonRpcMessage, ClientRequest, CustomRequest, RequestId};
use rmcp::transport::streamable_http_client::{
    SseError, StreamableHttpClient, StreamableHttpError, StreamableHttpPostResponse,
    StreamableHttpResponseLimits,
};
use sse_stream::Sse;

use super::encode::Outbound;
use super::param_headers::ToolParamHeaders;
use super::post::{self, Outgoing, Posted, Target};

use crate::authorized::AuthorizedClient;
use crate::error::HttpError;
use crate::resume::ResumePolicy;

pub(super) type EventStream = BoxStream<'static, Result<Sse, SseError>>;

/// The header rmcp's worker adds to every request after `initialize` (the spec's
/// `MCP-Protocol-Version`); rmcp's client lets it through its reserved-header check.
const PROTOCOL_VERSION_HEADER: HeaderName = HeaderName::from_static("mcp-protocol-version");

/// Everything a request of one session needs. Cheap to clone (reference counts only); it is
/// cloned only to send a cancellation after the caller gave up on a request.
#[derive(Debug, Clone)]
pub(super) struct Endpoint {
    pub(super) http: AuthorizedClient,
    pub(super) uri: Arc<str>,
    /// `uri` parsed, once per session; `None` if it does not parse (rmcp's client then
    /// sends, and reports the failure as before).
    pub(super) target: Option<Target>,
    /// `None` before `initialize` is answered, and for servers that run without sessions
    /// (rmcp's client allows those too).
    pub(super) session_id: Option<Arc<str>>,
    /// `None` only for `initialize` itself, which carries the version in its body.
    pub(super) protocol_version: Option<HeaderValue>,
    /// How a response stream that broke off is resumed.
    pub(super) resume: ResumePolicy,
    /// The 2026-07-28 wire: no session, every request stamped by [`super::modern`].
    pub(super) modern: bool,
    /// On that wire, the `Mcp-Param-*` headers of the server's annotated tools, from its last
    /// tool list.
    pub(super) tool_headers: Option<Arc<ToolParamHeaders>>,
}

impl Endpoint {
    /// rmcp's defaults (16 MiB per JSON answer and per event, 64 KiB of an error body), the
    /// limits its transport applied to every session before.
    fn limits() -> StreamableHttpResponseLimits {
        StreamableHttpResponseLimits::default()
    }

    fn headers(&self) -> HashMap<HeaderName, HeaderValue> {
        let mut headers = HashMap::new();
        if let Some(version) = &self.protocol_version {
            headers.insert(PROTOCOL_VERSION_HEADER, version.clone());
        }
        headers
    }

    /// POSTs one JSON-RPC message. The `auth_header` argument is unused: the
    /// [`AuthorizedClient`] attaches the token (and retries once on 401).
    pub(super) async fn post(
        &self,
        message: ClientJsonRpcMessage,
    ) -> Result<StreamableHttpPostResponse, HttpError> {
        let (message, headers) = if self.modern {
            super::modern::stamp(message, self.tool_headers.as_deref())
        } else {
            (message, self.headers())
        };
        self.http
            .post_message_with_response_limits(
                self.uri.clone(),
                message,
                self.session_id.clone(),
                None,
                headers,
                Self::limits(),
            )
            .await
    }

    /// POSTs one request of the session ([`super::post`]); without a parsed URL through
    /// [`Self::post`].
    pub(super) async fn send_request(
        &self,
        id: RequestId,
        request: Outbound<'_>,
    ) -> Result<Posted, HttpError> {
        let Some(target) = &self.target else {
            // Boxed: rmcp's client future is several KiB, and inline it would be copied with
            // every request's future although this road is almost never taken.
            return Box::pin(self.post(request.into_message(id)))
                .await
                .map(Posted::from);
        };
        // A session of the earlier revisions sends only its protocol version: as a header
        // value, not in a map hashed per request.
        let (body, headers, version) = if self.modern {
            let (message, headers) =
                super::modern::stamp(request.into_message(id), self.tool_headers.as_deref());
            (super::encode::message_body(&message), headers, None)
        } else {
            (
                request.body(id),
                HashMap::new(),
                self.protocol_version.as_ref(),
            )
        };
        let body = Bytes::from(body.map_err(post::unserializable)?);
        let outgoing = Outgoing {
            target,
            session_id: self.session_id.as_deref(),
            version,
            headers: &headers,
            limits: Self::limits(),
        };
        self.http
            .send_with(|leg, token| post::send(leg, &outgoing, body.clone(), token))
            .await
    }

    /// Re-opens a response stream after `last_event_id` (`GET` with `Last-Event-ID`).
    pub(super) async fn resume_stream(
        &self,
        last_event_id: &str,
    ) -> Result<EventStream, HttpError> {
        self.http
            .get_stream_with_max_sse_event_size(
                self.uri.clone(),
                self.session_id.clone(),
                Some(last_event_id.to_owned()),
                None,
                self.headers(),
                Self::limits().max_sse_event_size,
            )
            .await
    }

    /// Opens the session's own event stream (`GET` without `Last-Event-ID`): the server's
    /// messages that belong to no request. On the 2026-07-28 wire, which has no such stream,
    /// `subscriptions/listen` for the list changes instead; its answer stream stays open.
    pub(super) async fn listen_stream(&self) -> Result<EventStream, HttpError> {
        if self.modern {
            let filter = serde_json::json!({"notifications": {
                "toolsListChanged": true, "promptsListChanged": true, "resourcesListChanged": true
            }});
            let request = ClientRequest::CustomRequest(CustomRequest::new(
                "subscriptions/listen",
                Some(filter),
            ));
            let message =
                ClientJsonRpcMessage::request(request, RequestId::String("listen".into()));
            return match self.post(message).await? {
                StreamableHttpPostResponse::Sse(stream, _) => Ok(stream),
                // A JSON answer is a refusal (no subscriptions): there is nothing to read.
                _ => Err(StreamableHttpError::UnexpectedContentType(None)),
            };
        }
        self.http
            .get_stream_with_max_sse_event_size(
                self.uri.clone(),
                self.session_id.clone(),
                None,
                None,
                self.headers(),
                Self::limits().max_sse_event_size,
            )
            .await
    }

    /// Ends the session on the server (`DELETE`; rmcp's client treats 405 as success). Nothing
    /// to do for a server without sessions.
    pub(super) async fn delete(&self) -> Result<(), HttpError> {
        let Some(session_id) = &self.session_id else {
            return Ok(());
        };
        self.http
            .delete_session(self.uri.clone(), session_id.clone(), None, self.headers())
            .await
    }
}
