//! Where a mapping's records come from: the [`EventSource`] trait (records with positions, in
//! order, and a durable checkpoint), and its two implementations, one shard of a Kinesis-like
//! stream of the log ([`StreamShardSource`]) and a table's stream ([`TableStreamSource`]). Each
//! builds the records in Lambda's event shape for its kind, and the view event filter patterns
//! are matched against.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value, json};
use sluice_log::{IteratorStart, Log, SequenceNumber, Shard, ShardPosition, Stream};
use sluice_tables::{AttributeValue, StreamRecord, Tables};

use crate::config::{MappingConfig, SourceSpec, StartingPosition};
use crate::error::{MappingError, Result};
use crate::limits::READ_BYTES_MAX;

/// The region named in events and ARNs.
pub const REGION: &str = "us-east-1";

/// One record of a source, ready to be sent.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceRecord {
    /// The record's sequence number as events carry it; `batchItemFailures[].itemIdentifier`
    /// names records by it.
    pub sequence_number: String,
    /// When the source accepted it, ms since the epoch.
    pub arrival_ms: u64,
    /// The record in Lambda's event shape (one element of `Records`).
    pub event: Value,
    /// What filter patterns match against: for Kinesis the `kinesis` object with `data`
    /// decoded as JSON when it is JSON, for DynamoDB the event itself.
    pub filter_view: Value,
    /// The source's own position, for [`EventSource::checkpoint`].
    pub position: u128,
    /// What orders records under a `ParallelizationFactor`: records of one key stay in order
    /// (a Kinesis partition key, a table item's keys).
    pub partition_key: String,
}

/// One ordered sequence of records that a worker consumes: a Kinesis shard or a table stream.
pub trait EventSource: Send {
    /// The shard's id, as failure records name it.
    fn shard_id(&self) -> String;
    /// The member that holds a failed batch's description in an OnFailure record
    /// (`KinesisBatchInfo`, `DDBStreamBatchInfo`).
    fn batch_info_member(&self) -> &'static str;
    /// Up to `records_max` records after the last one read; empty when there is none yet.
    fn read(&mut self, records_max: usize) -> Result<Vec<SourceRecord>>;
    /// Durably records that `record` and every record before it are handled: after a restart
    /// reading resumes after it. A crash leaves the old or the new checkpoint.
    fn checkpoint(&mut self, record: &SourceRecord) -> Result<()>;
}

/// The consumer name under which a mapping checkpoints a log stream.
pub fn consumer_name(uuid: &str) -> String {
    format!("lambda.{uuid}")
}

/// Opens one source per shard of the mapping's source, each positioned after its checkpoint,
/// or at the mapping's starting position when it has none. `start_resolved` says whether a
/// worker already ran once: then a shard without a checkpoint starts at its trim horizon, so a
/// LATEST mapping restarted before its first record does not skip records that arrived while it
/// was down. On the first run a LATEST or AT_TIMESTAMP start is written as a checkpoint at once.
pub fn open_sources(
    config: &MappingConfig,
    start_resolved: bool,
    log: &Arc<Log>,
    tables: &Arc<Tables>,
    checkpoint_dir: &Path,
) -> Result<Vec<Box<dyn EventSource>>> {
    match &config.source {
        SourceSpec::Stream { stream, copy } => {
            let stream = log.stream(stream).map_err(|_| {
                MappingError::SourceNotFound(format!(
                    "stream {} does not exist",
                    config.event_source_arn
                ))
            })?;
            let consumer = consumer_name(&config.uuid);
            let mut sources: Vec<Box<dyn EventSource>> = Vec::new();
            for shard in stream.shards() {
                let shard_index = shard.shard_index();
                let position = match stream.read_checkpoint(&consumer, shard_index)? {
                    Some(done) => shard.position_for(IteratorStart::AfterSequenceNumber(done))?,
                    None if start_resolved => shard.position_for(IteratorStart::TrimHorizon)?,
                    None => {
                        let start = match config.starting_position {
                            _ if *copy => IteratorStart::TrimHorizon,
                            StartingPosition::TrimHorizon => IteratorStart::TrimHorizon,
                            StartingPosition::Latest => IteratorStart::Latest,
                            StartingPosition::AtTimestamp { timestamp_ms } => {
                                IteratorStart::AtTimestamp(timestamp_ms)
                            }
                        };
                        let position = shard.position_for(start)?;
                        if let Some(before) = position.next_record_offset.checked_sub(1) {
                            stream.write_checkpoint(
                                &consumer,
                                shard_index,
                                SequenceNumber::from_shard_offset(shard_index, before),
                            )?;
                        }
                        position
                    }
                };
                sources.push(Box::new(StreamShardSource {
                    stream: Arc::clone(&stream),
                    shard: Arc::clone(shard),
                    consumer: consumer.clone(),
                    position,
                    event_source_arn: config.event_source_arn.clone(),
                }));
            }
            Ok(sources)
        }
        SourceSpec::TableStream {
            stream_id,
            view_type,
            ..
        } => {
            let checkpoint_path = checkpoint_dir.join(format!("{}.checkpoint", config.uuid));
            let next = match read_table_checkpoint(&checkpoint_path)? {
                Some(done) => done.saturating_add(1),
                None if start_resolved => 1,
                None => {
                    let next = match config.starting_position {
                        StartingPosition::TrimHorizon => 1,
                        StartingPosition::Latest => tables.stream_next_sequence(*stream_id)?,
                        StartingPosition::AtTimestamp { timestamp_ms } => {
                            first_at_or_after(tables, *stream_id, timestamp_ms)?
                        }
                    };
                    if next > 1 {
                        write_table_checkpoint(&checkpoint_path, next - 1)?;
                    }
                    next
                }
            };
            Ok(vec![Box::new(TableStreamSource {
                tables: Arc::clone(tables),
                stream_id: *stream_id,
                view_type: view_type.clone(),
                next,
                checkpoint_path,
                event_source_arn: config.event_source_arn.clone(),
            })])
        }
    }
}

