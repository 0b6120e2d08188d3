//! Where a stream-fed replica reads its source's journal stream records: a stream of this
//! node's own log, or a stream behind another Kinesis API (Amazon Kinesis, another Sluice)
//! through [`KinesisClient`]: `ListShards`, `GetShardIterator` (`TRIM_HORIZON`) and
//! `GetRecords`. A replica applies blocks strictly in order whatever order their records come
//! in, so it reads every shard, closed parents and their children alike, without ordering them. Both answer the same thing, each shard's records as raw Kinesis record data
//! (possibly KPL-aggregated), behind a cursor that is the shard's next read; a replica that
//! loses its place (a restart, a gap, an expired iterator) starts again at the trim horizon and
//! skips the blocks its target already holds.

use std::sync::Arc;

use sluice_log::{IteratorStart, Log, ShardPosition};

use crate::kinesis_client::{IteratorAt, KinesisClient};
use crate::replica::ReplicaError;

/// Records one read takes from a shard (Kinesis's `GetRecords` `Limit` maximum is 10,000): this
/// bounds what a replica holds between two applies.
pub const RECORDS_PER_READ: usize = 1_000;
/// Bytes one read of the local log returns at most (at least one record).
pub const READ_BYTES_PER_READ: usize = 4 * 1024 * 1024;

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
                    remote.stream,
                    remote.client.endpoint()
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

/// A stream behind another server's Kinesis API ([`KinesisClient`]: signed when the
/// environment holds AWS credentials).
pub struct RemoteKinesis {
    client: Box<KinesisClient>,
    stream: String,
}

impl RemoteKinesis {
    pub fn new(endpoint: &str, stream: &str) -> Result<Self, ReplicaError> {
        Ok(RemoteKinesis {
            client: Box::new(KinesisClient::new(endpoint, None).map_err(source_error)?),
            stream: stream.to_owned(),
        })
    }

    fn trim_horizon(&self) -> Result<Vec<String>, ReplicaError> {
        let shards = self
            .client
            .list_shards(&self.stream)
            .map_err(source_error)?;
        shards
            .iter()
            .map(|shard| {
                self.client
                    .shard_iterator(&self.stream, &shard.shard_id, &IteratorAt::TrimHorizon)
                    .map_err(source_error)
            })
            .collect()
    }

    fn read(&self, iterator: &str) -> Result<ShardRead, ReplicaError> {
        let read = self
            .client
            .get_records(iterator, RECORDS_PER_READ)
            .map_err(source_error)?;
        Ok(ShardRead {
            records: read.records.into_iter().map(|record| record.data).collect(),
            next: read.next_iterator,
        })
    }
}
