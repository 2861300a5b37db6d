//! `tether connect`: a one-shot MCP client for operators and scripts. It authorizes if the
//! server asks, initializes, prints the tools as one JSON line, calls `--call` and prints its
//! result as one JSON line. Any failure is one line on stderr and a non-zero exit.

mod callback;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use tether_core::{
    AuthorizationMode, ConnectError, ConnectRequest, Connector, ServerConfig, ServerName, Session,
    TransportConfig, UserId,
};
use tether_mcp::McpConnector;
use tether_oauth::{
    AuthorizerConfig, McpAuthorizer, OAuthStores, PreregisteredClient, Secret, StartOptions,
};

use crate::bearer::AuthorizerBearer;
use callback::CallbackListener;

/// How long an interactive authorization may take (a person reads, logs in, consents).
const INTERACTIVE_PATIENCE: Duration = Duration::from_secs(300);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TransportArg {
    StreamableHttp,
    Sse,
}

/// Connect to one MCP server, list its tools (and call one), then exit.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  tether connect https://mcp.example.com/mcp\n  tether connect --headless --call echo --args '{\"message\":\"hi\"}' http://127.0.0.1:3001/mcp\n  tether connect --stdio -- npx -y @modelcontextprotocol/server-everything"
)]
pub struct ConnectArgs {
    /// The MCP server URL (not with --stdio).
    #[arg(required_unless_present = "stdio")]
    url: Option<String>,
    /// Perform the authorization request without a browser: follow the authorization server's
    /// redirects (with cookies) until it redirects to the redirect URI.
    #[arg(long)]
    headless: bool,
    /// A client registered with the authorization server in advance.
    #[arg(long, value_name = "ID")]
    client_id: Option<String>,
    /// The pre-registered client's secret.
    #[arg(long, value_name = "SECRET", requires = "client_id")]
    client_secret: Option<String>,
    /// A client ID metadata document URL, used when the authorization server supports it.
    #[arg(long, value_name = "URL")]
    client_metadata_url: Option<String>,
    /// Where the authorization server sends the user back (default: a free loopback port).
    #[arg(long, value_name = "URL")]
    redirect_uri: Option<String>,
    /// Scopes to ask for, space-separated (default: from the server's challenge or metadata).
    #[arg(long, value_name = "SCOPES")]
    scope: Option<String>,
    /// A tool to call after listing.
    #[arg(long, value_name = "TOOL")]
    call: Option<String>,
    /// The tool's arguments, a JSON object.
    #[arg(long, value_name = "JSON", requires = "call")]
    args: Option<String>,
    /// An extra HTTP header, `Name: value` (repeatable).
    #[arg(long = "header", value_name = "NAME: VALUE")]
    headers: Vec<String>,
    /// The HTTP transport: Streamable HTTP (2025-03-26+) or the legacy HTTP+SSE (2024-11-05).
    #[arg(long, value_enum, default_value = "streamable-http")]
    transport: TransportArg,
    /// Run the server as a child process speaking MCP on stdio: `--stdio -- COMMAND ARGS…`.
    #[arg(long, conflicts_with_all = ["url", "headless", "client_id", "client_secret", "client_metadata_url", "redirect_uri", "scope", "headers"])]
    stdio: bool,
    /// With --stdio: the command and its arguments.
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<String>,
}

pub async fn run(args: ConnectArgs) -> anyhow::Result<()> {
    let arguments = parse_arguments(args.args.as_deref())?;
    let transport = transport(&args)?;
    let server = Arc::new(ServerConfig {
        name: ServerName::new("upstream"),
        transport: transport.clone(),
        oauth: !args.stdio,
        init_timeout: Some(CONNECT_TIMEOUT),
    });
    let user = UserId::new("tether-connect");
    let authorizer = Arc::new(
        McpAuthorizer::new(AuthorizerConfig::default(), OAuthStores::in_memory())
            .context("cannot set up the OAuth client")?,
    );
    let headers: Vec<(&str, &str)> = args
        .headers
        .iter()
        .map(|h| {
            h.split_once(':')
                .with_context(|| format!("--header {h:?} must look like `Name: value`"))
        })
        .collect::<anyhow::Result<_>>()?;
    let connector = McpConnector::default()
        .with_headers(headers)?
        .with_bearer_source(Arc::new(AuthorizerBearer::new(authorizer.clone())));
    let request = ConnectRequest {
        user: user.clone(),
        server: server.clone(),
        timeout: CONNECT_TIMEOUT,
        authorization: AuthorizationMode::Interactive,
    };

    let session = match connector.connect(request.clone()).await {
        Ok(session) => session,
        Err(ConnectError::NeedsAuthorization { .. }) if !args.stdio => {
            let url = args.url.as_deref().unwrap_or_default();
            authorize(&args, &authorizer, &user, &server.name, url).await?;
            connector
                .connect(request)
                .await
                .context("connecting after authorization failed")?
        }
        Err(error) => return Err(error).context("cannot connect"),
    };
    let outcome = list_and_call(&session, args.call.as_deref(), arguments).await;
    session.close().await;
    outcome
}

