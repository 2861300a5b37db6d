//! The `tether` command: the gateway (coming with `serve`) and operator tools.
//!
//! Only the binary edge uses `anyhow`; the libraries return typed errors.

mod bearer;
mod config;
mod connect;
mod rekey;
mod serve;
mod token;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

/// mimalloc rather than glibc's malloc: a call allocates and frees many small buffers across
/// two worker threads, and glibc's consolidation and free-list work was ~14 % of the
/// gateway's CPU per call (README, "Benchmarks"). Called through `tether_alloc`, which reaches
/// mimalloc's fast paths.
#[global_allocator]
static ALLOCATOR: tether_alloc::Mimalloc = tether_alloc::Mimalloc;

/// Tether keeps every user's connections to remote, OAuth-protected MCP servers alive, safely,
/// at scale.
#[derive(Debug, Parser)]
#[command(name = "tether", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Checks a configuration file: prints every problem (and fails), else the effective
    /// settings (defaults filled in).
    Check {
        /// The TOML configuration file.
        #[arg(long)]
        config: PathBuf,
    },
    /// Connects to one MCP server (authorizing if it asks), lists its tools, optionally calls
    /// one, and exits: a probe for operators and scripts.
    Connect(Box<connect::ConnectArgs>),
    /// Re-seals every stored secret under the current encryption key (then older keys can go).
    Rekey(rekey::RekeyArgs),
    /// Runs the gateway: per-user MCP endpoint, HTTP API, OAuth callback.
    Serve(serve::ServeArgs),
    /// Prints a development host token (JWT) for a user, signed with the configured HS256 secret.
    Token(token::TokenArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A probe's stdout is for its JSON and its stderr for one failure line: keep logs quiet
    // there unless RUST_LOG asks for them (rmcp logs every transport failure as an error, with
    // its URL; our own error line already says what failed).
    let default_level = match cli.command {
        Command::Connect(_) => "warn,rmcp=off",
        Command::Check { .. } | Command::Rekey(_) | Command::Serve(_) | Command::Token(_) => "info",
    };
    let mut filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    // Whatever RUST_LOG says: rmcp's auth module logs authorization codes at debug level.
    if let Ok(directive) = tether_oauth::RMCP_AUTH_LOG_DIRECTIVE.parse() {
        filter = filter.add_directive(directive);
    }
    let format = match &cli.command {
        Command::Serve(args) => args.log_format(),
        _ => config::LogFormat::Text,
    };
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        // One object per line: the event's fields, and the request's (id, user) from its span.
        config::LogFormat::Json => logs
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
        config::LogFormat::Text => logs.init(),
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("tether: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Check { config } => {
            let text = std::fs::read_to_string(&config)
                .with_context(|| format!("cannot read {}", config.display()))?;
            let loaded = config::TetherConfig::parse_unchecked(&text)
                .with_context(|| format!("in {}", config.display()))?;
            let problems = loaded.problems();
            for problem in &problems {
                eprintln!("{}: {problem}", config.display());
            }
            anyhow::ensure!(
                problems.is_empty(),
                "{} problem(s) in {}",
                problems.len(),
                config.display()
            );
            print!("{}", loaded.to_toml()?);
            Ok(())
        }
        // Its own runtime and log filter: see `connect::run_blocking`.
        Command::Connect(args) => connect::run_blocking(*args),
        Command::Serve(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(serve::run(args)),
        Command::Rekey(args) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(rekey::run(args)),
        Command::Token(args) => token::run(args),
    }
}
