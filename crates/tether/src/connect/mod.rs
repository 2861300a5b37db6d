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
    after_help = "Examples:\n  tether connect https://mcp.example.com/mcp\n  tether connect --headless --call echo --args '{\"message\":\"hi\"}' http://127.0.0.1:3001/mcp\n  tether connect --stdio -- npx -y @modelcontextprotocol/server-everything\n\nOutput: the tools and the negotiated protocol ({\"version\", \"wire\": \"stateless\"|\"session\"})\nas one JSON line, then the --call result as one JSON line. A failure is one\n`tether: …` line on stderr and a non-zero exit. Nothing is logged unless RUST_LOG is set."
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

/// Runs `tether connect` on a runtime of its own whose threads log through
/// [`log_dispatch`], whatever the process-wide subscriber is.
pub fn run_blocking(args: ConnectArgs) -> anyhow::Result<()> {
    let dispatch = log_dispatch();
    let for_workers = dispatch.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_start(move || {
            // The runtime's threads live as long as the runtime: keep the default for good.
            std::mem::forget(tracing::dispatcher::set_default(&for_workers));
        })
        .build()
        .context("cannot start the async runtime")?;
    tracing::dispatcher::with_default(&dispatch, || runtime.block_on(run(args)))
}

/// A probe's stdout is for its JSON and its stderr for one failure line, so nothing is logged
/// unless `RUST_LOG` asks (libraries log the same failure again, rmcp with URLs; a more specific
/// directive such as the auth cap below would switch rmcp's auth module back on). With
/// `RUST_LOG`, rmcp's auth module stays capped at `info` (it logs authorization codes at debug).
fn log_dispatch() -> tracing::Dispatch {
    use tracing_subscriber::EnvFilter;
    let filter = match std::env::var_os("RUST_LOG").map(|_| EnvFilter::try_from_default_env()) {
        Some(Ok(filter)) => match tether_oauth::RMCP_AUTH_LOG_DIRECTIVE.parse() {
            Ok(cap) => filter.add_directive(cap),
            Err(_) => EnvFilter::new("off"),
        },
        _ => EnvFilter::new("off"),
    };
    tracing::Dispatch::new(
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .finish(),
    )
}

/// Longest tool error text quoted in the failure line.
const MAX_TOOL_ERROR_CHARS: usize = 300;

/// Runs the command. A failure is one line (its causes joined with `: `), so that the caller's
/// `tether: …` line is the only thing on stderr.
async fn run(args: ConnectArgs) -> anyhow::Result<()> {
    run_inner(args)
        .await
        .map_err(|error| anyhow::Error::msg(one_line(&format!("{error:#}"), usize::MAX)))
}

/// `text` on one line: every run of whitespace or control characters becomes one space, and
/// at most `max_chars` characters are kept.
fn one_line(text: &str, max_chars: usize) -> String {
    let mut line = String::with_capacity(text.len().min(1024));
    let mut chars = 0;
    for word in text
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
    {
        if chars > 0 {
            line.push(' ');
            chars += 1;
        }
        for c in word.chars() {
            if chars >= max_chars {
                line.push('…');
                return line;
            }
            line.push(c);
            chars += 1;
        }
    }
    line
}

/// `--header` values as (name, value), checked here so that a mistake names the flag. A value
/// may be a credential: messages name the header, never its value.
fn parse_headers(headers: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    headers
        .iter()
        .map(|header| {
            let Some((name, value)) = header.split_once(':') else {
                bail!("--header must look like `Name: value` (one has no colon)");
            };
            let name = name.trim();
            if name.is_empty() {
                bail!("--header must look like `Name: value` (one has no name)");
            }
            if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                bail!(
                    "--header {:?} does not start with a valid header name",
                    one_line(name, 64)
                );
            }
            let value = value.trim();
            if reqwest::header::HeaderValue::from_str(value).is_err() {
                bail!("--header {name}: the value is not a valid HTTP header value");
            }
            Ok((name.to_owned(), value.to_owned()))
        })
        .collect()
}

