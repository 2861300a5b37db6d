//! A response body that drives its connection while it is read, and hands the connection back
//! to the pool once the body has ended.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use super::conn::{Conn, poll_beside};
use super::pool::{Origin, Pool};

/// The body of a response from [`RequestClient::send`](super::RequestClient::send).
///
/// A body dropped before its end takes its connection with it (HTTP/1.1 cannot carry another
/// request on it before the rest is read), as with hyper's pooled client.
pub struct PooledBody {
    body: Incoming,
    /// `None` once handed back, or when the connection cannot be reused.
    conn: Option<Conn>,
    origin: Origin,
    pool: Arc<Pool>,
}

impl std::fmt::Debug for PooledBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PooledBody")
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl PooledBody {
    pub(super) fn new(body: Incoming, conn: Conn, origin: Origin, pool: Arc<Pool>) -> Self {
        let mut body = Self {
            body,
            conn: Some(conn),
            origin,
            pool,
        };
        // A response without a body (202, 204) is done as it arrives.
        if body.body.is_end_stream() {
            body.release();
        }
        body
    }

    fn release(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.pool.checkin(self.origin.clone(), conn);
        }
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let open = this.conn.as_mut().is_some_and(|conn| conn.drive(cx));
        let frame = poll_beside(open, cx, |cx| Pin::new(&mut this.body).poll_frame(cx));
        match &frame {
            Poll::Ready(None) => this.release(),
            // The connection failed under the body: it is not kept.
            Poll::Ready(Some(Err(_))) => this.conn = None,
            Poll::Ready(Some(Ok(_))) if this.body.is_end_stream() => this.release(),
            _ => {}
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for PooledBody {
    fn drop(&mut self) {
        if self.body.is_end_stream() {
            self.release();
        }
    }
}
