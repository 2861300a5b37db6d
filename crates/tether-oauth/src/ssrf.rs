//! Which URLs learned from the network Tether may send a request to.
//!
//! Every URL the authorization client did not get from its own configuration (resource metadata
//! pointers, authorization server issuers and endpoints, redirects) comes from a server that may
//! be hostile or compromised, and Tether runs next to things such a server must not reach: the
//! cloud instance metadata service, the replica's private network, its own loopback services.
//! rmcp filters discovered metadata hosts too, but it accepts plain `http` authorization servers
//! for an `https` resource and does not look at the endpoints inside authorization server
//! metadata before using them; this module is the stricter, explicit check Tether applies to
//! every request (see [`crate::http`]) and to every endpoint before it is stored.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use url::{Host, Url};

/// Host names that are cloud instance metadata services whatever they resolve to.
const METADATA_HOSTS: [&str; 6] = [
    "metadata",
    "metadata.google.internal",
    "metadata.azure.internal",
    "instance-data",
    "instance-data.ec2.internal",
    "metadata.oraclecloud.com",
];

/// What the operator has opted into; the default refuses everything but public https hosts
/// (and loopback for a loopback MCP server).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkPolicy {
    /// Allow RFC 1918 / CGNAT / IPv6 unique-local addresses, for authorization servers on a
    /// private network.
    pub allow_private_addresses: bool,
    /// Host names (or IP literals, as written in URLs) exempt from the address classes, for a
    /// specific internal authorization server. Never exempt from https.
    pub allowed_hosts: Vec<String>,
}

/// Why a URL was refused. Shown to users and logged, so it names the class, not the URL's
/// query (which may carry secrets).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SsrfReason {
    #[error("scheme `{0}` is not allowed (https only)")]
    Scheme(String),
    #[error("plain http is allowed only between a loopback MCP server and a loopback host")]
    InsecureHttp,
    #[error("the URL has no host")]
    NoHost,
    #[error("the URL carries user credentials")]
    UserInfo,
    #[error("host `{0}` is a cloud metadata service")]
    MetadataService(String),
    #[error("address {0} is link-local")]
    LinkLocal(IpAddr),
    #[error("address {0} is private")]
    Private(IpAddr),
    #[error("address {0} is loopback and the MCP server is not")]
    Loopback(String),
    #[error("address {0} is reserved, multicast or unspecified")]
    Reserved(IpAddr),
    #[error("host `{0}` resolves only to addresses that are not allowed")]
    ResolvesInternally(String),
    #[error("redirected more than {0} times")]
    TooManyRedirects(usize),
}

/// The class of an IP address as far as outbound OAuth requests are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    Public,
    Loopback,
    Private,
    LinkLocal,
    MetadataService,
    Reserved,
}

impl AddressClass {
    pub fn of(addr: IpAddr) -> Self {
        match addr {
            IpAddr::V4(v4) => classify_v4(v4),
            IpAddr::V6(v6) => match embedded_ipv4(v6) {
                Some(v4) => classify_v4(v4),
                None => classify_v6(v6),
            },
        }
    }
}

fn classify_v4(addr: Ipv4Addr) -> AddressClass {
    let [a, b, c, _] = addr.octets();
    if addr == Ipv4Addr::new(169, 254, 169, 254) || addr == Ipv4Addr::new(100, 100, 100, 200) {
        // AWS/GCP/Azure IMDS, and Alibaba's (which sits inside CGNAT space).
        AddressClass::MetadataService
    } else if addr.is_loopback() {
        AddressClass::Loopback
    } else if addr.is_link_local() {
        AddressClass::LinkLocal
    } else if addr.is_private() || (a == 100 && (64..=127).contains(&b)) {
        AddressClass::Private
    } else if addr.is_unspecified()
        || addr.is_broadcast()
        || addr.is_multicast()
        || addr.is_documentation()
        || a == 0
        || a >= 240
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (b == 18 || b == 19))
    {
        AddressClass::Reserved
    } else {
        AddressClass::Public
    }
}

fn classify_v6(addr: Ipv6Addr) -> AddressClass {
    let segments = addr.segments();
    if segments == [0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x254] {
        // AWS IMDS over IPv6.
        AddressClass::MetadataService
    } else if addr.is_loopback() {
        AddressClass::Loopback
    } else if (segments[0] & 0xffc0) == 0xfe80 {
        AddressClass::LinkLocal
    } else if (segments[0] & 0xfe00) == 0xfc00 {
        AddressClass::Private
    } else if addr.is_unspecified()
        || addr.is_multicast()
        || segments[..2] == [0x2001, 0x0db8]
        || segments[..2] == [0x2001, 0]
        || segments[..3] == [0x64, 0xff9b, 1]
    {
        // Documentation, Teredo (tunnels to arbitrary IPv4) and local-use NAT64.
        AddressClass::Reserved
    } else {
        AddressClass::Public
    }
}

