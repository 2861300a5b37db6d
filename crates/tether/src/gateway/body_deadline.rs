//! A deadline on reading a request body: a client that sends its headers and then trickles the
//! body (or stops) gets 408 and its connection closed once the deadline passes, instead of
//! holding a connection and a handler for as long as it likes.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body::{Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// The body ran past its deadline.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
pub struct BodyTimedOut;

/// A request body that fails with [`BodyTimedOut`] once its deadline passes, and says so in
/// `expired` so the middleware can answer 408 whatever the handler made of the error.
///
/// The timer is armed only when the body first has to be waited for: most bodies arrive with
/// their headers and are read without one (a timer per request was measurable per call).
struct DeadlineBody {
    inner: Body,
    /// `None`: a timeout too long to fall within `Instant`'s range, never reached.
    at: Option<Instant>,
    deadline: Option<Pin<Box<Sleep>>>,
    expired: Arc<AtomicBool>,
}

impl HttpBody for DeadlineBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        let Some(at) = this.at else {
            return Poll::Pending;
        };
        let deadline = this
            .deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
        if deadline.as_mut().poll(cx).is_ready() {
            this.expired.store(true, Ordering::Relaxed);
            return Poll::Ready(Some(Err(axum::Error::new(BodyTimedOut))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// `next`'s answer to `request`, whose body must be read within `timeout` (the listener applies
/// it to every request, `/mcp` and the router's routes alike: see `gateway::dispatch`).
pub(crate) async fn within<F, Fut>(timeout: Duration, request: Request, next: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    if request.body().is_end_stream() {
        return next(request).await;
    }
    let expired = Arc::new(AtomicBool::new(false));
    let (parts, inner) = request.into_parts();
    let body = Body::new(DeadlineBody {
        inner,
        at: Instant::now().checked_add(timeout),
        deadline: None,
        expired: expired.clone(),
    });
    let response = next(Request::from_parts(parts, body)).await;
    if expired.load(Ordering::Relaxed) {
        tracing::debug!("request body timed out");
        return (
            StatusCode::REQUEST_TIMEOUT,
            [(header::CONNECTION, "close")],
            axum::Json(serde_json::json!({
                "error": "request_timeout",
                "message": "the request body did not arrive in time",
            })),
        )
            .into_response();
    }
    response
}
