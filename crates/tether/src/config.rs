//! The configuration file: the core's tables plus the servers.

use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use tether_core::config::{AdmissionConfig, BackoffConfig, BreakerConfig, ReconnectConfig};
use tether_core::{CoreConfig, ServerConfig};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TetherConfig {
    pub reconnect: ReconnectConfig,
    pub breaker: BreakerConfig,
    pub limits: AdmissionConfig,
    pub backoff: BackoffConfig,
    pub servers: Vec<ServerConfig>,
}

impl TetherConfig {
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let config: Self = toml::from_str(text)?;
        config.core().validate()?;
        let mut names = std::collections::HashSet::new();
        for server in &config.servers {
            anyhow::ensure!(
                names.insert(server.name.clone()),
                "server name {} is configured twice",
                server.name
            );
        }
        Ok(config)
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

    pub fn to_toml(&self) -> anyhow::Result<String> {
        Ok(toml::to_string(self)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_file_round_trips_through_the_effective_settings() {
        let text = r#"
            [limits]
            max_in_flight = 4
            [[servers]]
            name = "everything"
            command = "npx"
            args = ["-y", "@modelcontextprotocol/server-everything"]
            [[servers]]
            name = "github"
            url = "https://api.example.com/mcp"
            oauth = true
        "#;
        let config = TetherConfig::parse(text).expect("valid");
        assert_eq!(config.limits.max_in_flight, 4);
        assert_eq!(config.servers.len(), 2);
        let again = TetherConfig::parse(&config.to_toml().expect("serializes")).expect("valid");
        assert_eq!(again.servers, config.servers);
        assert_eq!(again.core(), config.core());
    }

    #[test]
    fn the_shipped_example_is_valid_and_states_the_defaults() {
        let config = TetherConfig::parse(include_str!("../../../examples/tether.toml"))
            .expect("examples/tether.toml is valid");
        assert_eq!(config.core(), CoreConfig::default());
        assert_eq!(config.servers[0].name.as_str(), "everything");
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
        ] {
            let err = format!("{:#}", TetherConfig::parse(text).expect_err(text));
            assert!(err.contains(needle), "{text:?} gave {err}");
        }
    }
}
