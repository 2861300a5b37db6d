//! The reconnection manager's rules, on tokio's paused clock with a scripted connector.

mod breakers;
mod coalescing;
mod cooldown;
mod eligibility;
mod idle;
mod outage;
mod rate_limit;
mod recovery;
mod requests;
mod servers;
mod stagger;
mod storm;
mod stubs;
mod support;
