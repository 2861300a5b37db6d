//! `tether token`: a development host token (JWT, HS256) for a user, signed with the secret the
//! configuration names (or `--dev`'s kept secret), printed on the last line of output.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use jsonwebtoken::{EncodingKey, Header, encode};
use serde::Serialize;

use crate::config::TetherConfig;
use crate::serve::{JWT_SECRET_FILE, data_dir};

#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    /// The TOML configuration file.
    #[arg(long)]
    config: PathBuf,
    /// The user (`sub`) the token speaks for.
    #[arg(long)]
    user: String,
}

#[derive(Serialize)]
struct Claims<'a> {
    sub: &'a str,
    iss: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
}

/// One hour: long enough for a walkthrough, short enough to be harmless when pasted around.
const LIFETIME_SECS: u64 = 3600;

pub fn run(args: TokenArgs) -> anyhow::Result<()> {
    let config = TetherConfig::load(&args.config)?;
    let Some(gateway) = &config.gateway else {
        bail!("{}: no [gateway.host_auth] table", args.config.display());
    };
    let auth = &gateway.host_auth;
    let Some(var) = &auth.hs256_secret_env else {
        bail!(
            "host_auth has no hs256_secret_env: tokens come from the host's own identity provider"
        );
    };
    let secret = match std::env::var(var) {
        Ok(value) if !value.is_empty() => value,
        _ => {
            let path = data_dir(&config.storage.url).join(JWT_SECRET_FILE);
            let kept = std::fs::read_to_string(&path).with_context(|| {
                format!(
                    "{var} is not set and {} does not exist (run `tether serve --dev` once)",
                    path.display()
                )
            })?;
            eprintln!(
                "{var} is not set; using the --dev secret in {}",
                path.display()
            );
            kept.trim().to_owned()
        }
    };
    anyhow::ensure!(!args.user.is_empty(), "--user must not be empty");
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let claims = Claims {
        sub: &args.user,
        iss: &auth.issuer,
        aud: &auth.audience,
        iat: now,
        exp: now + LIFETIME_SECS,
    };
    let token = encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .context("cannot sign the token")?;
    println!("{token}");
    Ok(())
}
