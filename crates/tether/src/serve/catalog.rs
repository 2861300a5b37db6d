//! The server catalog: servers an operator adds, changes and deletes through
//! `/v1/admin/servers` while Tether runs, kept in the storage beside the configuration file's
//! (which stay read-only here).
//!
//! A change is checked as a configuration would be (a valid `[[servers]]` entry, a name of its
//! own, names on `/mcp` apart) and against what the API must not open up: its URLs must be
//! public https hosts unless `catalog.allowed_hosts` names the host (a server's requests carry
//! users' tokens and come from inside the deployment), it may not start processes (`command`)
//! and may not name environment variables (`client_secret_env`: the gateway's environment holds
//! its own secrets). The replica that made the change applies it at once; the others notice the
//! catalog's version moving at their next poll (`catalog.poll_interval`).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use futures::StreamExt;
use serde_json::Value;
use tether::gateway::{CatalogError, CatalogServer, ServerCatalog};
use tether_core::{Timestamp, TransportConfig};
use tether_oauth::NetworkPolicy;
use tether_store::sql::{CatalogEntry, CatalogWrite};
use url::Url;

use super::sources::ServerSources;
use crate::config::{CatalogConfig, ServerEntry};

/// Revocations of a deleted server's grants in flight at once.
const REVOCATIONS_AT_ONCE: usize = 8;

/// What a URL of a catalog server is checked as: the target of requests on behalf of a public
/// server, so loopback, private and metadata addresses and plain http are refused.
const PUBLIC_REFERENCE: &str = "https://catalog.tether.invalid/";

#[derive(Debug)]
pub(crate) struct Catalog {
    sources: Arc<ServerSources>,
    network: NetworkPolicy,
    allowed_hosts: Vec<String>,
    users: UserServers,
}

/// What users may add for themselves (`catalog.user_*`).
#[derive(Debug, Clone)]
struct UserServers {
    enabled: bool,
    limit: usize,
    origins: Vec<String>,
    allowed_hosts: Vec<String>,
}

/// The keys a user's server may have: the rest (prefix, groups, filters, client settings,
/// timeouts) is the operator's to set.
const USER_KEYS: [&str; 5] = ["name", "url", "transport", "oauth", "scopes"];

/// A user's server's name in the catalog: theirs, then 8 hex digits of a hash of the user, so
/// that two users' `github` are two servers (the user sees theirs as `github` in tool names).
fn owned_name(owner: &tether_core::UserId, name: &str) -> String {
    use sha2::{Digest, Sha256};
    let hash = Sha256::digest(format!("tether user server\0{}", owner.as_str()).as_bytes());
    let tag: String = hash.iter().take(4).map(|b| format!("{b:02x}")).collect();
    format!("{name}-{tag}")
}

/// Reads and applies the stored catalog, hands it to the gateway and starts polling it.
pub(crate) async fn start(
    sources: &Arc<ServerSources>,
    config: &CatalogConfig,
    network: NetworkPolicy,
) -> anyhow::Result<()> {
    let catalog = Arc::new(Catalog {
        sources: sources.clone(),
        network,
        allowed_hosts: config.allowed_hosts.clone(),
        users: UserServers {
            enabled: config.user_servers,
            limit: config.user_server_limit,
            origins: config.user_server_origins.clone(),
            allowed_hosts: config.user_allowed_hosts.clone(),
        },
    });
    catalog
        .refresh()
        .await
        .context("cannot apply the server catalog")?;
    sources.wiring.app.set_catalog(catalog.clone());
    tokio::spawn(poll(catalog, config.poll_interval));
    Ok(())
}

/// Applies changes other replicas made, every `interval`.
async fn poll(catalog: Arc<Catalog>, interval: Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match catalog.refresh().await {
            Ok(Some(changes)) => tracing::info!(
                added = ?changes.added, changed = ?changes.changed, removed = ?changes.removed,
                "server catalog changed"
            ),
            Ok(None) => {}
            Err(error) => tracing::warn!(%error, "server catalog not read"),
        }
    }
}

fn unavailable(error: tether_core::StoreError) -> CatalogError {
    CatalogError::Unavailable(format!("the server catalog is unavailable: {error}"))
}

fn now() -> Timestamp {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    Timestamp::from_millis(millis)
}

