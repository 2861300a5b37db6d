//! Handing out access tokens: refreshed before use when due, or after a 401, single-flight
//! per pair under its refresh lease.

use oauth2::TokenResponse;
use tether_core::{Clock, PairKey, ServerName, Timestamp, UserId};
use tracing::{info, warn};

use super::client_identity::configure_client;
use super::discovery::metadata_from;
use std::sync::Arc;

use rmcp::transport::auth::AuthorizationManager;

use super::as_backoff::AsBackoff;
use super::{McpAuthorizer, OAuthStores, RefreshCounters, parse_url};
use crate::classify::classify;
use crate::error::OAuthError;
use crate::http::{HttpClients, HttpFailure, Outcome};
use crate::lease::Lease;
use crate::refresh_policy::{is_expired, needs_refresh};
use crate::resource::identifies;
use crate::rmcp_adapter::PairCredentialStore;
use crate::secret::Secret;

impl McpAuthorizer {
    /// A usable access token for the pair, to send to the MCP server at `server_url`, refreshed
    /// first when less than 60 s (at most half its lifetime) or 10 % of its lifetime is left.
    /// Refreshes are single-flight per pair through the [`crate::store::RefreshLock`]. A record
    /// read in the last few seconds answers without the store while its token is not due
    /// ([`crate::store::RecentTokens`]). Tokens issued for another resource (the server's URL
    /// changed since) are never handed out: the pair needs authorization, and the record stays
    /// until a new authorization replaces it (deleting it here could race one on a replica).
    pub async fn access_token(
        &self,
        user: &UserId,
        server: &ServerName,
        server_url: &str,
    ) -> Result<Secret, OAuthError> {
        let pair = PairKey::new(user.clone(), server.clone());
        let due = |record: &crate::store::TokenRecord| {
            needs_refresh(record, self.now(), self.config.refresh_ahead)
        };
        if let Some(token) = self.recent.remembered(&pair, |record| {
            !due(record) && identifies(&record.resource, server_url)
        }) {
            return Ok(token);
        }
        let Some(seen) = self.recent.load(&pair).await? else {
            return Err(OAuthError::needs_authorization("no tokens for this server"));
        };
        issued_for(&seen, server_url)?;
        if !due(&seen) {
            return Ok(seen.access_token);
        }
        self.refresh_single_flight(&pair, seen, false).await
    }

    /// After the MCP server at `server_url` answered 401 to `rejected`: a replacement if
    /// someone already made one, else one refresh (single-flight); without a refresh token the
    /// pair needs authorization. Call once per 401, then retry the request once (SPEC §5).
    pub async fn access_token_after_rejection(
        &self,
        user: &UserId,
        server: &ServerName,
        server_url: &str,
        rejected: &Secret,
    ) -> Result<Secret, OAuthError> {
        let pair = PairKey::new(user.clone(), server.clone());
        self.recent.forget(&pair);
        let Some(seen) = self.stores.vault.get(&pair).await? else {
            return Err(OAuthError::needs_authorization("no tokens for this server"));
        };
        issued_for(&seen, server_url)?;
        if seen.access_token != *rejected {
            return usable_or_reauthorize(seen, self.now());
        }
        self.refresh_single_flight(&pair, seen, true).await
    }

    /// `seen` is the record that prompted the refresh; `rejected`: its access token is known
    /// not to work any more, so it is never handed out again.
    async fn refresh_single_flight(
        &self,
        pair: &PairKey,
        seen: crate::store::TokenRecord,
        rejected: bool,
    ) -> Result<Secret, OAuthError> {
        let without_refresh = |record: crate::store::TokenRecord| {
            if rejected {
                Err(OAuthError::needs_authorization(
                    "the access token was rejected and there is no refresh token",
                ))
            } else {
                usable_or_reauthorize(record, self.now())
            }
        };
        if seen.refresh_token.is_none() {
            return without_refresh(seen);
        }
        // A refresh that was only early must not fail a call its token can still serve.
        let still_valid_or = |record: &crate::store::TokenRecord, error: OAuthError| {
            if !rejected && !is_expired(record, self.now()) {
                info!(%pair, %error, "refresh postponed; the current access token is still valid");
                Ok(record.access_token.clone())
            } else {
                Err(error)
            }
        };
        if self.token_endpoint_backoff.blocked(&seen.issuer) {
            return still_valid_or(
                &seen,
                OAuthError::transient("the authorization server is backing off after a failure"),
            );
        }
        let Some(lease) = Lease::acquire(
            self.stores.locks.clone(),
            pair,
            self.config.refresh_lease_ttl,
            self.config.refresh_wait,
        )
        .await?
        else {
            return still_valid_or(
                &seen,
                OAuthError::transient("another refresh of this pair is still running"),
            );
        };
        // Re-read under the lease: whoever held it before us may have refreshed already, and
        // refreshing again would spend the rotated refresh token a second time.
        let current = self.stores.vault.get(pair).await?;
        let Some(current) = current else {
            lease.release().await?;
            return Err(OAuthError::needs_authorization("no tokens for this server"));
        };
        let replaced =
            current.obtained_at != seen.obtained_at || current.access_token != seen.access_token;
        if replaced && !is_expired(&current, self.now()) {
            lease.release().await?;
            return Ok(current.access_token);
        }
        if current.refresh_token.is_none() {
            lease.release().await?;
            return without_refresh(current);
        }
        let job = RefreshJob {
            stores: self.stores.clone(),
            http: self.http.clone(),
            counters: self.refreshes.clone(),
            backoff: self.token_endpoint_backoff.clone(),
            clock: self.config.clock.clone(),
        };
        // From here the token request may be sent: the refresh runs to the end in its own task
        // (its rotated refresh token stored) even if this caller goes away meanwhile.
        let task = self
            .in_flight
            .spawn(job.run(pair.clone(), current.clone(), lease));
        let result = task.await.map_err(|e| {
            OAuthError::transient(format!("the refresh task ended abnormally: {e}"))
        })?;
        match result {
            Err(error) if error.is_transient() => still_valid_or(&current, error),
            other => other,
        }
    }
}

