//! What a server declared it offers besides tools, kept from its handshake so that the gateway
//! asks only servers that have resources, prompts, completions or logging.

use rmcp::model::ServerCapabilities;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Offers {
    resources: bool,
    prompts: bool,
    completions: bool,
    logging: bool,
}

impl Offers {
    pub(crate) fn from_capabilities(capabilities: &ServerCapabilities) -> Self {
        Self {
            resources: capabilities.resources.is_some(),
            prompts: capabilities.prompts.is_some(),
            completions: capabilities.completions.is_some(),
            logging: capabilities.logging.is_some(),
        }
    }

    /// Whether the capability of that MCP name was declared; unknown names are not.
    pub(crate) fn has(&self, capability: &str) -> bool {
        match capability {
            "resources" => self.resources,
            "prompts" => self.prompts,
            "completions" => self.completions,
            "logging" => self.logging,
            _ => false,
        }
    }
}
