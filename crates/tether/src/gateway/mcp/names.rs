//! Aggregated tool names: `{server}{separator}{tool}`, and back.

use tether_core::ServerName;

/// Joins and splits aggregated tool names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolNaming {
    separator: String,
}

impl ToolNaming {
    /// `None` for an empty separator, which would make names impossible to split.
    pub fn new(separator: impl Into<String>) -> Option<Self> {
        let separator = separator.into();
        (!separator.is_empty()).then_some(Self { separator })
    }

    pub fn join(&self, server: &ServerName, tool: &str) -> String {
        format!("{server}{}{tool}", self.separator)
    }

    /// The server and upstream tool an aggregated name stands for. Server names may contain
    /// the separator (`a` and `a__b` can both be configured), so the longest configured server
    /// name that prefixes the name wins: that is the reading `join` produced for it unless two
    /// servers' tools collide, which configuration cannot prevent but this makes deterministic.
    pub fn split<'n, 's>(
        &self,
        name: &'n str,
        servers: impl IntoIterator<Item = &'s ServerName>,
    ) -> Option<(ServerName, &'n str)> {
        servers
            .into_iter()
            .filter_map(|server| {
                let tool = name
                    .strip_prefix(server.as_str())?
                    .strip_prefix(self.separator.as_str())?;
                (!tool.is_empty()).then_some((server, tool))
            })
            .max_by_key(|(server, _)| server.as_str().len())
            .map(|(server, tool)| (server.clone(), tool))
    }
}

impl Default for ToolNaming {
    fn default() -> Self {
        Self {
            separator: "__".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_the_longest_server_wins() {
        let naming = ToolNaming::default();
        let servers = [
            ServerName::new("a"),
            ServerName::new("a__b"),
            ServerName::new("everything"),
        ];
        let name = naming.join(&servers[2], "echo");
        assert_eq!(name, "everything__echo");
        assert_eq!(
            naming.split(&name, &servers),
            Some((servers[2].clone(), "echo"))
        );
        assert_eq!(
            naming.split("a__b__c", &servers),
            Some((servers[1].clone(), "c"))
        );
        assert_eq!(
            naming.split("a__x", &servers),
            Some((servers[0].clone(), "x"))
        );
        assert_eq!(naming.split("nope__echo", &servers), None);
        assert_eq!(naming.split("everything__", &servers), None);
        assert_eq!(naming.split("everything", &servers), None);
        assert!(ToolNaming::new("").is_none());
    }
}
