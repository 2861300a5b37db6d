//! One connection attempt for a pair: breakers, admission, connect with a timeout, list tools,
//! and the bookkeeping of its outcome. Concurrent requests for one pair share one attempt.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use super::Inner;
use crate::config::ServerConfig;
use crate::connector::{
    AuthorizationMode, Blame, ConnectError, ConnectRequest, Session, TransportFailure,
};
use crate::ids::PairKey;
use crate::redact::redact;
use crate::state::ConnectionState;
use crate::time::Timestamp;
use crate::tool::Tool;
use crate::tool_cache::CachedTools;

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    Connected,
    CircuitOpen {
        until: Timestamp,
    },
    NeedsAuthorization {
        authorization_url: Option<String>,
    },
    Failed {
        error: String,
        retry_at: Timestamp,
    },
    /// The manager is shutting down; nothing was recorded.
    Cancelled,
}

/// Who asked, which decides how a failure is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AttemptKind {
    /// Reconnect on login, explicit reconnect, connect on demand: a failure starts or extends
    /// the failed cooldown.
    Scheduled,
    /// One step of the in-session reconnect loop: only its last failure is recorded, so a
    /// single outage does not escalate the cooldown once per retry.
    Recovery { last: bool },
}

impl Inner {
    /// Joins the attempt running for the pair or starts one.
    pub(crate) async fn attempt(
        self: &Arc<Self>,
        pair: &PairKey,
        server: &Arc<ServerConfig>,
        kind: AttemptKind,
    ) -> AttemptOutcome {
        let inner = self.clone();
        let (p, s) = (pair.clone(), server.clone());
        self.attempts
            .run(pair.clone(), &self.tasks, move || async move {
                inner.run_attempt(p, s, kind).await
            })
            .await
            .unwrap_or_else(|| AttemptOutcome::Failed {
                error: "the connection attempt was aborted".to_owned(),
                retry_at: self.clock.now(),
            })
    }

    async fn run_attempt(
        self: Arc<Self>,
        pair: PairKey,
        server: Arc<ServerConfig>,
        kind: AttemptKind,
    ) -> AttemptOutcome {
        if self.sessions.open_session(&pair).is_some() {
            self.log_store(self.tracker.clear(&pair).await, &pair);
            return AttemptOutcome::Connected;
        }
        self.counters.started.fetch_add(1, Ordering::Relaxed);
        let starting = if self.sessions.was_connected(&pair) {
            ConnectionState::Reconnecting { retry_at: None }
        } else {
            ConnectionState::Connecting
        };
        let generation = self.sessions.set_state(&pair, starting, self.clock.now());

        let outcome = tokio::select! {
            outcome = self.attempt_steps(&pair, generation, &server, kind) => outcome,
            () = self.shutdown.cancelled() => AttemptOutcome::Cancelled,
        };
        self.log_store(self.tracker.clear_active(&pair).await, &pair);
        if outcome == AttemptOutcome::Connected {
            self.ensure_idle_sweeper();
        }
        self.count(&outcome);
        outcome
    }

    async fn attempt_steps(
        &self,
        pair: &PairKey,
        generation: u64,
        server: &Arc<ServerConfig>,
        kind: AttemptKind,
    ) -> AttemptOutcome {
        let origin = server.origin();
        let timeout = server.init_timeout_in(&self.config.reconnect);
        let mut rate_limited = 0u32;
        loop {
            let pass = match self.breakers.admit(&origin, pair).await {
                Ok(pass) => pass,
                Err(rejection) => {
                    let until = rejection.until;
                    self.sessions.set_state(
                        pair,
                        ConnectionState::CircuitOpen { until },
                        self.clock.now(),
                    );
                    return AttemptOutcome::CircuitOpen { until };
                }
            };
            let permit = match self.limiter.acquire(&origin, self.limiter.deadline()).await {
                Ok(permit) => permit,
                Err(error) => {
                    // Our own queue, not the upstream's fault: no breaker counts it.
                    self.breakers.abandon(&pass).await;
                    let error =
                        ConnectError::transport(TransportFailure::Timeout, error.to_string());
                    return self.failed(pair, &error, None, kind).await;
                }
            };
            if let Some(until) = self.breakers.origin_opened_since(&pass).await {
                permit.release().await;
                self.breakers.abandon(&pass).await;
                self.sessions.set_state(
                    pair,
                    ConnectionState::CircuitOpen { until },
                    self.clock.now(),
                );
                return AttemptOutcome::CircuitOpen { until };
            }
            let result = self.connect_and_list(pair, server, timeout).await;
            permit.release().await;
            match result {
                Ok((session, tools)) => {
                    self.breakers.success(&pass).await;
                    return self.connected(pair, generation, session, tools).await;
                }
                Err(ConnectError::RateLimited { retry_after })
                    if rate_limited < self.config.reconnect.rate_limited_retries =>
                {
                    self.breakers.abandon(&pass).await;
                    self.counters.rate_limited.fetch_add(1, Ordering::Relaxed);
                    let delay = self.backoff.after_rate_limit(
                        retry_after,
                        self.config.reconnect.max_retry_after,
                        rate_limited,
                    );
                    rate_limited += 1;
                    let now = self.clock.now();
                    tracing::debug!(%pair, ?delay, "rate limited by upstream; waiting");
                    self.sessions.set_state(
                        pair,
                        ConnectionState::Reconnecting {
                            retry_at: Some(now + delay),
                        },
                        now,
                    );
                    tokio::time::sleep(delay).await;
                }
                Err(error) => {
                    let opened = self
                        .breakers
                        .failure(&pass, error.blame(), error.retry_after())
                        .await;
                    return self.failed(pair, &error, opened, kind).await;
                }
            }
        }
    }

