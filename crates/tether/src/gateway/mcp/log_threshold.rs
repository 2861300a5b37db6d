//! Which of its servers' log messages an agent session hears.
//!
//! `logging/setLevel` is per agent session in MCP, but an upstream session belongs to the
//! (user, server) pair and is shared by all of that user's agent sessions. So the upstream is
//! asked for the most verbose level any of the user's sessions set, and each session drops the
//! messages below its own level before they reach its agent. A session that never set a level
//! hears everything its servers send (the servers' own default).
//!
//! The upstream level is recomputed whenever a session sets one; a session that ends does not
//! make it less verbose again (that only costs messages that are filtered out here).

#![allow(
    deprecated,
    reason = "logging (SEP-2577) is still spoken by agents and servers of earlier revisions"
)]

use rmcp::model::LoggingLevel;
use serde::Deserialize as _;
use serde_json::Value;

/// The level's rank, `Debug` lowest (RFC 5424's order, as the specification gives it).
pub(crate) fn severity(level: LoggingLevel) -> u8 {
    match level {
        LoggingLevel::Debug => 0,
        LoggingLevel::Info => 1,
        LoggingLevel::Notice => 2,
        LoggingLevel::Warning => 3,
        LoggingLevel::Error => 4,
        LoggingLevel::Critical => 5,
        LoggingLevel::Alert => 6,
        LoggingLevel::Emergency => 7,
    }
}

/// The more verbose of two levels.
pub(crate) fn most_verbose(a: LoggingLevel, b: LoggingLevel) -> LoggingLevel {
    if severity(b) < severity(a) { b } else { a }
}

/// Whether a `notifications/message` with `params` reaches a session whose agent set
/// `threshold`. A message whose level cannot be read is let through: the agent's parser
/// decides, as it would without Tether.
pub(crate) fn passes(threshold: Option<LoggingLevel>, params: Option<&Value>) -> bool {
    let Some(threshold) = threshold else {
        return true;
    };
    let level = params
        .and_then(|p| p.get("level"))
        .and_then(|level| LoggingLevel::deserialize(level).ok());
    level.is_none_or(|level| severity(level) >= severity(threshold))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_session_hears_its_level_and_above_only() {
        let warning = json!({"level": "warning", "data": "x"});
        let debug = json!({"level": "debug", "data": "x"});
        assert!(passes(None, Some(&debug)), "no level set: everything");
        assert!(passes(Some(LoggingLevel::Warning), Some(&warning)));
        assert!(!passes(Some(LoggingLevel::Error), Some(&warning)));
        assert!(!passes(Some(LoggingLevel::Info), Some(&debug)));
        assert!(passes(
            Some(LoggingLevel::Error),
            Some(&json!({"level": 7}))
        ));
    }

    #[test]
    fn the_upstream_gets_the_most_verbose_level() {
        assert!(matches!(
            most_verbose(LoggingLevel::Error, LoggingLevel::Debug),
            LoggingLevel::Debug
        ));
        assert!(matches!(
            most_verbose(LoggingLevel::Info, LoggingLevel::Alert),
            LoggingLevel::Info
        ));
    }
}
