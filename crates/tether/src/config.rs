//! The configuration file: where Tether listens, where it keeps data, how hosts authenticate,
//! the core's numbers, and the upstream servers.
//!
//! Secrets never sit in the file: it names the environment variables that hold them (the
//! encryption key is `TETHER_ENCRYPTION_KEY`), so `tether check` can print everything.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tether::gateway::GatewayConfig;
use tether::gateway::mcp::{ToolFilter, check_prefixes};
use tether_core::config::{AdmissionConfig, BackoffConfig, BreakerConfig, ReconnectConfig};
use tether_core::{CoreConfig, ServerConfig, ServerName};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TetherConfig {
    /// Where the gateway listens (overridden by `tether serve --listen`).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// How users' browsers reach Tether: the OAuth redirect URI is `{public_url}/oauth/callback`.
    /// Defaults to `http://{listen}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    #[serde(default)]
    pub storage: StorageConfig,
    #[serde(default)]
    pub state: StateConfig,
    #[serde(default)]
    pub oauth: OAuthSettings,
    /// Host authentication, `/mcp`, the operator page (required by `tether serve`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<GatewayConfig>,
    #[serde(default)]
    pub reconnect: ReconnectConfig,
    #[serde(default)]
    pub breaker: BreakerConfig,
    #[serde(default)]
    pub limits: AdmissionConfig,
    #[serde(default)]
    pub backoff: BackoffConfig,
    #[serde(default)]
    pub servers: Vec<ServerEntry>,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub catalog: CatalogConfig,
}

/// `[catalog]`: servers added while Tether runs, through `/v1/admin/servers` (admin
/// credential), kept in the storage and shared by every replica.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CatalogConfig {
    /// Whether the admin API may add servers.
    pub enabled: bool,
    /// Host names or IP literals (as written in URLs) a catalog server may name although they
    /// are loopback, private or plain http: internal MCP servers. Other URLs must be public
    /// https hosts.
    pub allowed_hosts: Vec<String>,
    /// How often a replica looks for catalog changes made on another replica.
    #[serde(with = "humantime_serde")]
    pub poll_interval: std::time::Duration,
    /// Whether users may add servers for themselves (`POST /v1/me/servers`).
    pub user_servers: bool,
    /// Servers one user may add.
    pub user_server_limit: usize,
    /// When not empty, the only origins (`https://host[:port]`) a user's server may be on.
    pub user_server_origins: Vec<String>,
    /// As `allowed_hosts`, for users' servers.
    pub user_allowed_hosts: Vec<String>,
}

impl Default for CatalogConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            allowed_hosts: Vec::new(),
            poll_interval: std::time::Duration::from_secs(1),
            user_servers: true,
            user_server_limit: 5,
            user_server_origins: Vec::new(),
            user_allowed_hosts: Vec::new(),
        }
    }
}

/// `[log]`: how the gateway's log lines look.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `text` (for people) or `json` (one object per line, for machines).
    pub format: LogFormat,
    /// Log a pseudonym of each user (a hash) instead of the host's user id.
    pub hash_users: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

/// `[storage]`: tokens, client registrations and tool lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    pub url: String,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            url: "sqlite://tether-data/tether.db".to_owned(),
        }
    }
}

/// `[state]`: what replicas share (tracker, breakers, admission). `memory` for one process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StateConfig {
    pub url: String,
    /// Prepended to every Redis key, one per deployment.
    pub prefix: String,
}

impl Default for StateConfig {
    fn default() -> Self {
        Self {
            url: "memory".to_owned(),
            prefix: "tether".to_owned(),
        }
    }
}

/// `[oauth]`: Tether as an OAuth client of the upstream servers' authorization servers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OAuthSettings {
    /// `client_name` in dynamic client registration.
    pub client_name: String,
    /// Tether's client ID metadata document URL, for servers that support them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_metadata_url: Option<String>,
    /// The host page the callback sends the browser to, with `server` and a single-use
    /// `completion_code` that the page confirms through `POST /v1/me/oauth/complete` with the
    /// user's JWT. Required when a server uses OAuth (unless `unverified_callback`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub return_url: Option<String>,
    /// A host page that starts an authorization for the logged-in user (`{server}` is replaced
    /// by the server's name): the link stubs give the model. Default: Tether's `/oauth/begin`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_url: Option<String>,
    /// Unsafe: the callback stores the tokens for the flow's user, whoever finished the flow.
    pub unverified_callback: bool,
    /// Flows a user may start per minute through `…/authorize` (0: unlimited).
    pub authorize_per_minute: u32,
    /// Allow authorization servers on private addresses (an in-house SSO). Link-local and
    /// metadata-service addresses stay refused.
    pub allow_private_addresses: bool,
    /// Refresh an access token before use once less than this (or a tenth of its lifetime)
    /// is left.
    #[serde(with = "humantime_serde")]
    pub refresh_ahead: Duration,
    /// How long a pair's access token, once read from the store for an upstream request, is
    /// used again without reading it (never once it is due for refresh; dropped on a 401, on
    /// every write of this replica and when its server is removed or changed). `0s`: read the
    /// store for every request.
    #[serde(with = "humantime_serde")]
    pub remember_tokens_for: Duration,
}