/// What a refresh needs, owned, so that it can outlive the call that started it.
struct RefreshJob {
    stores: OAuthStores,
    http: HttpClients,
    counters: Arc<RefreshCounters>,
    backoff: Arc<AsBackoff>,
    clock: Arc<dyn Clock>,
}

impl RefreshJob {
    async fn run(
        self,
        pair: PairKey,
        record: crate::store::TokenRecord,
        lease: Lease,
    ) -> Result<Secret, OAuthError> {
        let registration = self
            .stores
            .registrations
            .get(&pair.server, &record.issuer)
            .await?
            // Tokens are refreshed only with the client they were issued to.
            .filter(|r| r.client_id == record.client_id);
        let Some(registration) = registration else {
            lease.release().await?;
            return Err(OAuthError::needs_authorization(
                "the client registration these tokens belong to is gone",
            ));
        };
        let resource = parse_url(&record.resource, "the resource indicator")?;
        let http = self
            .http
            .for_resource(&resource)
            .with_resource_indicator(record.resource.clone());
        let mut manager =
            AuthorizationManager::new_with_oauth_http_client(resource, Arc::new(http.clone()))
                .await
                .map_err(|e| classify(e, &http))?;
        // The save is conditional on the record refreshed still being there: a delete (the
        // user disconnected) while the request was in flight wins.
        let store = PairCredentialStore::new(
            self.stores.vault.clone(),
            self.stores.locks.clone(),
            pair.clone(),
            record.issuer.clone(),
            record.resource.clone(),
        )
        .with_lease(lease)
        .replacing(record.obtained_at)
        .with_clock(self.clock.clone());
        let lease_slot = store.lease_handle();
        manager.set_credential_store(store);
        let redirect_uri = registration
            .redirect_uris
            .first()
            .cloned()
            .unwrap_or_else(|| record.resource.clone());
        configure_client(
            &mut manager,
            &metadata_from(&registration.endpoints),
            &registration,
            &redirect_uri,
        )?;
        // rmcp persists the response (rotated refresh token included) through the store before
        // returning it, so the new access token is only used once its refresh token is saved.
        let result = manager.refresh_token().await;
        drop(manager);
        PairCredentialStore::release_lease(&lease_slot).await?;
        use std::sync::atomic::Ordering::Relaxed;
        match result {
            Ok(response) => {
                self.counters.refreshed.fetch_add(1, Relaxed);
                self.backoff.succeeded(&record.issuer);
                info!(%pair, "access token refreshed");
                Ok(Secret::new(response.access_token().secret().clone()))
            }
            Err(error) => {
                let error = classify(error, &http)
                    .without_secrets(&sent_secrets(&record, registration.client_secret.as_ref()));
                let counter = match &error {
                    OAuthError::NeedsAuthorization(_) => &self.counters.rejected,
                    e if e.is_transient() => &self.counters.transient,
                    _ => &self.counters.failed,
                };
                counter.fetch_add(1, Relaxed);
                if token_endpoint_failed(&http.outcome()) {
                    let delay = self.backoff.failed(&record.issuer);
                    warn!(%pair, %error, ?delay, "refresh failed; backing off from the authorization server");
                } else {
                    warn!(%pair, %error, "refresh failed");
                }
                Err(error)
            }
        }
    }
}

/// What the token request carried that an answer might quote back.
fn sent_secrets<'a>(
    record: &'a crate::store::TokenRecord,
    client_secret: Option<&'a Secret>,
) -> Vec<&'a str> {
    [
        record.refresh_token.as_ref(),
        Some(&record.access_token),
        client_secret,
    ]
    .into_iter()
    .flatten()
    .map(Secret::expose)
    .collect()
}

/// Whether the authorization server itself failed (network, timeout, 5xx, 429), as opposed to
/// refusing the grant or Tether's store failing after a good answer.
fn token_endpoint_failed(outcome: &Outcome) -> bool {
    matches!(outcome.failure, Some(HttpFailure::Transport(_)))
        || outcome
            .status
            .is_some_and(|status| status >= 500 || status == 429 || status == 408)
}