/// The IPv4 address inside IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible, NAT64
/// (`64:ff9b::/96`) and 6to4 (`2002::/16`) addresses: each reaches that IPv4 host, so it must be
/// judged as that host.
fn embedded_ipv4(addr: Ipv6Addr) -> Option<Ipv4Addr> {
    let [a, b, c, d, e, f, g, h] = addr.segments();
    let low = Ipv4Addr::from((u32::from(g) << 16) | u32::from(h));
    match [a, b, c, d, e, f] {
        [0, 0, 0, 0, 0, 0xffff] | [0x64, 0xff9b, 0, 0, 0, 0] => Some(low),
        [0, 0, 0, 0, 0, 0] if !addr.is_loopback() && !addr.is_unspecified() => Some(low),
        [0x2002, ..] => Some(Ipv4Addr::from((u32::from(b) << 16) | u32::from(c))),
        _ => None,
    }
}

fn normalize_host(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// Whether the MCP server's own URL names a loopback host: only then may OAuth traffic use
/// loopback addresses and plain http (a developer running everything on one machine).
pub fn is_loopback_url(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(d)) => {
            let d = normalize_host(d);
            d == "localhost" || d.ends_with(".localhost")
        }
        Some(Host::Ipv4(v4)) => AddressClass::of(IpAddr::V4(v4)) == AddressClass::Loopback,
        Some(Host::Ipv6(v6)) => AddressClass::of(IpAddr::V6(v6)) == AddressClass::Loopback,
        None => false,
    }
}

impl NetworkPolicy {
    fn is_allowed_host(&self, host: &str) -> bool {
        let host = normalize_host(host.trim_start_matches('[').trim_end_matches(']'));
        self.allowed_hosts.iter().any(|allowed| {
            normalize_host(allowed.trim_start_matches('[').trim_end_matches(']')) == host
        })
    }

    /// Whether a resolved (or literal) address may be connected to, for requests on behalf of
    /// the MCP server at `resource`.
    pub fn check_address(
        &self,
        addr: IpAddr,
        resource_is_loopback: bool,
    ) -> Result<(), SsrfReason> {
        match AddressClass::of(addr) {
            AddressClass::Public => Ok(()),
            AddressClass::Loopback if resource_is_loopback => Ok(()),
            AddressClass::Loopback => Err(SsrfReason::Loopback(addr.to_string())),
            AddressClass::Private if self.allow_private_addresses => Ok(()),
            AddressClass::Private => Err(SsrfReason::Private(addr)),
            AddressClass::LinkLocal => Err(SsrfReason::LinkLocal(addr)),
            AddressClass::MetadataService => Err(SsrfReason::MetadataService(addr.to_string())),
            AddressClass::Reserved => Err(SsrfReason::Reserved(addr)),
        }
    }

    /// Checks a URL before any request to it: scheme, credentials, host name and (for IP
    /// literals) address class. Names are checked again after resolution by the HTTP client,
    /// because a public name may resolve to an internal address.
    pub fn check_url(&self, url: &Url, resource: &Url) -> Result<(), SsrfReason> {
        let resource_is_loopback = is_loopback_url(resource);
        let host = url.host().ok_or(SsrfReason::NoHost)?;
        let target_is_loopback = is_loopback_url(url);
        if !matches!(url.scheme(), "https" | "http") {
            return Err(SsrfReason::Scheme(url.scheme().to_owned()));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(SsrfReason::UserInfo);
        }
        // The address class first: "link-local" says more about a refused target than "http".
        let host_text = url.host_str().unwrap_or_default();
        if !self.is_allowed_host(host_text) {
            match host {
                Host::Domain(domain) => {
                    let domain = normalize_host(domain);
                    if METADATA_HOSTS.contains(&domain.as_str()) {
                        return Err(SsrfReason::MetadataService(domain));
                    }
                    if target_is_loopback && !resource_is_loopback {
                        return Err(SsrfReason::Loopback(domain));
                    }
                }
                Host::Ipv4(v4) => self.check_address(IpAddr::V4(v4), resource_is_loopback)?,
                Host::Ipv6(v6) => self.check_address(IpAddr::V6(v6), resource_is_loopback)?,
            }
        }
        if url.scheme() == "http" && !(resource_is_loopback && target_is_loopback) {
            return Err(SsrfReason::InsecureHttp);
        }
        Ok(())
    }

