//! A client of a Kinesis Data Streams API outside this node: Amazon Kinesis, kinesalite, or
//! another Sluice. Plain JSON 1.1 calls (`X-Amz-Target: Kinesis_20131202.<Operation>`), signed
//! with SigV4 (service `kinesis`) when the environment holds AWS credentials
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, read at each call, so a
//! rotated key in a restarted process is picked up), unsigned otherwise.
//!
//! Which stream ARNs live outside is said by the `--config` file's `kinesis_endpoints`
//! ([`KinesisEndpoints`]): a stream whose ARN has an entry's region and account is reached at
//! that entry's endpoint; every other ARN names a stream of this node's log.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sluice_cluster::sigv4;

/// How long one call may take, connection included; past it the call fails (and is retried by
/// its caller).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest answer read: a `GetRecords` answer is at most 10 MiB of data, a third more in
/// base64. A longer one fails the call.
pub const RESPONSE_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Pages of `ListShards` followed; far more than a stream's shards need (1,000 per page), so
/// only a server that pages forever meets it.
pub const LIST_SHARDS_PAGES_MAX: usize = 100;
/// The first pause after a throttled or failed call; it doubles up to [`RETRY_PAUSE_MAX`],
/// with up to half of it added at random.
pub const RETRY_PAUSE_MIN: Duration = Duration::from_millis(100);
pub const RETRY_PAUSE_MAX: Duration = Duration::from_secs(5);
/// The Kinesis API's `X-Amz-Target` prefix.
const TARGET_PREFIX: &str = "Kinesis_20131202";
/// Sluice's own account: its ARNs name streams of this node, never an external endpoint.
const LOCAL_ACCOUNT_ID: &str = "000000000000";

/// One entry of the `--config` file's `kinesis_endpoints`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KinesisEndpoint {
    /// The streams' region, as in their ARNs and the signature's scope.
    pub region: String,
    /// The streams' account, as in their ARNs.
    pub account_id: String,
    /// The API's URL; `https://kinesis.<region>.amazonaws.com` when absent.
    #[serde(default)]
    pub endpoint: Option<String>,
}

impl KinesisEndpoint {
    pub fn url(&self) -> String {
        self.endpoint
            .clone()
            .unwrap_or_else(|| format!("https://kinesis.{}.amazonaws.com", self.region))
    }
}

/// Where streams outside this node are (the `--config` file's `kinesis_endpoints`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KinesisEndpoints(Vec<KinesisEndpoint>);

/// A stream ARN's parts: `arn:<partition>:kinesis:<region>:<account>:stream/<name>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamArn<'a> {
    pub region: &'a str,
    pub account_id: &'a str,
    pub name: &'a str,
}

impl<'a> StreamArn<'a> {
    pub fn parse(arn: &'a str) -> Option<StreamArn<'a>> {
        let (region, account_id, name) = sluice_delivery::stream_arn_parts(arn)?;
        Some(StreamArn {
            region,
            account_id,
            name,
        })
    }
}

impl KinesisEndpoints {
    /// Checks the entries: each names a region and an account other than Sluice's own, and an
    /// `http(s)` endpoint.
    pub fn new(entries: Vec<KinesisEndpoint>) -> Result<Self, String> {
        for entry in &entries {
            if entry.region.is_empty() || entry.account_id.is_empty() {
                return Err(
                    "every kinesis_endpoints entry needs a region and an account_id".into(),
                );
            }
            if entry.account_id == LOCAL_ACCOUNT_ID {
                return Err(format!(
                    "kinesis_endpoints: account {LOCAL_ACCOUNT_ID} is Sluice's own; its streams are this node's"
                ));
            }
            if let Some(endpoint) = &entry.endpoint
                && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
            {
                return Err(format!(
                    "kinesis_endpoints: endpoint {endpoint} is not an http(s) URL"
                ));
            }
        }
        Ok(KinesisEndpoints(entries))
    }

    /// The entry that says where `arn`'s stream is, when it is outside this node.
    pub fn resolve(&self, arn: &str) -> Option<&KinesisEndpoint> {
        let arn = StreamArn::parse(arn)?;
        self.0
            .iter()
            .find(|entry| entry.region == arn.region && entry.account_id == arn.account_id)
    }
}

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KinesisCallError {
    /// The service asked to slow down (`ProvisionedThroughputExceededException`,
    /// `LimitExceededException`, a 5xx) or could not be reached: try again after a pause.
    #[error("{0}")]
    Retry(String),
    /// The shard iterator expired (five minutes after it was made): make a new one.
    #[error("{0}")]
    ExpiredIterator(String),
    /// The stream or shard does not exist.
    #[error("{0}")]
    NotFound(String),
    /// Any other refusal: a wrong request, missing or refused credentials.
    #[error("{0}")]
    Refused(String),
}

/// One shard as `ListShards` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardInfo {
    pub shard_id: String,
    pub parent_shard_id: Option<String>,
    pub adjacent_parent_shard_id: Option<String>,
}

