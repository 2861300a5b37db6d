//! Aggregated names of tools and prompts: each server's prefix (by default its name and the
//! separator, `github__search`; `prefix = ""` for names as the server gives them), and back.
//!
//! Routing must be unambiguous, so the prefixes are checked together at start-up
//! ([`check_prefixes`]): no two equal, none the start of another, at most one empty. A name then
//! belongs to the one server whose non-empty prefix starts it, or else to the unprefixed server;
//! a tool of the unprefixed server whose own name starts with another server's prefix would be
//! read as that server's, so it is not listed.

use std::collections::HashMap;

use tether_core::{FastMap, ServerName};

/// Joins and splits aggregated names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolNaming {
    separator: String,
    /// Servers whose prefix is not `{server}{separator}`.
    prefixes: FastMap<ServerName, String>,
}

impl ToolNaming {
    /// `None` for an empty separator, which would make default names impossible to split.
    pub fn new(separator: impl Into<String>) -> Option<Self> {
        let separator = separator.into();
        (!separator.is_empty()).then_some(Self {
            separator,
            prefixes: FastMap::default(),
        })
    }

    /// These servers' own prefixes (the `prefix` of `[[servers]]`).
    #[must_use]
    pub fn with_prefixes(mut self, prefixes: HashMap<ServerName, String>) -> Self {
        self.prefixes = prefixes.into_iter().collect();
        self
    }

    /// The prefix of `server`'s names.
    pub fn prefix(&self, server: &ServerName) -> String {
        self.prefix_of(server).to_string()
    }

    pub fn join(&self, server: &ServerName, name: &str) -> String {
        format!("{}{name}", self.prefix_of(server))
    }

    /// `server`'s prefix, not built: aggregated names are split on every call.
    fn prefix_of<'a>(&'a self, server: &'a ServerName) -> Prefix<'a> {
        // No hashing when no server has a prefix of its own (the common configuration).
        match (!self.prefixes.is_empty())
            .then(|| self.prefixes.get(server))
            .flatten()
        {
            Some(own) => Prefix::Own(own),
            None => Prefix::Default(server.as_str(), &self.separator),
        }
    }

    /// The server and upstream name an aggregated name stands for: the server whose non-empty
    /// prefix starts the name (the longest, should prefixes ever nest), else the server without
    /// a prefix.
    pub fn split<'n, 's>(
        &self,
        name: &'n str,
        servers: impl IntoIterator<Item = &'s ServerName>,
    ) -> Option<(ServerName, &'n str)> {
        let mut unprefixed = None;
        let mut best: Option<(&ServerName, &'n str, usize)> = None;
        for server in servers {
            let prefix = self.prefix_of(server);
            if prefix.is_empty() {
                unprefixed.get_or_insert(server);
                continue;
            }
            if let Some(rest) = prefix.strip(name)
                && !rest.is_empty()
                && best.is_none_or(|(_, _, len)| prefix.len() > len)
            {
                best = Some((server, rest, prefix.len()));
            }
        }
        match (best, unprefixed) {
            (Some((server, rest, _)), _) => Some((server.clone(), rest)),
            (None, Some(server)) if !name.is_empty() => Some((server.clone(), name)),
            _ => None,
        }
    }

    /// Whether `join(server, name)` splits back to the same server and name: false for a name of
    /// the unprefixed server that another server's prefix claims.
    pub fn round_trips<'s>(
        &self,
        server: &ServerName,
        name: &str,
        servers: impl IntoIterator<Item = &'s ServerName>,
    ) -> bool {
        let joined = self.join(server, name);
        self.split(&joined, servers)
            .is_some_and(|(s, n)| &s == server && n == name)
    }
}

/// A server's prefix: its own (`prefix = "…"`), or its name then the separator.
#[derive(Debug, Clone, Copy)]
enum Prefix<'a> {
    Own(&'a str),
    Default(&'a str, &'a str),
}

impl Prefix<'_> {
    fn is_empty(self) -> bool {
        matches!(self, Self::Own(""))
    }

    fn len(self) -> usize {
        match self {
            Self::Own(own) => own.len(),
            Self::Default(server, separator) => server.len() + separator.len(),
        }
    }

    /// The rest of `name` after this prefix, if it starts with it.
    fn strip(self, name: &str) -> Option<&str> {
        match self {
            Self::Own(own) => name.strip_prefix(own),
            Self::Default(server, separator) => name.strip_prefix(server)?.strip_prefix(separator),
        }
    }
}

