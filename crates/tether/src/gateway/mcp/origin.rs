//! DNS-rebinding protection for `/mcp` (the MCP transport specification asks servers to check
//! `Origin`): a page on an attacker's domain that resolves to the gateway's address sends its
//! own name as `Host` and its own origin as `Origin`. Both are checked against lists (by
//! default the public URL's host and the loopback names), 403 otherwise. Requests without
//! `Origin` (agents, not browsers) pass the origin check.
//!
//! The host JWT already keeps a rebinding page from acting as a user; this is the second lock,
//! and it covers the direct `tools/call` path that never reaches rmcp's own host check.

use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// The hosts and origins `/mcp` accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostGuard {
    /// Host names, or `host:port` to accept one port only; lower case.
    hosts: Vec<String>,
    /// `scheme://host[:port]`, lower case.
    origins: Vec<String>,
}

const LOOPBACK: [&str; 4] = ["localhost", "127.0.0.1", "[::1]", "::1"];

impl HostGuard {
    /// `hosts`/`origins` as configured; when empty, the public URL's host (and origin) and the
    /// loopback names.
    pub fn new(hosts: &[String], origins: &[String], public_url: Option<&str>) -> Self {
        let public = public_url.and_then(|url| url::Url::parse(url).ok());
        let mut default_hosts: Vec<String> = LOOPBACK.iter().map(|h| (*h).to_owned()).collect();
        let mut default_origins = Vec::new();
        if let Some(url) = &public
            && let Some(host) = url.host_str()
        {
            default_hosts.push(host.to_ascii_lowercase());
            default_origins.push(url.origin().ascii_serialization().to_ascii_lowercase());
        }
        let lower = |list: &[String]| -> Vec<String> {
            list.iter()
                .map(|s| s.trim().trim_end_matches('/').to_ascii_lowercase())
                .collect()
        };
        Self {
            hosts: if hosts.is_empty() {
                default_hosts
            } else {
                lower(hosts)
            },
            origins: if origins.is_empty() {
                default_origins
            } else {
                lower(origins)
            },
        }
    }

    fn host_allowed(&self, host: &str) -> bool {
        let host = host.trim().to_ascii_lowercase();
        let name = host_name(&host);
        self.hosts
            .iter()
            .any(|allowed| *allowed == host || allowed == name)
    }

    fn origin_allowed(&self, origin: &str) -> bool {
        let origin = origin.trim().to_ascii_lowercase();
        if self.origins.contains(&origin) {
            return true;
        }
        // A page served from the machine itself (a local agent UI) is not a rebinding.
        url::Url::parse(&origin)
            .ok()
            .and_then(|url| url.host_str().map(|h| LOOPBACK.contains(&h)))
            .unwrap_or(false)
    }

    /// Why the request is refused, if it is.
    pub fn check(&self, host: Option<&str>, origin: Option<&str>) -> Result<(), &'static str> {
        match host {
            Some(host) if self.host_allowed(host) => {}
            Some(_) => return Err("this Host is not accepted on /mcp"),
            None => return Err("a Host header is required on /mcp"),
        }
        match origin {
            Some(origin) if !self.origin_allowed(origin) => {
                Err("this Origin is not accepted on /mcp")
            }
            _ => Ok(()),
        }
    }
}

/// `host` without its port (`[::1]:80` → `[::1]`, `a:80` → `a`).
fn host_name(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |end| &host[..=end]);
    }
    host.rsplit_once(':').map_or(host, |(name, _)| name)
}

/// The first check of [`McpEndpoint::handle`](super::McpEndpoint::handle): 403 for a Host or
/// Origin this gateway does not serve.
pub(crate) async fn guard_origin<F, Fut>(guard: &HostGuard, request: Request, next: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    if let Err(reason) = check_request(guard, &request) {
        return (StatusCode::FORBIDDEN, reason).into_response();
    }
    next(request).await
}

fn check_request(guard: &HostGuard, request: &Request) -> Result<(), &'static str> {
    let header_text = |name| {
        request
            .headers()
            .get(name)
            .map(|v: &axum::http::HeaderValue| v.to_str().unwrap_or("\u{fffd}"))
    };
    // HTTP/2 carries the authority in the URI rather than a Host header.
    let host = header_text(header::HOST).or_else(|| request.uri().authority().map(|a| a.as_str()));
    guard
        .check(host, header_text(header::ORIGIN))
        .inspect_err(|reason| {
            let host: Option<String> = host.map(|h| h.chars().take(100).collect());
            tracing::info!(?host, reason, "refused on /mcp");
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_accept_the_public_host_and_loopback_only() {
        let guard = HostGuard::new(&[], &[], Some("https://tether.example.com/"));
        assert!(guard.check(Some("tether.example.com"), None).is_ok());
        assert!(guard.check(Some("TETHER.example.com:443"), None).is_ok());
        assert!(guard.check(Some("127.0.0.1:8080"), None).is_ok());
        assert!(guard.check(Some("[::1]:8080"), None).is_ok());
        assert!(
            guard
                .check(Some("localhost"), Some("http://localhost:3000"))
                .is_ok()
        );
        assert!(
            guard
                .check(
                    Some("tether.example.com"),
                    Some("https://tether.example.com")
                )
                .is_ok()
        );
        assert!(guard.check(Some("evil.example"), None).is_err());
        assert!(guard.check(None, None).is_err());
        assert!(
            guard
                .check(Some("127.0.0.1:8080"), Some("https://evil.example"))
                .is_err()
        );
    }

    #[test]
    fn configured_lists_replace_the_defaults() {
        let guard = HostGuard::new(
            &["mcp.example.com:8443".to_owned()],
            &["https://app.example.com".to_owned()],
            Some("https://tether.example.com"),
        );
        assert!(guard.check(Some("mcp.example.com:8443"), None).is_ok());
        assert!(guard.check(Some("mcp.example.com:9000"), None).is_err());
        assert!(guard.check(Some("tether.example.com"), None).is_err());
        assert!(
            guard
                .check(
                    Some("mcp.example.com:8443"),
                    Some("https://app.example.com")
                )
                .is_ok()
        );
        assert!(
            guard
                .check(
                    Some("mcp.example.com:8443"),
                    Some("https://other.example.com")
                )
                .is_err()
        );
    }
}