impl Catalog {
    async fn refresh(&self) -> Result<Option<tether_core::ServerChanges>, CatalogError> {
        let _one_at_a_time = self.sources.applying.lock().await;
        self.refresh_locked().await
    }

    /// Applies the stored catalog if its version moved; the caller holds `applying`.
    async fn refresh_locked(&self) -> Result<Option<tether_core::ServerChanges>, CatalogError> {
        let store = &self.sources.wiring.store;
        let version = store.catalog_version().await.map_err(unavailable)?;
        if version == self.sources.catalog_entries().0 {
            return Ok(None);
        }
        let (version, rows) = store.catalog().await.map_err(unavailable)?;
        let disabled = store.disabled_servers().await.map_err(unavailable)?;
        *self
            .sources
            .disabled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = disabled.into_iter().collect();
        let entries = rows
            .iter()
            .filter_map(|row| match serde_json::from_str::<ServerEntry>(&row.definition) {
                Ok(mut entry) => {
                    entry.owner = row.owner.clone().map(tether_core::UserId::from);
                    Some(entry)
                }
                Err(error) => {
                    tracing::warn!(server = %row.name, %error, "a stored catalog server does not parse; left out");
                    None
                }
            })
            .collect();
        let changes = self
            .sources
            .apply(self.sources.file(), (version, entries))
            .await
            .map_err(|e| CatalogError::Invalid(e.0))?;
        Ok(Some(changes))
    }

    /// A definition from the API as a server entry, checked; `name` is the one of the path.
    fn parse(
        &self,
        mut definition: Value,
        name: Option<&str>,
    ) -> Result<ServerEntry, CatalogError> {
        if let (Some(name), Some(object)) = (name, definition.as_object_mut()) {
            match object.get("name") {
                None => {
                    object.insert("name".to_owned(), Value::String(name.to_owned()));
                }
                Some(given) if given.as_str() == Some(name) => {}
                Some(_) => {
                    return Err(CatalogError::Invalid(
                        "the name in the body differs from the one in the path".to_owned(),
                    ));
                }
            }
        }
        let entry: ServerEntry = serde_json::from_value(definition)
            .map_err(|e| CatalogError::Invalid(format!("not a valid server: {e}")))?;
        if entry.client.client_secret_env.is_some() {
            return Err(CatalogError::Invalid(
                "client_secret_env belongs in the configuration file: the API does not read the \
                 gateway's environment"
                    .to_owned(),
            ));
        }
        match &entry.server.transport {
            TransportConfig::Stdio { .. } => Err(CatalogError::Invalid(
                "stdio servers (command) come only from the configuration file: the API does not \
                 start processes"
                    .to_owned(),
            )),
            TransportConfig::StreamableHttp { url } | TransportConfig::Sse { url } => {
                self.check_url(url, &self.allowed_hosts)?;
                Ok(entry)
            }
        }
    }

    fn check_url(&self, url: &str, allowed_hosts: &[String]) -> Result<(), CatalogError> {
        let parsed = Url::parse(url)
            .map_err(|_| CatalogError::Invalid("the url is not an absolute URL".to_owned()))?;
        let host = parsed.host_str().unwrap_or_default();
        let exempt = allowed_hosts
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(host.trim_matches(['[', ']'])));
        if exempt && matches!(parsed.scheme(), "http" | "https") && parsed.username().is_empty() {
            return Ok(());
        }
        let reference = Url::parse(PUBLIC_REFERENCE)
            .map_err(|_| CatalogError::Invalid("internal reference URL".to_owned()))?;
        self.network
            .check_url(&parsed, &reference)
            .map_err(|reason| CatalogError::Invalid(format!("the url is refused: {reason}")))
    }

    /// Checks that the catalog with `entry` in place of (or beside) its namesake could be
    /// applied with the file as it is.
    fn check_with(&self, entry: &ServerEntry) -> Result<(), CatalogError> {
        let file = self.sources.file();
        let (_, mut catalog) = self.sources.catalog_entries();
        catalog.retain(|e| e.server.name != entry.server.name);
        catalog.push(entry.clone());
        let merged = ServerSources::merged(&file, &catalog, &self.sources.disabled());
        self.sources
            .check(&file, &merged)
            .map(|_| ())
            .map_err(|e| CatalogError::Invalid(e.0))
    }

    fn in_file(&self, name: &str) -> bool {
        self.sources
            .file()
            .servers
            .iter()
            .any(|e| e.server.name.as_str() == name)
    }

    async fn write(
        &self,
        entry: &ServerEntry,
        create: bool,
    ) -> Result<CatalogServer, CatalogError> {
        let name = entry.server.name.to_string();
        if self.in_file(&name) {
            return Err(CatalogError::Conflict(format!(
                "{name:?} is a server of the configuration file; change it there"
            )));
        }
        self.check_with(entry)?;
        let definition = serde_json::to_string(entry)
            .map_err(|_| CatalogError::Invalid("the server does not serialize".to_owned()))?;
        let row = CatalogEntry {
            name: name.clone(),
            definition,
            owner: entry.owner.as_ref().map(|owner| owner.as_str().to_owned()),
        };
        match self
            .sources
            .wiring
            .store
            .catalog_put(&row, create, now())
            .await
            .map_err(unavailable)?
        {
            CatalogWrite::Done => {}
            CatalogWrite::Conflict if create => {
                return Err(CatalogError::Conflict(format!(
                    "a server named {name:?} is already in the catalog"
                )));
            }
            CatalogWrite::Conflict => return Err(CatalogError::NotFound),
        }
        self.refresh_locked().await?;
        Ok(catalog_server(entry, false))
    }
}