impl std::fmt::Display for Prefix<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Own(own) => f.write_str(own),
            Self::Default(server, separator) => {
                f.write_str(server)?;
                f.write_str(separator)
            }
        }
    }
}

impl Default for ToolNaming {
    fn default() -> Self {
        Self {
            separator: "__".to_owned(),
            prefixes: FastMap::default(),
        }
    }
}

/// Refuses prefixes that would let two servers' names collide: equal ones, one starting
/// another (`a__` and `a__b__`: `a__b__c` is `b__c` of the first or `c` of the second), or two
/// empty ones. `prefixes` are the servers' effective prefixes in configuration order.
pub fn check_prefixes(prefixes: &[(ServerName, String)]) -> Result<(), String> {
    for (i, (first, a)) in prefixes.iter().enumerate() {
        for (second, b) in &prefixes[i + 1..] {
            let clash = if a.is_empty() || b.is_empty() {
                a.is_empty() && b.is_empty()
            } else {
                a.starts_with(b.as_str()) || b.starts_with(a.as_str())
            };
            if clash {
                return Err(format!(
                    "servers {first} (prefix {a:?}) and {second} (prefix {b:?}): their tool and \
                     prompt names could collide; give one of them another prefix"
                ));
            }
        }
    }
    Ok(())
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

    #[test]
    fn a_default_prefix_is_the_whole_server_name_then_the_separator() {
        let Some(naming) = ToolNaming::new(".") else {
            panic!("a separator");
        };
        let servers = [ServerName::new("a"), ServerName::new("ab")];
        let cases = [
            ("a.x", Some((0, "x"))),
            ("ab.x", Some((1, "x"))),
            ("abx", None),
            ("a_x", None),
            ("a.", None),
        ];
        for (name, expected) in cases {
            let expected = expected.map(|(i, rest)| (servers[i].clone(), rest));
            assert_eq!(naming.split(name, &servers), expected, "{name}");
        }
        assert_eq!(naming.join(&servers[1], "x"), "ab.x");
        assert_eq!(naming.prefix(&servers[0]), "a.");
    }

    #[test]
    fn an_own_prefix_and_an_empty_one_route_every_name_one_way() {
        let servers = [
            ServerName::new("github"),
            ServerName::new("local"),
            ServerName::new("linear"),
        ];
        let naming = ToolNaming::default().with_prefixes(HashMap::from([
            (servers[0].clone(), "gh_".to_owned()),
            (servers[1].clone(), String::new()),
        ]));
        assert_eq!(naming.join(&servers[0], "search"), "gh_search");
        assert_eq!(naming.join(&servers[1], "search"), "search");
        assert_eq!(naming.join(&servers[2], "search"), "linear__search");
        assert_eq!(
            naming.split("gh_search", &servers),
            Some((servers[0].clone(), "search"))
        );
        assert_eq!(
            naming.split("linear__search", &servers),
            Some((servers[2].clone(), "search"))
        );
        assert_eq!(
            naming.split("search", &servers),
            Some((servers[1].clone(), "search"))
        );
        assert_eq!(naming.split("", &servers), None);
        // The unprefixed server's "gh_x" would be read as github's "x": not listable.
        assert!(!naming.round_trips(&servers[1], "gh_x", &servers));
        assert!(naming.round_trips(&servers[1], "x", &servers));
        assert!(naming.round_trips(&servers[0], "gh_x", &servers));
    }

    #[test]
    fn colliding_prefixes_are_refused_naming_both_servers() {
        let entry = |name: &str, prefix: &str| (ServerName::new(name), prefix.to_owned());
        assert!(check_prefixes(&[entry("a", "a__"), entry("b", "b__"), entry("c", "")]).is_ok());
        for (first, second) in [
            (entry("a", "x_"), entry("b", "x_")),
            (entry("a", "a__"), entry("ab", "a__b__")),
            (entry("a", ""), entry("b", "")),
        ] {
            let error = check_prefixes(&[first.clone(), second.clone()]).expect_err("refused");
            assert!(
                error.contains(first.0.as_str()) && error.contains(second.0.as_str()),
                "{error}"
            );
        }
    }
}
