//! Prometheus metrics of the gateway, rendered on `GET /metrics`.
//!
//! Each gateway has its own recorder (not the process-global one), so that several gateways —
//! in tests, or embedded — never mix their numbers. The manager's counters are copied in at
//! scrape time from [`tether_core::ManagerStats`]; tool-call latency is recorded as calls end.
//!
//! Labels are server names and small fixed vocabularies only: never a user id or a token (a
//! label per user would also make the series count grow with the user base).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use metrics::{Counter, Histogram};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};
use tether_core::{ManagerStats, ServerName};

pub const TOOL_CALL_DURATION: &str = "tether_tool_call_duration_seconds";
pub const TOOL_CALLS: &str = "tether_tool_calls_total";
pub const SESSIONS: &str = "tether_sessions";
pub const RECONNECT_ATTEMPTS: &str = "tether_reconnect_attempts_total";
pub const BREAKER_OPENS: &str = "tether_breaker_opens_total";
pub const ADMISSIONS: &str = "tether_admissions_total";
pub const ADMISSION_WAITS: &str = "tether_admission_waits_total";
pub const ADMISSION_TIMEOUTS: &str = "tether_admission_timeouts_total";
pub const RATE_LIMITED_WAITS: &str = "tether_rate_limited_waits_total";
pub const KNOWN_USERS: &str = "tether_known_users";
pub const MCP_SESSIONS: &str = "tether_mcp_sessions";

/// Latency buckets for tool calls: from a fast local tool to the connector's 60 s call limit.
const TOOL_CALL_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// How a tool call ended, as a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallOutcome {
    /// The tool answered (successfully or with its own `isError`).
    Ok,
    /// An error result (stub, upstream failure, tool error).
    Error,
}

impl CallOutcome {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Error => "error",
        }
    }
}

/// The two series one (server, outcome) of tool calls records into.
#[derive(Clone)]
struct CallSeries {
    duration: Histogram,
    calls: Counter,
}

#[derive(Clone)]
pub struct GatewayMetrics {
    recorder: Arc<PrometheusRecorder>,
    handle: PrometheusHandle,
    /// Registered once per (server, outcome): looking a series up by its labels costs two
    /// label allocations and a registry lookup per series, on every call. Bounded by the
    /// configured servers.
    call_series: Arc<RwLock<HashMap<(ServerName, CallOutcome), CallSeries>>>,
}

impl fmt::Debug for GatewayMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatewayMetrics").finish_non_exhaustive()
    }
}

impl Default for GatewayMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl GatewayMetrics {
    pub fn new() -> Self {
        let builder = PrometheusBuilder::new();
        // Only fails for an empty bucket list, which the constant is not; fall back to the
        // exporter's summary rendering rather than panicking if that ever changes.
        let builder = match builder.set_buckets_for_metric(
            Matcher::Full(TOOL_CALL_DURATION.to_owned()),
            TOOL_CALL_BUCKETS,
        ) {
            Ok(b) => b,
            Err(error) => {
                tracing::warn!(%error, "tool-call histogram buckets refused");
                PrometheusBuilder::new()
            }
        };
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        let this = Self {
            recorder: Arc::new(recorder),
            handle,
            call_series: Arc::default(),
        };
        this.describe();
        this
    }

    fn with<T>(&self, f: impl FnOnce() -> T) -> T {
        metrics::with_local_recorder(self.recorder.as_ref(), f)
    }

    fn describe(&self) {
        self.with(|| {
            metrics::describe_histogram!(
                TOOL_CALL_DURATION,
                metrics::Unit::Seconds,
                "Duration of tools/call through the gateway, by server and outcome."
            );
            metrics::describe_counter!(TOOL_CALLS, "tools/call handled, by server and outcome.");
            metrics::describe_gauge!(
                SESSIONS,
                "Upstream sessions by state (this replica's view)."
            );
            metrics::describe_counter!(RECONNECT_ATTEMPTS, "Connection attempts by outcome.");
            metrics::describe_counter!(BREAKER_OPENS, "Circuit breakers opened.");
            metrics::describe_counter!(ADMISSIONS, "Connection attempts admitted.");
            metrics::describe_counter!(
                ADMISSION_WAITS,
                "Connection attempts that queued for admission."
            );
            metrics::describe_counter!(
                ADMISSION_TIMEOUTS,
                "Connection attempts that gave up queueing."
            );
            metrics::describe_counter!(RATE_LIMITED_WAITS, "Waits caused by upstream 429/503.");
            metrics::describe_gauge!(
                KNOWN_USERS,
                "Distinct users seen by this replica (bounded)."
            );
            metrics::describe_gauge!(MCP_SESSIONS, "Open MCP sessions on /mcp.");
        });
    }

