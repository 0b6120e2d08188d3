//! One external cluster over HTTP(S): reqwest over rustls with the process's ring provider (no
//! OpenSSL, no aws-lc-rs), the system's roots plus a configured CA file, and the configured
//! authentication on every request. Callers are synchronous (delivery workers): each call runs
//! on one process-wide runtime, entered with `block_on`; it must not be called from inside an
//! async task.
//!
//! A bulk call never retries by itself: it answers one [`ItemOutcome`] per operation and the
//! caller retries the items worth retrying, with its own backoff and deadline. A request that
//! fails whole (no connection, a dropped connection, a timeout, a 429 or 5xx, an answer that is
//! not a bulk response) makes every operation of that request [`ItemOutcome::Retry`].

use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use reqwest::{Method, Url};
use serde_json::Value;

use crate::bulk::{
    BulkOperation, ItemError, ItemOutcome, RequestFailure, cut, encode_operation,
    parse_bulk_response,
};
use crate::sigv4::{self, Credentials};
use crate::{ClusterAuth, ClusterConnection, ClusterError, SigV4Service};

/// Threads of the runtime that drives every request to external clusters. Requests are few and
/// large (bulk bodies); one thread keeps connection pools and timers going while callers wait.
pub const RUNTIME_WORKER_THREADS: usize = 1;
/// The longest a connection may take to open; it then fails and its items are retried.
pub const CONNECT_TIMEOUT_SECONDS: u64 = 10;
/// Largest body of one bulk request. Operations are split into requests under it (one larger
/// document goes alone). Amazon OpenSearch Service refuses bodies over 10 MiB on its smallest
/// instance types, with a 413 that would never succeed on retry.
pub const BULK_REQUEST_BYTES_MAX: usize = 10 * 1024 * 1024;
/// Largest answer read from the cluster. A bulk answer of [`BULK_REQUEST_BYTES_MAX`] of tiny
/// documents, each with an error, stays well under it; a longer answer fails the request (its
/// items are retried) instead of growing memory without bound.
pub const RESPONSE_BYTES_MAX: usize = 64 * 1024 * 1024;

/// Sequences of bulk requests one [`ClusterClient::bulk`] keeps in flight at once.
pub const BULK_LANES: usize = 2;
/// Operations below which a bulk call goes as one lane (its requests are small enough that a
/// second connection would not pay for itself).
pub const BULK_LANES_MIN_OPERATIONS: usize = 256;
/// Documents asked about in one `_mget` request.
pub const MGET_DOCUMENTS_MAX: usize = 1_000;

static RUNTIME: OnceLock<std::result::Result<tokio::runtime::Runtime, String>> = OnceLock::new();

/// The process's runtime for external clusters, made on first use and never dropped (dropping
/// a runtime inside an async context panics, and the node may be dropped in one).
fn runtime() -> Result<&'static tokio::runtime::Runtime, ClusterError> {
    RUNTIME
        .get_or_init(|| {
            // reqwest is built without a bundled crypto provider: Sluice's TLS is ring's.
            // Another part of the process may have installed it first, which is as good.
            let _ = rustls::crypto::ring::default_provider().install_default();
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(RUNTIME_WORKER_THREADS)
                .thread_name("sluice-cluster")
                .enable_all()
                .build()
                .map_err(|error| error.to_string())
        })
        .as_ref()
        .map_err(|error| {
            ClusterError::Invalid(format!("cannot start the cluster runtime: {error}"))
        })
}

/// A client of one cluster.
pub struct ClusterClient {
    endpoint: Url,
    http: reqwest::Client,
    auth: ClusterAuth,
    /// `host[:port]` as the `Host` header carries it, for SigV4.
    host: String,
    region: String,
    index_templates: Vec<(String, Value)>,
}

impl std::fmt::Debug for ClusterClient {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ClusterClient")
            .field("endpoint", &self.endpoint.as_str())
            .finish_non_exhaustive()
    }
}