impl Default for OAuthSettings {
    fn default() -> Self {
        Self {
            client_name: "Tether".to_owned(),
            client_metadata_url: None,
            return_url: None,
            start_url: None,
            unverified_callback: false,
            authorize_per_minute: 10,
            allow_private_addresses: false,
            refresh_ahead: Duration::from_secs(60),
            remember_tokens_for: Duration::from_secs(5),
        }
    }
}

/// The longest `oauth.remember_tokens_for` accepted.
const MAX_REMEMBER_TOKENS_FOR: Duration = Duration::from_secs(60);

/// The OAuth client settings of one server.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerOAuthClient {
    /// A client registered with the server's authorization server in advance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// The environment variable holding that client's secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_env: Option<String>,
    /// A client ID metadata document URL for this server (overrides `[oauth]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_metadata_url: Option<String>,
    /// Scopes to ask for (default: from the server's challenge or metadata).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
}

/// One `[[servers]]` entry: the core's fields (`name`, `url` or `command`, `transport`,
/// `oauth`, `init_timeout`) plus the OAuth client and the tool filter.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerEntry {
    pub server: ServerConfig,
    pub client: ServerOAuthClient,
    pub tools: ToolFilter,
    /// What the server's tool and prompt names start with on `/mcp` (and whether its resource
    /// URIs are wrapped); `None`: the server's name and `gateway.mcp.tool_separator`.
    pub prefix: Option<String>,
    /// Who may see and use the server: members of one of these groups (the host token's
    /// groups claim); empty: everyone.
    pub groups: Vec<String>,
    /// The user who added the server for themselves (never from the file): it is theirs only.
    pub owner: Option<tether_core::UserId>,
}

const CLIENT_KEYS: [&str; 4] = [
    "client_id",
    "client_secret_env",
    "client_metadata_url",
    "scopes",
];
const FILTER_KEYS: [&str; 2] = ["allow", "deny"];

fn split_off(table: &mut toml::Table, keys: &[&str]) -> toml::Table {
    keys.iter()
        .filter_map(|k| table.remove(*k).map(|v| ((*k).to_owned(), v)))
        .collect()
}

impl<'de> Deserialize<'de> for ServerEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut table = toml::Table::deserialize(d)?;
        let client = split_off(&mut table, &CLIENT_KEYS);
        let filter = split_off(&mut table, &FILTER_KEYS);
        let prefix = match table.remove("prefix") {
            None => None,
            Some(toml::Value::String(prefix)) => Some(prefix),
            Some(_) => return Err(D::Error::custom("prefix must be a string")),
        };
        let groups = match table.remove("groups") {
            None => Vec::new(),
            Some(value) => Vec::<String>::deserialize(value)
                .map_err(|_| D::Error::custom("groups must be a list of strings"))?,
        };
        let server =
            ServerConfig::deserialize(toml::Value::Table(table)).map_err(D::Error::custom)?;
        let client =
            ServerOAuthClient::deserialize(toml::Value::Table(client)).map_err(D::Error::custom)?;
        let tools =
            ToolFilter::deserialize(toml::Value::Table(filter)).map_err(D::Error::custom)?;
        Ok(Self {
            server,
            client,
            tools,
            prefix,
            groups,
            owner: None,
        })
    }
}

impl Serialize for ServerEntry {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::Error;
        let mut table = toml::Table::try_from(&self.server).map_err(S::Error::custom)?;
        for part in [
            toml::Table::try_from(&self.client).map_err(S::Error::custom)?,
            toml::Table::try_from(&self.tools).map_err(S::Error::custom)?,
        ] {
            table.extend(part);
        }
        if let Some(prefix) = &self.prefix {
            table.insert("prefix".to_owned(), toml::Value::String(prefix.clone()));
        }
        if !self.groups.is_empty() {
            table.insert(
                "groups".to_owned(),
                toml::Value::Array(
                    self.groups
                        .iter()
                        .cloned()
                        .map(toml::Value::String)
                        .collect(),
                ),
            );
        }
        table.serialize(s)
    }
}