    /// Connect and the first `tools/list`, both within the server's init timeout.
    async fn connect_and_list(
        &self,
        pair: &PairKey,
        server: &Arc<ServerConfig>,
        timeout: Duration,
    ) -> Result<(Arc<dyn Session>, Vec<Tool>), ConnectError> {
        let deadline = Instant::now() + timeout;
        let timed_out = || {
            ConnectError::transport(
                TransportFailure::Timeout,
                format!("no answer within {}", humantime::format_duration(timeout)),
            )
        };
        let request = ConnectRequest {
            user: pair.user.clone(),
            server: server.clone(),
            timeout,
            authorization: AuthorizationMode::NeverInteractive,
            events: Some(self.events_for(pair)),
        };
        let session = tokio::time::timeout_at(deadline, self.connector.connect(request))
            .await
            .map_err(|_| timed_out())??;
        match tokio::time::timeout_at(deadline, session.list_tools()).await {
            Ok(Ok(tools)) => Ok((session, tools)),
            Ok(Err(error)) => {
                session.close().await;
                Err(error)
            }
            Err(_) => {
                session.close().await;
                Err(timed_out())
            }
        }
    }

    async fn connected(
        &self,
        pair: &PairKey,
        generation: u64,
        session: Arc<dyn Session>,
        tools: Vec<Tool>,
    ) -> AttemptOutcome {
        let now = self.clock.now();
        self.log_store(self.tracker.clear(pair).await, pair);
        let tools = self.tool_lists.intern(&pair.server, tools);
        let cached = CachedTools {
            tools: tools.clone(),
            fetched_at: now,
        };
        self.log_store(self.tool_cache.save(pair, &cached).await, pair);
        if self.agent_present(&pair.user) {
            session.listen(true);
        }
        match self
            .sessions
            .connected(pair, generation, session, tools, now)
        {
            Ok(Some(previous)) => previous.close().await,
            Ok(None) => {}
            Err(session) => {
                // Forgotten (or its server removed) while it connected: what this attempt
                // saved goes too, and nobody is told of a connection.
                session.close().await;
                self.log_store(self.tool_cache.remove(pair).await, pair);
                tracing::info!(%pair, "forgotten while connecting; the new session is closed");
                return AttemptOutcome::Cancelled;
            }
        }
        tracing::info!(%pair, "connected");
        self.publish(pair, super::Change::Connected);
        AttemptOutcome::Connected
    }

    async fn failed(
        &self,
        pair: &PairKey,
        error: &ConnectError,
        breaker_open_until: Option<Timestamp>,
        kind: AttemptKind,
    ) -> AttemptOutcome {
        let now = self.clock.now();
        let message = redact(&error.to_string());
        // Upstream failures are the upstream's business: info, not warn (STYLE: a broken
        // upstream must not flood the logs).
        tracing::info!(%pair, error = %message, "connection attempt failed");
        // Tether's own outage (its token store) is no fault of the pair: no cooldown that would
        // outlast the outage, only the active mark goes.
        let own_outage = matches!(error, ConnectError::Unavailable(_));
        // An origin-wide transport failure is the origin breaker's business: it holds every
        // pair back while the origin is down and lets them all through once a probe succeeds.
        // A per-pair cooldown on top would outlast the outage by minutes.
        let origin_outage = error.blame() == Blame::Origin;
        let record =
            !matches!(kind, AttemptKind::Recovery { last: false }) && !own_outage && !origin_outage;
        if own_outage {
            self.log_store(self.tracker.clear_active(pair).await, pair);
        }
        if origin_outage && !own_outage {
            self.log_store(self.tracker.clear_active(pair).await, pair);
        }
        let retry_at = if record {
            match self.tracker.record_failure(pair, &message).await {
                Ok(entry) => self.tracker.retry_at(&entry),
                Err(store) => {
                    tracing::warn!(%pair, error = %store, "could not record failure");
                    now + self.tracker.cooldown(1)
                }
            }
        } else {
            now
        };
        if let ConnectError::NeedsAuthorization {
            authorization_url,
            scope,
        } = error
        {
            self.sessions.set_state(
                pair,
                ConnectionState::NeedsAuthorization {
                    authorization_url: authorization_url.clone(),
                    scope: scope.clone(),
                },
                now,
            );
            return AttemptOutcome::NeedsAuthorization {
                authorization_url: authorization_url.clone(),
            };
        }
        let state = match breaker_open_until {
            Some(until) => ConnectionState::CircuitOpen { until },
            None => ConnectionState::Failed {
                retry_at,
                last_error: message.clone(),
            },
        };
        self.sessions.set_state(pair, state, now);
        AttemptOutcome::Failed {
            error: message,
            retry_at,
        }
    }

    fn count(&self, outcome: &AttemptOutcome) {
        let counter = match outcome {
            AttemptOutcome::Connected => &self.counters.connected,
            AttemptOutcome::CircuitOpen { .. } => &self.counters.circuit_open,
            AttemptOutcome::NeedsAuthorization { .. } => &self.counters.needs_authorization,
            AttemptOutcome::Failed { .. } => &self.counters.failed,
            AttemptOutcome::Cancelled => return,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}
