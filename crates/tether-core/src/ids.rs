//! Identifiers: who (user), what (server), the pair of both, and where (upstream origin).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};

/// A user of the host platform (the `sub` of the host's JWT).
///
/// Cheap to clone: ids travel through every task and map key.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(Arc<str>);

/// The name of an upstream MCP server as configured (`[[servers]] name = …`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ServerName(Arc<str>);

macro_rules! string_id {
    ($ty:ident) => {
        impl $ty {
            pub fn new(value: impl AsRef<str>) -> Self {
                Self(Arc::from(value.as_ref()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl From<&str> for $ty {
            fn from(value: &str) -> Self {
                Self::new(value)
            }
        }

        impl From<String> for $ty {
            fn from(value: String) -> Self {
                Self(Arc::from(value))
            }
        }
    };
}

string_id!(UserId);
string_id!(ServerName);

/// Whether user ids print as pseudonyms (`log.hash_users`); set once at start-up.
static PSEUDONYMS: AtomicBool = AtomicBool::new(false);

/// From now on a [`UserId`] prints (`Display`, `Debug`: every log line and error text) as a
/// pseudonym, never as the host's id: the first 12 bytes of SHA-256 over a fixed label and the
/// id, in hex. Stable across replicas and restarts, so one user's lines can be followed;
/// [`UserId::as_str`] (keys, storage, the API) is unchanged.
pub fn print_users_as_pseudonyms(enabled: bool) {
    PSEUDONYMS.store(enabled, Ordering::Relaxed);
}

impl UserId {
    /// The pseudonym a log line shows for this user with [`print_users_as_pseudonyms`].
    pub fn pseudonym(&self) -> String {
        use sha2::Digest;
        let digest = sha2::Sha256::new()
            .chain_update(b"tether log user\0")
            .chain_update(self.0.as_bytes())
            .finalize();
        digest[..12].iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if PSEUDONYMS.load(Ordering::Relaxed) {
            f.write_str(&self.pseudonym())
        } else {
            f.write_str(&self.0)
        }
    }
}

impl fmt::Debug for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if PSEUDONYMS.load(Ordering::Relaxed) {
            fmt::Debug::fmt(&self.pseudonym(), f)
        } else {
            fmt::Debug::fmt(&*self.0, f)
        }
    }
}

impl fmt::Display for ServerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ServerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

/// One user's relation to one server: the unit of connection, tracking and pair breakers.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PairKey {
    pub user: UserId,
    pub server: ServerName,
}

impl PairKey {
    pub fn new(user: impl Into<UserId>, server: impl Into<ServerName>) -> Self {
        Self {
            user: user.into(),
            server: server.into(),
        }
    }
}

impl fmt::Display for PairKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.user, self.server)
    }
}

/// Where connection attempts land: scheme, host and port of an upstream (RFC 6454 origin).
///
/// Transport failures and admission limits are keyed by origin, not by server name, because two
/// configured servers on one host share its capacity and its outages. A stdio server is its own
/// origin (`stdio://<server>`): it has no host to protect, but keeping one key shape keeps the
/// limiter and breakers uniform.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Origin(Arc<str>);

impl Origin {
    /// The origin of an `http(s)` URL; `None` when the text is not an absolute http(s) URL.
    ///
    /// Parsing is deliberately small (no `url` dependency in the core): scheme, then authority up
    /// to the first `/`, `?` or `#`, without userinfo; default ports are made explicit so that
    /// `https://a` and `https://a:443` are one origin.
    pub fn from_url(url: &str) -> Option<Self> {
        let (scheme, rest) = url.split_once("://")?;
        let scheme = scheme.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "http" => 80,
            "https" => 443,
            _ => return None,
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        if host_port.is_empty() {
            return None;
        }
        let (host, port) = split_host_port(host_port)?;
        let port = match port {
            Some(p) => p.parse::<u16>().ok()?,
            None => default_port,
        };
        Some(Self(Arc::from(format!(
            "{scheme}://{}:{port}",
            host.to_ascii_lowercase()
        ))))
    }

    /// The pseudo-origin of a stdio server.
    pub fn stdio(server: &ServerName) -> Self {
        Self(Arc::from(format!("stdio://{server}")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn split_host_port(host_port: &str) -> Option<(&str, Option<&str>)> {
    if let Some(rest) = host_port.strip_prefix('[') {
        // IPv6 literal: `[::1]:8080`
        let (host, after) = rest.split_once(']')?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        if host.is_empty() {
            return None;
        }
        return Some((&host_port[..host.len() + 2], port));
    }
    match host_port.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() => Some((host, Some(port))),
        Some(_) => None,
        None => Some((host_port, None)),
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_makes_default_ports_explicit_and_drops_path_and_userinfo() {
        let a = Origin::from_url("https://Mcp.Example.com/mcp?x=1").expect("valid");
        let b = Origin::from_url("https://user:pw@mcp.example.com:443/other").expect("valid");
        assert_eq!(a, b);
        assert_eq!(a.as_str(), "https://mcp.example.com:443");
        assert_eq!(
            Origin::from_url("http://127.0.0.1:8080")
                .expect("valid")
                .as_str(),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            Origin::from_url("http://[::1]:9000/mcp")
                .expect("valid")
                .as_str(),
            "http://[::1]:9000"
        );
    }

    #[test]
    fn origin_rejects_what_is_not_an_http_url() {
        for bad in [
            "",
            "mcp.example.com",
            "ftp://x",
            "https://",
            "https://:80",
            "https://h:99999",
            "https://[::1",
        ] {
            assert!(Origin::from_url(bad).is_none(), "{bad:?} should be refused");
        }
    }
}

#[cfg(test)]
mod pseudonym_tests {
    use super::*;

    /// The switch itself is process-wide, so it is exercised by the gateway process's test
    /// (`tether/tests/e2e_json_logs.rs`), not here beside other tests.
    #[test]
    fn pseudonyms_are_stable_hex_and_differ_per_user() {
        let alice = UserId::new("alice");
        assert_eq!(alice.pseudonym(), UserId::new("alice").pseudonym());
        assert_ne!(alice.pseudonym(), UserId::new("bob").pseudonym());
        assert_eq!(alice.pseudonym().len(), 24);
        assert!(alice.pseudonym().bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(!alice.pseudonym().contains("alice"));
    }
}