/// A Kinesis-like shard of the log.
struct StreamShardSource {
    stream: Arc<Stream>,
    shard: Arc<Shard>,
    consumer: String,
    position: ShardPosition,
    event_source_arn: String,
}

/// Kinesis's shard id for a shard index.
fn kinesis_shard_id(shard_index: u32) -> String {
    format!("shardId-{shard_index:012}")
}

impl EventSource for StreamShardSource {
    fn shard_id(&self) -> String {
        kinesis_shard_id(self.shard.shard_index())
    }

    fn batch_info_member(&self) -> &'static str {
        "KinesisBatchInfo"
    }

    fn read(&mut self, records_max: usize) -> Result<Vec<SourceRecord>> {
        let records_max = records_max.clamp(1, sluice_log::limits::READ_RECORDS_MAX);
        let batch = self
            .shard
            .read(self.position, records_max, READ_BYTES_MAX)?;
        self.position = batch.next_position;
        let shard_id = self.shard_id();
        Ok(batch
            .records
            .into_iter()
            .map(|record| {
                let sequence_number = record.sequence_number.to_string();
                let arrival_s = record.arrival_time_ms as f64 / 1000.0;
                let kinesis = json!({
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": record.partition_key,
                    "sequenceNumber": sequence_number,
                    "data": BASE64.encode(&record.data),
                    "approximateArrivalTimestamp": arrival_s,
                });
                let mut filter_view = kinesis.clone();
                if let Ok(data) = serde_json::from_slice::<Value>(&record.data) {
                    set_member(&mut filter_view, "data", data);
                }
                SourceRecord {
                    event: json!({
                        "kinesis": kinesis,
                        "eventSource": "aws:kinesis",
                        "eventVersion": "1.0",
                        "eventID": format!("{shard_id}:{sequence_number}"),
                        "eventName": "aws:kinesis:record",
                        "invokeIdentityArn": format!("arn:aws:iam::{}:role/sluice", crate::ACCOUNT_ID),
                        "awsRegion": REGION,
                        "eventSourceARN": self.event_source_arn,
                    }),
                    filter_view,
                    sequence_number,
                    arrival_ms: record.arrival_time_ms,
                    position: record.sequence_number.as_u128(),
                    partition_key: record.partition_key,
                }
            })
            .collect())
    }

    fn checkpoint(&mut self, record: &SourceRecord) -> Result<()> {
        self.stream.write_checkpoint(
            &self.consumer,
            self.shard.shard_index(),
            SequenceNumber::from_u128(record.position),
        )?;
        Ok(())
    }
}

/// A table's stream; its checkpoint is a small file of the mapping's own.
struct TableStreamSource {
    tables: Arc<Tables>,
    stream_id: u64,
    view_type: String,
    next: u64,
    checkpoint_path: PathBuf,
    event_source_arn: String,
}

/// DynamoDB Streams' sequence numbers: 21 digits.
fn table_sequence_number(sequence: u64) -> String {
    format!("{sequence:021}")
}

impl EventSource for TableStreamSource {
    fn shard_id(&self) -> String {
        format!("shardId-{:020}-{:08x}", 0, self.stream_id)
    }

    fn batch_info_member(&self) -> &'static str {
        "DDBStreamBatchInfo"
    }

    fn read(&mut self, records_max: usize) -> Result<Vec<SourceRecord>> {
        let records = self
            .tables
            .read_stream(self.stream_id, self.next, records_max)?;
        if let Some(last) = records.last() {
            self.next = last.sequence.saturating_add(1);
        }
        Ok(records
            .iter()
            .map(|record| {
                let event = self.event(record);
                SourceRecord {
                    sequence_number: table_sequence_number(record.sequence),
                    arrival_ms: record.created_ms,
                    filter_view: event.clone(),
                    partition_key: event
                        .get("dynamodb")
                        .and_then(|dynamodb| dynamodb.get("Keys"))
                        .map(Value::to_string)
                        .unwrap_or_default(),
                    event,
                    position: u128::from(record.sequence),
                }
            })
            .collect())
    }

    fn checkpoint(&mut self, record: &SourceRecord) -> Result<()> {
        let sequence = u64::try_from(record.position).map_err(|_| {
            MappingError::InvalidParameter("table stream position out of range".to_owned())
        })?;
        write_table_checkpoint(&self.checkpoint_path, sequence)
    }
}

