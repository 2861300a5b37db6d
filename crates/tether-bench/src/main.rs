//! Benchmarks for Tether, printed as a table. Run with
//! `cargo run --release -p tether-bench --bin bench -- [login-storm] [--users N] [--servers N]`.
//!
//! `login-storm`: reconnect-on-login for many users at once through a zero-latency connector,
//! with the per-origin admission limit on. It measures the core's own cost (eligibility, tracker,
//! breakers, admission, coalescing, bookkeeping), since the connector costs nothing.
//!
//! `idle-sessions [--sessions 1000,10000]`: memory per idle Streamable HTTP session of Tether's
//! MCP client and of the TypeScript SDK in Node, side by side, against the `tether-testkit-mcp`
//! server. Build that first: `cargo build --release -p tether-testkit -p tether-bench`; the Node
//! side needs `npm ci` in `crates/tether-bench/node`.
//!
//! `gateway`: the `tether` gateway as a process against `tether-testkit-mcp` upstream processes:
//! a login storm through the HTTP API, RSS per idle upstream session, and tool-call latency,
//! throughput and CPU through `/mcp` beside direct calls and calls through a bare pass-through
//! proxy (`bench pass-through`, hidden, run by `gateway` as its own process). Build first:
//! `cargo build --release -p tether -p tether-bench -p tether-testkit`.
//!
//! `refresh-replicas [--pairs 1000]`: expiring pairs refreshed through two gateway replicas
//! (PostgreSQL + Redis) against oidc-provider, counting the token requests it receives. Needs
//! the same build plus `npm ci` in `crates/tether-oauth/tests/peers`.

mod gateway;
mod idle_sessions;
mod login_storm;
mod memory;
mod refresh_replicas;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "bench", about = "Tether benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Reconnect-on-login for USERS × SERVERS pairs at the same instant.
    LoginStorm(login_storm::Args),
    /// Memory per idle Streamable HTTP session: Tether's client beside the TypeScript SDK's.
    IdleSessions(idle_sessions::Args),
    /// The gateway as a process: login storm, memory per idle upstream session, tool calls.
    Gateway(gateway::Args),
    /// Expiring pairs refreshed through two replicas: token requests at the authorization server.
    RefreshReplicas(refresh_replicas::Args),
    /// Internal to `gateway`: the pass-through proxy process its calls part measures.
    #[command(hide = true)]
    PassThrough(gateway::pass_through::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli
        .command
        .unwrap_or(Command::LoginStorm(login_storm::Args::default()))
    {
        Command::LoginStorm(args) => runtime.block_on(login_storm::run(args)),
        Command::IdleSessions(args) => runtime.block_on(idle_sessions::run(args)),
        Command::Gateway(args) => runtime.block_on(gateway::run(args)),
        Command::RefreshReplicas(args) => runtime.block_on(refresh_replicas::run(args)),
        Command::PassThrough(args) => runtime.block_on(gateway::pass_through::serve(args)),
    }
}