fn catalog_server(entry: &ServerEntry, disabled: bool) -> CatalogServer {
    CatalogServer {
        disabled,
        name: entry.server.name.to_string(),
        source: if entry.owner.is_some() {
            "user"
        } else {
            "catalog"
        },
        definition: serde_json::to_value(entry).unwrap_or(Value::Null),
    }
}

#[async_trait]
impl ServerCatalog for Catalog {
    async fn list(&self) -> Result<Vec<CatalogServer>, CatalogError> {
        let file = self.sources.file();
        let (_, catalog) = self.sources.catalog_entries();
        let disabled = self.sources.disabled();
        let off = |entry: &ServerEntry| disabled.contains(entry.server.name.as_str());
        let mut servers: Vec<CatalogServer> = file
            .servers
            .iter()
            .map(|entry| CatalogServer {
                name: entry.server.name.to_string(),
                source: "config",
                definition: serde_json::to_value(entry).unwrap_or(Value::Null),
                disabled: off(entry),
            })
            .collect();
        servers.extend(
            catalog
                .iter()
                .map(|entry| catalog_server(entry, off(entry))),
        );
        Ok(servers)
    }

    async fn create(&self, definition: Value) -> Result<CatalogServer, CatalogError> {
        let entry = self.parse(definition, None)?;
        let _one_at_a_time = self.sources.applying.lock().await;
        self.write(&entry, true).await
    }

    async fn update(&self, name: &str, definition: Value) -> Result<CatalogServer, CatalogError> {
        let entry = self.parse(definition, Some(name))?;
        let _one_at_a_time = self.sources.applying.lock().await;
        let (_, catalog) = self.sources.catalog_entries();
        if catalog
            .iter()
            .any(|e| e.server.name.as_str() == name && e.owner.is_some())
        {
            return Err(CatalogError::Conflict(
                "a user's own server is changed by that user (delete it and add it again)"
                    .to_owned(),
            ));
        }
        self.write(&entry, false).await
    }

    async fn set_enabled(&self, name: &str, enabled: bool) -> Result<(), CatalogError> {
        let _one_at_a_time = self.sources.applying.lock().await;
        let file = self.sources.file();
        let (_, catalog) = self.sources.catalog_entries();
        let known = ServerSources::merged_all(&file, &catalog)
            .iter()
            .any(|e| e.server.name.as_str() == name);
        if !known {
            return Err(CatalogError::NotFound);
        }
        self.sources
            .wiring
            .store
            .set_disabled(name, !enabled)
            .await
            .map_err(unavailable)?;
        self.refresh_locked().await?;
        Ok(())
    }