async fn list_and_call(
    session: &Arc<dyn Session>,
    call: Option<&str>,
    arguments: Option<serde_json::Map<String, serde_json::Value>>,
) -> anyhow::Result<()> {
    let tools = session.list_tools().await.context("tools/list failed")?;
    println!(
        "{}",
        serde_json::to_string(&serde_json::json!({ "tools": tools }))?
    );
    let Some(tool) = call else {
        return Ok(());
    };
    let result = session
        .call_tool(tool, arguments)
        .await
        .with_context(|| format!("tools/call {tool} failed"))?;
    println!("{}", serde_json::to_string(&result)?);
    if result.is_error {
        bail!("the tool {tool:?} reported an error");
    }
    Ok(())
}

fn parse_arguments(
    args: Option<&str>,
) -> anyhow::Result<Option<serde_json::Map<String, serde_json::Value>>> {
    let Some(text) = args else {
        return Ok(None);
    };
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(map)) => Ok(Some(map)),
        Ok(_) => bail!("--args must be a JSON object"),
        Err(e) => bail!("--args is not valid JSON: {e}"),
    }
}

fn transport(args: &ConnectArgs) -> anyhow::Result<TransportConfig> {
    if args.stdio {
        let Some((command, rest)) = args.command.split_first() else {
            bail!("--stdio needs a command: tether connect --stdio -- COMMAND ARGS…");
        };
        return Ok(TransportConfig::Stdio {
            command: command.clone(),
            args: rest.to_vec(),
        });
    }
    if !args.command.is_empty() {
        bail!("a command after `--` needs --stdio");
    }
    let url = args.url.clone().unwrap_or_default();
    if tether_core::Origin::from_url(&url).is_none() {
        bail!("{url:?} is not an absolute http(s) URL");
    }
    Ok(match args.transport {
        TransportArg::StreamableHttp => TransportConfig::StreamableHttp { url },
        TransportArg::Sse => TransportConfig::Sse { url },
    })
}

async fn authorize(
    args: &ConnectArgs,
    authorizer: &McpAuthorizer,
    user: &UserId,
    server: &ServerName,
    url: &str,
) -> anyhow::Result<()> {
    // Interactive: we must receive the redirect, so listen before the flow starts. Headless
    // never requests the redirect URI, so any URI will do.
    let listener = if args.headless {
        None
    } else {
        Some(CallbackListener::bind(args.redirect_uri.as_deref()).await?)
    };
    let redirect_uri = match (&listener, &args.redirect_uri) {
        (Some(l), _) => l.redirect_uri().to_owned(),
        (None, Some(given)) => given.clone(),
        // Nothing listens there: headless stops at the redirect without following it.
        (None, None) => "http://127.0.0.1:9/callback".to_owned(),
    };
    let mut options = StartOptions::new(redirect_uri.clone());
    if let Some(scope) = &args.scope {
        options = options.with_scopes(scope.split_whitespace());
    }
    if let Some(client_id) = &args.client_id {
        options = options.with_client(PreregisteredClient {
            client_id: client_id.clone(),
            client_secret: args.client_secret.as_deref().map(Secret::new),
            auth_method: None,
        });
    }
    options.client_metadata_url = args.client_metadata_url.clone();
    let start = authorizer
        .start(user, server, url, options)
        .await
        .context("cannot start the authorization")?;
    let response = match listener {
        None => tether_oauth::headless::authorize(&start.authorization_url, &redirect_uri)
            .await
            .context("headless authorization failed")?,
        Some(listener) => {
            eprintln!(
                "Open this URL in a browser to authorize Tether:\n\n  {}\n\nWaiting for the redirect to {redirect_uri} …",
                start.authorization_url
            );
            listener.wait(INTERACTIVE_PATIENCE).await?
        }
    };
    authorizer
        .complete(
            &response.state,
            response.code.expose(),
            response.issuer.as_deref(),
        )
        .await
        .context("cannot complete the authorization")?;
    Ok(())
}
