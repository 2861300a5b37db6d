//! Pairs a user forgot (removed the server) on one replica, told to the others over Redis
//! pub/sub, so that each closes its own session of the pair and drops its tool lists at once
//! instead of when the session idles out.
//!
//! Best effort by design: a notice published while a replica's subscription is down is lost to
//! it. Nothing depends on it for safety (the pair's tokens are gone from the store, so the
//! other replica's session can no longer be authorized); it only makes the other replica show
//! what the user did without waiting.

use std::time::Duration;

use futures::StreamExt;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use tether_core::{PairKey, ServerName, StoreError, UserId};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::redis::{RedisState, unavailable};

/// How long the subscription waits before connecting again after Redis went away.
const RESUBSCRIBE_AFTER: Duration = Duration::from_secs(1);
/// Notices waiting for the replica to act on them; beyond this, newer ones are dropped (each
/// is also undone by the session's idle timeout).
const BACKLOG: usize = 1024;

/// One replica's end of the channel: it publishes its own forgets and hears the others'.
#[derive(Clone)]
pub struct ForgottenPairs {
    client: redis::Client,
    conn: ConnectionManager,
    channel: String,
    /// Tells this replica's notices from the others' (it hears its own too).
    replica: String,
}

impl std::fmt::Debug for ForgottenPairs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForgottenPairs")
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize, Deserialize)]
struct Notice {
    from: String,
    user: String,
    server: String,
}

impl RedisState {
    /// This replica's end of the forgotten-pairs channel (one per replica).
    pub fn forgotten_pairs(&self) -> ForgottenPairs {
        ForgottenPairs {
            client: self.client.clone(),
            conn: self.conn.clone(),
            channel: self.keys.forgotten_channel(),
            replica: format!("{:016x}", rand::random::<u64>()),
        }
    }
}

impl ForgottenPairs {
    /// Tells the other replicas that `pair` was forgotten here.
    pub async fn publish(&self, pair: &PairKey) -> Result<(), StoreError> {
        let notice = Notice {
            from: self.replica.clone(),
            user: pair.user.as_str().to_owned(),
            server: pair.server.as_str().to_owned(),
        };
        let text = serde_json::to_string(&notice)
            .map_err(|_| StoreError::Unavailable("a forget notice could not be written".into()))?;
        redis::cmd("PUBLISH")
            .arg(&self.channel)
            .arg(text)
            .query_async::<i64>(&mut self.conn.clone())
            .await
            .map(drop)
            .map_err(|e| unavailable("publish", &e))
    }

    /// The pairs the other replicas forget from now on. The subscription is kept (subscribed
    /// again after Redis comes back) until the receiver is dropped.
    pub fn subscribe(&self) -> mpsc::Receiver<PairKey> {
        let (tx, rx) = mpsc::channel(BACKLOG);
        let this = self.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = this.listen(&tx) => {}
                () = tx.closed() => {}
            }
        });
        rx
    }

    async fn listen(&self, tx: &mpsc::Sender<PairKey>) {
        loop {
            match self.client.get_async_pubsub().await {
                Ok(mut pubsub) => match pubsub.subscribe(&self.channel).await {
                    Ok(()) => {
                        debug!(channel = %self.channel, "listening for forgotten pairs");
                        let mut messages = pubsub.on_message();
                        while let Some(message) = messages.next().await {
                            if let Some(pair) = self.read(message.get_payload_bytes()) {
                                // Full: the notice is dropped, the session idles out instead.
                                let _ = tx.try_send(pair);
                            }
                        }
                        debug!("the forgotten-pairs subscription ended");
                    }
                    Err(e) => warn!(error = %unavailable("subscribe", &e), "not subscribed"),
                },
                Err(e) => {
                    debug!(error = %unavailable("pubsub connect", &e), "not subscribed");
                }
            }
            tokio::time::sleep(RESUBSCRIBE_AFTER).await;
        }
    }

    /// Another replica's notice as a pair; `None` for this replica's own and for anything that
    /// does not read as a notice (never echoed: it could hold anything).
    fn read(&self, payload: &[u8]) -> Option<PairKey> {
        let Ok(notice) = serde_json::from_slice::<Notice>(payload) else {
            warn!("a message on the forgotten-pairs channel is not a notice");
            return None;
        };
        (notice.from != self.replica)
            .then(|| PairKey::new(UserId::new(&notice.user), ServerName::new(&notice.server)))
    }
}
