//! Where a stream-fed replica reads its source's journal stream records: a stream of this
//! node's own log, or a stream of another Sluice (or any Kinesis-compatible service that needs
//! no signature) through the Kinesis API, `ListShards`, `GetShardIterator` (`TRIM_HORIZON`) and
//! `GetRecords`. Both answer the same thing, each shard's records as raw Kinesis record data
//! (possibly KPL-aggregated), behind a cursor that is the shard's next read; a replica that
//! loses its place (a restart, a gap, an expired iterator) starts again at the trim horizon and
//! skips the blocks its target already holds.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};
use sluice_log::{IteratorStart, Log, ShardPosition};

use crate::replica::ReplicaError;

/// Records one read takes from a shard (Kinesis's `GetRecords` `Limit` maximum is 10,000): this
/// bounds what a replica holds between two applies.
pub const RECORDS_PER_READ: usize = 1_000;
/// Bytes one read of the local log returns at most (at least one record).
pub const READ_BYTES_PER_READ: usize = 4 * 1024 * 1024;
/// How long one call to a remote Kinesis API may take, connection included; past it the call
/// fails and the replica's pass is retried.
pub const REMOTE_CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest answer read from a remote Kinesis API: a `GetRecords` answer is at most 10 MiB of
/// data, a third more in base64. A larger one fails the call.
pub const REMOTE_RESPONSE_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Pages of `ListShards` followed before the shard list is taken as it is; far more than any
/// stream of the log has (`SHARDS_PER_STREAM_MAX`), so only a server that pages forever meets it.
pub const LIST_SHARDS_PAGES_MAX: usize = 100;
/// The Kinesis API's `X-Amz-Target` prefix.
const KINESIS_TARGET_PREFIX: &str = "Kinesis_20131202";

/// One read of one shard.
#[derive(Debug)]
pub struct ShardRead {
    /// Each Kinesis record's data, in shard order.
    pub records: Vec<Vec<u8>>,
    /// Where the next read starts; `None` when the shard is closed and fully read.
    pub next: Option<String>,
}

/// A Kinesis-compatible stream holding a journal stream's records.
pub enum RecordSource {
    /// A stream of this node's log.
    Local { log: Arc<Log>, stream: String },
    /// A stream behind another server's Kinesis API.
    Remote(RemoteKinesis),
}

impl std::fmt::Debug for RecordSource {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecordSource::Local { stream, .. } => write!(formatter, "Local({stream})"),
            RecordSource::Remote(remote) => {
                write!(
                    formatter,
                    "Remote({} at {})",
                    remote.stream, remote.endpoint
                )
            }
        }
    }
}

fn source_error(what: impl std::fmt::Display) -> ReplicaError {
    ReplicaError::Source(what.to_string())
}

impl RecordSource {
    /// The source for `stream`, at `endpoint` when one is given.
    pub fn new(log: Arc<Log>, stream: &str, endpoint: Option<&str>) -> Result<Self, ReplicaError> {
        Ok(match endpoint {
            None => RecordSource::Local {
                log,
                stream: stream.to_owned(),
            },
            Some(endpoint) => RecordSource::Remote(RemoteKinesis::new(endpoint, stream)?),
        })
    }

    /// A cursor at the trim horizon of every shard, in shard order.
    pub fn trim_horizon(&mut self) -> Result<Vec<String>, ReplicaError> {
        match self {
            RecordSource::Local { log, stream } => {
                let stream = log.stream(stream).map_err(source_error)?;
                stream
                    .shards()
                    .iter()
                    .map(|shard| {
                        let position = shard
                            .position_for(IteratorStart::TrimHorizon)
                            .map_err(source_error)?;
                        Ok(local_cursor(position))
                    })
                    .collect()
            }
            RecordSource::Remote(remote) => remote.trim_horizon(),
        }
    }

    /// Reads the records after `cursor`.
    pub fn read(&mut self, cursor: &str) -> Result<ShardRead, ReplicaError> {
        match self {
            RecordSource::Local { log, stream } => {
                let position = parse_local_cursor(cursor)?;
                let stream = log.stream(stream).map_err(source_error)?;
                let batch = stream
                    .shard(position.shard_index)
                    .and_then(|shard| shard.read(position, RECORDS_PER_READ, READ_BYTES_PER_READ))
                    .map_err(source_error)?;
                Ok(ShardRead {
                    records: batch
                        .records
                        .into_iter()
                        .map(|record| record.data)
                        .collect(),
                    next: Some(local_cursor(batch.next_position)),
                })
            }
            RecordSource::Remote(remote) => remote.read(cursor),
        }
    }
}

