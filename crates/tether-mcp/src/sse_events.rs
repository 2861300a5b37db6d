//! Reading a server's `text/event-stream` body into SSE events, each bounded in size, for the
//! legacy SSE transport and the Streamable HTTP requests Tether sends itself
//! (`streamable::post`; rmcp bounds the streams of its own client, but its bounded reader is
//! private).
//!
//! The events are the `sse-stream` crate's (rmcp's types carry them) and are read by its rules,
//! line for line (a property test holds this reader to that crate's parser). The reader is
//! Tether's own because it runs on every tool call: the crate looks for each line's end a byte
//! at a time, queues every event it parses, and the size bound needed a second pass over the
//! bytes in front of it. Here one pass finds line ends with `memchr`, counts the event's size
//! and hands each event on as soon as its blank line arrives.
//!
//! It must not buffer an event beyond [`MAX_SSE_EVENT_BYTES`]: an unfinished event is held in
//! memory, so a server that never ends one would otherwise grow it without bound.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use sse_stream::{Error as SseError, Sse};

/// The largest event accepted, counting the bytes of its lines (same default as rmcp's
/// Streamable HTTP client).
pub(crate) const MAX_SSE_EVENT_BYTES: usize = 16 * 1024 * 1024;

const BOM: &[u8] = b"\xEF\xBB\xBF";

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
/// past `max_event_bytes`, a line breaks the format, or the body fails.
pub(crate) fn events(
    response: reqwest::Response,
    max_event_bytes: usize,
) -> BoxStream<'static, Result<Sse, SseError>> {
    events_of(response.bytes_stream(), max_event_bytes)
}

/// [`events`] of any body's chunks.
pub(crate) fn events_of<S, E>(
    chunks: S,
    max_event_bytes: usize,
) -> BoxStream<'static, Result<Sse, SseError>>
where
    S: Stream<Item = Result<Bytes, E>> + Send + Unpin + 'static,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    EventReader {
        chunks: Some(chunks),
        rest: Bytes::new(),
        parser: Parser::new(max_event_bytes),
    }
    .boxed()
}

/// The stream of [`events_of`].
struct EventReader<S> {
    /// `None` once the body has ended or anything failed: nothing more is read.
    chunks: Option<S>,
    /// What is left of the chunk being read after the last event handed on.
    rest: Bytes,
    parser: Parser,
}

impl<S, E> Stream for EventReader<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Item = Result<Sse, SseError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if !this.rest.is_empty() {
                match this.parser.feed(&this.rest) {
                    Ok((used, event)) => {
                        let _ = this.rest.split_to(used);
                        if let Some(event) = event {
                            return Poll::Ready(Some(Ok(event)));
                        }
                    }
                    Err(error) => {
                        this.chunks = None;
                        this.rest = Bytes::new();
                        return Poll::Ready(Some(Err(error)));
                    }
                }
            }
            let Some(chunks) = this.chunks.as_mut() else {
                return Poll::Ready(None);
            };
            match std::task::ready!(chunks.poll_next_unpin(cx)) {
                Some(Ok(chunk)) => this.rest = chunk,
                Some(Err(error)) => {
                    this.chunks = None;
                    let error = BodyError::Read(error.into());
                    return Poll::Ready(Some(Err(SseError::Body(Box::new(error)))));
                }
                // An event without its blank line is dropped, as the format says.
                None => this.chunks = None,
            }
        }
    }
}

/// The event being read and the line not yet ended, across chunks.
#[derive(Debug)]
struct Parser {
    max_event_bytes: usize,
    /// The bytes of the current event's lines so far, without their line ends.
    event_bytes: usize,
    /// A line begun in an earlier chunk.
    unfinished: Vec<u8>,
    /// A chunk ended on `\r`: a `\n` starting the next one ends nothing more.
    after_cr: bool,
    first_line: bool,
    current: Option<Sse>,
}

