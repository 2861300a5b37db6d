//! Pairs the other replicas forgot (a user removed the server there), forgotten here too: the
//! session closed and the tool lists dropped at once, instead of when the session idles out.

use tether_core::ReconnectionManager;
use tether_store::shared::ForgottenPairs;

/// Follows the other replicas' notices for as long as the process runs.
pub fn follow(forgotten: &ForgottenPairs, manager: ReconnectionManager) {
    let mut notices = forgotten.subscribe();
    tokio::spawn(async move {
        while let Some(pair) = notices.recv().await {
            manager.forgotten_elsewhere(&pair.user, &pair.server).await;
            tracing::debug!(%pair, "forgotten, as on another replica");
        }
    });
}