/// One record as `GetRecords` answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteRecord {
    pub sequence_number: String,
    pub partition_key: String,
    pub data: Vec<u8>,
}

/// One `GetRecords` answer.
#[derive(Debug)]
pub struct RemoteRead {
    pub records: Vec<RemoteRecord>,
    /// `None` when the shard is closed and read to its end.
    pub next_iterator: Option<String>,
}

/// Where a shard iterator starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IteratorAt {
    TrimHorizon,
    Latest,
    /// Milliseconds since the epoch.
    Timestamp(u64),
    AtSequence(String),
    AfterSequence(String),
}

/// A client of one Kinesis API endpoint.
pub struct KinesisClient {
    url: reqwest::Url,
    host: String,
    region: String,
    http: reqwest::Client,
    /// The callers are worker threads, not async: each call runs to its end on this runtime.
    runtime: tokio::runtime::Runtime,
}

impl std::fmt::Debug for KinesisClient {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "KinesisClient({})", self.url)
    }
}

impl KinesisClient {
    /// A client of `endpoint`; signatures are scoped to `region`, else to the region in the
    /// endpoint's host name, `AWS_REGION` or `us-east-1`.
    pub fn new(endpoint: &str, region: Option<&str>) -> Result<Self, String> {
        // reqwest is built without a bundled TLS provider: ring is the process's one.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let url = reqwest::Url::parse(endpoint)
            .map_err(|error| format!("the Kinesis endpoint {endpoint} is not a URL: {error}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("the Kinesis endpoint {endpoint} is not http(s)"));
        }
        let host_name = url.host_str().unwrap_or_default().to_owned();
        let host = match url.port() {
            Some(port) => format!("{host_name}:{port}"),
            None => host_name.clone(),
        };
        let region = region
            .map(str::to_owned)
            .or_else(|| sigv4::region_of_host(&host_name).map(str::to_owned))
            .or_else(|| {
                std::env::var("AWS_REGION")
                    .ok()
                    .filter(|region| !region.is_empty())
            })
            .unwrap_or_else(|| "us-east-1".to_owned());
        let http = reqwest::Client::builder()
            .timeout(CALL_TIMEOUT)
            .build()
            .map_err(|error| error.to_string())?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|error| error.to_string())?;
        Ok(KinesisClient {
            url,
            host,
            region,
            http,
            runtime,
        })
    }

    pub fn endpoint(&self) -> &str {
        self.url.as_str()
    }

    /// One call; a refusal is classified by its `__type` and status.
    pub fn call(&self, operation: &str, body: &Value) -> Result<Value, KinesisCallError> {
        let body = body.to_string().into_bytes();
        let target = format!("{TARGET_PREFIX}.{operation}");
        let content_type = "application/x-amz-json-1.1";
        let mut request = self
            .http
            .post(self.url.clone())
            .header("content-type", content_type)
            .header("x-amz-target", &target);
        if let Ok(credentials) = sigv4::Credentials::from_env() {
            for (name, value) in sigv4::sign(
                "POST",
                &self.host,
                self.url.path(),
                "",
                &[("content-type", content_type), ("x-amz-target", &target)],
                &body,
                (&self.region, "kinesis"),
                &credentials,
                time::OffsetDateTime::now_utc(),
            ) {
                request = request.header(name, value);
            }
        }
        let request = request.body(body);
        let failed = |error: &dyn std::fmt::Display| {
            KinesisCallError::Retry(format!("{operation} at {}: {error}", self.url))
        };
        let (status, bytes) = self.runtime.block_on(async {
            let mut response = request.send().await.map_err(|error| failed(&error))?;
            let status = response.status();
            let mut bytes = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(|error| failed(&error))? {
                if bytes.len() + chunk.len() > RESPONSE_BYTES_MAX {
                    return Err(failed(&format!(
                        "the answer is longer than {RESPONSE_BYTES_MAX} bytes"
                    )));
                }
                bytes.extend_from_slice(&chunk);
            }
            Ok((status, bytes))
        })?;
        let value: Value = if bytes.is_empty() {
            json!({})
        } else {
            serde_json::from_slice(&bytes).map_err(|error| {
                if status.is_server_error() {
                    failed(&format!("{status}"))
                } else {
                    KinesisCallError::Refused(format!(
                        "{operation} at {}: {status}, an answer that is not JSON: {error}",
                        self.url
                    ))
                }
            })?
        };
        if status.is_success() {
            return Ok(value);
        }
        let kind = value.get("__type").and_then(Value::as_str).unwrap_or("");
        let kind = kind.rsplit('#').next().unwrap_or(kind);
        let message = value
            .get("message")
            .or_else(|| value.get("Message"))
            .and_then(Value::as_str)
            .unwrap_or("");
        let text = format!("{operation} at {}: {status} {kind}: {message}", self.url);
        Err(match kind {
            "ProvisionedThroughputExceededException"
            | "LimitExceededException"
            | "ThrottlingException"
            | "KMSThrottlingException" => KinesisCallError::Retry(text),
            "ExpiredIteratorException" => KinesisCallError::ExpiredIterator(text),
            "ResourceNotFoundException" => KinesisCallError::NotFound(text),
            _ if status.is_server_error() => KinesisCallError::Retry(text),
            _ => KinesisCallError::Refused(text),
        })
    }