impl Parser {
    fn new(max_event_bytes: usize) -> Self {
        Self {
            max_event_bytes,
            event_bytes: 0,
            unfinished: Vec::new(),
            after_cr: false,
            first_line: true,
            current: None,
        }
    }

    /// Reads `bytes` up to the end of the first event they complete: how many bytes were
    /// read, and the event (`None` when all of `bytes` was read without one).
    fn feed(&mut self, bytes: &[u8]) -> Result<(usize, Option<Sse>), SseError> {
        let mut at = 0;
        if std::mem::take(&mut self.after_cr) && bytes.first() == Some(&b'\n') {
            at = 1;
        }
        while at < bytes.len() {
            let rest = &bytes[at..];
            let run = memchr::memchr2(b'\n', b'\r', rest).unwrap_or(rest.len());
            self.event_bytes += run;
            if self.event_bytes > self.max_event_bytes {
                let error = BodyError::TooLarge(self.max_event_bytes);
                return Err(SseError::Body(Box::new(error)));
            }
            let Some(&end) = rest.get(run) else {
                self.unfinished.extend_from_slice(rest);
                return Ok((bytes.len(), None));
            };
            at += run + 1;
            if run == 0 && self.unfinished.is_empty() {
                // A blank line (before the BOM is taken off, as the size was counted).
                self.event_bytes = 0;
            }
            if end == b'\r' {
                match bytes.get(at) {
                    Some(b'\n') => at += 1,
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
            let event = if self.unfinished.is_empty() {
                self.line(&rest[..run])?
            } else {
                let mut line = std::mem::take(&mut self.unfinished);
                line.extend_from_slice(&rest[..run]);
                self.gathered_line(line)?
            };
            if event.is_some() {
                return Ok((at, event));
            }
        }
        Ok((bytes.len(), None))
    }

    /// A line gathered from several chunks. The first data line of an event (a large result,
    /// mostly) becomes the event's data where it lies instead of being copied out of the
    /// buffer, which is not kept for the next line either: a server's large event is held
    /// once.
    fn gathered_line(&mut self, mut line: Vec<u8>) -> Result<Option<Sse>, SseError> {
        let has_data = self
            .current
            .as_ref()
            .is_some_and(|event| event.data.is_some());
        let start = if self.first_line && line.starts_with(BOM) {
            BOM.len()
        } else {
            0
        };
        let Some(value) = line[start..].strip_prefix(b"data:").filter(|_| !has_data) else {
            let event = self.line(&line);
            line.clear();
            self.unfinished = line;
            return event;
        };
        let value_start = start + 5 + usize::from(value.first() == Some(&b' '));
        self.first_line = false;
        line.drain(..value_start);
        let data = String::from_utf8(line).map_err(|e| SseError::Utf8Parse(e.utf8_error()))?;
        self.current.get_or_insert_default().data = Some(data);
        Ok(None)
    }

    /// One whole line: the finished event when it is blank.
    fn line(&mut self, mut line: &[u8]) -> Result<Option<Sse>, SseError> {
        if std::mem::take(&mut self.first_line) {
            line = line.strip_prefix(BOM).unwrap_or(line);
        }
        if line.is_empty() {
            return Ok(self.current.take());
        }
        let colon = memchr::memchr(b':', line).ok_or(SseError::InvalidLine)?;
        let (field, value) = (&line[..colon], &line[colon + 1..]);
        let value = value.strip_prefix(b" ").unwrap_or(value);
        match field {
            b"data" => {
                let value = text(value)?;
                let event = self.current.get_or_insert_default();
                match event.data.as_mut() {
                    Some(data) => {
                        data.push('\n');
                        data.push_str(value);
                    }
                    None => event.data = Some(value.to_owned()),
                }
            }
            b"event" => {
                let value = text(value)?.to_owned();
                let event = self.current.get_or_insert_default();
                set_once(&mut event.event, value, SseError::DuplicatedEventLine)?;
            }
            // An id with a NUL in it is ignored, as the format says.
            b"id" if value.contains(&0) => {}
            b"id" => {
                let value = text(value)?.to_owned();
                let event = self.current.get_or_insert_default();
                set_once(&mut event.id, value, SseError::DuplicatedIdLine)?;
            }
            b"retry" => {
                let retry = text(value)?
                    .trim_ascii()
                    .parse::<u64>()
                    .map_err(SseError::IntParse)?;
                let event = self.current.get_or_insert_default();
                set_once(&mut event.retry, retry, SseError::DuplicatedRetry)?;
            }
            // A comment.
            b"" => {}
            _ => return Err(SseError::InvalidLine),
        }
        Ok(None)
    }
}

fn text(value: &[u8]) -> Result<&str, SseError> {
    std::str::from_utf8(value).map_err(SseError::Utf8Parse)
}

/// A field an event may carry once.
fn set_once<T>(slot: &mut Option<T>, value: T, duplicated: SseError) -> Result<(), SseError> {
    if slot.is_some() {
        return Err(duplicated);
    }
    *slot = Some(value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::task::Waker;

    use proptest::prelude::*;
    use sse_stream::SseStream;

    use super::*;

    /// The size rule as it was first written, byte by byte, in front of `sse-stream`'s parser:
    /// the reference this reader must agree with.
    struct ReferenceLimit {
        max: usize,
        event: usize,
        line: usize,
        after_cr: bool,
    }

    impl ReferenceLimit {
        fn observe(&mut self, byte: u8) -> Result<(), BodyError> {
            let after_cr = std::mem::replace(&mut self.after_cr, byte == b'\r');
            match byte {
                b'\n' if after_cr => {}
                b'\r' | b'\n' => {
                    if self.line == 0 {
                        self.event = 0;
                    }
                    self.line = 0;
                }
                _ => {
                    self.line += 1;
                    self.event += 1;
                    if self.event > self.max {
                        return Err(BodyError::TooLarge(self.max));
                    }
                }
            }
            Ok(())
        }
    }

    /// What a stream yields, errors by their text, up to its end or its first error.
    fn drain(mut stream: BoxStream<'static, Result<Sse, SseError>>) -> Vec<Result<Sse, String>> {
        let mut cx = Context::from_waker(Waker::noop());
        let mut out = Vec::new();
        for _ in 0..10_000 {
            match stream.poll_next_unpin(&mut cx) {
                Poll::Ready(Some(Ok(event))) => out.push(Ok(event)),
                Poll::Ready(Some(Err(error))) => {
                    out.push(Err(error.to_string()));
                    return out;
                }
                Poll::Ready(None) => return out,
                Poll::Pending => panic!("the chunks are always ready"),
            }
        }
        panic!("more than 10,000 items");
    }

    /// `sse-stream`'s parser behind the byte-by-byte size rule, fed a byte at a time (so that
    /// nothing it reads is held back behind a later error of the same chunk).
    fn reference(body: &[u8], max: usize) -> Vec<Result<Sse, String>> {
        let mut limit = ReferenceLimit {
            max,
            event: 0,
            line: 0,
            after_cr: false,
        };
        let bytes: Vec<Result<Bytes, BodyError>> = body
            .iter()
            .map(|&byte| limit.observe(byte).map(|()| Bytes::from(vec![byte])))
            .collect();
        drain(SseStream::from_bytes_stream(futures::stream::iter(bytes)).boxed())
    }

    fn ours(body: &[u8], cuts: &[usize], max: usize) -> Vec<Result<Sse, String>> {
        let mut cuts: Vec<usize> = cuts.iter().map(|cut| cut % (body.len() + 1)).collect();
        cuts.sort_unstable();
        let (mut chunks, mut from) = (Vec::new(), 0);
        for cut in cuts.into_iter().chain([body.len()]) {
            chunks.push(Ok::<_, Infallible>(Bytes::copy_from_slice(
                &body[from..cut],
            )));
            from = cut;
        }
        drain(events_of(futures::stream::iter(chunks), max))
    }

    /// Pieces that make lines of every kind, valid or not.
    fn piece() -> impl Strategy<Value = &'static [u8]> {
        prop::sample::select(vec![
            &b"data"[..],
            b"event",
            b"id",
            b"retry",
            b"bogus",
            b":",
            b" ",
            b"x",
            b"42",
            b"\r",
            b"\n",
            b"\r\n",
            b"\0",
            b"\xEF\xBB\xBF",
            b"\xFF",
            b"data: {\"jsonrpc\":\"2.0\"}\n\n",
        ])
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4_000))]

