//! Client registrations per (server, issuer): who Tether is at an authorization server.
//!
//! Keyed by issuer as well as server so that dynamic registration happens once per pair of
//! them and is redone, not reused, when a server moves to another authorization server
//! (LibreChat #11925 reused a client id across issuers).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tether_core::{ServerName, StoreError, Timestamp};
use tokio::sync::Mutex;

use crate::secret::Secret;

/// How the client authenticates at the token endpoint (RFC 7591 `token_endpoint_auth_method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenEndpointAuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
    None,
}

impl TokenEndpointAuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
            Self::None => "none",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "client_secret_basic" => Some(Self::ClientSecretBasic),
            "client_secret_post" => Some(Self::ClientSecretPost),
            "none" => Some(Self::None),
            _ => None,
        }
    }
}

/// Where the client identity came from; decides whether a stored record may be reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientSource {
    /// From Tether's configuration.
    Preregistered,
    /// A client ID metadata document URL used as the client id.
    MetadataDocument,
    /// RFC 7591 dynamic client registration.
    Dynamic,
}

/// The authorization server endpoints the registration is used with, so that code exchange and
/// refresh need no new discovery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoints {
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub registration_endpoint: Option<String>,
    /// The issuer as published in the metadata (`None` for 2025-03-26 default endpoints).
    pub issuer: Option<String>,
    /// RFC 9207: the authorization server promises `iss` on its redirects.
    pub iss_parameter_supported: bool,
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistrationRecord {
    pub client_id: String,
    pub client_secret: Option<Secret>,
    pub auth_method: TokenEndpointAuthMethod,
    pub source: ClientSource,
    pub redirect_uris: Vec<String>,
    pub endpoints: Endpoints,
    pub registered_at: Timestamp,
}

impl fmt::Debug for RegistrationRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistrationRecord")
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("auth_method", &self.auth_method)
            .field("source", &self.source)
            .field("redirect_uris", &self.redirect_uris)
            .field("endpoints", &self.endpoints)
            .field("registered_at", &self.registered_at)
            .finish()
    }
}

#[async_trait]
pub trait RegistrationStore: Send + Sync + fmt::Debug + 'static {
    async fn get(
        &self,
        server: &ServerName,
        issuer: &str,
    ) -> Result<Option<RegistrationRecord>, StoreError>;
    async fn put(
        &self,
        server: &ServerName,
        issuer: &str,
        record: RegistrationRecord,
    ) -> Result<(), StoreError>;
    /// Stores `record` only if the (server, issuer) has none, in one atomic step, and returns
    /// what is stored then: `record`, or the registration another replica saved first (whose
    /// client every replica must then use, or tokens would be refreshed with the wrong client).
    async fn insert(
        &self,
        server: &ServerName,
        issuer: &str,
        record: RegistrationRecord,
    ) -> Result<RegistrationRecord, StoreError>;
    async fn delete(&self, server: &ServerName, issuer: &str) -> Result<(), StoreError>;
}

#[derive(Debug, Default, Clone)]
pub struct MemoryRegistrationStore {
    records: Arc<Mutex<HashMap<(ServerName, String), RegistrationRecord>>>,
}

impl MemoryRegistrationStore {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl RegistrationStore for MemoryRegistrationStore {
    async fn get(
        &self,
        server: &ServerName,
        issuer: &str,
    ) -> Result<Option<RegistrationRecord>, StoreError> {
        Ok(self
            .records
            .lock()
            .await
            .get(&(server.clone(), issuer.to_owned()))
            .cloned())
    }

    async fn insert(
        &self,
        server: &ServerName,
        issuer: &str,
        record: RegistrationRecord,
    ) -> Result<RegistrationRecord, StoreError> {
        Ok(self
            .records
            .lock()
            .await
            .entry((server.clone(), issuer.to_owned()))
            .or_insert(record)
            .clone())
    }

    async fn put(
        &self,
        server: &ServerName,
        issuer: &str,
        record: RegistrationRecord,
    ) -> Result<(), StoreError> {
        self.records
            .lock()
            .await
            .insert((server.clone(), issuer.to_owned()), record);
        Ok(())
    }

    async fn delete(&self, server: &ServerName, issuer: &str) -> Result<(), StoreError> {
        self.records
            .lock()
            .await
            .remove(&(server.clone(), issuer.to_owned()));
        Ok(())
    }
}
