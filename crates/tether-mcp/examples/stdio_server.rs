//! A tiny MCP server on stdin/stdout for the stdio transport tests (`tests/stdio.rs`): the same
//! paged tools as the HTTP test server.

#[path = "../tests/support/tools.rs"]
#[allow(dead_code)] // the hostile handler there is only for the HTTP tests
mod tools;

use rmcp::ServiceExt;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let running = tools::PagedTools.serve(rmcp::transport::stdio()).await?;
    // Ends when the client closes stdin (or kills the process).
    running.waiting().await?;
    Ok(())
}
