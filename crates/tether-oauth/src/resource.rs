//! Whether stored tokens belong to the MCP server a request goes to now.
//!
//! A token record keeps the resource indicator (RFC 8707) it was issued for: the protected
//! resource metadata's `resource`, or the server's URL. A server's URL can change under the same
//! name (a configuration reload, a catalog update), and a token issued for the old URL must not
//! be sent to the new one: it would hand one server a credential meant for another. The rule is
//! the one rmcp applies to protected resource metadata (`is_resource_identifier_valid`, private
//! there): the same URL, or the same scheme, host and port with the resource's path a
//! segment-wise prefix of the server's. The query never counts (it may carry transport hints).

use url::Url;

/// Whether tokens issued for `resource` may be sent to the MCP server at `server_url`: the same
/// text, or URLs as above. Other text that does not parse as a URL identifies nothing.
pub fn identifies(resource: &str, server_url: &str) -> bool {
    // This runs before every upstream request of an OAuth server, and a record is usually
    // issued for the very URL: no parsing then.
    if resource == server_url && !resource.is_empty() {
        return true;
    }
    let (Ok(resource), Ok(server)) = (Url::parse(resource), Url::parse(server_url)) else {
        return false;
    };
    if resource.scheme() != server.scheme()
        || resource.host_str() != server.host_str()
        || resource.port_or_known_default() != server.port_or_known_default()
    {
        return false;
    }
    let (prefix, path) = (resource.path(), server.path());
    path == prefix
        || (path.starts_with(prefix)
            && (prefix.ends_with('/') || path.as_bytes().get(prefix.len()) == Some(&b'/')))
}

#[cfg(test)]
mod tests {
    use super::identifies;

    #[test]
    fn the_same_url_or_a_path_prefix_on_the_same_origin_identifies_the_server() {
        let server = "https://mcp.example/tenant/mcp?transport=x";
        for resource in [
            server,
            "https://mcp.example/tenant/mcp",
            "https://mcp.example/tenant/mcp?other=1",
            "https://mcp.example:443/tenant",
            "https://mcp.example/tenant/",
            "https://mcp.example",
            "https://MCP.example/",
        ] {
            assert!(identifies(resource, server), "{resource}");
        }
    }

    #[test]
    fn another_origin_or_a_sibling_path_does_not() {
        let server = "https://mcp.example/tenant/mcp";
        for resource in [
            "https://mcp.example/tenant/mcp2",
            "https://mcp.example/ten",
            "https://mcp.example/other/mcp",
            "https://mcp.example/tenant/mcp/deeper",
            "http://mcp.example/tenant/mcp",
            "https://mcp.example:8443/tenant/mcp",
            "https://evil.example/tenant/mcp",
            "https://mcp.example.evil.example/tenant/mcp",
            "not a url",
            "",
        ] {
            assert!(!identifies(resource, server), "{resource}");
        }
        assert!(!identifies("https://mcp.example/", "not a url"));
    }
}
