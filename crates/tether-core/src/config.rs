//! Every number the core's rules use, with the documented defaults, read from TOML.
//!
//! Durations are written the human way (`"500ms"`, `"3m"`, `"30s"`). Unknown keys are refused so
//! that a typo in an operator's file is an error at start-up rather than a silently ignored limit.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ids::{Origin, ServerName};

/// The core's configuration: reconnection, breakers, admission limits and backoff.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct CoreConfig {
    pub reconnect: ReconnectConfig,
    pub breaker: BreakerConfig,
    pub limits: AdmissionConfig,
    pub backoff: BackoffConfig,
}

/// Reconnect-on-login and the tracker (SPEC §2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReconnectConfig {
    /// An "active" (reconnecting) entry older than this no longer counts.
    #[serde(with = "humantime_serde")]
    pub active_timeout: Duration,
    /// The i-th eligible server of one user starts after i × stagger.
    #[serde(with = "humantime_serde")]
    pub stagger: Duration,
    /// Failed cooldowns by attempt count; the last one repeats (5, 10, 20, 30 min).
    #[serde(with = "duration_list")]
    pub cooldowns: Vec<Duration>,
    /// Connect timeout for HTTP servers that do not set `init_timeout`.
    #[serde(with = "humantime_serde")]
    pub default_init_timeout: Duration,
    /// Connect timeout for stdio servers that do not set `init_timeout`: longer, because a
    /// first start may download the server's package (`npx`, `uvx`).
    #[serde(with = "humantime_serde")]
    pub stdio_init_timeout: Duration,
    /// Also reconnect servers that need no OAuth on login (LibreChat only does OAuth servers).
    pub include_non_oauth: bool,
    /// How often one attempt waits out a 429/503 `Retry-After` before it counts as failed.
    pub rate_limited_retries: u32,
    /// The longest `Retry-After` honoured; longer values are clamped so a server cannot park a
    /// pair forever.
    #[serde(with = "humantime_serde")]
    pub max_retry_after: Duration,
    /// Attempts of the in-session reconnect loop (after a live session broke) before the pair is
    /// recorded as failed and left to the cooldown.
    pub in_session_attempts: u32,
    /// A live upstream session (a stdio child included) unused for this long is closed; the
    /// next call reconnects on demand.
    #[serde(with = "humantime_serde")]
    pub idle_session_timeout: Duration,
}

impl Default for ReconnectConfig {
    fn default() -> Self {
        Self {
            active_timeout: Duration::from_secs(180),
            stagger: Duration::from_millis(500),
            cooldowns: [5, 10, 20, 30]
                .into_iter()
                .map(|m| Duration::from_secs(m * 60))
                .collect(),
            default_init_timeout: Duration::from_secs(10),
            stdio_init_timeout: Duration::from_secs(60),
            include_non_oauth: false,
            rate_limited_retries: 3,
            max_retry_after: Duration::from_secs(300),
            in_session_attempts: 3,
            idle_session_timeout: Duration::from_secs(30 * 60),
        }
    }
}

/// Circuit breakers, per (user, server) and per origin (SPEC §3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerConfig {
    /// Consecutive failures that open a closed breaker.
    pub failure_threshold: u32,
    /// The first open period; each re-open without a success in between doubles it.
    #[serde(with = "humantime_serde")]
    pub open_base: Duration,
    /// The longest open period.
    #[serde(with = "humantime_serde")]
    pub open_cap: Duration,
    /// How long a half-open probe may run before another caller may probe instead (a replica
    /// that died mid-probe must not hold the breaker half-open forever).
    #[serde(with = "humantime_serde")]
    pub probe_timeout: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            open_base: Duration::from_secs(30),
            open_cap: Duration::from_secs(300),
            probe_timeout: Duration::from_secs(60),
        }
    }
}