    /// One finished `tools/call`.
    pub fn tool_call(&self, server: &ServerName, outcome: CallOutcome, elapsed: Duration) {
        let series = self.call_series(server, outcome);
        series.duration.record(elapsed.as_secs_f64());
        series.calls.increment(1);
    }

    fn call_series(&self, server: &ServerName, outcome: CallOutcome) -> CallSeries {
        let key = (server.clone(), outcome);
        if let Some(series) = self
            .call_series
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return series.clone();
        }
        let label = server.to_string();
        let series = self.with(|| CallSeries {
            duration: metrics::histogram!(TOOL_CALL_DURATION, "server" => label.clone(), "outcome" => outcome.as_str()),
            calls: metrics::counter!(TOOL_CALLS, "server" => label, "outcome" => outcome.as_str()),
        });
        self.call_series
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key)
            .or_insert(series)
            .clone()
    }

    /// The Prometheus text, with the manager's numbers as of now.
    pub fn render(&self, stats: &ManagerStats, known_users: usize, mcp_sessions: usize) -> String {
        let gauge = |v: usize| u32::try_from(v).map_or(f64::from(u32::MAX), f64::from);
        self.with(|| {
            metrics::gauge!(SESSIONS, "state" => "connected").set(gauge(stats.connected_sessions));
            metrics::gauge!(SESSIONS, "state" => "reconnecting").set(gauge(stats.tracker.active));
            metrics::gauge!(SESSIONS, "state" => "failed").set(gauge(stats.tracker.failed));
            for (outcome, value) in [
                ("started", stats.attempts_started),
                ("connected", stats.attempts_connected),
                ("failed", stats.attempts_failed),
                ("needs_authorization", stats.attempts_needs_authorization),
                ("circuit_open", stats.attempts_circuit_open),
            ] {
                metrics::counter!(RECONNECT_ATTEMPTS, "outcome" => outcome).absolute(value);
            }
            metrics::counter!(BREAKER_OPENS).absolute(stats.breaker_opens);
            metrics::counter!(ADMISSIONS).absolute(stats.admissions);
            metrics::counter!(ADMISSION_WAITS).absolute(stats.admission_waits);
            metrics::counter!(ADMISSION_TIMEOUTS).absolute(stats.admission_timeouts);
            metrics::counter!(RATE_LIMITED_WAITS).absolute(stats.rate_limited_waits);
            metrics::gauge!(KNOWN_USERS).set(gauge(known_users));
            metrics::gauge!(MCP_SESSIONS).set(gauge(mcp_sessions));
        });
        self.handle.render()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_names_every_metric() {
        let m = GatewayMetrics::new();
        m.tool_call(
            &ServerName::new("everything"),
            CallOutcome::Ok,
            Duration::from_millis(12),
        );
        let text = m.render(&ManagerStats::default(), 3, 1);
        for name in [
            TOOL_CALL_DURATION,
            SESSIONS,
            RECONNECT_ATTEMPTS,
            BREAKER_OPENS,
            ADMISSION_WAITS,
            KNOWN_USERS,
        ] {
            assert!(text.contains(name), "{name} missing in\n{text}");
        }
        assert!(
            text.contains("tether_tool_call_duration_seconds_bucket"),
            "{text}"
        );
        assert!(text.contains(r#"server="everything""#), "{text}");
    }

    #[test]
    fn every_call_is_counted_in_its_own_series() {
        let m = GatewayMetrics::new();
        let (a, b) = (ServerName::new("a"), ServerName::new("b"));
        for _ in 0..3 {
            m.tool_call(&a, CallOutcome::Ok, Duration::from_millis(1));
        }
        m.tool_call(&a, CallOutcome::Error, Duration::from_millis(1));
        m.tool_call(&b, CallOutcome::Ok, Duration::from_secs(2));
        let text = m.render(&ManagerStats::default(), 0, 0);
        for (series, expected) in [
            (r#"tether_tool_calls_total{server="a",outcome="ok"}"#, "3"),
            (
                r#"tether_tool_calls_total{server="a",outcome="error"}"#,
                "1",
            ),
            (r#"tether_tool_calls_total{server="b",outcome="ok"}"#, "1"),
            (
                r#"tether_tool_call_duration_seconds_count{server="a",outcome="ok"}"#,
                "3",
            ),
            (
                r#"tether_tool_call_duration_seconds_bucket{server="b",outcome="ok",le="1"}"#,
                "0",
            ),
        ] {
            let value = text
                .lines()
                .find_map(|line| line.strip_prefix(series))
                .map(str::trim);
            assert_eq!(value, Some(expected), "{series} in\n{text}");
        }
    }
}