fn local_cursor(position: ShardPosition) -> String {
    format!("{}:{}", position.shard_index, position.next_record_offset)
}

fn parse_local_cursor(cursor: &str) -> Result<ShardPosition, ReplicaError> {
    let parsed = cursor.split_once(':').and_then(|(shard, offset)| {
        Some(ShardPosition {
            shard_index: shard.parse().ok()?,
            next_record_offset: offset.parse().ok()?,
        })
    });
    parsed.ok_or_else(|| source_error(format!("bad cursor {cursor:?}")))
}

/// A client of another server's Kinesis API (plain JSON 1.1 calls, no signature).
pub struct RemoteKinesis {
    endpoint: String,
    stream: String,
    client: reqwest::Client,
    /// The worker thread is not async: each call runs to its end on this runtime.
    runtime: tokio::runtime::Runtime,
}

impl RemoteKinesis {
    pub fn new(endpoint: &str, stream: &str) -> Result<Self, ReplicaError> {
        // reqwest is built without a bundled TLS provider: ring is the process's one (as for
        // S3); a provider installed before is kept.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(REMOTE_CALL_TIMEOUT)
            .build()
            .map_err(source_error)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(source_error)?;
        Ok(RemoteKinesis {
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            stream: stream.to_owned(),
            client,
            runtime,
        })
    }

    /// One Kinesis call; an error answer becomes a [`ReplicaError::Source`] naming its type.
    fn call(&self, operation: &str, body: &Value) -> Result<Value, ReplicaError> {
        let request = self
            .client
            .post(format!("{}/", self.endpoint))
            .header("Content-Type", "application/x-amz-json-1.1")
            .header(
                "X-Amz-Target",
                format!("{KINESIS_TARGET_PREFIX}.{operation}"),
            )
            .body(body.to_string());
        let failed = |error: &dyn std::fmt::Display| {
            source_error(format!("{operation} at {}: {error}", self.endpoint))
        };
        let (status, bytes) = self.runtime.block_on(async {
            let mut response = request.send().await.map_err(|error| failed(&error))?;
            let status = response.status();
            let mut bytes = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(|error| failed(&error))? {
                if bytes.len() + chunk.len() > REMOTE_RESPONSE_BYTES_MAX {
                    return Err(failed(&format!(
                        "the answer is longer than {REMOTE_RESPONSE_BYTES_MAX} bytes"
                    )));
                }
                bytes.extend_from_slice(&chunk);
            }
            Ok((status, bytes))
        })?;
        let value: Value = serde_json::from_slice(&bytes)
            .map_err(|error| failed(&format!("the answer is not JSON: {error}")))?;
        if !status.is_success() {
            let kind = value.get("__type").and_then(Value::as_str).unwrap_or("");
            let message = value.get("message").and_then(Value::as_str).unwrap_or("");
            return Err(failed(&format!("{status} {kind}: {message}")));
        }
        Ok(value)
    }

    fn trim_horizon(&self) -> Result<Vec<String>, ReplicaError> {
        let mut shard_ids = Vec::new();
        let mut next_token: Option<String> = None;
        for _ in 0..LIST_SHARDS_PAGES_MAX {
            let body = match &next_token {
                Some(token) => json!({"NextToken": token}),
                None => json!({"StreamName": self.stream}),
            };
            let answer = self.call("ListShards", &body)?;
            for shard in answer
                .get("Shards")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(id) = shard.get("ShardId").and_then(Value::as_str) {
                    shard_ids.push(id.to_owned());
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
        shard_ids
            .iter()
            .map(|shard_id| {
                let answer = self.call(
                    "GetShardIterator",
                    &json!({"StreamName": self.stream, "ShardId": shard_id,
                            "ShardIteratorType": "TRIM_HORIZON"}),
                )?;
                answer
                    .get("ShardIterator")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .ok_or_else(|| source_error("GetShardIterator answered without ShardIterator"))
            })
            .collect()
    }

    fn read(&self, iterator: &str) -> Result<ShardRead, ReplicaError> {
        let answer = self.call(
            "GetRecords",
            &json!({"ShardIterator": iterator, "Limit": RECORDS_PER_READ}),
        )?;
        let mut records = Vec::new();
        for record in answer
            .get("Records")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let data = record
                .get("Data")
                .and_then(Value::as_str)
                .ok_or_else(|| source_error("GetRecords answered a record without Data"))?;
            records.push(BASE64.decode(data).map_err(|error| {
                source_error(format!(
                    "GetRecords answered Data that is not base64: {error}"
                ))
            })?);
        }
        Ok(ShardRead {
            records,
            next: answer
                .get("NextShardIterator")
                .and_then(Value::as_str)
                .map(str::to_owned),
        })
    }
}