impl ClusterClient {
    /// A client for `connection` (already validated); nothing is sent until the first call.
    pub fn new(connection: &ClusterConnection) -> Result<ClusterClient, ClusterError> {
        runtime()?;
        let endpoint = crate::parse_endpoint(&connection.endpoint)?;
        let mut builder = reqwest::Client::builder()
            .timeout(Duration::from_secs(connection.request_timeout_seconds))
            .connect_timeout(Duration::from_secs(CONNECT_TIMEOUT_SECONDS));
        if let Some(path) = &connection.ca_file {
            let pem = std::fs::read(path).map_err(|error| {
                ClusterError::Invalid(format!("reading ca_file {}: {error}", path.display()))
            })?;
            let certificates = reqwest::Certificate::from_pem_bundle(&pem).map_err(|error| {
                ClusterError::Invalid(format!(
                    "ca_file {} holds no PEM certificate: {error}",
                    path.display()
                ))
            })?;
            if certificates.is_empty() {
                return Err(ClusterError::Invalid(format!(
                    "ca_file {} holds no PEM certificate",
                    path.display()
                )));
            }
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let http = builder
            .build()
            .map_err(|error| ClusterError::Invalid(format!("building the client: {error}")))?;
        let host_name = endpoint.host_str().unwrap_or_default().to_owned();
        let host = match endpoint.port() {
            Some(port) => format!("{host_name}:{port}"),
            None => host_name.clone(),
        };
        let region = match &connection.auth {
            ClusterAuth::Sigv4 {
                region: Some(region),
                ..
            } => region.clone(),
            _ => std::env::var("AWS_REGION")
                .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
                .ok()
                .filter(|region| !region.is_empty())
                .or_else(|| sigv4::region_of_host(&host_name).map(str::to_owned))
                .unwrap_or_else(|| "us-east-1".to_owned()),
        };
        Ok(ClusterClient {
            endpoint,
            http,
            auth: connection.auth.clone(),
            host,
            region,
            index_templates: connection
                .index_templates
                .iter()
                .map(|(name, body)| (name.clone(), body.clone()))
                .collect(),
        })
    }

    pub fn endpoint(&self) -> &str {
        self.endpoint.as_str()
    }

    /// Whether index templates are configured for this cluster.
    pub fn has_index_templates(&self) -> bool {
        !self.index_templates.is_empty()
    }

    /// `path` (beginning with `/`) under the endpoint, which may itself have a path (a
    /// cluster behind a proxy prefix).
    fn url(&self, path: &str) -> Result<Url, ClusterError> {
        let base = self.endpoint.as_str().trim_end_matches('/');
        Url::parse(&format!("{base}{path}"))
            .map_err(|error| ClusterError::Invalid(format!("{base}{path}: {error}")))
    }

    /// The authentication headers of a request.
    fn auth_headers(
        &self,
        method: &Method,
        url: &Url,
        body: &[u8],
    ) -> Result<HeaderMap, ClusterError> {
        let mut headers = HeaderMap::new();
        let value = |text: &str| {
            HeaderValue::from_str(text).map_err(|_| {
                ClusterError::Invalid("a credential is not a valid header value".to_owned())
            })
        };
        match &self.auth {
            ClusterAuth::None => {}
            ClusterAuth::Basic { username, password } => {
                let token = BASE64.encode(format!("{username}:{password}"));
                headers.insert(AUTHORIZATION, value(&format!("Basic {token}"))?);
            }
            ClusterAuth::ApiKey { .. } => {
                let encoded = self.auth.api_key_encoded().unwrap_or_default();
                headers.insert(AUTHORIZATION, value(&format!("ApiKey {encoded}"))?);
            }
            ClusterAuth::Sigv4 { service, .. } => {
                let service = match service {
                    SigV4Service::Es => "es",
                    SigV4Service::Aoss => "aoss",
                };
                for (name, text) in sigv4::sign(
                    method.as_str(),
                    &self.host,
                    url.path(),
                    url.query().unwrap_or_default(),
                    &[],
                    body,
                    (&self.region, service),
                    &Credentials::from_env()?,
                    time::OffsetDateTime::now_utc(),
                ) {
                    headers.insert(name, value(&text)?);
                }
            }
        }
        Ok(headers)
    }

    /// Sends one request; the answer's status and body, or why there is none.
    fn send(
        &self,
        method: Method,
        path: &str,
        content_type: &'static str,
        body: Vec<u8>,
    ) -> Result<(u16, Vec<u8>), ItemError> {
        let runtime =
            runtime().map_err(|error| ItemError::new("ConnectionFailed", error.to_string()))?;
        runtime.block_on(self.send_async(method, path, content_type, body))
    }

    /// [`ClusterClient::send`] as a future of the process's runtime.
    async fn send_async(
        &self,
        method: Method,
        path: &str,
        content_type: &'static str,
        body: Vec<u8>,
    ) -> Result<(u16, Vec<u8>), ItemError> {
        let url = self
            .url(path)
            .map_err(|error| ItemError::new("InvalidEndpoint", error.to_string()))?;
        let mut headers = self
            .auth_headers(&method, &url, &body)
            .map_err(|error| ItemError::new("AuthenticationFailed", error.to_string()))?;
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        {
            let mut response = self
                .http
                .request(method, url)
                .headers(headers)
                .body(body)
                .send()
                .await
                .map_err(|error| request_error(&error))?;
            let status = response.status().as_u16();
            let mut bytes = Vec::new();
            loop {
                match response.chunk().await {
                    Ok(Some(chunk)) => {
                        if bytes.len() + chunk.len() > RESPONSE_BYTES_MAX {
                            return Err(ItemError::new(
                                "ResponseTooLarge",
                                format!(
                                    "the cluster answered more than {RESPONSE_BYTES_MAX} bytes"
                                ),
                            ));
                        }
                        bytes.extend_from_slice(&chunk);
                    }
                    Ok(None) => break,
                    Err(error) => return Err(request_error(&error)),
                }
            }
            Ok((status, bytes))
        }
    }

    /// One attempt at every operation, one outcome per operation in order. A large call goes
    /// as [`BULK_LANES`] sequences of requests in flight at once, so the cluster reads and
    /// parses one while it indexes another; every operation on one document is in the same
    /// lane, in order, so concurrency never reorders two writes of a document. Within a lane,
    /// requests carry at most [`BULK_REQUEST_BYTES_MAX`] and go one after another.
    pub fn bulk(&self, operations: &[BulkOperation], type_name: Option<&str>) -> Vec<ItemOutcome> {
        let (mut outcomes, requests) = plan_bulk(operations, type_name);
        let answers = match runtime() {
            Ok(runtime) => runtime.block_on(async {
                let lane_futures = requests.into_iter().map(|lane| async move {
                    let mut answers = Vec::with_capacity(lane.len());
                    for (positions, body) in lane {
                        let answer = self
                            .send_async(Method::POST, "/_bulk", "application/x-ndjson", body)
                            .await;
                        answers.push((positions, answer));
                    }
                    answers
                });
                join_all(lane_futures).await
            }),
            Err(error) => {
                let error = ItemError::new("ConnectionFailed", error.to_string());
                requests
                    .into_iter()
                    .map(|lane| {
                        lane.into_iter()
                            .map(|(positions, _)| (positions, Err(error.clone())))
                            .collect()
                    })
                    .collect()
            }
        };
        for (positions, answer) in answers.into_iter().flatten() {
            let sent: Vec<&BulkOperation> = positions
                .iter()
                .filter_map(|&position| operations.get(position))
                .collect();
            let parsed = answer
                .map_err(|error| RequestFailure { error })
                .and_then(|(status, bytes)| parse_bulk_response(status, &bytes, &sent));
            match parsed {
                Ok(items) => {
                    for (&position, outcome) in positions.iter().zip(items) {
                        if let Some(slot) = outcomes.get_mut(position) {
                            *slot = Some(outcome);
                        }
                    }
                }
                Err(failure) => {
                    for &position in &positions {
                        if let Some(slot) = outcomes.get_mut(position) {
                            *slot = Some(ItemOutcome::Retry(failure.error.clone()));
                        }
                    }
                }
            }
        }
        outcomes
            .into_iter()
            .map(|outcome| {
                outcome.unwrap_or_else(|| {
                    ItemOutcome::Retry(ItemError::new("500", "the operation was not sent"))
                })
            })
            .collect()
    }

    /// Which of `documents` (index, id) the cluster holds, by `_mget` without sources, in
    /// requests of at most [`MGET_DOCUMENTS_MAX`]. A delivery asks this of documents whose last
    /// bulk answer was lost when its retry time ends: one the cluster holds was applied (ids are
    /// the records' own) and must not also go to the failed-documents backup. A document of an
    /// index that does not exist is not held.
    pub fn existing_documents(&self, documents: &[(&str, &str)]) -> Result<Vec<bool>, ItemError> {
        let mut held = Vec::with_capacity(documents.len());
        for chunk in documents.chunks(MGET_DOCUMENTS_MAX) {
            let docs: Vec<serde_json::Value> = chunk
                .iter()
                .map(
                    |(index, id)| serde_json::json!({"_index": index, "_id": id, "_source": false}),
                )
                .collect();
            let (status, answer) = self.send(
                Method::POST,
                "/_mget",
                "application/json",
                serde_json::json!({"docs": docs}).to_string().into_bytes(),
            )?;
            let parsed: serde_json::Value = serde_json::from_slice(&answer).map_err(|_| {
                ItemError::new(
                    status.to_string(),
                    cut(&String::from_utf8_lossy(&answer), 1024),
                )
            })?;
            let found = parsed
                .get("docs")
                .and_then(serde_json::Value::as_array)
                .filter(|found| (200..300).contains(&status) && found.len() == chunk.len())
                .ok_or_else(|| {
                    ItemError::new(status.to_string(), cut(&parsed.to_string(), 1024))
                })?;
            held.extend(
                found
                    .iter()
                    .map(|doc| doc.get("found").and_then(serde_json::Value::as_bool) == Some(true)),
            );
        }
        Ok(held)
    }

    /// Puts every configured index template on the cluster (`PUT _index_template/<name>`,
    /// composable templates: Elasticsearch 7.8+, OpenSearch 1.0+). Putting one again replaces
    /// it with the same body, so this runs again whenever a worker starts.
    pub fn install_index_templates(&self) -> Result<(), ItemError> {
        for (name, body) in &self.index_templates {
            let (status, answer) = self.send(
                Method::PUT,
                &format!("/_index_template/{name}"),
                "application/json",
                body.to_string().into_bytes(),
            )?;
            if !(200..300).contains(&status) {
                return Err(ItemError::new(
                    status.to_string(),
                    format!(
                        "putting index template {name}: {}",
                        cut(&String::from_utf8_lossy(&answer), 1024)
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// The requests of one bulk call, per lane: the positions each carries and its body.
type Lanes = Vec<Vec<(Vec<usize>, Vec<u8>)>>;

/// Encodes a bulk call's operations into requests, per lane; operations that cannot be sent
/// are answered in the outcomes.
fn plan_bulk(
    operations: &[BulkOperation],
    type_name: Option<&str>,
) -> (Vec<Option<ItemOutcome>>, Lanes) {
    let mut outcomes: Vec<Option<ItemOutcome>> = vec![None; operations.len()];
    let lanes = if operations.len() >= BULK_LANES_MIN_OPERATIONS {
        BULK_LANES
    } else {
        1
    };
    // Each lane's requests: the positions each carries, and its body.
    let mut requests: Vec<Vec<(Vec<usize>, Vec<u8>)>> = vec![Vec::new(); lanes];
    let mut open: Vec<(Vec<usize>, Vec<u8>)> = vec![(Vec::new(), Vec::new()); lanes];
    for (position, operation) in operations.iter().enumerate() {
        let lane = match &operation.id {
            Some(id) if lanes > 1 => lane_of(&operation.index, id, lanes),
            _ => position % lanes,
        };
        let (Some((in_body, body)), Some(done)) = (open.get_mut(lane), requests.get_mut(lane))
        else {
            continue;
        };
        let start = body.len();
        if let Err(error) = encode_operation(operation, type_name, body) {
            if let Some(slot) = outcomes.get_mut(position) {
                *slot = Some(ItemOutcome::Failed(error));
            }
            continue;
        }
        if body.len() > BULK_REQUEST_BYTES_MAX && !in_body.is_empty() {
            let operation_bytes = body.split_off(start);
            done.push((
                std::mem::take(in_body),
                std::mem::replace(body, operation_bytes),
            ));
        }
        in_body.push(position);
    }
    for (lane, (in_body, body)) in open.into_iter().enumerate() {
        if !in_body.is_empty()
            && let Some(done) = requests.get_mut(lane)
        {
            done.push((in_body, body));
        }
    }
    (outcomes, requests)
}

/// The lane of a document's operations: a hash of its index and id.
fn lane_of(index: &str, id: &str, lanes: usize) -> usize {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (index, id).hash(&mut hasher);
    (hasher.finish() % lanes as u64) as usize
}

/// Runs every future to its end, concurrently, and answers their outputs in order.
async fn join_all<F: std::future::Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut pinned: Vec<std::pin::Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|context| {
        let mut pending = false;
        for (future, output) in pinned.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(context) {
                    std::task::Poll::Ready(value) => *output = Some(value),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

/// A request that got no answer, as Firehose names such failures.
fn request_error(error: &reqwest::Error) -> ItemError {
    let code = if error.is_timeout() {
        "Timeout"
    } else {
        "ConnectionFailed"
    };
    // reqwest's own text hides the cause (a refused connection, a certificate): say it.
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    ItemError::new(code, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bulk::BulkAction;

    fn write(id: &str, n: usize) -> BulkOperation {
        BulkOperation {
            index: "logs".to_owned(),
            id: Some(id.to_owned()),
            version: None,
            action: BulkAction::Index {
                source: format!("{{\"n\":{n}}}").into_bytes(),
            },
        }
    }

    #[test]
    fn a_large_call_splits_into_lanes_that_keep_each_document_s_writes_together_in_order() {
        // 600 writes of 200 documents, each written three times.
        let operations: Vec<BulkOperation> = (0..600)
            .map(|n| write(&format!("doc-{}", n % 200), n))
            .collect();
        let (outcomes, lanes) = plan_bulk(&operations, None);
        assert!(outcomes.iter().all(Option::is_none));
        assert_eq!(lanes.len(), BULK_LANES);
        let mut lane_of_document = std::collections::HashMap::new();
        let mut carried = Vec::new();
        for (lane, requests) in lanes.iter().enumerate() {
            assert!(!requests.is_empty(), "lane {lane} is empty");
            let positions: Vec<usize> = requests
                .iter()
                .flat_map(|(positions, _)| positions.iter().copied())
                .collect();
            assert!(positions.windows(2).all(|pair| pair[0] < pair[1]));
            for &position in &positions {
                let id = operations[position].id.clone().unwrap();
                assert_eq!(*lane_of_document.entry(id).or_insert(lane), lane);
            }
            carried.extend(positions);
        }
        carried.sort_unstable();
        assert_eq!(carried, (0..600).collect::<Vec<_>>());

        // A small call is one request.
        let (_, lanes) = plan_bulk(&operations[..10], None);
        assert_eq!(lanes.len(), 1);
        assert_eq!(lanes[0].len(), 1);
    }
}
