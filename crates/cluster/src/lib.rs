//! `sluice-cluster`: an external Elasticsearch or OpenSearch cluster as the destination of
//! delivery streams (Firehose's `ClusterEndpoint`). It owns:
//!
//! - the `_bulk` API as a client speaks it ([`bulk`]): NDJSON operations with ids, external
//!   versions and deletes, and the answers of Elasticsearch 7.x/8.x and OpenSearch 1.x–3.x read
//!   item by item into [`ItemOutcome`]s (applied, worth retrying, failed for good);
//! - the connection ([`client`]): reqwest over rustls with ring, a custom CA file, basic auth,
//!   an Elasticsearch API key or SigV4 (service `es` or `aoss`, [`sigv4`]) on every request,
//!   and the index templates put on the cluster;
//! - [`Clusters`]: the `search_clusters` section of `--config` (the only place credentials
//!   live: the Firehose API and the delivery catalog only ever hold the endpoint URL), which
//!   resolves a `DomainARN` to its endpoint and keeps one client per endpoint.
//!
//! It never retries by itself and knows nothing of delivery streams: `delivery` decides what to
//! send again, when, and what goes to backup. It depends on none of our crates.

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

pub mod bulk;
pub mod client;
pub mod sigv4;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use serde::Deserialize;
use serde_json::Value;

pub use crate::bulk::{BulkAction, BulkOperation, ItemError, ItemOutcome};
pub use crate::client::ClusterClient;

/// The longest one request to a cluster may take by default (`request_timeout_seconds`); it
/// then fails and its items are retried.
pub const REQUEST_TIMEOUT_SECONDS_DEFAULT: u64 = 60;
/// Clients kept for endpoints the configuration does not list (delivery streams created with
/// any `ClusterEndpoint`); past it the unlisted ones are dropped and built again on use. Real
/// deployments have a handful.
pub const CLIENTS_MAX: usize = 256;
/// Longest endpoint URL accepted.
pub const ENDPOINT_BYTES_MAX: usize = 2048;

/// Everything that can go wrong configuring or reaching a cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// A setting that cannot be used; the message says which and why.
    #[error("{0}")]
    Invalid(String),
}

/// Which AWS service a SigV4 signature is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum SigV4Service {
    /// Amazon OpenSearch Service (and its Elasticsearch domains).
    #[serde(rename = "es")]
    Es,
    /// Amazon OpenSearch Serverless.
    #[serde(rename = "aoss")]
    Aoss,
}

/// How requests to a cluster authenticate.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClusterAuth {
    /// No `Authorization` header.
    #[default]
    None,
    /// HTTP basic auth of a user of the cluster.
    Basic { username: String, password: String },
    /// An Elasticsearch API key: `encoded` as the create API key answer gives it, or its `id`
    /// and `api_key`.
    ApiKey {
        #[serde(default)]
        id: Option<String>,
        #[serde(default)]
        api_key: Option<String>,
        #[serde(default)]
        encoded: Option<String>,
    },
    /// AWS SigV4 with the credentials of the environment (`AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`); the region is `region`, else
    /// `AWS_REGION`/`AWS_DEFAULT_REGION`, else the one in an Amazon endpoint's host name, else
    /// `us-east-1`.
    Sigv4 {
        service: SigV4Service,
        #[serde(default)]
        region: Option<String>,
    },
}

impl std::fmt::Debug for ClusterAuth {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print a secret.
        match self {
            ClusterAuth::None => formatter.write_str("None"),
            ClusterAuth::Basic { username, .. } => formatter
                .debug_struct("Basic")
                .field("username", username)
                .finish_non_exhaustive(),
            ClusterAuth::ApiKey { id, .. } => formatter
                .debug_struct("ApiKey")
                .field("id", id)
                .finish_non_exhaustive(),
            ClusterAuth::Sigv4 { service, region } => formatter
                .debug_struct("Sigv4")
                .field("service", service)
                .field("region", region)
                .finish(),
        }
    }
}

impl ClusterAuth {
    /// The `ApiKey` header's token: `encoded`, or base64 of `id:api_key`.
    pub(crate) fn api_key_encoded(&self) -> Option<String> {
        use base64::Engine as _;
        match self {
            ClusterAuth::ApiKey {
                encoded: Some(encoded),
                ..
            } => Some(encoded.clone()),
            ClusterAuth::ApiKey {
                id: Some(id),
                api_key: Some(key),
                ..
            } => Some(base64::engine::general_purpose::STANDARD.encode(format!("{id}:{key}"))),
            _ => None,
        }
    }
}

/// One cluster of the `--config` file's `search_clusters`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConnection {
    /// `https://search.example:9200`: what a delivery stream's `ClusterEndpoint` names.
    pub endpoint: String,
    /// The Amazon OpenSearch Service domain this endpoint serves, so a delivery stream may name
    /// it by `DomainARN` instead of `ClusterEndpoint`.
    #[serde(default)]
    pub domain_arn: Option<String>,
    #[serde(default)]
    pub auth: ClusterAuth,
    /// A PEM file of CA certificates trusted besides the system's roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Index templates put on the cluster (`PUT _index_template/<name>`) before a delivery
    /// stream writes into it, by name, with their bodies.
    #[serde(default)]
    pub index_templates: BTreeMap<String, Value>,
    #[serde(default = "request_timeout_seconds_default")]
    pub request_timeout_seconds: u64,
}

fn request_timeout_seconds_default() -> u64 {
    REQUEST_TIMEOUT_SECONDS_DEFAULT
}