impl TetherConfig {
    /// The configuration in `text`, refused with every problem it has.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let config = Self::parse_unchecked(text)?;
        let problems = config.problems();
        anyhow::ensure!(problems.is_empty(), "{}", problems.join("; "));
        Ok(config)
    }

    /// The TOML read into the configuration's shape (unknown keys and wrong types refused),
    /// without the checks across fields of [`Self::problems`].
    pub fn parse_unchecked(text: &str) -> anyhow::Result<Self> {
        Ok(toml::from_str(text)?)
    }

    /// Every problem of a configuration that has the right shape, one sentence each.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Err(error) = self.core().validate() {
            problems.push(error.to_string());
        }
        let mut names = std::collections::HashSet::new();
        for entry in &self.servers {
            let name = &entry.server.name;
            if !names.insert(name.clone()) {
                problems.push(format!("server name {name} is configured twice"));
            }
            if entry.client.client_secret_env.is_some() && entry.client.client_id.is_none() {
                problems.push(format!("server {name}: client_secret_env needs client_id"));
            }
        }
        let separator = self
            .gateway
            .as_ref()
            .map_or_else(|| "__".to_owned(), |g| g.mcp.tool_separator.clone());
        let prefixes: Vec<(ServerName, String)> = self
            .servers
            .iter()
            .map(|entry| {
                let name = entry.server.name.clone();
                let prefix = entry
                    .prefix
                    .clone()
                    .unwrap_or_else(|| format!("{name}{separator}"));
                (name, prefix)
            })
            .collect();
        if let Err(collision) = check_prefixes(&prefixes) {
            problems.push(collision);
        }
        if self.catalog.poll_interval.is_zero() {
            problems.push("catalog.poll_interval must be positive".to_owned());
        }
        if self.oauth.remember_tokens_for > MAX_REMEMBER_TOKENS_FOR {
            // Another replica's rotation or revocation is seen this late at most.
            problems.push(format!(
                "oauth.remember_tokens_for must be at most {}s",
                MAX_REMEMBER_TOKENS_FOR.as_secs()
            ));
        }
        let uses_oauth = self.servers.iter().any(|entry| entry.server.oauth);
        if uses_oauth && self.oauth.return_url.is_none() && !self.oauth.unverified_callback {
            problems.push(
                "servers with oauth = true need oauth.return_url: the host page that confirms \
                 who finished an authorization (POST /v1/me/oauth/complete). Setting \
                 oauth.unverified_callback = true instead is unsafe: whoever finishes an \
                 authorization link attaches their account to the user who started it"
                    .to_owned(),
            );
        }
        for (key, url) in [
            ("oauth.return_url", &self.oauth.return_url),
            ("oauth.start_url", &self.oauth.start_url),
            ("public_url", &self.public_url),
        ] {
            if let Some(url) = url
                && tether_core::Origin::from_url(url).is_none()
            {
                problems.push(format!("{key} {url:?} is not an absolute http(s) URL"));
            }
        }
        problems
    }

    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("in {}", path.display()))
    }

    pub fn core(&self) -> CoreConfig {
        CoreConfig {
            reconnect: self.reconnect.clone(),
            breaker: self.breaker.clone(),
            limits: self.limits.clone(),
            backoff: self.backoff.clone(),
        }
    }

    pub fn servers(&self) -> Vec<ServerConfig> {
        self.servers.iter().map(|e| e.server.clone()).collect()
    }

    /// `public_url` without a trailing slash.
    pub fn public_url(&self, listen: SocketAddr) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("http://{listen}"))
            .trim_end_matches('/')
            .to_owned()
    }

    pub fn to_toml(&self) -> anyhow::Result<String> {
        Ok(toml::to_string(self)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oauth_servers_need_a_host_page_to_confirm_the_user_or_an_explicit_unsafe_flag() {
        let server =
            "[[servers]]\nname = \"gh\"\nurl = \"https://api.example.com/mcp\"\noauth = true\n";
        let error = TetherConfig::parse(server).expect_err("no return_url");
        let message = format!("{error:#}");
        assert!(
            message.contains("oauth.return_url") && message.contains("unverified_callback"),
            "{message}"
        );
        let confirmed = format!("[oauth]\nreturn_url = \"https://host.example/done\"\n{server}");
        let config = TetherConfig::parse(&confirmed).expect("with a return URL");
        assert!(!config.oauth.unverified_callback);
        assert_eq!(config.oauth.authorize_per_minute, 10);
        let unsafe_ = format!("[oauth]\nunverified_callback = true\n{server}");
        assert!(TetherConfig::parse(&unsafe_).is_ok());
        let bad = format!("[oauth]\nreturn_url = \"/relative\"\n{server}");
        assert!(TetherConfig::parse(&bad).is_err());
        let stdio = "[[servers]]\nname = \"local\"\ncommand = \"true\"\n";
        assert!(
            TetherConfig::parse(stdio).is_ok(),
            "no OAuth, no return URL needed"
        );
    }

    #[test]
    fn a_full_file_round_trips_through_the_effective_settings() {
        let text = r#"
            listen = "127.0.0.1:9090"
            public_url = "https://tether.example/"
            [storage]
            url = "sqlite:///var/lib/tether/tether.db"
            [limits]
            max_in_flight = 4
            [oauth]
            return_url = "https://host.example/connected"
            [gateway.host_auth]
            issuer = "https://host.example"
            audience = "tether"
            hs256_secret_env = "TETHER_HOST_SECRET"
            [[servers]]
            name = "everything"
            command = "npx"
            args = ["-y", "@modelcontextprotocol/server-everything"]
            deny = ["longRunningOperation"]
            [[servers]]
            name = "github"
            url = "https://api.example.com/mcp"
            oauth = true
            client_id = "tether-app"
            client_secret_env = "GITHUB_CLIENT_SECRET"
            scopes = ["repo", "read:org"]
        "#;
        let config = TetherConfig::parse(text).expect("valid");
        assert_eq!(config.limits.max_in_flight, 4);
        assert_eq!(config.servers.len(), 2);
        assert_eq!(config.servers[0].tools.deny, ["longRunningOperation"]);
        assert_eq!(
            config.servers[1].client.client_id.as_deref(),
            Some("tether-app")
        );
        assert_eq!(config.servers[1].client.scopes, ["repo", "read:org"]);
        assert!(config.servers[1].server.oauth);
        assert_eq!(config.public_url(config.listen), "https://tether.example");
        let again = TetherConfig::parse(&config.to_toml().expect("serializes")).expect("valid");
        assert_eq!(again.servers, config.servers);
        assert_eq!(again.core(), config.core());
        assert_eq!(again.gateway, config.gateway);
    }

    #[test]
    fn every_problem_is_told_not_only_the_first() {
        let text = "public_url = \"not a url\"\n\
                    [[servers]]\nname = \"a\"\nurl = \"https://a.example/mcp\"\noauth = true\n\
                    client_secret_env = \"A_SECRET\"\n\
                    [[servers]]\nname = \"a\"\nurl = \"https://b.example/mcp\"\n";
        let config = TetherConfig::parse_unchecked(text).expect("the right shape");
        let problems = config.problems();
        assert_eq!(problems.len(), 5, "{problems:#?}");
        for needle in [
            "configured twice",
            "client_secret_env needs client_id",
            "oauth.return_url",
            "public_url",
        ] {
            assert!(
                problems.iter().any(|p| p.contains(needle)),
                "{needle}: {problems:#?}"
            );
        }
        assert!(TetherConfig::parse(text).is_err());
    }

    #[test]
    fn the_shipped_example_is_valid_and_states_the_defaults() {
        let config = TetherConfig::parse(include_str!("../../../examples/tether.toml"))
            .expect("examples/tether.toml is valid");
        // Every number shown is the default, except that the example reconnects its
        // non-OAuth server on login too.
        let mut expected = CoreConfig::default();
        expected.reconnect.include_non_oauth = true;
        assert_eq!(config.core(), expected);
        assert_eq!(config.servers[0].server.name.as_str(), "everything");
        assert!(config.gateway.is_some());
    }

    #[test]
    fn server_prefixes_are_read_and_colliding_ones_refused_naming_both() {
        let two = |a: &str, b: &str| {
            format!(
                "[[servers]]\nname = \"alpha\"\nurl = \"https://a.example/mcp\"\n{a}\n\
                 [[servers]]\nname = \"beta\"\nurl = \"https://b.example/mcp\"\n{b}\n"
            )
        };
        let config = TetherConfig::parse(&two("prefix = \"\"", "")).expect("one unprefixed");
        assert_eq!(config.servers[0].prefix.as_deref(), Some(""));
        assert_eq!(config.servers[1].prefix, None);
        let round =
            TetherConfig::parse(&toml::to_string(&config).expect("serializes")).expect("re-reads");
        assert_eq!(round.servers[0].prefix.as_deref(), Some(""));
        for (a, b) in [
            ("prefix = \"\"", "prefix = \"\""),
            ("prefix = \"x_\"", "prefix = \"x_\""),
            ("", "prefix = \"alpha__more_\""),
        ] {
            let error = TetherConfig::parse(&two(a, b)).expect_err("collision");
            let message = format!("{error:#}");
            assert!(
                message.contains("alpha") && message.contains("beta"),
                "{message}"
            );
        }
        let error = TetherConfig::parse(&two("prefix = 3", "")).expect_err("not a string");
        assert!(format!("{error:#}").contains("prefix"), "{error:#}");
    }

    #[test]
    fn mistakes_are_reported_not_ignored() {
        for (text, needle) in [
            (
                "[[servers]]\nname = \"a\"\nurl = \"https://x\"\n[[servers]]\nname = \"a\"\nurl = \"https://y\"",
                "twice",
            ),
            ("[limit]\nmax_in_flight = 3", "limit"),
            ("[limits]\nmax_in_flight = 0", "max_in_flight"),
            (
                "[[servers]]\nname = \"a\"\nurl = \"https://x\"\nclient_secret_env = \"S\"",
                "needs client_id",
            ),
            (
                "[[servers]]\nname = \"a\"\nurl = \"https://x\"\nscope = [\"r\"]",
                "scope",
            ),
            ("public_url = \"tether.example\"", "public_url"),
            ("listen = \"nowhere\"", "listen"),
            ("[oauth]\nremember_tokens_for = \"61s\"", "at most 60s"),
            ("[oauth]\nremember_tokens_for = 5", "remember_tokens_for"),
        ] {
            let err = format!("{:#}", TetherConfig::parse(text).expect_err(text));
            assert!(err.contains(needle), "{text:?} gave {err}");
        }
    }

    mod props {
        use proptest::prelude::*;

        use super::TetherConfig;

        const EXAMPLE: &str = include_str!("../../../examples/tether.toml");

        fn lines() -> Vec<String> {
            EXAMPLE.lines().map(str::to_owned).collect()
        }

        /// Values of every shape a key might be given by mistake.
        fn any_value() -> impl Strategy<Value = String> {
            prop_oneof![
                Just("0".to_owned()),
                Just("-1".to_owned()),
                Just("\"\"".to_owned()),
                Just("\"1y\"".to_owned()),
                Just("\"-5s\"".to_owned()),
                Just("18446744073709551616".to_owned()),
                Just("[]".to_owned()),
                Just("{}".to_owned()),
                Just("true".to_owned()),
                Just("\"http://[::1\"".to_owned()),
                "\"[ -~]{0,20}\"",
                "[0-9]{1,25}",
            ]
        }

        /// The shipped example with one line replaced, removed, duplicated, or one key's
        /// value swapped for something else.
        fn edited() -> impl Strategy<Value = String> {
            let count = lines().len();
            (0..count, 0..4u8, any_value(), "[ -~]{0,30}").prop_map(|(at, how, value, junk)| {
                let mut lines = lines();
                match how {
                    0 => lines[at] = junk,
                    1 => {
                        lines.remove(at);
                    }
                    2 => {
                        let copy = lines[at].clone();
                        lines.insert(at, copy);
                    }
                    _ => {
                        if let Some((key, _)) = lines[at].split_once('=') {
                            lines[at] = format!("{key}= {value}");
                        }
                    }
                }
                lines.join("\n")
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(1_000))]

            #[test]
            fn any_edit_of_a_config_file_parses_or_is_one_clear_error(text in edited()) {
                if let Err(error) = TetherConfig::parse(&text) {
                    let message = format!("{error:#}");
                    prop_assert!(!message.trim().is_empty());
                    prop_assert!(message.len() < 2_000, "{message}");
                }
            }

            #[test]
            fn arbitrary_text_never_panics_the_parser(text in "\\PC{0,200}") {
                let _ = TetherConfig::parse(&text);
            }
        }
    }
}
