//! One HTTP/1.1 connection to an origin, driven by whoever is using it.
//!
//! hyper's pooled client runs every connection as a task of its own: the request goes to that
//! task through a channel, the response comes back through another, and every chunk of the
//! body crosses again, with a "want more" signal back for the next one. On a tool call that is
//! several wake-ups of another task, most of them on the other worker thread (futex and
//! eventfd writes, measured with `strace -c`: Tether 3.1 and 3.2 per call, the bench's proxy
//! 1.3 and 0.8). Here the connection's state machine is polled by the request's own future
//! and then by its body ([`super::body::PooledBody`]), so the socket's readiness wakes the
//! task that waits for the answer and nothing else.

use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::http1::{Connection, SendRequest};
use hyper_rustls::MaybeHttpsStream;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// The socket of a connection: TCP, with TLS on an `https` origin.
pub(super) type Io = MaybeHttpsStream<TokioIo<TcpStream>>;

/// hyper's state machine of one connection.
type Driver = Pin<Box<Connection<Io, Full<Bytes>>>>;

/// A connection: where requests are handed in, and the state machine that carries them.
pub(super) struct Conn {
    pub(super) sender: SendRequest<Full<Bytes>>,
    /// `None` once the state machine finished (the connection closed or failed). It is
    /// dropped then, as hyper's connection task ends: that resolves whatever still waited on
    /// it (a response, a body) with hyper's error.
    driver: Option<Driver>,
}

impl Conn {
    pub(super) fn new(
        sender: SendRequest<Full<Bytes>>,
        driver: Connection<Io, Full<Bytes>>,
    ) -> Self {
        Self {
            sender,
            driver: Some(Box::pin(driver)),
        }
    }

    /// Lets the connection read and write as far as it can now; returns whether it is still
    /// open. Its outcome is not needed: a failure reaches the request or body it concerns
    /// through hyper's own channels.
    pub(super) fn drive(&mut self, cx: &mut Context<'_>) -> bool {
        if let Some(driver) = &mut self.driver
            && driver.as_mut().poll(cx).is_ready()
        {
            self.driver = None;
        }
        self.driver.is_some()
    }

    /// Waits, driving the connection, until it takes a request; `false` when it never will.
    pub(super) async fn ready(&mut self) -> bool {
        // An idle connection usually takes one at once, and then it need not be driven here:
        // driving it would register this task's waker with its request channel, which the
        // request is about to wake.
        if let Poll::Ready(ready) = self
            .sender
            .poll_ready(&mut Context::from_waker(Waker::noop()))
        {
            return ready.is_ok();
        }
        std::future::poll_fn(|cx| {
            self.drive(cx);
            self.sender.poll_ready(cx).map(|ready| ready.is_ok())
        })
        .await
    }

    /// Lets the connection settle after its body ended, without a waker: an idle connection
    /// must not keep the last user's task registered, or the next request handed to it (from
    /// another task) would wake that task for nothing.
    pub(super) fn park(&mut self) {
        self.drive(&mut Context::from_waker(Waker::noop()));
    }

    /// Whether the connection can carry another request.
    pub(super) fn reusable(&self) -> bool {
        self.driver.is_some() && !self.sender.is_closed()
    }

    /// Polls `work` (a request handed to this connection) to its end, driving the connection
    /// meanwhile.
    pub(super) async fn carry<F: Future>(&mut self, work: F) -> F::Output {
        let mut work = std::pin::pin!(work);
        std::future::poll_fn(|cx| {
            let open = self.drive(cx);
            poll_beside(open, cx, |cx| work.as_mut().poll(cx))
        })
        .await
    }
}

/// Polls `part`, which only a connection just driven with `cx` can make ready (its response,
/// its body), without `cx`'s waker while that connection is open: hyper would otherwise wake
/// this very task for a value it is about to take, and a task woken while it runs is run again
/// (and may wake the other worker to do so). The connection, polled with the real waker,
/// wakes the task whenever the part can move.
pub(super) fn poll_beside<T>(
    open: bool,
    cx: &mut Context<'_>,
    part: impl FnOnce(&mut Context<'_>) -> Poll<T>,
) -> Poll<T> {
    if open {
        part(&mut Context::from_waker(Waker::noop()))
    } else {
        part(cx)
    }
}
