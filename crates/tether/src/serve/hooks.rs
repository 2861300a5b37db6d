//! The gateway's hooks filled in by the binary: forgetting a pair's tokens when a user removes
//! a server (the manager forgets its session and tool list), and readiness of the stores.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use tether::gateway::{HookError, MetricsSource, PairForgetter, ReadinessCheck};
use tether_core::{PairKey, ServerName, UserId};
use tether_oauth::McpAuthorizer;
use tether_store::shared::{FallbackState, ForgottenPairs, RedisState};
use tether_store::sql::SqlStore;

#[derive(Debug)]
pub struct ForgetTokens {
    pub authorizer: Arc<McpAuthorizer>,
    /// With several replicas: the others forget the pair too ([`super::forgotten`]).
    pub others: Option<ForgottenPairs>,
}

#[async_trait]
impl PairForgetter for ForgetTokens {
    async fn forget(&self, user: &UserId, server: &ServerName) -> Result<(), HookError> {
        revoke_at_authorization_server(&self.authorizer, user, server).await;
        self.authorizer
            .revoke_local(user, server)
            .await
            .map_err(|e| HookError(format!("could not delete the tokens: {e}")))?;
        if let Some(others) = &self.others
            && let Err(error) = others
                .publish(&PairKey::new(user.clone(), server.clone()))
                .await
        {
            // Their sessions can no longer be authorized and idle out; only the view lags.
            tracing::warn!(%user, %server, %error, "the other replicas were not told");
        }
        Ok(())
    }
}

/// The longest a revocation may hold up forgetting a pair.
const REVOCATION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Revokes the pair's grant where its authorization server offers it (RFC 7009), before its
/// tokens are deleted; a failure is logged and the deletion goes on.
pub async fn revoke_at_authorization_server(
    authorizer: &McpAuthorizer,
    user: &UserId,
    server: &ServerName,
) {
    match tokio::time::timeout(REVOCATION_TIMEOUT, authorizer.revoke_remote(user, server)).await {
        Ok(Ok(outcome)) => tracing::debug!(%user, %server, ?outcome, "revocation"),
        Ok(Err(error)) => {
            tracing::info!(%user, %server, %error, "grant not revoked; the tokens are deleted anyway");
        }
        Err(_) => {
            tracing::info!(%user, %server, "revocation timed out; the tokens are deleted anyway")
        }
    }
}

#[derive(Debug)]
pub struct StorageReady(pub SqlStore);

#[async_trait]
impl ReadinessCheck for StorageReady {
    fn name(&self) -> &str {
        "storage"
    }

    async fn check(&self) -> Result<(), HookError> {
        self.0.ping().await.map_err(|e| HookError(e.to_string()))
    }
}

/// Whether Redis answers a PING (never a count: probes are unauthenticated and may come at any
/// rate). A Redis outage leaves the replica ready, since it runs on its own state meanwhile, but
/// the detail says "degraded". In-process state always answers.
#[derive(Debug)]
pub struct SharedStateReady {
    redis: Option<Arc<RedisState>>,
    fallback: Option<Arc<FallbackState>>,
    /// The last PING failed.
    unreachable: AtomicBool,
}

impl SharedStateReady {
    pub fn new(redis: Option<Arc<RedisState>>, fallback: Option<Arc<FallbackState>>) -> Self {
        Self {
            redis,
            fallback,
            unreachable: AtomicBool::new(false),
        }
    }
}

#[async_trait]
impl ReadinessCheck for SharedStateReady {
    fn name(&self) -> &str {
        "shared_state"
    }

    async fn check(&self) -> Result<(), HookError> {
        if let Some(redis) = &self.redis {
            let answered = redis.ping().await.is_ok();
            self.unreachable.store(!answered, Ordering::Relaxed);
        }
        Ok(())
    }

    fn detail(&self) -> Option<String> {
        let fallback = self.fallback.as_ref()?;
        Some(
            if fallback.is_degraded() || self.unreachable.load(Ordering::Relaxed) {
                format!(
                    "degraded: Redis is unreachable, this replica runs on its own state (fallbacks so far: {})",
                    fallback.fallbacks()
                )
            } else {
                "shared (Redis)".to_owned()
            },
        )
    }
}

/// `tether_oauth_refreshes_total{outcome}` and `tether_shared_state_degraded`.
#[derive(Debug)]
pub struct OAuthAndStateMetrics {
    pub authorizer: Arc<McpAuthorizer>,
    pub fallback: Option<Arc<FallbackState>>,
}

impl MetricsSource for OAuthAndStateMetrics {
    fn render(&self) -> String {
        use std::fmt::Write as _;
        use std::sync::atomic::Ordering::Relaxed;
        let c = self.authorizer.refresh_counters();
        let mut out = String::from(
            "# HELP tether_oauth_refreshes_total Token refreshes sent to authorization servers, by outcome.\n\
             # TYPE tether_oauth_refreshes_total counter\n",
        );
        for (outcome, counter) in [
            ("refreshed", &c.refreshed),
            ("rejected", &c.rejected),
            ("transient", &c.transient),
            ("failed", &c.failed),
        ] {
            let _ = writeln!(
                out,
                "tether_oauth_refreshes_total{{outcome=\"{outcome}\"}} {}",
                counter.load(Relaxed)
            );
        }
        let (degraded, fallbacks) = self
            .fallback
            .as_ref()
            .map_or((0, 0), |f| (u8::from(f.is_degraded()), f.fallbacks()));
        let _ = write!(
            out,
            "# HELP tether_shared_state_degraded 1 while this replica runs on its own state because Redis is unreachable.\n\
             # TYPE tether_shared_state_degraded gauge\n\
             tether_shared_state_degraded {degraded}\n\
             # HELP tether_shared_state_fallbacks_total Times this replica fell back to its own state.\n\
             # TYPE tether_shared_state_fallbacks_total counter\n\
             tether_shared_state_fallbacks_total {fallbacks}\n"
        );
        out
    }
}
