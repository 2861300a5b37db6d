//! Reading a server's `text/event-stream` body into SSE events with a bound on each event's
//! size, for the legacy SSE transport and the Streamable HTTP requests Tether sends itself
//! (`streamable::post`; rmcp bounds the streams of its own client, but its bounded reader is
//! private).
//!
//! It owns the byte counting only; parsing is the `sse-stream` crate's. It must not buffer an
//! event beyond [`MAX_SSE_EVENT_BYTES`]: the parser keeps an unfinished event in memory, so a
//! server that never ends an event would otherwise grow it without bound.

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use sse_stream::{Error as SseError, Sse, SseStream};

/// The largest event accepted, counting the bytes of its lines (same default as rmcp's
/// Streamable HTTP client).
pub(crate) const MAX_SSE_EVENT_BYTES: usize = 16 * 1024 * 1024;

/// Why the event stream's body could not be read. No server data in the texts.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyError {
    #[error("reading the event stream failed")]
    Read(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Worded as rmcp's own limit error, which the exchange recognises by its text.
    #[error("an event exceeded the maximum size of {0} bytes")]
    TooLarge(usize),
}

/// The response body as SSE events; the stream yields an error and ends once an event grows
/// past `max_event_bytes` or the body fails.
pub(crate) fn events(
    response: reqwest::Response,
    max_event_bytes: usize,
) -> BoxStream<'static, Result<Sse, SseError>> {
    events_of(response.bytes_stream(), max_event_bytes)
}

/// [`events`] of any body's chunks.
pub(crate) fn events_of<E>(
    chunks: impl Stream<Item = Result<Bytes, E>> + Send + 'static,
    max_event_bytes: usize,
) -> BoxStream<'static, Result<Sse, SseError>>
where
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut limit = EventLimit::new(max_event_bytes);
    let bytes = chunks.map(move |chunk| {
        let chunk = chunk.map_err(|e| BodyError::Read(e.into()))?;
        limit.observe(&chunk)?;
        Ok::<_, BodyError>(chunk)
    });
    SseStream::from_bytes_stream(bytes).boxed()
}

/// Counts the bytes of the event being received: its lines without their terminators, reset
/// by the blank line that ends an event.
#[derive(Debug)]
struct EventLimit {
    max: usize,
    event: usize,
    line: usize,
    after_cr: bool,
}

impl EventLimit {
    fn new(max: usize) -> Self {
        Self {
            max,
            event: 0,
            line: 0,
            after_cr: false,
        }
    }

    /// Counts `chunk` a run of line bytes at a time (a byte-by-byte loop was ~3 % of the
    /// gateway's CPU in the 64 KiB answer benchmark).
    fn observe(&mut self, chunk: &[u8]) -> Result<(), BodyError> {
        let mut rest = chunk;
        while !rest.is_empty() {
            let run = memchr::memchr2(b'\r', b'\n', rest).unwrap_or(rest.len());
            if run > 0 {
                self.after_cr = false;
                self.line += run;
                self.event += run;
                if self.event > self.max {
                    return Err(BodyError::TooLarge(self.max));
                }
            }
            let Some(&terminator) = rest.get(run) else {
                break;
            };
            let after_cr = std::mem::replace(&mut self.after_cr, terminator == b'\r');
            // The `\n` of a CRLF ends nothing more.
            if !(terminator == b'\n' && after_cr) {
                if self.line == 0 {
                    self.event = 0;
                }
                self.line = 0;
            }
            rest = &rest[run + 1..];
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The rule byte by byte, as first written: what the run-at-a-time count must agree with.
    fn observe_bytewise(limit: &mut EventLimit, chunk: &[u8]) -> Result<(), usize> {
        for &byte in chunk {
            let after_cr = std::mem::replace(&mut limit.after_cr, byte == b'\r');
            match byte {
                b'\n' if after_cr => {}
                b'\r' | b'\n' => {
                    if limit.line == 0 {
                        limit.event = 0;
                    }
                    limit.line = 0;
                }
                _ => {
                    limit.line += 1;
                    limit.event += 1;
                    if limit.event > limit.max {
                        return Err(limit.max);
                    }
                }
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        #[test]
        fn runs_are_counted_as_bytes_are(
            chunks in prop::collection::vec(
                prop::collection::vec(prop::sample::select(vec![b'a', b':', b'\r', b'\n']), 0..40),
                0..8,
            ),
            max in 0usize..30,
        ) {
            let (mut fast, mut slow) = (EventLimit::new(max), EventLimit::new(max));
            for chunk in &chunks {
                let ours = fast.observe(chunk).map_err(|e| match e {
                    BodyError::TooLarge(max) => max,
                    BodyError::Read(_) => usize::MAX,
                });
                let reference = observe_bytewise(&mut slow, chunk);
                prop_assert_eq!(ours, reference);
                if ours.is_err() {
                    break;
                }
                prop_assert_eq!(
                    (fast.event, fast.line, fast.after_cr),
                    (slow.event, slow.line, slow.after_cr)
                );
            }
        }
    }

    #[test]
    fn events_within_the_limit_pass_and_blank_lines_reset_it() {
        let mut limit = EventLimit::new(10);
        limit.observe(b"data: 1234\n\n").expect("10 bytes fit");
        limit
            .observe(b"data: 1234\r\n\r\n")
            .expect("CRLF ends events too");
        limit
            .observe(b"data: 1234\r\rdata:")
            .expect("CR ends events too");
    }

    #[test]
    fn an_event_that_grows_too_large_is_refused_across_lines_and_chunks() {
        let mut limit = EventLimit::new(10);
        limit.observe(b"data: 12\r\n").expect("fits");
        // CRLF must not count as a blank line: the event goes on.
        assert!(matches!(
            limit.observe(b"data: 3"),
            Err(BodyError::TooLarge(10))
        ));
    }
}