        #[test]
        fn reads_as_sse_stream_does_however_the_body_is_cut(
            pieces in prop::collection::vec(piece(), 0..40),
            cuts in prop::collection::vec(any::<usize>(), 0..8),
            max in prop::sample::select(vec![0usize, 3, 10, 30, MAX_SSE_EVENT_BYTES]),
        ) {
            let body = pieces.concat();
            prop_assert_eq!(ours(&body, &cuts, max), reference(&body, max));
        }
    }

    #[test]
    fn events_end_at_blank_lines_of_any_kind_and_carry_their_fields() {
        let body = b"\xEF\xBB\xBFid: 1\r\nevent: message\rdata: {\"a\":\ndata: 1}\n\r\n: comment\nretry: 500\n\ndata: unfinished";
        let read = ours(body, &[3, 14, 15, 40], MAX_SSE_EVENT_BYTES);
        let first = Sse::default().id("1").event("message").data("{\"a\":\n1}");
        assert_eq!(read, vec![Ok(first), Ok(Sse::default().retry(500))]);
    }

    #[test]
    fn an_event_that_grows_too_large_ends_the_stream_across_lines_and_chunks() {
        // CRLF is not a blank line: the event goes on.
        let read = ours(b"data: 12\r\ndata: 3\n\ndata: 4\n\n", &[5, 10], 10);
        assert_eq!(
            read,
            vec![Err(
                "body error: an event exceeded the maximum size of 10 bytes".to_owned()
            )]
        );
        // Blank lines start the count again; an unending line is cut off too.
        let read = ours(b"data: 1234\n\ndata: 1234\r\rdata: 12345678", &[13, 30], 10);
        assert_eq!(read.len(), 3, "{read:?}");
        assert!(read[2].as_ref().is_err_and(|e| e.contains("maximum size")));
    }

    #[test]
    fn a_data_line_gathered_from_chunks_becomes_the_data_without_a_buffer_kept() {
        let mut parser = Parser::new(MAX_SSE_EVENT_BYTES);
        let long = "x".repeat(4096);
        let first = format!("data: {}", &long[..100]);
        assert!(matches!(parser.feed(first.as_bytes()), Ok((_, None))));
        assert!(matches!(
            parser.feed(&long.as_bytes()[100..]),
            Ok((_, None))
        ));
        assert!(matches!(parser.feed(b"\n"), Ok((1, None))));
        assert_eq!(
            parser.unfinished.capacity(),
            0,
            "the line's buffer is the data now"
        );
        let Ok((_, Some(event))) = parser.feed(b"data: tail\n\n") else {
            panic!("the event ends");
        };
        assert_eq!(event.data, Some(format!("{long}\ntail")));
    }

    #[test]
    fn a_failing_body_ends_the_stream_after_the_events_before_it() {
        let chunks = vec![
            Ok(Bytes::from_static(b"data: 1\n\n")),
            Err(std::io::Error::other("connection reset")),
            Ok(Bytes::from_static(b"data: 2\n\n")),
        ];
        let read = drain(events_of(futures::stream::iter(chunks), 100));
        assert_eq!(
            read,
            vec![
                Ok(Sse::default().data("1")),
                Err("body error: reading the event stream failed".to_owned()),
            ]
        );
    }
}
