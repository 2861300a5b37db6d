//! `tether rekey --config FILE`: re-seals every stored secret under the current key of
//! `TETHER_ENCRYPTION_KEY`, so that the keys after it can be removed. Safe to run while replicas
//! serve, and again after an interruption (see `tether_store::sql::SqlStore::rekey`).

use std::path::PathBuf;

use anyhow::{Context, bail};
use tether_store::sql::SqlStore;

use crate::config::TetherConfig;

#[derive(Debug, clap::Args)]
pub struct RekeyArgs {
    /// The TOML configuration file (its `[storage]` is re-sealed).
    #[arg(long)]
    config: PathBuf,
    /// Use the key file `serve --dev` keeps when the variable is not set.
    #[arg(long)]
    dev: bool,
}

pub async fn run(args: RekeyArgs) -> anyhow::Result<()> {
    let config = TetherConfig::load(&args.config)?;
    let keys = crate::serve::keyring(&config, args.dev)?;
    let current = keys.current_key_id().to_owned();
    let store = SqlStore::open(&config.storage.url, keys)
        .await
        .context("cannot open the storage")?;
    let report = store.rekey().await.context("re-sealing failed");
    store.close().await;
    let report = report?;
    println!(
        "{}",
        serde_json::json!({
            "current_key": current,
            "resealed": report.resealed,
            "changed_meanwhile": report.changed_meanwhile,
            "unreadable": report.unreadable,
            "remaining_under_old_keys": report.remaining_under_old_keys,
        })
    );
    if report.remaining_under_old_keys > 0 {
        bail!(
            "{} stored values are still sealed under keys other than {current} ({} of them open \
             with no configured key; the rest were written meanwhile by a replica whose current \
             key is older: give every replica the new key list and run rekey again); keep the \
             old keys until this reports 0",
            report.remaining_under_old_keys,
            report.unreadable
        );
    }
    eprintln!(
        "every stored secret is sealed under {current}; the other keys can be removed once flows \
         in progress (10 minutes) have passed"
    );
    Ok(())
}