async fn run_inner(args: ConnectArgs) -> anyhow::Result<()> {
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
    let headers = parse_headers(&args.headers)?;
    let connector = McpConnector::default()
        .with_headers(headers.iter().map(|(n, v)| (n.as_str(), v.as_str())))
        .context("invalid --header")?
        .with_bearer_source(Arc::new(AuthorizerBearer::new(authorizer.clone())));
    let request = ConnectRequest {
        user: user.clone(),
        server: server.clone(),
        timeout: CONNECT_TIMEOUT,
        authorization: AuthorizationMode::Interactive,
        events: None,
    };

    let target = describe_target(&args);
    let url = args.url.as_deref().unwrap_or_default();
    // A first authorization when the server wants one, then at most one step-up when it
    // answers 403 insufficient_scope (the authorizer remembers the wider scope it named).
    let mut authorizations = 0;
    loop {
        let session = match connector.connect(request.clone()).await {
            Ok(session) => session,
            Err(ConnectError::NeedsAuthorization { .. }) if !args.stdio && authorizations < 2 => {
                authorize(&args, &authorizer, &user, &server.name, url).await?;
                authorizations += 1;
                continue;
            }
            Err(ConnectError::NeedsAuthorization { .. }) if authorizations > 0 => bail!(
                "{target} still refuses access after the authorization succeeded \
                 (the granted scopes may not be enough: see --scope)"
            ),
            Err(error) => {
                return Err(error).with_context(|| format!("cannot connect to {target}"));
            }
        };
        let outcome = list_and_call(&session, args.call.as_deref(), arguments.clone()).await;
        session.close().await;
        let wants_wider_scope = outcome.as_ref().err().is_some_and(|error| {
            matches!(
                error.downcast_ref::<ConnectError>(),
                Some(ConnectError::NeedsAuthorization { scope: Some(_), .. })
            )
        });
        if wants_wider_scope && !args.stdio && authorizations < 2 {
            authorize(&args, &authorizer, &user, &server.name, url).await?;
            authorizations += 1;
            continue;
        }
        return outcome;
    }
}

async fn list_and_call(
    session: &Arc<dyn Session>,
    call: Option<&str>,
    arguments: Option<serde_json::Map<String, serde_json::Value>>,
) -> anyhow::Result<()> {
    let tools = session.list_tools().await.context("tools/list failed")?;
    println!(
        "{}",
        serde_json::to_string(
            &serde_json::json!({ "tools": tools, "protocol": session.protocol() })
        )?
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
        let text = one_line(&result.text(), MAX_TOOL_ERROR_CHARS);
        if text.is_empty() {
            bail!("the tool {tool:?} reported an error");
        }
        bail!("the tool {tool:?} reported an error: {text}");
    }
    Ok(())
}

/// The server as the failure line names it: the URL without credentials, query or fragment
/// (they may carry secrets), or the stdio command's program.
fn describe_target(args: &ConnectArgs) -> String {
    if args.stdio {
        let program = args.command.first().map(String::as_str).unwrap_or_default();
        return format!("the stdio server {program:?}");
    }
    let Some(mut url) = args.url.as_deref().and_then(|u| url::Url::parse(u).ok()) else {
        return "the server".to_owned();
    };
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.set_query(None);
    url.set_fragment(None);
    url.to_string()
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
    let start = match authorizer.pending_step_up(user, server) {
        // The server refused the token as not wide enough: ask for its scope too.
        Some(challenge) => {
            authorizer
                .step_up(user, server, url, &challenge, options)
                .await
        }
        None => authorizer.start(user, server, url, options).await,
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_one_line() {
        assert_eq!(one_line("a\nb\r\n  c\td\u{1}e", usize::MAX), "a b c d e");
        assert_eq!(one_line("  \n", usize::MAX), "");
        assert_eq!(one_line("abcdef", 3), "abc…");
    }

    #[test]
    fn headers_are_checked_without_echoing_values() {
        let parsed = parse_headers(&["X-A: one".to_owned(), "X-B:two: three".to_owned()])
            .expect("valid headers");
        assert_eq!(
            parsed,
            [
                ("X-A".to_owned(), "one".to_owned()),
                ("X-B".to_owned(), "two: three".to_owned())
            ]
        );
        for bad in [
            "Authorization Bearer s3cr3t",
            ": s3cr3t",
            "X Y: s3cr3t",
            "X: s3\u{1}cr3t",
        ] {
            let error = parse_headers(&[bad.to_owned()]).expect_err(bad).to_string();
            assert!(error.starts_with("--header"), "{error}");
            assert!(!error.contains("s3cr3t"), "{error}");
        }
    }
}