    /// Every shard of `stream`, open and closed, in the service's order.
    pub fn list_shards(&self, stream: &str) -> Result<Vec<ShardInfo>, KinesisCallError> {
        let mut shards = Vec::new();
        let mut next_token: Option<String> = None;
        for _ in 0..LIST_SHARDS_PAGES_MAX {
            let body = match &next_token {
                Some(token) => json!({"NextToken": token}),
                None => json!({"StreamName": stream}),
            };
            let answer = self.call("ListShards", &body)?;
            for shard in answer
                .get("Shards")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let text = |name: &str| shard.get(name).and_then(Value::as_str).map(str::to_owned);
                if let Some(shard_id) = text("ShardId") {
                    shards.push(ShardInfo {
                        shard_id,
                        parent_shard_id: text("ParentShardId"),
                        adjacent_parent_shard_id: text("AdjacentParentShardId"),
                    });
                }
            }
            next_token = answer
                .get("NextToken")
                .and_then(Value::as_str)
                .map(str::to_owned);
            if next_token.is_none() {
                break;
            }
        }
        Ok(shards)
    }

    /// A shard iterator of `shard_id` at `at`.
    pub fn shard_iterator(
        &self,
        stream: &str,
        shard_id: &str,
        at: &IteratorAt,
    ) -> Result<String, KinesisCallError> {
        let mut body = json!({"StreamName": stream, "ShardId": shard_id});
        let (kind, extra) = match at {
            IteratorAt::TrimHorizon => ("TRIM_HORIZON", None),
            IteratorAt::Latest => ("LATEST", None),
            IteratorAt::Timestamp(ms) => {
                // Kinesis refuses a timestamp ahead of its clock.
                let seconds = (*ms).min(now_ms()) as f64 / 1000.0;
                ("AT_TIMESTAMP", Some(("Timestamp", json!(seconds))))
            }
            IteratorAt::AtSequence(sequence) => (
                "AT_SEQUENCE_NUMBER",
                Some(("StartingSequenceNumber", json!(sequence))),
            ),
            IteratorAt::AfterSequence(sequence) => (
                "AFTER_SEQUENCE_NUMBER",
                Some(("StartingSequenceNumber", json!(sequence))),
            ),
        };
        body["ShardIteratorType"] = json!(kind);
        if let Some((name, value)) = extra {
            body[name] = value;
        }
        let answer = self.call("GetShardIterator", &body)?;
        answer
            .get("ShardIterator")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| {
                KinesisCallError::Refused("GetShardIterator answered without ShardIterator".into())
            })
    }

    /// Up to `limit` records after `iterator`.
    pub fn get_records(
        &self,
        iterator: &str,
        limit: usize,
    ) -> Result<RemoteRead, KinesisCallError> {
        let answer = self.call(
            "GetRecords",
            &json!({"ShardIterator": iterator, "Limit": limit}),
        )?;
        let mut records = Vec::new();
        for record in answer
            .get("Records")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let text = |name: &str| {
                record.get(name).and_then(Value::as_str).ok_or_else(|| {
                    KinesisCallError::Refused(format!(
                        "GetRecords answered a record without {name}"
                    ))
                })
            };
            let data = BASE64.decode(text("Data")?).map_err(|error| {
                KinesisCallError::Refused(format!(
                    "GetRecords answered Data that is not base64: {error}"
                ))
            })?;
            records.push(RemoteRecord {
                sequence_number: text("SequenceNumber")?.to_owned(),
                partition_key: text("PartitionKey")?.to_owned(),
                data,
            });
        }
        Ok(RemoteRead {
            records,
            next_iterator: answer
                .get("NextShardIterator")
                .and_then(Value::as_str)
                .map(str::to_owned),
        })
    }

    /// `PutRecords` of `records` (partition key, data): for each, `None` when it was written,
    /// or the error code it was refused with (`ProvisionedThroughputExceededException`, …).
    pub fn put_records(
        &self,
        stream: &str,
        records: &[(&str, &[u8])],
    ) -> Result<Vec<Option<String>>, KinesisCallError> {
        let entries: Vec<Value> = records
            .iter()
            .map(|(key, data)| json!({"PartitionKey": key, "Data": BASE64.encode(data)}))
            .collect();
        let answer = self.call(
            "PutRecords",
            &json!({"StreamName": stream, "Records": entries}),
        )?;
        let results = answer
            .get("Records")
            .and_then(Value::as_array)
            .filter(|results| results.len() == records.len())
            .ok_or_else(|| {
                KinesisCallError::Refused(
                    "PutRecords answered a Records list of another length".into(),
                )
            })?;
        Ok(results
            .iter()
            .map(|result| {
                result
                    .get("ErrorCode")
                    .and_then(Value::as_str)
                    .filter(|code| !code.is_empty())
                    .map(str::to_owned)
            })
            .collect())
    }
}