/// Admission of connection attempts per upstream origin, whatever the number of users.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdmissionConfig {
    /// Connection attempts in flight per origin.
    pub max_in_flight: u32,
    /// Attempts started per second per origin; `0` means no rate limit.
    pub per_second: u32,
    /// Attempts that may start back to back before the rate applies (defaults to `per_second`).
    pub burst: Option<u32>,
    /// How long an attempt waits in the admission queue before it gives up.
    #[serde(with = "humantime_serde")]
    pub queue_timeout: Duration,
    /// How long an admission slot is held at most when its holder vanishes (shared state).
    #[serde(with = "humantime_serde")]
    pub lease_ttl: Duration,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        Self {
            max_in_flight: 8,
            per_second: 20,
            burst: None,
            queue_timeout: Duration::from_secs(120),
            lease_ttl: Duration::from_secs(120),
        }
    }
}

/// Exponential backoff with full jitter for in-session reconnects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackoffConfig {
    #[serde(with = "humantime_serde")]
    pub base: Duration,
    #[serde(with = "humantime_serde")]
    pub cap: Duration,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(30),
        }
    }
}

/// A configuration that cannot work.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("invalid configuration: {0}")]
    Invalid(String),
    #[error("could not parse configuration: {0}")]
    Parse(String),
}

impl CoreConfig {
    /// Parses a TOML document holding (only) the core's tables and checks it.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Refuses numbers that would disable a protection by accident (zero limits, empty lists).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: &str| Err(ConfigError::Invalid(m.to_owned()));
        if self.reconnect.cooldowns.is_empty() {
            return invalid("reconnect.cooldowns must list at least one duration");
        }
        if self.reconnect.active_timeout.is_zero() {
            return invalid("reconnect.active_timeout must be positive");
        }
        if self.reconnect.stdio_init_timeout.is_zero() {
            return invalid("reconnect.stdio_init_timeout must be positive");
        }
        if self.reconnect.default_init_timeout.is_zero() {
            return invalid("reconnect.default_init_timeout must be positive");
        }
        if self.breaker.failure_threshold == 0 {
            return invalid("breaker.failure_threshold must be at least 1");
        }
        if self.breaker.open_base.is_zero() || self.breaker.open_base > self.breaker.open_cap {
            return invalid("breaker.open_base must be positive and at most breaker.open_cap");
        }
        if self.limits.max_in_flight == 0 {
            return invalid("limits.max_in_flight must be at least 1");
        }
        if self.limits.burst == Some(0) {
            return invalid("limits.burst must be at least 1");
        }
        if self.backoff.base.is_zero() || self.backoff.base > self.backoff.cap {
            return invalid("backoff.base must be positive and at most backoff.cap");
        }
        Ok(())
    }
}

/// How Tether reaches an upstream MCP server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum TransportConfig {
    /// MCP Streamable HTTP (2025-03-26 and later).
    StreamableHttp { url: String },
    /// The legacy HTTP+SSE transport (2024-11-05).
    Sse { url: String },
    /// A child process speaking MCP on stdin/stdout.
    Stdio {
        command: String,
        #[serde(default)]
        args: Vec<String>,
    },
}

/// One upstream MCP server (`[[servers]]`), as far as the core needs it.
///
/// In TOML either `url` (with an optional `transport = "streamable-http" | "sse"`) or `command`
/// (with `args`) is given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawServerConfig", into = "RawServerConfig")]
pub struct ServerConfig {
    pub name: ServerName,
    pub transport: TransportConfig,
    /// Whether the server is behind OAuth (and so a candidate for reconnect-on-login).
    pub oauth: bool,
    /// Connect timeout; the reconnect default when absent.
    pub init_timeout: Option<Duration>,
}

impl ServerConfig {
    /// The origin whose limits and transport breaker this server's attempts count against.
    pub fn origin(&self) -> Origin {
        match &self.transport {
            TransportConfig::StreamableHttp { url } | TransportConfig::Sse { url } => {
                Origin::from_url(url).unwrap_or_else(|| Origin::stdio(&self.name))
            }
            TransportConfig::Stdio { .. } => Origin::stdio(&self.name),
        }
    }

