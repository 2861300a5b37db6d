//! Benchmarks for Tether, printed as a table. Run with
//! `cargo run --release -p tether-bench --bin bench -- [login-storm] [--users N] [--servers N]`.
//!
//! `login-storm`: reconnect-on-login for many users at once through a zero-latency connector,
//! with the per-origin admission limit on. It measures the core's own cost (eligibility, tracker,
//! breakers, admission, coalescing, bookkeeping), since the connector costs nothing.

mod login_storm;
mod memory;

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
    }
}