/// The wall clock in milliseconds since the epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}

/// A little randomness for ids and jitter, without a dependency: the clock's nanoseconds and
/// the process id, mixed.
pub fn rand_u32() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.subsec_nanos());
    let mut value = u64::from(nanos) ^ (u64::from(std::process::id()) << 32);
    value ^= value >> 33;
    value = value.wrapping_mul(0xff51_afd7_ed55_8ccd);
    value ^= value >> 33;
    value as u32
}

/// The pause before retry `attempt` (from 0): doubling from [`RETRY_PAUSE_MIN`] up to
/// [`RETRY_PAUSE_MAX`], plus up to half of it at random.
pub fn retry_pause(attempt: u32) -> Duration {
    let base = RETRY_PAUSE_MIN
        .saturating_mul(1 << attempt.min(16))
        .min(RETRY_PAUSE_MAX);
    base + base.mul_f64(f64::from(rand_u32() % 1000) / 2000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_arns_resolve_to_the_entry_of_their_region_and_account() {
        let endpoints = KinesisEndpoints::new(vec![KinesisEndpoint {
            region: "eu-west-1".into(),
            account_id: "123456789012".into(),
            endpoint: None,
        }])
        .unwrap();
        let entry = endpoints
            .resolve("arn:aws:kinesis:eu-west-1:123456789012:stream/orders")
            .unwrap();
        assert_eq!(entry.url(), "https://kinesis.eu-west-1.amazonaws.com");
        assert!(
            endpoints
                .resolve("arn:aws:kinesis:eu-west-1:000000000000:stream/orders")
                .is_none()
        );
        assert!(
            endpoints
                .resolve("arn:aws:kinesis:us-east-1:123456789012:stream/orders")
                .is_none()
        );
        assert!(endpoints.resolve("orders").is_none());
        assert_eq!(
            StreamArn::parse("arn:aws:kinesis:eu-west-1:123456789012:stream/orders")
                .map(|arn| arn.name),
            Some("orders")
        );
    }

    #[test]
    fn sluice_s_own_account_and_odd_endpoints_are_refused() {
        let entry = |account_id: &str, endpoint: Option<&str>| KinesisEndpoint {
            region: "eu-west-1".into(),
            account_id: account_id.into(),
            endpoint: endpoint.map(str::to_owned),
        };
        assert!(KinesisEndpoints::new(vec![entry("000000000000", None)]).is_err());
        assert!(
            KinesisEndpoints::new(vec![entry("123456789012", Some("file:///etc/passwd"))]).is_err()
        );
        assert!(
            KinesisEndpoints::new(vec![entry("123456789012", Some("http://127.0.0.1:4567"))])
                .is_ok()
        );
    }
}
