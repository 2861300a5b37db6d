//! One `tools/list` listing over every page, shared by both session kinds (rmcp's client and
//! the lean Streamable HTTP session): bounded in pages, tools and bytes, whatever the server
//! sends.

use std::future::Future;

use rmcp::model::ListToolsResult;
use tether_core::{ConnectError, ServerName, Tool};
use tracing::{debug, warn};

use crate::convert::{MAX_TOOL_LIST_BYTES, MAX_TOOL_PAGES, MAX_TOOLS, via_json};

/// Follows the server's cursors through `page(cursor)` (`None` for the first page), at most
/// [`MAX_TOOL_PAGES`] pages, [`MAX_TOOLS`] tools and [`MAX_TOOL_LIST_BYTES`] bytes of tool JSON.
pub(crate) async fn list_all<F, Fut>(
    server: &ServerName,
    mut page: F,
) -> Result<Vec<Tool>, ConnectError>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Result<ListToolsResult, ConnectError>>,
{
    let mut tools = Vec::new();
    let mut bytes = 0usize;
    let mut cursor: Option<String> = None;
    // A server that keeps sending cursors is cut off.
    for _page in 0..MAX_TOOL_PAGES {
        let listed = page(cursor.take()).await?;
        if tools.len() + listed.tools.len() > MAX_TOOLS {
            return Err(ConnectError::Protocol(format!(
                "the server listed more than {MAX_TOOLS} tools"
            )));
        }
        for tool in &listed.tools {
            bytes = bytes
                .saturating_add(serde_json::to_vec(tool).map_or(usize::MAX, |json| json.len()));
            if bytes > MAX_TOOL_LIST_BYTES {
                return Err(ConnectError::Protocol(format!(
                    "the server's tool list exceeds {MAX_TOOL_LIST_BYTES} bytes"
                )));
            }
            tools.push(via_json(tool, "tool")?);
        }
        match listed.next_cursor {
            Some(next) => cursor = Some(next),
            None => {
                debug!(%server, tools = tools.len(), "tools listed");
                return Ok(tools);
            }
        }
    }
    warn!(%server, pages = MAX_TOOL_PAGES, "tools/list pagination cut off");
    Err(ConnectError::Protocol(format!(
        "tools/list did not end within {MAX_TOOL_PAGES} pages"
    )))
}