    /// Whether `host` is exempt by configuration (used by the resolver, which sees names).
    pub(crate) fn exempts_host(&self, host: &str) -> bool {
        self.is_allowed_host(host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> Url {
        Url::parse(text).expect("test URL parses")
    }

    const PUBLIC_RESOURCE: &str = "https://mcp.example.com/mcp";
    const LOOPBACK_RESOURCE: &str = "http://127.0.0.1:8080/mcp";

    #[test]
    fn refuses_internal_targets_for_a_public_resource() {
        let policy = NetworkPolicy::default();
        let resource = url(PUBLIC_RESOURCE);
        type Expect = fn(&SsrfReason) -> bool;
        let cases: [(&str, Expect); 12] = [
            ("https://169.254.169.254/latest/meta-data", |r| {
                matches!(r, SsrfReason::MetadataService(_))
            }),
            ("https://169.254.10.1/", |r| {
                matches!(r, SsrfReason::LinkLocal(_))
            }),
            ("https://10.0.0.1/token", |r| {
                matches!(r, SsrfReason::Private(_))
            }),
            ("https://192.168.1.1/", |r| {
                matches!(r, SsrfReason::Private(_))
            }),
            ("https://172.16.0.1/", |r| {
                matches!(r, SsrfReason::Private(_))
            }),
            ("https://[::ffff:10.0.0.1]/", |r| {
                matches!(r, SsrfReason::Private(_))
            }),
            ("https://[::ffff:169.254.169.254]/", |r| {
                matches!(r, SsrfReason::MetadataService(_))
            }),
            ("https://[fe80::1]/", |r| {
                matches!(r, SsrfReason::LinkLocal(_))
            }),
            ("https://[fd00:ec2::254]/", |r| {
                matches!(r, SsrfReason::MetadataService(_))
            }),
            ("https://127.0.0.1/", |r| {
                matches!(r, SsrfReason::Loopback(_))
            }),
            ("https://metadata.google.internal/", |r| {
                matches!(r, SsrfReason::MetadataService(_))
            }),
            ("https://0.0.0.0/", |r| matches!(r, SsrfReason::Reserved(_))),
        ];
        for (target, expected) in cases {
            let reason = policy
                .check_url(&url(target), &resource)
                .expect_err(&format!("{target} must be refused"));
            assert!(expected(&reason), "{target}: unexpected reason {reason:?}");
        }
    }

    #[test]
    fn refuses_plain_http_and_other_schemes_off_loopback() {
        let policy = NetworkPolicy::default();
        assert_eq!(
            policy.check_url(&url("http://auth.example.com/"), &url(PUBLIC_RESOURCE)),
            Err(SsrfReason::InsecureHttp)
        );
        // A loopback MCP server still may not send its user to a non-loopback http host.
        assert_eq!(
            policy.check_url(&url("http://auth.example.com/"), &url(LOOPBACK_RESOURCE)),
            Err(SsrfReason::InsecureHttp)
        );
        assert!(matches!(
            policy.check_url(&url("http://169.254.169.254/"), &url(LOOPBACK_RESOURCE)),
            Err(SsrfReason::MetadataService(_))
        ));
        assert_eq!(
            policy.check_url(&url("ftp://auth.example.com/"), &url(PUBLIC_RESOURCE)),
            Err(SsrfReason::Scheme("ftp".into()))
        );
        assert_eq!(
            policy.check_url(&url("https://u:p@auth.example.com/"), &url(PUBLIC_RESOURCE)),
            Err(SsrfReason::UserInfo)
        );
    }

    #[test]
    fn allows_public_https_and_loopback_for_a_loopback_resource() {
        let policy = NetworkPolicy::default();
        assert_eq!(
            policy.check_url(
                &url("https://auth.example.com/token"),
                &url(PUBLIC_RESOURCE)
            ),
            Ok(())
        );
        assert_eq!(
            policy.check_url(&url("https://93.184.216.34/"), &url(PUBLIC_RESOURCE)),
            Ok(())
        );
        for target in [
            "http://127.0.0.1:9000/token",
            "http://localhost:9000/",
            "http://[::1]:9/",
        ] {
            assert_eq!(
                policy.check_url(&url(target), &url(LOOPBACK_RESOURCE)),
                Ok(()),
                "{target}"
            );
        }
        // Private is still refused for a loopback resource.
        assert!(matches!(
            policy.check_url(&url("http://10.0.0.1/"), &url(LOOPBACK_RESOURCE)),
            Err(SsrfReason::Private(_))
        ));
        assert!(matches!(
            policy.check_url(&url("https://10.0.0.1/"), &url(LOOPBACK_RESOURCE)),
            Err(SsrfReason::Private(_))
        ));
    }

    #[test]
    fn configuration_opens_private_addresses_and_named_hosts_only() {
        let policy = NetworkPolicy {
            allow_private_addresses: true,
            allowed_hosts: vec!["sso.corp".into()],
        };
        let resource = url(PUBLIC_RESOURCE);
        assert_eq!(
            policy.check_url(&url("https://10.0.0.1/"), &resource),
            Ok(())
        );
        assert_eq!(
            policy.check_url(&url("https://sso.corp/"), &resource),
            Ok(())
        );
        assert!(
            policy
                .check_url(&url("https://169.254.169.254/"), &resource)
                .is_err()
        );
        assert_eq!(
            policy.check_url(&url("http://sso.corp/"), &resource),
            Err(SsrfReason::InsecureHttp)
        );
    }
}
