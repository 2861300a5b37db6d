//! Tool stubs (SPEC §4): while a server is unavailable its tools stay listed with their real
//! names and schemas, and calling one answers with an MCP tool error that tells the model why
//! and when to try again, instead of the tool vanishing mid-conversation.

use crate::ids::ServerName;
use crate::redact::redact;
use crate::state::ConnectionState;
use crate::time::Timestamp;
use crate::tool::ToolResult;

/// The result of calling `tool` of `server` while the pair is in `state`.
pub fn unavailable_result(
    server: &ServerName,
    tool: &str,
    state: &ConnectionState,
    now: Timestamp,
) -> ToolResult {
    ToolResult::error_text(unavailable_message(server, tool, state, now))
}

/// The text of [`unavailable_result`]: one message per state.
pub fn unavailable_message(
    server: &ServerName,
    tool: &str,
    state: &ConnectionState,
    now: Timestamp,
) -> String {
    let head =
        format!("The tool \"{tool}\" of the \"{server}\" server is temporarily unavailable:");
    format!("{head} {}", unavailable_reason(server, state, now))
}

/// Why the pair is unavailable and when to retry, as a sentence or two (the tail of every
/// stub text, and of the errors other MCP requests get while the server is down).
pub fn unavailable_reason(server: &ServerName, state: &ConnectionState, now: Timestamp) -> String {
    match state {
        ConnectionState::Connecting => {
            "Tether is connecting to the server. Retry in a few seconds.".to_owned()
        }
        ConnectionState::Reconnecting { retry_at } => match retry_at {
            Some(at) if *at > now => format!(
                "Tether is reconnecting to the server. Retry after {at} (in about {}).",
                in_about(now, *at)
            ),
            _ => "Tether is reconnecting to the server. Retry in a few seconds.".to_owned(),
        },
        ConnectionState::CircuitOpen { until } => format!(
            "the server has been failing, so Tether paused connection attempts until {until} \
             (in about {}) to let it recover. Retry after that time.",
            in_about(now, *until)
        ),
        ConnectionState::NeedsAuthorization {
            authorization_url,
            scope,
        } => {
            let what = match scope {
                Some(scope) => format!(
                    "the user must authorize wider access to \"{server}\" (it asks for the \
                     scope \"{}\")",
                    redact(scope)
                ),
                None => format!("the user must authorize access to \"{server}\" again"),
            };
            match authorization_url {
                Some(url) => format!(
                    "{what}. Ask the user to open this link and approve access, then retry: {url}"
                ),
                None => format!(
                    "{what}. Ask the user to reconnect \"{server}\" in the application's \
                     settings, then retry."
                ),
            }
        }
        ConnectionState::Failed {
            retry_at,
            last_error,
        } => format!(
            "the last connection attempt failed ({}). The next automatic attempt is after \
             {retry_at} (in about {}).",
            redact(last_error),
            in_about(now, *retry_at)
        ),
        ConnectionState::Disconnected => "the server is not connected. Retry in a few seconds or \
                                          ask the user to reconnect it."
            .to_owned(),
        ConnectionState::Connected => {
            "the server did not answer. Retry in a few seconds.".to_owned()
        }
    }
}

fn in_about(now: Timestamp, at: Timestamp) -> String {
    let secs = now.until(at).as_secs().max(1);
    if secs < 120 {
        format!("{secs} s")
    } else {
        format!("{} min", secs.div_ceil(60))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn now() -> Timestamp {
        Timestamp::from_millis(1_700_000_000_000)
    }

    #[test]
    fn each_state_has_its_own_message_with_reason_and_time() {
        let server = ServerName::new("github");
        let states = [
            ConnectionState::Connecting,
            ConnectionState::Reconnecting {
                retry_at: Some(now() + Duration::from_secs(12)),
            },
            ConnectionState::CircuitOpen {
                until: now() + Duration::from_secs(300),
            },
            ConnectionState::NeedsAuthorization {
                authorization_url: Some("https://tether.example/authorize/abc".into()),
                scope: None,
            },
            ConnectionState::Failed {
                retry_at: now() + Duration::from_secs(600),
                last_error: "connection refused".into(),
            },
            ConnectionState::Disconnected,
        ];
        let messages: Vec<String> = states
            .iter()
            .map(|s| {
                let r = unavailable_result(&server, "search", s, now());
                assert!(r.is_error);
                r.text()
            })
            .collect();
        for m in &messages {
            assert!(m.contains("\"search\"") && m.contains("\"github\""), "{m}");
        }
        let unique: std::collections::HashSet<_> = messages.iter().collect();
        assert_eq!(unique.len(), messages.len(), "one message per state");
        assert!(
            messages[1].contains("reconnecting") && messages[1].contains("2023-11-14T22:13:32Z")
        );
        assert!(messages[1].contains("12 s"));
        assert!(messages[2].contains("paused") && messages[2].contains("2023-11-14T22:18:20Z"));
        assert!(messages[3].contains("https://tether.example/authorize/abc"));
        assert!(messages[4].contains("connection refused") && messages[4].contains("10 min"));
    }

    #[test]
    fn a_step_up_names_the_wider_scope() {
        let state = ConnectionState::NeedsAuthorization {
            authorization_url: Some("https://tether.example/oauth/begin/xyz".into()),
            scope: Some("repo admin:org".into()),
        };
        let text = unavailable_message(&ServerName::new("github"), "t", &state, now());
        assert!(text.contains("wider access"), "{text}");
        assert!(text.contains("\"repo admin:org\""), "{text}");
        assert!(
            text.contains("https://tether.example/oauth/begin/xyz"),
            "{text}"
        );
    }

    #[test]
    fn failed_messages_never_carry_credentials() {
        let state = ConnectionState::Failed {
            retry_at: now(),
            last_error: "token endpoint said invalid_client for client_secret=s3cr3t".into(),
        };
        let text = unavailable_message(&ServerName::new("x"), "t", &state, now());
        assert!(!text.contains("s3cr3t"), "{text}");
        assert!(text.contains("invalid_client"));
    }
}