/// Refuses a record whose tokens were issued for another resource than `server_url`. A refresh
/// would not help: it asks for the record's own resource again.
fn issued_for(record: &crate::store::TokenRecord, server_url: &str) -> Result<(), OAuthError> {
    if identifies(&record.resource, server_url) {
        Ok(())
    } else {
        Err(OAuthError::needs_authorization(
            "the stored tokens were issued for another URL of this server",
        ))
    }
}

pub(super) fn usable_or_reauthorize(
    record: crate::store::TokenRecord,
    now: Timestamp,
) -> Result<Secret, OAuthError> {
    if is_expired(&record, now) {
        Err(OAuthError::needs_authorization(
            "the access token expired and there is no refresh token",
        ))
    } else {
        Ok(record.access_token)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use tether_core::{Clock, PairKey, ServerName, TokioClock, UserId};

    use crate::error::OAuthError;
    use crate::secret::Secret;
    use crate::store::TokenRecord;
    use crate::{AuthorizerConfig, McpAuthorizer, OAuthStores};

    const URL: &str = "https://mcp.example/mcp";

    /// Every expiry decision reads the authorizer's clock: on paused time a ten-minute token
    /// is served, then due (and, without a refresh token, still served), then expired.
    #[tokio::test(start_paused = true)]
    async fn expiry_is_decided_on_the_authorizers_clock() {
        let clock = Arc::new(TokioClock::new());
        let stores = OAuthStores::in_memory();
        let config = AuthorizerConfig {
            clock: clock.clone(),
            ..AuthorizerConfig::default()
        };
        let authorizer = McpAuthorizer::new(config, stores.clone()).expect("builds");
        let (user, server) = (UserId::new("alice"), ServerName::new("notes"));
        let now = clock.now();
        let record = TokenRecord {
            access_token: Secret::new("at-10-minutes"),
            expires_at: Some(now + Duration::from_secs(600)),
            scopes: vec![],
            refresh_token: None,
            obtained_at: now,
            issuer: "https://as.example".into(),
            client_id: "c".into(),
            resource: URL.into(),
        };
        stores
            .vault
            .put(&PairKey::new(user.clone(), server.clone()), record)
            .await
            .expect("put");
        let token = authorizer
            .access_token(&user, &server, URL)
            .await
            .expect("fresh");
        assert_eq!(token.expose(), "at-10-minutes");
        tokio::time::advance(Duration::from_secs(570)).await;
        let due = authorizer.access_token(&user, &server, URL).await;
        assert_eq!(due.expect("due, not expired").expose(), "at-10-minutes");
        tokio::time::advance(Duration::from_secs(31)).await;
        let expired = authorizer.access_token(&user, &server, URL).await;
        assert!(
            matches!(expired, Err(OAuthError::NeedsAuthorization(_))),
            "{expired:?}"
        );
    }

    /// The server moved to another URL under the same name: its tokens, whether remembered
    /// from a moment ago or read from the store, are not handed out for the new URL (not even
    /// after a 401 there), and the record stays for the old one.
    #[tokio::test]
    async fn tokens_issued_for_another_url_of_the_server_are_never_handed_out() {
        let stores = OAuthStores::in_memory();
        let authorizer =
            McpAuthorizer::new(AuthorizerConfig::default(), stores.clone()).expect("builds");
        let (user, server) = (UserId::new("alice"), ServerName::new("notes"));
        let now = AuthorizerConfig::default().clock.now();
        let record = TokenRecord {
            access_token: Secret::new("at-for-old-url"),
            expires_at: Some(now + Duration::from_secs(3600)),
            scopes: vec![],
            refresh_token: Some(Secret::new("rt-for-old-url")),
            obtained_at: now,
            issuer: "https://as.example".into(),
            client_id: "c".into(),
            resource: URL.into(),
        };
        let pair = PairKey::new(user.clone(), server.clone());
        stores.vault.put(&pair, record).await.expect("put");
        let old = authorizer.access_token(&user, &server, URL).await;
        assert_eq!(old.expect("the old URL").expose(), "at-for-old-url");

        for moved in ["https://elsewhere.example/mcp", "https://mcp.example/mcp2"] {
            // The first read left the record remembered; the store holds it too.
            for _ in 0..2 {
                let refused = authorizer.access_token(&user, &server, moved).await;
                assert!(
                    matches!(refused, Err(OAuthError::NeedsAuthorization(_))),
                    "{moved}: {refused:?}"
                );
            }
            let rejected = Secret::new("at-for-old-url");
            let after_401 = authorizer
                .access_token_after_rejection(&user, &server, moved, &rejected)
                .await;
            assert!(
                matches!(after_401, Err(OAuthError::NeedsAuthorization(_))),
                "{moved}: {after_401:?}"
            );
        }
        let kept = stores.vault.get(&pair).await.expect("get");
        assert!(
            kept.is_some(),
            "the record is kept for a new authorization to replace"
        );
        let again = authorizer.access_token(&user, &server, URL).await;
        assert_eq!(again.expect("the old URL again").expose(), "at-for-old-url");
    }
}