impl ClusterConnection {
    /// A connection to `endpoint` with nothing configured: no authentication, the system's
    /// roots, no templates.
    pub fn plain(endpoint: &str) -> ClusterConnection {
        ClusterConnection {
            endpoint: endpoint.to_owned(),
            domain_arn: None,
            auth: ClusterAuth::None,
            ca_file: None,
            index_templates: BTreeMap::new(),
            request_timeout_seconds: REQUEST_TIMEOUT_SECONDS_DEFAULT,
        }
    }

    fn validate(&self) -> Result<(), ClusterError> {
        let endpoint = &self.endpoint;
        parse_endpoint(endpoint)?;
        if let ClusterAuth::ApiKey { .. } = &self.auth
            && self.auth.api_key_encoded().is_none()
        {
            return Err(ClusterError::Invalid(format!(
                "search cluster {endpoint}: an api_key auth needs `encoded`, or `id` and `api_key`"
            )));
        }
        if self.request_timeout_seconds == 0 {
            return Err(ClusterError::Invalid(format!(
                "search cluster {endpoint}: request_timeout_seconds must be positive"
            )));
        }
        for name in self.index_templates.keys() {
            let valid = !name.is_empty()
                && name.len() <= 255
                && !name.starts_with(['_', '-', '+'])
                && name.bytes().all(|byte| {
                    byte.is_ascii_lowercase()
                        || byte.is_ascii_digit()
                        || matches!(byte, b'-' | b'_' | b'.')
                });
            if !valid {
                return Err(ClusterError::Invalid(format!(
                    "search cluster {endpoint}: index template name {name:?} must be lowercase letters, digits, '-', '_' or '.'"
                )));
            }
        }
        Ok(())
    }
}

/// An endpoint URL as delivery streams may name it: `http` or `https`, a host, no query,
/// fragment or credentials (those go in `auth`).
pub fn parse_endpoint(endpoint: &str) -> Result<reqwest::Url, ClusterError> {
    let invalid = |why: &str| {
        ClusterError::Invalid(format!(
            "ClusterEndpoint {:?} {why}",
            bulk::cut(endpoint, 256)
        ))
    };
    if endpoint.len() > ENDPOINT_BYTES_MAX {
        return Err(invalid(&format!(
            "is longer than {ENDPOINT_BYTES_MAX} bytes"
        )));
    }
    let url = reqwest::Url::parse(endpoint)
        .map_err(|error| invalid(&format!("is not a URL: {error}")))?;
    if !url.username().is_empty() || url.password().is_some() {
        // The endpoint is not quoted: it holds a secret.
        return Err(ClusterError::Invalid(
            "a ClusterEndpoint must not carry credentials: give them in the --config file's search_clusters"
                .to_owned(),
        ));
    }
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("must be an http or https URL"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("must not have a query or fragment"));
    }
    Ok(url)
}

/// The endpoint as a key: without a trailing `/`, so `https://x:9200` and `https://x:9200/`
/// are one cluster.
pub fn endpoint_key(endpoint: &str) -> &str {
    endpoint.trim_end_matches('/')
}

/// The configured clusters and a client per endpoint in use.
#[derive(Default)]
pub struct Clusters {
    configured: BTreeMap<String, ClusterConnection>,
    clients: Mutex<BTreeMap<String, Arc<ClusterClient>>>,
}

impl std::fmt::Debug for Clusters {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Clusters")
            .field("configured", &self.configured.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Clusters {
    /// Checks every connection (URLs, auth, template names, a readable CA file) so a bad
    /// configuration stops the start instead of the first delivery.
    pub fn new(connections: Vec<ClusterConnection>) -> Result<Clusters, ClusterError> {
        let mut configured = BTreeMap::new();
        for connection in connections {
            connection.validate()?;
            // Building the client reads the CA file: a missing or empty one fails here.
            ClusterClient::new(&connection)?;
            let key = endpoint_key(&connection.endpoint).to_owned();
            if configured.insert(key.clone(), connection).is_some() {
                return Err(ClusterError::Invalid(format!(
                    "search cluster {key} is configured twice"
                )));
            }
        }
        let mut domains = BTreeMap::new();
        for connection in configured.values() {
            if let Some(arn) = &connection.domain_arn
                && let Some(other) = domains.insert(arn.as_str(), connection.endpoint.as_str())
            {
                return Err(ClusterError::Invalid(format!(
                    "domain {arn} is configured for both {other} and {}",
                    connection.endpoint
                )));
            }
        }
        Ok(Clusters {
            configured,
            clients: Mutex::new(BTreeMap::new()),
        })
    }

    /// The endpoint of the configured cluster serving `domain_arn`, if one does.
    pub fn endpoint_of_domain(&self, domain_arn: &str) -> Option<&str> {
        self.configured
            .values()
            .find(|connection| connection.domain_arn.as_deref() == Some(domain_arn))
            .map(|connection| endpoint_key(&connection.endpoint))
    }

    /// The client of `endpoint`: as configured, or plain (no authentication) when the
    /// configuration does not list it.
    pub fn client(&self, endpoint: &str) -> Result<Arc<ClusterClient>, ClusterError> {
        let key = endpoint_key(endpoint);
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(client) = clients.get(key) {
            return Ok(client.clone());
        }
        let client = Arc::new(match self.configured.get(key) {
            Some(connection) => ClusterClient::new(connection)?,
            None => {
                parse_endpoint(endpoint)?;
                ClusterClient::new(&ClusterConnection::plain(key))?
            }
        });
        if clients.len() >= CLIENTS_MAX {
            clients.retain(|endpoint, _| self.configured.contains_key(endpoint));
        }
        clients.insert(key.to_owned(), client.clone());
        Ok(client)
    }
}