impl TableStreamSource {
    /// One record in Lambda's DynamoDB event shape.
    fn event(&self, record: &StreamRecord) -> Value {
        let mut dynamodb = json!({
            "ApproximateCreationDateTime": record.created_ms / 1000,
            "Keys": item_json(&record.keys),
            "SequenceNumber": table_sequence_number(record.sequence),
            "SizeBytes": record.size_bytes,
            "StreamViewType": self.view_type,
        });
        if let Some(image) = &record.new_image {
            set_member(&mut dynamodb, "NewImage", item_json(image));
        }
        if let Some(image) = &record.old_image {
            set_member(&mut dynamodb, "OldImage", item_json(image));
        }
        let mut event = json!({
            "eventID": format!("{:08x}-{:016x}", self.stream_id, record.sequence),
            "eventName": record.event_name.as_str(),
            "eventVersion": "1.1",
            "eventSource": "aws:dynamodb",
            "awsRegion": REGION,
            "dynamodb": dynamodb,
            "eventSourceARN": self.event_source_arn,
        });
        if record.by_service {
            set_member(
                &mut event,
                "userIdentity",
                json!({"type": "Service", "principalId": "dynamodb.amazonaws.com"}),
            );
        }
        event
    }
}

/// DynamoDB's typed JSON for an item, as Lambda's DynamoDB events carry images and keys.
fn item_json(item: &std::collections::BTreeMap<String, AttributeValue>) -> Value {
    Value::Object(
        item.iter()
            .map(|(name, value)| (name.clone(), attribute_json(value)))
            .collect::<Map<String, Value>>(),
    )
}

fn attribute_json(value: &AttributeValue) -> Value {
    match value {
        AttributeValue::S(text) => json!({"S": text}),
        AttributeValue::N(number) => json!({"N": number.to_string()}),
        AttributeValue::B(bytes) => json!({"B": BASE64.encode(bytes)}),
        AttributeValue::Bool(flag) => json!({"BOOL": flag}),
        AttributeValue::Null => json!({"NULL": true}),
        AttributeValue::M(map) => json!({"M": item_json(map)}),
        AttributeValue::L(list) => {
            json!({"L": list.iter().map(attribute_json).collect::<Vec<_>>()})
        }
        AttributeValue::Ss(set) => json!({"SS": set}),
        AttributeValue::Ns(set) => {
            json!({"NS": set.iter().map(ToString::to_string).collect::<Vec<_>>()})
        }
        AttributeValue::Bs(set) => {
            json!({"BS": set.iter().map(|bytes| BASE64.encode(bytes)).collect::<Vec<_>>()})
        }
    }
}

/// The sequence of the first record created at or after `timestamp_ms` (the next one to be
/// written when there is none).
fn first_at_or_after(tables: &Tables, stream_id: u64, timestamp_ms: u64) -> Result<u64> {
    let mut from = 1;
    loop {
        let records = tables.read_stream(stream_id, from, sluice_tables::STREAM_READ_MAX)?;
        let Some(last) = records.last() else {
            return Ok(tables.stream_next_sequence(stream_id)?);
        };
        if let Some(found) = records
            .iter()
            .find(|record| record.created_ms >= timestamp_ms)
        {
            return Ok(found.sequence);
        }
        from = last.sequence.saturating_add(1);
    }
}

fn read_table_checkpoint(path: &Path) -> Result<Option<u64>> {
    match fs::read_to_string(path) {
        Ok(text) => text
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| MappingError::Catalog {
                path: path.display().to_string(),
                reason: "the checkpoint is not a sequence number".to_owned(),
            }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(MappingError::Io {
            context: format!("reading {}", path.display()),
            source,
        }),
    }
}

fn write_table_checkpoint(path: &Path, sequence: u64) -> Result<()> {
    write_atomically(path, sequence.to_string().as_bytes())
}

/// Writes a file so that a crash leaves the old or the new content: a temporary file, fsync,
/// rename over, fsync of the directory.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let io = |context: &str| {
        let context = format!("{context} {}", path.display());
        move |source| MappingError::Io { context, source }
    };
    let directory = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(directory).map_err(io("creating the directory of"))?;
    let temporary = path.with_extension("tmp");
    {
        let mut file = fs::File::create(&temporary).map_err(io("creating"))?;
        file.write_all(bytes).map_err(io("writing"))?;
        file.sync_all().map_err(io("syncing"))?;
    }
    fs::rename(&temporary, path).map_err(io("replacing"))?;
    fs::File::open(directory)
        .and_then(|directory| directory.sync_all())
        .map_err(io("syncing the directory of"))?;
    Ok(())
}

/// Sets a member of a JSON object (nothing happens to other values).
pub(crate) fn set_member(object: &mut Value, name: &str, value: Value) {
    if let Some(members) = object.as_object_mut() {
        members.insert(name.to_owned(), value);
    }
}