    async fn create_owned(
        &self,
        owner: &tether_core::UserId,
        definition: Value,
    ) -> Result<CatalogServer, CatalogError> {
        if !self.users.enabled {
            return Err(CatalogError::Disabled);
        }
        let Some(object) = definition.as_object() else {
            return Err(CatalogError::Invalid(
                "a server is a JSON object".to_owned(),
            ));
        };
        if let Some(key) = object.keys().find(|k| !USER_KEYS.contains(&k.as_str())) {
            return Err(CatalogError::Invalid(format!(
                "{key:?} is not among what a user may set ({})",
                USER_KEYS.join(", ")
            )));
        }
        let name = object
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| CatalogError::Invalid("a name is required".to_owned()))?
            .to_owned();
        if name.is_empty() || name.len() > 48 {
            return Err(CatalogError::Invalid(
                "the name must be 1–48 characters of A–Z, a–z, 0–9, '-' or '_'".to_owned(),
            ));
        }
        let mut definition = definition.clone();
        definition["name"] = Value::String(owned_name(owner, &name));
        let mut entry: ServerEntry = serde_json::from_value(definition)
            .map_err(|e| CatalogError::Invalid(format!("not a valid server: {e}")))?;
        let url = match &entry.server.transport {
            TransportConfig::StreamableHttp { url } | TransportConfig::Sse { url } => url.clone(),
            TransportConfig::Stdio { .. } => {
                return Err(CatalogError::Invalid("a server needs a url".to_owned()));
            }
        };
        self.check_url(&url, &self.users.allowed_hosts)?;
        if !self.users.origins.is_empty() {
            let origin = Url::parse(&url)
                .map(|u| u.origin().ascii_serialization())
                .unwrap_or_default();
            if !self
                .users
                .origins
                .iter()
                .any(|o| o.trim_end_matches('/') == origin)
            {
                return Err(CatalogError::Invalid(format!(
                    "servers may be added on these origins only: {}",
                    self.users.origins.join(", ")
                )));
            }
        }
        let separator = self.sources.wiring.app.mcp_config().tool_separator.clone();
        entry.prefix = Some(format!("{name}{separator}"));
        entry.owner = Some(owner.clone());
        let _one_at_a_time = self.sources.applying.lock().await;
        let (_, catalog) = self.sources.catalog_entries();
        let owned = catalog
            .iter()
            .filter(|e| e.owner.as_ref() == Some(owner))
            .count();
        if owned >= self.users.limit {
            return Err(CatalogError::Conflict(format!(
                "a user may add at most {} servers; delete one first",
                self.users.limit
            )));
        }
        self.write(&entry, true).await
    }

    async fn delete_owned(
        &self,
        owner: &tether_core::UserId,
        name: &str,
    ) -> Result<(), CatalogError> {
        let (_, catalog) = self.sources.catalog_entries();
        let theirs = catalog
            .iter()
            .any(|e| e.server.name.as_str() == name && e.owner.as_ref() == Some(owner));
        if !theirs {
            return Err(CatalogError::NotFound);
        }
        self.delete(name).await
    }

    async fn delete(&self, name: &str) -> Result<(), CatalogError> {
        let _one_at_a_time = self.sources.applying.lock().await;
        if self.in_file(name) {
            return Err(CatalogError::Conflict(format!(
                "{name:?} is a server of the configuration file; remove it there"
            )));
        }
        let store = &self.sources.wiring.store;
        if store.catalog_delete(name).await.map_err(unavailable)? == CatalogWrite::Conflict {
            return Err(CatalogError::NotFound);
        }
        self.refresh_locked().await?;
        // The sessions are closed: no request of this replica uses the tokens any more. Their
        // grants are revoked in the background (one slow authorization server must not hold
        // the operator's request), then the tokens are deleted.
        let holders = store.token_users(name).await.map_err(unavailable)?;
        let (store, authorizer) = (store.clone(), self.sources.wiring.authorizer.clone());
        let server = tether_core::ServerName::new(name);
        tokio::spawn(async move {
            futures::stream::iter(holders)
                .map(|user| {
                    let (authorizer, server) = (authorizer.clone(), server.clone());
                    async move {
                        let user = tether_core::UserId::from(user);
                        super::hooks::revoke_at_authorization_server(&authorizer, &user, &server)
                            .await;
                    }
                })
                .buffer_unordered(REVOCATIONS_AT_ONCE)
                .collect::<()>()
                .await;
            let forgotten = store.forget_server(server.as_str()).await;
            // Applying the catalog forgot what this replica remembered of the server's tokens;
            // a server added again under the name meanwhile may have read them since.
            authorizer.forget_remembered(&server);
            match forgotten {
                Ok(tokens) => {
                    tracing::info!(%server, tokens, "catalog server deleted with its tokens");
                }
                Err(error) => {
                    tracing::warn!(%server, %error, "tokens of a deleted server not deleted")
                }
            }
        });
        Ok(())
    }
}