    /// Its own `init_timeout`, else the default for its transport.
    pub fn init_timeout_in(&self, reconnect: &ReconnectConfig) -> Duration {
        self.init_timeout.unwrap_or(match self.transport {
            TransportConfig::Stdio { .. } => reconnect.stdio_init_timeout,
            TransportConfig::StreamableHttp { .. } | TransportConfig::Sse { .. } => {
                reconnect.default_init_timeout
            }
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServerConfig {
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    transport: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    command: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    args: Vec<String>,
    #[serde(default)]
    oauth: bool,
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    init_timeout: Option<Duration>,
}

/// Server names end up in tool names (`{server}__{tool}`) and URLs, so they are kept to a
/// conservative alphabet.
fn valid_server_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl TryFrom<RawServerConfig> for ServerConfig {
    type Error = ConfigError;

    fn try_from(raw: RawServerConfig) -> Result<Self, ConfigError> {
        let invalid = |m: String| ConfigError::Invalid(m);
        if !valid_server_name(&raw.name) {
            return Err(invalid(format!(
                "server name {:?} must be 1–64 characters of A–Z, a–z, 0–9, '-' or '_'",
                raw.name
            )));
        }
        let name = raw.name;
        let transport = match (raw.url, raw.command, raw.transport.as_deref()) {
            (Some(url), None, None | Some("streamable-http")) => {
                check_url(&name, &url)?;
                TransportConfig::StreamableHttp { url }
            }
            (Some(url), None, Some("sse")) => {
                check_url(&name, &url)?;
                TransportConfig::Sse { url }
            }
            (None, Some(command), None | Some("stdio")) => {
                if command.trim().is_empty() {
                    return Err(invalid(format!("server {name}: command is empty")));
                }
                TransportConfig::Stdio {
                    command,
                    args: raw.args,
                }
            }
            (Some(_), Some(_), _) => {
                return Err(invalid(format!(
                    "server {name}: give either url or command, not both"
                )));
            }
            (None, None, _) => {
                return Err(invalid(format!("server {name}: give a url or a command")));
            }
            (_, _, Some(other)) => {
                return Err(invalid(format!(
                    "server {name}: transport {other:?} does not fit; use streamable-http or sse with url, stdio with command"
                )));
            }
        };
        if raw.init_timeout == Some(Duration::ZERO) {
            return Err(invalid(format!(
                "server {name}: init_timeout must be positive"
            )));
        }
        Ok(Self {
            name: ServerName::from(name),
            transport,
            oauth: raw.oauth,
            init_timeout: raw.init_timeout,
        })
    }
}

fn check_url(name: &str, url: &str) -> Result<(), ConfigError> {
    if Origin::from_url(url).is_none() {
        return Err(ConfigError::Invalid(format!(
            "server {name}: url {url:?} is not an absolute http(s) URL"
        )));
    }
    Ok(())
}

impl From<ServerConfig> for RawServerConfig {
    fn from(s: ServerConfig) -> Self {
        let (url, transport, command, args) = match s.transport {
            TransportConfig::StreamableHttp { url } => (Some(url), None, None, Vec::new()),
            TransportConfig::Sse { url } => (Some(url), Some("sse".to_owned()), None, Vec::new()),
            TransportConfig::Stdio { command, args } => (None, None, Some(command), args),
        };
        Self {
            name: s.name.to_string(),
            url,
            transport,
            command,
            args,
            oauth: s.oauth,
            init_timeout: s.init_timeout,
        }
    }
}

/// `["5m", "10m"]` ⇄ `Vec<Duration>` (humantime-serde has no list form).
mod duration_list {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(v: &[Duration], s: S) -> Result<S::Ok, S::Error> {
        let items: Vec<humantime_serde::Serde<&Duration>> = v.iter().map(Into::into).collect();
        items.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Duration>, D::Error> {
        let items: Vec<humantime_serde::Serde<Duration>> = Vec::deserialize(d)?;
        Ok(items
            .into_iter()
            .map(humantime_serde::Serde::into_inner)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_document_gives_documented_defaults() {
        let c = CoreConfig::from_toml("").expect("defaults are valid");
        assert_eq!(c.reconnect.active_timeout, Duration::from_secs(180));
        assert_eq!(c.reconnect.stagger, Duration::from_millis(500));
        let minutes: Vec<u64> = c
            .reconnect
            .cooldowns
            .iter()
            .map(|d| d.as_secs() / 60)
            .collect();
        assert_eq!(minutes, [5, 10, 20, 30]);
        assert_eq!(c.reconnect.default_init_timeout, Duration::from_secs(10));
        assert_eq!(c.breaker.failure_threshold, 5);
        assert_eq!(c.breaker.open_base, Duration::from_secs(30));
        assert_eq!(c.breaker.open_cap, Duration::from_secs(300));
        assert_eq!(c.limits.max_in_flight, 8);
        assert_eq!(c.backoff.base, Duration::from_secs(1));
        assert_eq!(c.backoff.cap, Duration::from_secs(30));
    }

    #[test]
    fn human_durations_and_partial_tables_are_read() {
        let c = CoreConfig::from_toml(
            r#"
            [reconnect]
            stagger = "250ms"
            cooldowns = ["1m", "2m"]
            [limits]
            max_in_flight = 3
            per_second = 0
            "#,
        )
        .expect("valid");
        assert_eq!(c.reconnect.stagger, Duration::from_millis(250));
        assert_eq!(c.reconnect.cooldowns.len(), 2);
        assert_eq!(c.reconnect.active_timeout, Duration::from_secs(180));
        assert_eq!(c.limits.max_in_flight, 3);
        assert_eq!(c.limits.per_second, 0);
    }

    #[test]
    fn bad_documents_get_clear_errors() {
        let cases = [
            ("[limits]\nmax_in_flight = 0", "max_in_flight"),
            ("[breaker]\nfailure_threshold = 0", "failure_threshold"),
            ("[reconnect]\ncooldowns = []", "cooldowns"),
            ("[reconnect]\nstagger = \"soon\"", "stagger"),
            ("[limits]\nmax_in_fligth = 3", "max_in_fligth"),
            ("[backoff]\nbase = \"1m\"\ncap = \"1s\"", "backoff.base"),
        ];
        for (doc, needle) in cases {
            let err = CoreConfig::from_toml(doc).expect_err(doc).to_string();
            assert!(err.contains(needle), "{doc:?} gave {err:?}");
        }
    }

    #[derive(Debug, Deserialize)]
    struct Servers {
        servers: Vec<ServerConfig>,
    }

    #[test]
    fn servers_are_read_with_url_or_command() {
        let s: Servers = toml::from_str(
            r#"
            [[servers]]
            name = "github"
            url = "https://api.example.com/mcp"
            oauth = true
            init_timeout = "5s"
            [[servers]]
            name = "legacy"
            url = "http://127.0.0.1:9000/sse"
            transport = "sse"
            [[servers]]
            name = "everything"
            command = "npx"
            args = ["-y", "@modelcontextprotocol/server-everything"]
            "#,
        )
        .expect("valid");
        assert_eq!(
            s.servers[0].transport,
            TransportConfig::StreamableHttp {
                url: "https://api.example.com/mcp".into()
            }
        );
        assert!(s.servers[0].oauth);
        assert_eq!(s.servers[0].init_timeout, Some(Duration::from_secs(5)));
        assert_eq!(
            s.servers[0].origin().as_str(),
            "https://api.example.com:443"
        );
        assert!(matches!(
            s.servers[1].transport,
            TransportConfig::Sse { .. }
        ));
        assert_eq!(s.servers[2].origin().as_str(), "stdio://everything");
    }

    #[test]
    fn bad_servers_are_refused_with_the_reason() {
        let cases = [
            ("name = \"a b\"\nurl = \"https://x\"", "server name"),
            ("name = \"a\"", "give a url or a command"),
            (
                "name = \"a\"\nurl = \"https://x\"\ncommand = \"c\"",
                "not both",
            ),
            ("name = \"a\"\nurl = \"x.example\"", "absolute http(s) URL"),
            (
                "name = \"a\"\ncommand = \"c\"\ntransport = \"sse\"",
                "does not fit",
            ),
            (
                "name = \"a\"\nurl = \"https://x\"\ninit_timeout = \"0s\"",
                "positive",
            ),
        ];
        for (body, needle) in cases {
            let doc = format!("[[servers]]\n{body}");
            let err = toml::from_str::<Servers>(&doc).expect_err(&doc).to_string();
            assert!(err.contains(needle), "{doc:?} gave {err:?}");
        }
    }
}
