//! How rmcp resumes a Streamable HTTP event stream that broke off: the retry policy we give
//! its client.
//!
//! rmcp 3.11 already implements resumption (SEP-1699) in its worker's `SseAutoReconnectStream`:
//! it remembers the last event `id` and the server's `retry` field, and reconnects with
//! `GET` + `Last-Event-ID` — both for POST response streams (once the server has sent an event
//! id) and for the standalone GET stream. When the stream *ends* cleanly it waits the server's
//! `retry` delay (or our first delay) before reconnecting; when it *fails* (reset connection)
//! it reconnects at once; after a failed reconnect it waits the longer of our delay and the
//! server's `retry`.
//!
//! What rmcp leaves to the policy is the number of reconnects and our delays. Its default has
//! no limit on attempts, so a dead server would keep a session's stream task retrying forever;
//! [`ResumePolicy`] stops after a fixed number, with doubling delays under a cap. A request
//! whose stream cannot be resumed fails (its per-request timeout bounds it in any case).
//!
//! It must not decide anything else (reconnecting the session is the core's job).

use std::time::Duration;

use rmcp::transport::common::client_side_sse::SseRetryPolicy;

/// The longest wait between two reconnects of one stream (ours; a server's `retry` field can
/// ask for more, and rmcp honours it).
pub(crate) const MAX_RESUME_DELAY: Duration = Duration::from_secs(30);

/// At most `attempts` reconnects after failures, waiting `delay`, then doubling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ResumePolicy {
    pub(crate) attempts: usize,
    pub(crate) delay: Duration,
}

impl SseRetryPolicy for ResumePolicy {
    /// `failed` is how many reconnects of this break failed so far (0 when the stream has just
    /// ended); `None` gives up.
    fn retry(&self, failed: usize) -> Option<Duration> {
        if failed >= self.attempts {
            return None;
        }
        let factor = 2u32.saturating_pow(u32::try_from(failed).unwrap_or(u32::MAX));
        Some(self.delay.saturating_mul(factor).min(MAX_RESUME_DELAY))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_are_bounded_and_delays_double_under_the_cap() {
        let policy = ResumePolicy {
            attempts: 3,
            delay: Duration::from_secs(1),
        };
        let delays: Vec<Option<Duration>> = (0..4).map(|n| policy.retry(n)).collect();
        assert_eq!(
            delays,
            [
                Some(Duration::from_secs(1)),
                Some(Duration::from_secs(2)),
                Some(Duration::from_secs(4)),
                None
            ]
        );
        let long = ResumePolicy {
            attempts: usize::MAX,
            delay: Duration::from_secs(20),
        };
        assert_eq!(long.retry(1000), Some(MAX_RESUME_DELAY));
        let off = ResumePolicy {
            attempts: 0,
            delay: Duration::from_secs(1),
        };
        assert_eq!(off.retry(0), None);
    }
}
