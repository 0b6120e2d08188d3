//! The Kinesis Data Streams API (`X-Amz-Target: Kinesis_20131202.*`, AWS JSON 1.1) over the
//! stream log of `sluice-log`: stream management, PutRecord(s), shard iterators and GetRecords.
//!
//! This file owns the wire shapes only: it validates every input member the way Kinesis does
//! (`ValidationException` for a shape constraint, `InvalidArgumentException` for a value Kinesis
//! refuses, `SerializationException` for a member of the wrong JSON type), turns requests into
//! `sluice_log` calls run on `spawn_blocking`, and maps `LogError`s to Kinesis errors in one
//! place ([`log_error`]). Shard iterators are opaque, CRC-checked strings that expire after
//! [`SHARD_ITERATOR_TTL_MS_DEFAULT`], measured on an injectable [`Clock`].

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value, json};
use sluice_log::limits::{
    BATCH_BYTES_MAX, BATCH_RECORDS_MAX, PARTITION_KEY_CHARS_MAX, READ_BYTES_MAX, READ_RECORDS_MAX,
    RECORD_BYTES_MAX, SHARDS_PER_STREAM_MAX,
};
use sluice_log::{
    AppendRecord, Clock, IteratorStart, Log, LogError, RetentionPolicy, SequenceNumber,
    ShardPosition, Stream, StreamConfig, StreamSummary,
};
use tokio::sync::Semaphore;

use super::{AwsError, BoxFuture, Format, JsonService, Operation};

/// The `X-Amz-Target` prefix of Kinesis Data Streams.
pub const TARGET_PREFIX: &str = "Kinesis_20131202";

/// Every operation served (record data is base64 the service never parses).
pub const OPERATIONS: &[Operation] = &[
    Operation {
        name: "CreateStream",
        formats: &[Format::Json],
    },
    Operation {
        name: "DeleteStream",
        formats: &[Format::Json],
    },
    Operation {
        name: "DescribeStream",
        formats: &[Format::Json],
    },
    Operation {
        name: "DescribeStreamSummary",
        formats: &[Format::Json],
    },
    Operation {
        name: "ListStreams",
        formats: &[Format::Json],
    },
    Operation {
        name: "ListShards",
        formats: &[Format::Json],
    },
    Operation {
        name: "PutRecord",
        formats: &[Format::Json],
    },
    Operation {
        name: "PutRecords",
        formats: &[Format::Json],
    },
    Operation {
        name: "GetShardIterator",
        formats: &[Format::Json],
    },
    Operation {
        name: "GetRecords",
        formats: &[Format::Json],
    },
    Operation {
        name: "IncreaseStreamRetentionPeriod",
        formats: &[Format::Json],
    },
    Operation {
        name: "DecreaseStreamRetentionPeriod",
        formats: &[Format::Json],
    },
];

pub use super::{ACCOUNT_ID, REGION};

/// How long a shard iterator stays valid after it was issued: 5 minutes, as in Kinesis. A
/// GetRecords with an older iterator gets `ExpiredIteratorException`.
pub const SHARD_ITERATOR_TTL_MS_DEFAULT: u64 = 5 * 60 * 1000;

/// Most Kinesis calls running blocking log work at once (appends waiting for their fsync,
/// reads, catalog changes). When full, a data call is refused at once with
/// `ProvisionedThroughputExceededException` and a control call with `LimitExceededException`,
/// both of which the AWS SDKs retry with backoff; nothing queues without bound.
pub const IN_FLIGHT_CALLS_MAX: usize = 256;

/// Shards of a stream created with `StreamMode: ON_DEMAND`: Kinesis starts such streams with 4.
pub const ON_DEMAND_SHARD_COUNT: u32 = 4;

/// Retention bounds of Increase/DecreaseStreamRetentionPeriod, in hours (1 day to 365 days).
pub const RETENTION_PERIOD_HOURS_MIN: i64 = 24;
pub const RETENTION_PERIOD_HOURS_MAX: i64 = 8760;

/// Largest `Limit` / `MaxResults` of the listing calls (Kinesis's shape constraint).
const LIST_LIMIT_MAX: i64 = 10_000;
/// Default page size of ListStreams and DescribeStream.
const LIST_STREAMS_LIMIT_DEFAULT: usize = 100;
const DESCRIBE_STREAM_LIMIT_DEFAULT: usize = 100;
/// Default and largest page of ListShards (larger `MaxResults` are capped, as Kinesis does).
const LIST_SHARDS_PAGE_MAX: usize = 1000;
/// ListShards tokens expire like Kinesis's, after 300 s (`ExpiredNextTokenException`).
const LIST_SHARDS_TOKEN_TTL_MS: u64 = 300 * 1000;

/// Longest shard iterator string (the `ShardIterator` shape allows 1–512 characters).
const SHARD_ITERATOR_CHARS_MAX: usize = 512;
/// Version byte leading every encoded shard iterator.
const SHARD_ITERATOR_VERSION: u8 = 1;
/// Length of the fixed fields of an encoded iterator: version, issued time, stream creation
/// time, shard index, next offset, name length.
const SHARD_ITERATOR_FIXED_BYTES: usize = 1 + 8 + 8 + 4 + 8 + 1;
/// Longest stream name (Kinesis's shape constraint, also the log's).
const STREAM_NAME_CHARS_MAX: usize = 128;
/// Longest `StreamARN` accepted.
const STREAM_ARN_CHARS_MAX: usize = 2048;
/// Most characters of an offending value quoted back in a validation message.
const QUOTED_VALUE_CHARS_MAX: usize = 64;

const MILLIS_PER_HOUR: u64 = 60 * 60 * 1000;

/// Largest timestamp accepted in a request, in epoch seconds (about the year 5138): larger
/// values are not times and would overflow milliseconds.
const TIMESTAMP_SECONDS_MAX: f64 = 1.0e11;

/// How a stream's capacity is managed, as reported in `StreamModeDetails`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamMode {
    Provisioned,
    OnDemand,
}

impl StreamMode {
    fn as_str(self) -> &'static str {
        match self {
            StreamMode::Provisioned => "PROVISIONED",
            StreamMode::OnDemand => "ON_DEMAND",
        }
    }
}

/// What tests change: the clock iterators are timed with, their lifetime and the in-flight bound.
#[derive(Debug, Clone)]
pub struct KinesisOptions {
    pub clock: Arc<dyn Clock>,
    pub shard_iterator_ttl_ms: u64,
    pub in_flight_calls_max: usize,
}

/// The prefix of the log streams that hold DirectPut delivery streams' records
/// (`sluice_delivery::log_stream_name`).
const DELIVERY_LOG_PREFIX: &str = "firehose.";

/// Whether a log stream is the node's own: a DirectPut delivery stream's records, or the copy
/// of an external stream that a Kinesis source fills (`sluice_node::kinesis_sources`). They
/// share the log with Kinesis streams but are not Kinesis streams, so this API neither lists,
/// reads, writes nor creates them.
pub(crate) fn is_internal_log(name: &str) -> bool {
    name.starts_with(DELIVERY_LOG_PREFIX)
        || name.starts_with(sluice_node::kinesis_sources::COPY_STREAM_PREFIX)
}

/// The Kinesis service registered on the AWS port.
pub struct KinesisService {
    log: Arc<Log>,
    clock: Arc<dyn Clock>,
    shard_iterator_ttl_ms: u64,
    in_flight: Arc<Semaphore>,
    in_flight_calls_max: usize,
    /// Capacity mode of streams created through this service, by name and creation time. The
    /// log's catalog has no field for it, so after a restart every stream reports PROVISIONED.
    stream_modes: Mutex<HashMap<(String, u64), StreamMode>>,
}

impl std::fmt::Debug for KinesisService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KinesisService")
            .field("shard_iterator_ttl_ms", &self.shard_iterator_ttl_ms)
            .finish_non_exhaustive()
    }
}

impl KinesisService {
    /// The service over `log`, timing iterators with the log's own clock.
    pub fn new(log: Arc<Log>) -> KinesisService {
        let options = KinesisOptions {
            clock: Arc::clone(log.clock()),
            shard_iterator_ttl_ms: SHARD_ITERATOR_TTL_MS_DEFAULT,
            in_flight_calls_max: IN_FLIGHT_CALLS_MAX,
        };
        KinesisService::with_options(log, options)
    }

    pub fn with_options(log: Arc<Log>, options: KinesisOptions) -> KinesisService {
        KinesisService {
            log,
            clock: options.clock,
            shard_iterator_ttl_ms: options.shard_iterator_ttl_ms,
            in_flight: Arc::new(Semaphore::new(options.in_flight_calls_max)),
            in_flight_calls_max: options.in_flight_calls_max,
            stream_modes: Mutex::new(HashMap::new()),
        }
    }

    async fn dispatch(&self, operation: &str, body: Value) -> Result<Value, AwsError> {
        let Value::Object(body) = body else {
            return Err(serialization("the request body must be a JSON object"));
        };
        match operation {
            "CreateStream" => self.create_stream(&body).await,
            "DeleteStream" => self.delete_stream(&body).await,
            "DescribeStream" => self.describe_stream(&body),
            "DescribeStreamSummary" => self.describe_stream_summary(&body),
            "ListStreams" => self.list_streams(&body),
            "ListShards" => self.list_shards(&body),
            "PutRecord" => self.put_record(&body).await,
            "PutRecords" => self.put_records(&body).await,
            "GetShardIterator" => self.get_shard_iterator(&body).await,
            "GetRecords" => self.get_records(&body).await,
            "IncreaseStreamRetentionPeriod" => {
                self.change_retention(&body, RetentionChange::Increase)
                    .await
            }
            "DecreaseStreamRetentionPeriod" => {
                self.change_retention(&body, RetentionChange::Decrease)
                    .await
            }
            _ => Err(AwsError::client(
                "UnknownOperationException",
                format!("operation {operation} is not supported by this Kinesis endpoint"),
            )),
        }
    }

    /// Runs blocking log work on the blocking pool, within the in-flight bound.
    async fn blocking<T, F>(&self, throttled_kind: &'static str, work: F) -> Result<T, AwsError>
    where
        T: Send + 'static,
        F: FnOnce(&Log) -> Result<T, AwsError> + Send + 'static,
    {
        let Ok(permit) = Arc::clone(&self.in_flight).try_acquire_owned() else {
            return Err(AwsError::client(
                throttled_kind,
                format!(
                    "Rate exceeded: more than {} Kinesis calls in flight for account {ACCOUNT_ID}",
                    self.in_flight_calls_max
                ),
            ));
        };
        let log = Arc::clone(&self.log);
        let outcome = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work(&log)
        })
        .await;
        outcome.map_err(|error| AwsError::internal(format!("log task failed: {error}")))?
    }

    fn stream(&self, name: &str) -> Result<Arc<Stream>, AwsError> {
        if is_internal_log(name) {
            return Err(AwsError::client(
                "ResourceNotFoundException",
                format!("Stream {name} under account {ACCOUNT_ID} not found."),
            ));
        }
        self.log.stream(name).map_err(log_error)
    }

    fn stream_mode(&self, stream: &Stream) -> StreamMode {
        let modes = self
            .stream_modes
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        modes
            .get(&(stream.name().to_owned(), stream.created_time_ms()))
            .copied()
            .unwrap_or(StreamMode::Provisioned)
    }

    async fn create_stream(&self, body: &Map<String, Value>) -> Result<Value, AwsError> {
        let mut input = Input::new(body);
        let name = input.required_stream_name("StreamName", "streamName")?;
        let shard_count = input.integer("ShardCount")?;
        if let Some(count) = shard_count
            && count < 1
        {
            input.violation(
                &count.to_string(),
                "shardCount",
                "Member must have value greater than or equal to 1",
            );
        }
        let mode = match input.object("StreamModeDetails")? {
            None => None,
            Some(details) => Some(input.stream_mode(details)?),
        };
        input.object("Tags")?;
        input.finish()?;
        let name = name.unwrap_or_default();
        if is_internal_log(&name) {
            return Err(invalid_argument(format!(
                "stream names starting with {DELIVERY_LOG_PREFIX} or {} are reserved for Sluice's own logs",
                sluice_node::kinesis_sources::COPY_STREAM_PREFIX
            )));
        }
        // Without StreamModeDetails, a ShardCount means PROVISIONED and its absence ON_DEMAND.
        let mode = mode.unwrap_or(if shard_count.is_some() {
            StreamMode::Provisioned
        } else {
            StreamMode::OnDemand
        });
        let shard_count = match (mode, shard_count) {
            (StreamMode::OnDemand, Some(_)) => {
                return Err(invalid_argument(
                    "ShardCount cannot be specified for a stream in ON_DEMAND mode",
                ));
            }
            (StreamMode::Provisioned, None) => {
                return Err(invalid_argument(
                    "ShardCount is required for a stream in PROVISIONED mode",
                ));
            }
            (StreamMode::Provisioned, Some(count)) => count,
            (StreamMode::OnDemand, None) => i64::from(ON_DEMAND_SHARD_COUNT),
        };
        let shard_count = u32::try_from(shard_count)
            .ok()
            .filter(|count| *count <= SHARDS_PER_STREAM_MAX)
            .ok_or_else(|| {
                AwsError::client(
                    "LimitExceededException",
                    format!(
                        "This request would exceed the shard limit for the account {ACCOUNT_ID} in {REGION}. \
                         Current shard limit per stream: {SHARDS_PER_STREAM_MAX}. Number of additional shards that would have resulted from this request: {shard_count}."
                    ),
                )
            })?;
        let created = self
            .blocking("LimitExceededException", move |log| {
                log.create_stream(&name, StreamConfig::new(shard_count))
                    .map(|stream| (stream.name().to_owned(), stream.created_time_ms()))
                    .map_err(log_error)
            })
            .await?;
        self.stream_modes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(created, mode);
        Ok(json!({}))
    }

    async fn delete_stream(&self, body: &Map<String, Value>) -> Result<Value, AwsError> {
        let mut input = Input::new(body);
        let name = input.stream_name()?;
        input.boolean("EnforceConsumerDeletion")?;
        input.finish()?;
        let name = name.unwrap_or_default();
        let created = self.stream(&name)?.created_time_ms();
        let deleted_name = name.clone();
        self.blocking("LimitExceededException", move |log| {
            log.delete_stream(&deleted_name).map_err(log_error)
        })
        .await?;
        self.stream_modes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&(name, created));
        Ok(json!({}))
    }

    fn describe_stream(&self, body: &Map<String, Value>) -> Result<Value, AwsError> {
        let mut input = Input::new(body);
        let name = input.stream_name()?;
        let limit = input.limit("Limit", "limit")?;
        let exclusive_start_shard_id =
            input.shard_id("ExclusiveStartShardId", "exclusiveStartShardId")?;
        input.finish()?;
        let stream = self.stream(&name.unwrap_or_default())?;
        let limit = limit.unwrap_or(DESCRIBE_STREAM_LIMIT_DEFAULT);
        let (shards, has_more_shards) =
            shard_page(&stream, exclusive_start_shard_id.as_deref(), limit);
        let config = stream.config();
        Ok(json!({
            "StreamDescription": {
                "StreamName": stream.name(),
                "StreamARN": stream_arn(stream.name()),
                "StreamStatus": "ACTIVE",
                "StreamModeDetails": {"StreamMode": self.stream_mode(&stream).as_str()},
                "Shards": shards,
                "HasMoreShards": has_more_shards,
                "RetentionPeriodHours": retention_period_hours(config.retention_period_ms),
                "StreamCreationTimestamp": epoch_seconds(stream.created_time_ms()),
                "EnhancedMonitoring": [{"ShardLevelMetrics": []}],
                "EncryptionType": "NONE",
            }
        }))
    }

    fn describe_stream_summary(&self, body: &Map<String, Value>) -> Result<Value, AwsError> {
        let mut input = Input::new(body);
        let name = input.stream_name()?;
        input.finish()?;
        let stream = self.stream(&name.unwrap_or_default())?;
        let config = stream.config();
        Ok(json!({
            "StreamDescriptionSummary": {
                "StreamName": stream.name(),
                "StreamARN": stream_arn(stream.name()),
                "StreamStatus": "ACTIVE",
                "StreamModeDetails": {"StreamMode": self.stream_mode(&stream).as_str()},
                "RetentionPeriodHours": retention_period_hours(config.retention_period_ms),
                "StreamCreationTimestamp": epoch_seconds(stream.created_time_ms()),
                "EnhancedMonitoring": [{"ShardLevelMetrics": []}],
                "EncryptionType": "NONE",
                "OpenShardCount": config.shard_count,
                "ConsumerCount": 0,
            }
        }))
    }

    fn list_streams(&self, body: &Map<String, Value>) -> Result<Value, AwsError> {
        let mut input = Input::new(body);
        let limit = input.limit("Limit", "limit")?;
        let exclusive_start =
            input.optional_stream_name("ExclusiveStartStreamName", "exclusiveStartStreamName")?;
        let next_token = input.string("NextToken")?;
        if let Some(token) = next_token
            && token.is_empty()
        {
            input.violation(
                token,
                "nextToken",
                "Member must have length greater than or equal to 1",
            );
        }
        input.finish()?;
        let after = match next_token {
            Some(token) => Some(decode_list_streams_token(token)?),
            None => exclusive_start,
        };
        let limit = limit.unwrap_or(LIST_STREAMS_LIMIT_DEFAULT);
        let summaries: Vec<StreamSummary> = self
            .log
            .list_streams()
            .into_iter()
            .filter(|summary| !is_internal_log(&summary.name))
            .filter(|summary| {
                after
                    .as_deref()
                    .is_none_or(|after| summary.name.as_str() > after)
            })
            .collect();
        let has_more_streams = summaries.len() > limit;
        let page: Vec<&StreamSummary> = summaries.iter().take(limit).collect();
        let modes = self
            .stream_modes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let mut response = json!({
            "StreamNames": page.iter().map(|summary| summary.name.clone()).collect::<Vec<_>>(),
            "HasMoreStreams": has_more_streams,
            "StreamSummaries": page.iter().map(|summary| {
                let mode = modes
                    .get(&(summary.name.clone(), summary.created_time_ms))
                    .copied()
                    .unwrap_or(StreamMode::Provisioned);
                json!({
                    "StreamName": summary.name,
                    "StreamARN": stream_arn(&summary.name),
                    "StreamStatus": "ACTIVE",
                    "StreamModeDetails": {"StreamMode": mode.as_str()},
                    "StreamCreationTimestamp": epoch_seconds(summary.created_time_ms),
                })
            }).collect::<Vec<_>>(),
        });
        if has_more_streams && let Some(last) = page.last() {
            insert_member(
                &mut response,
                "NextToken",
                Value::String(encode_list_streams_token(&last.name)),
            );
        }
        Ok(response)
    }

    fn list_shards(&self, body: &Map<String, Value>) -> Result<Value, AwsError> {
        let mut input = Input::new(body);
        let name = input.optional_stream_name("StreamName", "streamName")?;
        let arn_name = input.stream_arn()?;
        let next_token = input.string("NextToken")?;
        let exclusive_start = input.shard_id("ExclusiveStartShardId", "exclusiveStartShardId")?;
        let max_results = input.limit("MaxResults", "maxResults")?;
        let creation = input.timestamp_ms("StreamCreationTimestamp")?;
        let filter = match input.object("ShardFilter")? {
            None => None,
            Some(filter) => Some(input.shard_filter(filter)?),
        };
        input.finish()?;
        let page_max = max_results
            .unwrap_or(LIST_SHARDS_PAGE_MAX)
            .min(LIST_SHARDS_PAGE_MAX);
        let (stream, after) = if let Some(token) = next_token {
            let token = decode_list_shards_token(token, self.clock.now_ms())?;
            // Kinesis refuses a StreamName beside a NextToken; botocore's ListShards paginator
            // sends both, so the same stream's name is tolerated and only a conflict refused.
            let named = resolve_stream_name(name, arn_name)?;
            if named.is_some_and(|named| named != token.stream_name)
                || exclusive_start.is_some()
                || creation.is_some()
            {
                return Err(invalid_argument(
                    "NextToken and StreamName, StreamARN, ExclusiveStartShardId or StreamCreationTimestamp cannot be provided together.",
                ));
            }
            let stream = self.stream(&token.stream_name)?;
            if stream.created_time_ms() != token.stream_created_ms {
                return Err(stream_not_found(&token.stream_name));
            }
            (stream, Some(token.exclusive_start_shard_id))
        } else {
            let name = resolve_stream_name(name, arn_name)?
                .ok_or_else(|| validation_errors(vec![missing_member("streamName")]))?;
            let stream = self.stream(&name)?;
            let after = match &filter {
                Some(ShardFilter::AfterShardId(shard_id)) => Some(shard_id.clone()),
                _ => exclusive_start,
            };
            (stream, after)
        };
        let (shards, has_more) = shard_page(&stream, after.as_deref(), page_max);
        let mut response = json!({ "Shards": shards });
        if has_more
            && let Some(last) = shards
                .last()
                .and_then(|shard| shard.get("ShardId"))
                .and_then(Value::as_str)
        {
            let token = encode_list_shards_token(&ListShardsToken {
                stream_name: stream.name().to_owned(),
                stream_created_ms: stream.created_time_ms(),
                exclusive_start_shard_id: last.to_owned(),
                issued_ms: self.clock.now_ms(),
            });
            insert_member(&mut response, "NextToken", Value::String(token));
        }
        Ok(response)
    }

    async fn put_record(&self, body: &Map<String, Value>) -> Result<Value, AwsError> {
        let mut input = Input::new(body);
        let name = input.stream_name()?;
        let record = input.record("")?;
        input.sequence_number("SequenceNumberForOrdering", "sequenceNumberForOrdering")?;
        input.reject_dry_run()?;
        input.finish()?;
        let record = record.ok_or_else(|| AwsError::internal("record missing after validation"))?;
        check_record_limits(&record)?;
        let stream = self.stream(&name.unwrap_or_default())?;
        let appended = self
            .blocking("ProvisionedThroughputExceededException", move |_log| {
                stream.append(&record).map_err(log_error)
            })
            .await?;
        Ok(json!({
            "ShardId": shard_id(appended.shard_index),
            "SequenceNumber": appended.sequence_number.to_string(),
            "EncryptionType": "NONE",
        }))
    }

    async fn put_records(&self, body: &Map<String, Value>) -> Result<Value, AwsError> {
        let mut input = Input::new(body);
        let name = input.stream_name()?;
        let entries = input.array("Records")?;
        let mut records = Vec::new();
        match entries {
            None => input.missing("records"),
            Some(entries) if entries.is_empty() => input.violation(
                "[]",
                "records",
                "Member must have length greater than or equal to 1",
            ),
            Some(entries) if entries.len() > BATCH_RECORDS_MAX => input.violation(
                &format!("[{} records]", entries.len()),
                "records",
                &format!("Member must have length less than or equal to {BATCH_RECORDS_MAX}"),
            ),
            Some(entries) => {
                for (position, entry) in entries.iter().enumerate() {
                    let Value::Object(entry) = entry else {
                        return Err(serialization(format!(
                            "Records[{position}] must be a structure"
                        )));
                    };
                    let mut entry_input = Input::new(entry);
                    let prefix = format!("records.{}.member.", position + 1);
                    let record = entry_input.record(&prefix)?;
                    input.errors.append(&mut entry_input.errors);
                    records.extend(record);
                }
            }
        }
        input.reject_dry_run()?;
        input.finish()?;
        let mut batch_bytes = 0usize;
        for record in &records {
            check_record_limits(record)?;
            batch_bytes += record.partition_key.len() + record.data.len();
        }
        if batch_bytes > BATCH_BYTES_MAX {
            return Err(invalid_argument(format!(
                "Records size exceeds 5 MB limit: the records of this request total {batch_bytes} bytes, \
                 more than {BATCH_BYTES_MAX} bytes (partition keys plus data)"
            )));
        }
        let stream = self.stream(&name.unwrap_or_default())?;
        let results = self
            .blocking("ProvisionedThroughputExceededException", move |_log| {
                stream.append_batch(&records).map_err(log_error)
            })
            .await?;
        let mut failed_record_count = 0u64;
        let entries: Vec<Value> = results
            .into_iter()
            .map(|result| match result {
                Ok(appended) => json!({
                    "SequenceNumber": appended.sequence_number.to_string(),
                    "ShardId": shard_id(appended.shard_index),
                }),
                Err(error) => {
                    failed_record_count += 1;
                    tracing::warn!(%error, "a PutRecords record failed");
                    json!({"ErrorCode": "InternalFailure", "ErrorMessage": "Internal Service Failure"})
                }
            })
            .collect();
        Ok(json!({
            "FailedRecordCount": failed_record_count,
            "Records": entries,
            "EncryptionType": "NONE",
        }))
    }

    async fn get_shard_iterator(&self, body: &Map<String, Value>) -> Result<Value, AwsError> {
        let mut input = Input::new(body);
        let name = input.stream_name()?;
        let shard = input.shard_id("ShardId", "shardId")?;
        if shard.is_none() {
            input.missing("shardId");
        }
        let iterator_type = input.string("ShardIteratorType")?;
        match iterator_type {
            None => input.missing("shardIteratorType"),
            Some(
                "AT_SEQUENCE_NUMBER" | "AFTER_SEQUENCE_NUMBER" | "TRIM_HORIZON" | "LATEST"
                | "AT_TIMESTAMP",
            ) => {}
            Some(other) => input.violation(
                other,
                "shardIteratorType",
                "Member must satisfy enum value set: [AFTER_SEQUENCE_NUMBER, LATEST, AT_TIMESTAMP, AT_SEQUENCE_NUMBER, TRIM_HORIZON]",
            ),
        }
        let starting_sequence_number =
            input.sequence_number("StartingSequenceNumber", "startingSequenceNumber")?;
        let timestamp_ms = input.timestamp_ms("Timestamp")?;
        input.finish()?;
        let name = name.unwrap_or_default();
        let shard = shard.unwrap_or_default();
        let stream = self.stream(&name)?;
        let shard_index = parse_shard_id(&shard)
            .filter(|index| stream.shard(*index).is_ok())
            .ok_or_else(|| shard_not_found(&shard, &name))?;
        let sequence_number = |type_name: &str| {
            let text = starting_sequence_number.as_deref().ok_or_else(|| {
                invalid_argument(format!(
                    "StartingSequenceNumber is required for ShardIteratorType {type_name}"
                ))
            })?;
            text.parse::<SequenceNumber>().map_err(|_| {
                invalid_argument(format!(
                    "StartingSequenceNumber {text} used in GetShardIterator on shard {shard} in stream {name} under account {ACCOUNT_ID} is invalid."
                ))
            })
        };
        let start = match iterator_type.unwrap_or_default() {
            "TRIM_HORIZON" => IteratorStart::TrimHorizon,
            "LATEST" => IteratorStart::Latest,
            "AT_SEQUENCE_NUMBER" => {
                IteratorStart::AtSequenceNumber(sequence_number("AT_SEQUENCE_NUMBER")?)
            }
            "AFTER_SEQUENCE_NUMBER" => {
                IteratorStart::AfterSequenceNumber(sequence_number("AFTER_SEQUENCE_NUMBER")?)
            }
            _ => {
                let timestamp_ms = timestamp_ms.ok_or_else(|| {
                    invalid_argument("Timestamp is required for ShardIteratorType AT_TIMESTAMP")
                })?;
                IteratorStart::AtTimestamp(timestamp_ms)
            }
        };
        let stream_for_read = Arc::clone(&stream);
        let position = self
            .blocking("ProvisionedThroughputExceededException", move |_log| {
                stream_for_read
                    .shard(shard_index)
                    .and_then(|shard| shard.position_for(start))
                    .map_err(|error| match error {
                        LogError::SequenceNumberNotInShard { sequence_number, .. } => invalid_argument(format!(
                            "StartingSequenceNumber {sequence_number} used in GetShardIterator on shard {} in stream {} under account {ACCOUNT_ID} is invalid because it did not come from this stream.",
                            shard_id(shard_index),
                            stream_for_read.name(),
                        )),
                        other => log_error(other),
                    })
            })
            .await?;
        let iterator = ShardIterator {
            stream_name: stream.name().to_owned(),
            stream_created_ms: stream.created_time_ms(),
            position,
            issued_ms: self.clock.now_ms(),
        };
        Ok(json!({ "ShardIterator": iterator.encode() }))
    }

    async fn get_records(&self, body: &Map<String, Value>) -> Result<Value, AwsError> {
        let mut input = Input::new(body);
        let iterator_text = input.string("ShardIterator")?;
        match iterator_text {
            None => input.missing("shardIterator"),
            Some("") => input.violation(
                "",
                "shardIterator",
                "Member must have length greater than or equal to 1",
            ),
            Some(text) if text.chars().count() > SHARD_ITERATOR_CHARS_MAX => input.violation(
                text,
                "shardIterator",
                &format!(
                    "Member must have length less than or equal to {SHARD_ITERATOR_CHARS_MAX}"
                ),
            ),
            Some(_) => {}
        }
        let limit = input.limit("Limit", "limit")?;
        input.stream_arn()?;
        input.finish()?;
        let iterator = ShardIterator::decode(iterator_text.unwrap_or_default())?;
        iterator.check_not_expired(self.clock.now_ms(), self.shard_iterator_ttl_ms)?;
        let stream = self.stream(&iterator.stream_name)?;
        if stream.created_time_ms() != iterator.stream_created_ms {
            return Err(stream_not_found(&iterator.stream_name));
        }
        let limit = limit.unwrap_or(READ_RECORDS_MAX);
        let position = iterator.position;
        let batch = self
            .blocking("ProvisionedThroughputExceededException", move |_log| {
                stream
                    .shard(position.shard_index)
                    .and_then(|shard| shard.read(position, limit, READ_BYTES_MAX))
                    .map_err(log_error)
            })
            .await?;
        let next = ShardIterator {
            position: batch.next_position,
            issued_ms: self.clock.now_ms(),
            ..iterator
        };
        let records: Vec<Value> = batch
            .records
            .iter()
            .map(|record| {
                json!({
                    "SequenceNumber": record.sequence_number.to_string(),
                    "ApproximateArrivalTimestamp": epoch_seconds(record.arrival_time_ms),
                    "Data": BASE64.encode(&record.data),
                    "PartitionKey": record.partition_key,
                })
            })
            .collect();
        Ok(json!({
            "Records": records,
            "NextShardIterator": next.encode(),
            "MillisBehindLatest": batch.millis_behind_latest,
        }))
    }

    async fn change_retention(
        &self,
        body: &Map<String, Value>,
        change: RetentionChange,
    ) -> Result<Value, AwsError> {
        let mut input = Input::new(body);
        let name = input.stream_name()?;
        let hours = input.integer("RetentionPeriodHours")?;
        if hours.is_none() {
            input.missing("retentionPeriodHours");
        }
        input.finish()?;
        let name = name.unwrap_or_default();
        let hours = hours.unwrap_or_default();
        if hours < RETENTION_PERIOD_HOURS_MIN {
            return Err(invalid_argument(format!(
                "Minimum allowed retention period is {RETENTION_PERIOD_HOURS_MIN} hours. Requested retention period ({hours} hours) is too short."
            )));
        }
        if hours > RETENTION_PERIOD_HOURS_MAX {
            return Err(invalid_argument(format!(
                "Maximum allowed retention period is {RETENTION_PERIOD_HOURS_MAX} hours. Requested retention period ({hours} hours) is too long."
            )));
        }
        let stream = self.stream(&name)?;
        let config = stream.config();
        let current_hours = retention_period_hours(config.retention_period_ms);
        let requested_ms = u64::try_from(hours).unwrap_or_default() * MILLIS_PER_HOUR;
        match change {
            RetentionChange::Increase if requested_ms < config.retention_period_ms => {
                return Err(invalid_argument(format!(
                    "Requested retention period ({hours} hours) for stream {name} can not be shorter than existing retention period ({current_hours} hours). Use DecreaseRetentionPeriod API."
                )));
            }
            RetentionChange::Decrease if requested_ms > config.retention_period_ms => {
                return Err(invalid_argument(format!(
                    "Requested retention period ({hours} hours) for stream {name} can not be longer than existing retention period ({current_hours} hours). Use IncreaseRetentionPeriod API."
                )));
            }
            _ => {}
        }
        let policy = RetentionPolicy {
            retention_period_ms: requested_ms,
            retention_bytes_per_shard_max: config.retention_bytes_per_shard_max,
        };
        self.blocking("LimitExceededException", move |log| {
            log.set_retention(&name, policy).map_err(log_error)
        })
        .await?;
        Ok(json!({}))
    }
}

impl JsonService for KinesisService {
    fn target_prefix(&self) -> &'static str {
        TARGET_PREFIX
    }

    fn operations(&self) -> &'static [Operation] {
        OPERATIONS
    }

    fn call<'a>(
        &'a self,
        operation: &'a str,
        body: Value,
    ) -> BoxFuture<'a, Result<Value, AwsError>> {
        Box::pin(self.dispatch(operation, body))
    }
}

#[derive(Debug, Clone, Copy)]
enum RetentionChange {
    Increase,
    Decrease,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum ShardFilter {
    AfterShardId(String),
    /// Every other filter type: all shards of a stream are open and retained, so they all match.
    AllShards,
}

/// The shards after `exclusive_start_shard_id` (compared as strings, as Kinesis does, which is
/// index order since ids are zero-padded), at most `limit`, and whether more remain.
fn shard_page(
    stream: &Stream,
    exclusive_start_shard_id: Option<&str>,
    limit: usize,
) -> (Vec<Value>, bool) {
    let mut remaining = stream
        .shards()
        .iter()
        .map(|shard| (shard_id(shard.shard_index()), shard))
        .filter(|(id, _)| exclusive_start_shard_id.is_none_or(|start| id.as_str() > start));
    let page: Vec<Value> = remaining
        .by_ref()
        .take(limit)
        .map(|(id, shard)| {
            let range = shard.hash_key_range();
            json!({
                "ShardId": id,
                "HashKeyRange": {
                    "StartingHashKey": range.starting_hash_key.to_string(),
                    "EndingHashKey": range.ending_hash_key.to_string(),
                },
                "SequenceNumberRange": {
                    "StartingSequenceNumber":
                        SequenceNumber::from_shard_offset(shard.shard_index(), 0).to_string(),
                },
            })
        })
        .collect();
    let has_more = remaining.next().is_some();
    (page, has_more)
}

/// `shardId-000000000007` for shard index 7, as Kinesis names shards.
pub fn shard_id(shard_index: u32) -> String {
    format!("shardId-{shard_index:012}")
}

/// The shard index named by `shardId-<digits>`; `None` for anything else.
fn parse_shard_id(shard_id: &str) -> Option<u32> {
    let digits = shard_id.strip_prefix("shardId-")?;
    if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

pub fn stream_arn(name: &str) -> String {
    format!("arn:aws:kinesis:{REGION}:{ACCOUNT_ID}:stream/{name}")
}

fn epoch_seconds(time_ms: u64) -> f64 {
    time_ms as f64 / 1000.0
}

fn retention_period_hours(retention_period_ms: u64) -> u64 {
    retention_period_ms.div_ceil(MILLIS_PER_HOUR)
}

/// Adds a member to a response object (every response is built as one by `json!`).
fn insert_member(response: &mut Value, key: &str, value: Value) {
    if let Some(object) = response.as_object_mut() {
        object.insert(key.to_owned(), value);
    }
}

fn invalid_argument(message: impl Into<String>) -> AwsError {
    AwsError::client("InvalidArgumentException", message)
}

fn serialization(message: impl Into<String>) -> AwsError {
    AwsError::client("SerializationException", message)
}

fn stream_not_found(name: &str) -> AwsError {
    AwsError::client(
        "ResourceNotFoundException",
        format!("Stream {name} under account {ACCOUNT_ID} not found."),
    )
}

fn shard_not_found(shard: &str, stream: &str) -> AwsError {
    AwsError::client(
        "ResourceNotFoundException",
        format!("Shard {shard} in stream {stream} under account {ACCOUNT_ID} does not exist"),
    )
}

/// The one place that maps log errors to Kinesis errors.
pub fn log_error(error: LogError) -> AwsError {
    match error {
        LogError::StreamNotFound(name) | LogError::StreamDeleted(name) => stream_not_found(&name),
        LogError::StreamAlreadyExists(name) => AwsError::client(
            "ResourceInUseException",
            format!("Stream {name} under account {ACCOUNT_ID} already exists."),
        ),
        LogError::ShardNotFound {
            stream,
            shard_index,
        } => shard_not_found(&shard_id(shard_index), &stream),
        LogError::InvalidName { name, reason } => {
            invalid_argument(format!("Invalid stream name {name}: {reason}."))
        }
        LogError::LimitExceeded {
            what: "streams in the log",
            value,
            limit,
        } => AwsError::client(
            "LimitExceededException",
            format!(
                "This request would exceed the stream limit for the account {ACCOUNT_ID} in {REGION}: {value} > {limit}."
            ),
        ),
        error @ (LogError::InvalidArgument(_)
        | LogError::LimitExceeded { .. }
        | LogError::InvalidSequenceNumber { .. }
        | LogError::SequenceNumberNotInShard { .. }) => invalid_argument(error.to_string()),
        error @ (LogError::Io { .. }
        | LogError::Corruption { .. }
        | LogError::UnsupportedFormatVersion { .. }
        | LogError::ShardPoisoned { .. }
        | LogError::Encryption { .. }
        | LogError::DirectoryLocked { .. }) => {
            tracing::error!(%error, "Kinesis call failed in the log");
            AwsError::internal(format!("Internal Service Failure: {error}"))
        }
    }
}

/// Size checks that need the decoded record: key plus data within [`RECORD_BYTES_MAX`].
fn check_record_limits(record: &AppendRecord) -> Result<(), AwsError> {
    let record_bytes = record.partition_key.len() + record.data.len();
    if record_bytes > RECORD_BYTES_MAX {
        return Err(invalid_argument(format!(
            "Record size {record_bytes} bytes (partition key plus data) exceeds the limit of {RECORD_BYTES_MAX} bytes."
        )));
    }
    Ok(())
}

/// Reads the stream named by StreamName and/or StreamARN (both must agree).
fn resolve_stream_name(
    name: Option<String>,
    arn_name: Option<String>,
) -> Result<Option<String>, AwsError> {
    match (name, arn_name) {
        (Some(name), Some(arn_name)) if name != arn_name => Err(invalid_argument(format!(
            "StreamName {name} and StreamARN for stream {arn_name} do not name the same stream."
        ))),
        (Some(name), _) => Ok(Some(name)),
        (None, arn_name) => Ok(arn_name),
    }
}

/// Validation of one request's members. Constraint violations are collected and reported
/// together as one `ValidationException`, in Kinesis's wording; a member of the wrong JSON type
/// is a `SerializationException` at once, as AWS's deserializer reports it.
struct Input<'a> {
    body: &'a Map<String, Value>,
    errors: Vec<String>,
}

impl<'a> Input<'a> {
    fn new(body: &'a Map<String, Value>) -> Input<'a> {
        Input {
            body,
            errors: Vec::new(),
        }
    }

    fn present(&self, key: &str) -> Option<&'a Value> {
        self.body.get(key).filter(|value| !value.is_null())
    }

    fn string(&mut self, key: &str) -> Result<Option<&'a str>, AwsError> {
        match self.present(key) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.as_str())),
            Some(other) => Err(wrong_type(key, "a string", other)),
        }
    }

    fn integer(&mut self, key: &str) -> Result<Option<i64>, AwsError> {
        match self.present(key) {
            None => Ok(None),
            Some(Value::Number(number)) => number
                .as_i64()
                .map(Some)
                .ok_or_else(|| wrong_type(key, "an integer", &Value::Number(number.clone()))),
            Some(other) => Err(wrong_type(key, "an integer", other)),
        }
    }

    fn boolean(&mut self, key: &str) -> Result<Option<bool>, AwsError> {
        match self.present(key) {
            None => Ok(None),
            Some(Value::Bool(value)) => Ok(Some(*value)),
            Some(other) => Err(wrong_type(key, "a boolean", other)),
        }
    }

    fn object(&mut self, key: &str) -> Result<Option<&'a Map<String, Value>>, AwsError> {
        match self.present(key) {
            None => Ok(None),
            Some(Value::Object(map)) => Ok(Some(map)),
            Some(other) => Err(wrong_type(key, "a structure", other)),
        }
    }

    fn array(&mut self, key: &str) -> Result<Option<&'a Vec<Value>>, AwsError> {
        match self.present(key) {
            None => Ok(None),
            Some(Value::Array(items)) => Ok(Some(items)),
            Some(other) => Err(wrong_type(key, "a list", other)),
        }
    }

    /// A timestamp as AWS JSON sends it: epoch seconds, a number (possibly fractional) or a
    /// string of one. Returns milliseconds since the epoch.
    fn timestamp_ms(&mut self, key: &str) -> Result<Option<u64>, AwsError> {
        let seconds = match self.present(key) {
            None => return Ok(None),
            Some(Value::Number(number)) => number.as_f64(),
            Some(Value::String(text)) => text.trim().parse::<f64>().ok(),
            Some(other) => return Err(wrong_type(key, "a timestamp", other)),
        };
        match seconds {
            Some(seconds) if (0.0..TIMESTAMP_SECONDS_MAX).contains(&seconds) => {
                Ok(Some((seconds * 1000.0).round() as u64))
            }
            _ => Err(invalid_argument(format!(
                "{key} must be a time after 1970-01-01 in epoch seconds"
            ))),
        }
    }

    fn violation(&mut self, value: &str, member: &str, constraint: &str) {
        let quoted: String = value.chars().take(QUOTED_VALUE_CHARS_MAX).collect();
        self.errors.push(format!(
            "Value '{quoted}' at '{member}' failed to satisfy constraint: {constraint}"
        ));
    }

    fn missing(&mut self, member: &str) {
        self.errors.push(missing_member(member));
    }

    /// Checks a value of the `StreamName` shape; records violations.
    fn check_stream_name(&mut self, name: &str, member: &str) {
        let length = name.chars().count();
        if length == 0 {
            self.violation(
                name,
                member,
                "Member must have length greater than or equal to 1",
            );
        }
        if length > STREAM_NAME_CHARS_MAX {
            self.violation(
                name,
                member,
                &format!("Member must have length less than or equal to {STREAM_NAME_CHARS_MAX}"),
            );
        }
        if !name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'.' | b'-'))
        {
            self.violation(
                name,
                member,
                "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+",
            );
        }
    }

    fn optional_stream_name(
        &mut self,
        key: &str,
        member: &str,
    ) -> Result<Option<String>, AwsError> {
        let name = self.string(key)?;
        if let Some(name) = name {
            self.check_stream_name(name, member);
        }
        Ok(name.map(str::to_owned))
    }

    fn required_stream_name(
        &mut self,
        key: &str,
        member: &str,
    ) -> Result<Option<String>, AwsError> {
        let name = self.optional_stream_name(key, member)?;
        if name.is_none() {
            self.missing(member);
        }
        Ok(name)
    }

    /// The stream named by `StreamARN`, if given: `arn:aws…:kinesis:<region>:<12 digits>:stream/<name>`.
    fn stream_arn(&mut self) -> Result<Option<String>, AwsError> {
        let Some(arn) = self.string("StreamARN")? else {
            return Ok(None);
        };
        let parsed = parse_stream_arn(arn);
        if arn.chars().count() > STREAM_ARN_CHARS_MAX || parsed.is_none() {
            self.violation(
                arn,
                "streamARN",
                "Member must satisfy regular expression pattern: arn:aws.*:kinesis:.*:\\d{12}:stream/\\S+",
            );
            return Ok(None);
        }
        if let Some(name) = parsed {
            self.check_stream_name(name, "streamARN");
        }
        Ok(parsed.map(str::to_owned))
    }

    /// StreamName or StreamARN, one of which is required.
    fn stream_name(&mut self) -> Result<Option<String>, AwsError> {
        let name = self.optional_stream_name("StreamName", "streamName")?;
        let arn_present = self.present("StreamARN").is_some();
        let arn_name = self.stream_arn()?;
        if name.is_none() && !arn_present {
            self.missing("streamName");
        }
        resolve_stream_name(name, arn_name)
    }

    /// A `Limit`/`MaxResults` member: an integer of 1 to 10000.
    fn limit(&mut self, key: &str, member: &str) -> Result<Option<usize>, AwsError> {
        let Some(limit) = self.integer(key)? else {
            return Ok(None);
        };
        if limit < 1 {
            self.violation(
                &limit.to_string(),
                member,
                "Member must have value greater than or equal to 1",
            );
            return Ok(None);
        }
        if limit > LIST_LIMIT_MAX {
            self.violation(
                &limit.to_string(),
                member,
                &format!("Member must have value less than or equal to {LIST_LIMIT_MAX}"),
            );
            return Ok(None);
        }
        Ok(usize::try_from(limit).ok())
    }

    /// A member of the `ShardId` shape (1–128 characters of `[a-zA-Z0-9_.-]`).
    fn shard_id(&mut self, key: &str, member: &str) -> Result<Option<String>, AwsError> {
        let Some(shard) = self.string(key)? else {
            return Ok(None);
        };
        let length = shard.chars().count();
        if length == 0 {
            self.violation(
                shard,
                member,
                "Member must have length greater than or equal to 1",
            );
        } else if length > 128 {
            self.violation(
                shard,
                member,
                "Member must have length less than or equal to 128",
            );
        } else if !shard
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'.' | b'-'))
        {
            self.violation(
                shard,
                member,
                "Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+",
            );
        }
        Ok(Some(shard.to_owned()))
    }

    /// A member of the `SequenceNumber` shape. Kinesis's pattern forbids leading zeros, but
    /// Sluice's sequence numbers are zero-padded to 56 digits (so strings sort like numbers), so
    /// any run of 1 to 129 digits is accepted here and range-checked by the log.
    fn sequence_number(&mut self, key: &str, member: &str) -> Result<Option<String>, AwsError> {
        let Some(text) = self.string(key)? else {
            return Ok(None);
        };
        if text.is_empty() || text.len() > 129 || !text.bytes().all(|byte| byte.is_ascii_digit()) {
            self.violation(
                text,
                member,
                "Member must satisfy regular expression pattern: 0|([1-9]\\d{0,128})",
            );
        }
        Ok(Some(text.to_owned()))
    }

    fn stream_mode(&mut self, details: &Map<String, Value>) -> Result<StreamMode, AwsError> {
        let mut inner = Input::new(details);
        let mode = inner.string("StreamMode")?;
        self.errors.append(&mut inner.errors);
        match mode {
            Some("PROVISIONED") => Ok(StreamMode::Provisioned),
            Some("ON_DEMAND") => Ok(StreamMode::OnDemand),
            Some(other) => {
                self.violation(
                    other,
                    "streamModeDetails.streamMode",
                    "Member must satisfy enum value set: [PROVISIONED, ON_DEMAND]",
                );
                Ok(StreamMode::Provisioned)
            }
            None => {
                self.missing("streamModeDetails.streamMode");
                Ok(StreamMode::Provisioned)
            }
        }
    }

    fn shard_filter(&mut self, filter: &Map<String, Value>) -> Result<ShardFilter, AwsError> {
        let mut inner = Input::new(filter);
        let kind = inner.string("Type")?;
        let shard = inner.shard_id("ShardId", "shardFilter.shardId")?;
        inner.timestamp_ms("Timestamp")?;
        self.errors.append(&mut inner.errors);
        match kind {
            Some("AFTER_SHARD_ID") => match shard {
                Some(shard) => Ok(ShardFilter::AfterShardId(shard)),
                None => Err(invalid_argument(
                    "ShardFilter of type AFTER_SHARD_ID requires a ShardId.",
                )),
            },
            Some(
                "AT_TRIM_HORIZON" | "FROM_TRIM_HORIZON" | "AT_LATEST" | "AT_TIMESTAMP"
                | "FROM_TIMESTAMP",
            ) => Ok(ShardFilter::AllShards),
            Some(other) => {
                self.violation(
                    other,
                    "shardFilter.type",
                    "Member must satisfy enum value set: [AFTER_SHARD_ID, AT_TRIM_HORIZON, FROM_TRIM_HORIZON, AT_LATEST, AT_TIMESTAMP, FROM_TIMESTAMP]",
                );
                Ok(ShardFilter::AllShards)
            }
            None => {
                self.missing("shardFilter.type");
                Ok(ShardFilter::AllShards)
            }
        }
    }

    /// Data, PartitionKey and ExplicitHashKey of one record (PutRecord's own members, or one
    /// entry of PutRecords, whose member names carry `prefix`).
    fn record(&mut self, prefix: &str) -> Result<Option<AppendRecord>, AwsError> {
        let data = match self.string("Data")? {
            None => {
                self.missing(&format!("{prefix}data"));
                None
            }
            Some(text) => match BASE64.decode(text) {
                Ok(bytes) => Some(bytes),
                Err(error) => {
                    return Err(serialization(format!(
                        "{prefix}data is not valid base64: {error}"
                    )));
                }
            },
        };
        if let Some(bytes) = &data
            && bytes.len() > RECORD_BYTES_MAX
        {
            self.violation(
                &format!(
                    "java.nio.HeapByteBuffer[pos=0 lim={0} cap={0}]",
                    bytes.len()
                ),
                &format!("{prefix}data"),
                &format!("Member must have length less than or equal to {RECORD_BYTES_MAX}"),
            );
        }
        let partition_key = self.string("PartitionKey")?;
        match partition_key {
            None => self.missing(&format!("{prefix}partitionKey")),
            Some(key) => {
                let length = key.chars().count();
                if length == 0 {
                    self.violation(
                        key,
                        &format!("{prefix}partitionKey"),
                        "Member must have length greater than or equal to 1",
                    );
                } else if length > PARTITION_KEY_CHARS_MAX {
                    self.violation(
                        key,
                        &format!("{prefix}partitionKey"),
                        &format!("Member must have length less than or equal to {PARTITION_KEY_CHARS_MAX}"),
                    );
                }
            }
        }
        let explicit_hash_key = match self.string("ExplicitHashKey")? {
            None => None,
            Some(text) => {
                let well_formed = text == "0"
                    || (!text.is_empty()
                        && text.len() <= 39
                        && !text.starts_with('0')
                        && text.bytes().all(|byte| byte.is_ascii_digit()));
                if !well_formed {
                    self.violation(
                        text,
                        &format!("{prefix}explicitHashKey"),
                        "Member must satisfy regular expression pattern: 0|([1-9]\\d{0,38})",
                    );
                    None
                } else {
                    Some(text.parse::<u128>().map_err(|_| {
                        invalid_argument(format!(
                            "Invalid ExplicitHashKey. ExplicitHashKey must be in the range: [0, 2^128-1]. Specified value was {text}"
                        ))
                    })?)
                }
            }
        };
        Ok(match (data, partition_key) {
            (Some(data), Some(partition_key)) => Some(AppendRecord {
                partition_key: partition_key.to_owned(),
                explicit_hash_key,
                data,
            }),
            _ => None,
        })
    }

    fn reject_dry_run(&mut self) -> Result<(), AwsError> {
        if self.boolean("DryRun")? == Some(true) {
            return Err(invalid_argument(
                "DryRun is not supported by this endpoint.",
            ));
        }
        Ok(())
    }

    /// Ends validation: every collected violation as one `ValidationException`.
    fn finish(&mut self) -> Result<(), AwsError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(validation_errors(std::mem::take(&mut self.errors)))
        }
    }
}

fn missing_member(member: &str) -> String {
    format!("Value null at '{member}' failed to satisfy constraint: Member must not be null")
}

fn validation_errors(errors: Vec<String>) -> AwsError {
    let count = errors.len();
    let noun = if count == 1 { "error" } else { "errors" };
    AwsError::validation(format!(
        "{count} validation {noun} detected: {}",
        errors.join("; ")
    ))
}

fn wrong_type(key: &str, expected: &str, found: &Value) -> AwsError {
    let found = match found {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a structure",
    };
    serialization(format!("{key} must be {expected}, not {found}"))
}

/// The stream name inside `arn:aws…:kinesis:<region>:<12 digits>:stream/<name>`.
pub(crate) fn parse_stream_arn(arn: &str) -> Option<&str> {
    let mut parts = arn.splitn(6, ':');
    let (arn_word, partition, service, _region, account, resource) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    if arn_word != "arn"
        || !partition.starts_with("aws")
        || service != "kinesis"
        || account.len() != 12
        || !account.bytes().all(|byte| byte.is_ascii_digit())
    {
        return None;
    }
    let name = resource.strip_prefix("stream/")?;
    if name.is_empty() || name.chars().any(char::is_whitespace) {
        return None;
    }
    Some(name)
}

/// An opaque shard iterator: where to read next, in which incarnation of which stream, and
/// when it was issued. Encoded as base64 of
/// `version u8 | issued_ms u64 | stream_created_ms u64 | shard_index u32 | next_offset u64 |
/// name_len u8 | name | crc32 u32` (little-endian; the CRC covers every byte before it).
#[derive(Debug, Clone, PartialEq, Eq)]
struct ShardIterator {
    stream_name: String,
    stream_created_ms: u64,
    position: ShardPosition,
    issued_ms: u64,
}

impl ShardIterator {
    fn encode(&self) -> String {
        let mut bytes = Vec::with_capacity(SHARD_ITERATOR_FIXED_BYTES + self.stream_name.len() + 4);
        bytes.push(SHARD_ITERATOR_VERSION);
        bytes.extend_from_slice(&self.issued_ms.to_le_bytes());
        bytes.extend_from_slice(&self.stream_created_ms.to_le_bytes());
        bytes.extend_from_slice(&self.position.shard_index.to_le_bytes());
        bytes.extend_from_slice(&self.position.next_record_offset.to_le_bytes());
        // Stream names are at most 128 bytes (validated on creation), so the length fits a byte.
        bytes.push(u8::try_from(self.stream_name.len()).unwrap_or(u8::MAX));
        bytes.extend_from_slice(self.stream_name.as_bytes());
        let crc = crc32fast::hash(&bytes);
        bytes.extend_from_slice(&crc.to_le_bytes());
        BASE64.encode(bytes)
    }

    fn decode(text: &str) -> Result<ShardIterator, AwsError> {
        let invalid = || invalid_argument("Invalid ShardIterator.");
        if text.len() > SHARD_ITERATOR_CHARS_MAX {
            return Err(invalid());
        }
        let bytes = BASE64.decode(text).map_err(|_| invalid())?;
        let (body, crc) = bytes.split_last_chunk::<4>().ok_or_else(invalid)?;
        if crc32fast::hash(body) != u32::from_le_bytes(*crc) {
            return Err(invalid());
        }
        let mut reader = ByteReader { bytes: body };
        if reader.u8().ok_or_else(invalid)? != SHARD_ITERATOR_VERSION {
            return Err(invalid());
        }
        let issued_ms = reader.u64().ok_or_else(invalid)?;
        let stream_created_ms = reader.u64().ok_or_else(invalid)?;
        let shard_index = reader.u32().ok_or_else(invalid)?;
        let next_record_offset = reader.u64().ok_or_else(invalid)?;
        let name_length = usize::from(reader.u8().ok_or_else(invalid)?);
        let name = reader.take(name_length).ok_or_else(invalid)?;
        if !reader.bytes.is_empty() {
            return Err(invalid());
        }
        let stream_name = std::str::from_utf8(name).map_err(|_| invalid())?.to_owned();
        sluice_log::validate_name(&stream_name).map_err(|_| invalid())?;
        Ok(ShardIterator {
            stream_name,
            stream_created_ms,
            position: ShardPosition {
                shard_index,
                next_record_offset,
            },
            issued_ms,
        })
    }

    fn check_not_expired(&self, now_ms: u64, ttl_ms: u64) -> Result<(), AwsError> {
        super::check_iterator_age(self.issued_ms, now_ms, ttl_ms)
    }
}

/// Little-endian reads from a byte slice, `None` past its end.
struct ByteReader<'a> {
    bytes: &'a [u8],
}

impl<'a> ByteReader<'a> {
    fn take(&mut self, length: usize) -> Option<&'a [u8]> {
        if self.bytes.len() < length {
            return None;
        }
        let (head, tail) = self.bytes.split_at(length);
        self.bytes = tail;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1)?.first().copied()
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}

fn encode_list_streams_token(last_name: &str) -> String {
    BASE64.encode(format!("streams1:{last_name}"))
}

fn decode_list_streams_token(token: &str) -> Result<String, AwsError> {
    let invalid = || invalid_argument("Invalid NextToken.");
    let bytes = BASE64.decode(token).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let name = text.strip_prefix("streams1:").ok_or_else(invalid)?;
    sluice_log::validate_name(name).map_err(|_| invalid())?;
    Ok(name.to_owned())
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct ListShardsToken {
    stream_name: String,
    stream_created_ms: u64,
    exclusive_start_shard_id: String,
    issued_ms: u64,
}

fn encode_list_shards_token(token: &ListShardsToken) -> String {
    BASE64.encode(format!(
        "shards1:{}:{}:{}:{}",
        token.issued_ms, token.stream_created_ms, token.exclusive_start_shard_id, token.stream_name
    ))
}

fn decode_list_shards_token(token: &str, now_ms: u64) -> Result<ListShardsToken, AwsError> {
    let invalid = || invalid_argument("Invalid NextToken.");
    let bytes = BASE64.decode(token).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let rest = text.strip_prefix("shards1:").ok_or_else(invalid)?;
    let mut parts = rest.splitn(4, ':');
    let issued_ms: u64 = parts
        .next()
        .and_then(|part| part.parse().ok())
        .ok_or_else(invalid)?;
    let stream_created_ms: u64 = parts
        .next()
        .and_then(|part| part.parse().ok())
        .ok_or_else(invalid)?;
    let exclusive_start_shard_id = parts.next().ok_or_else(invalid)?.to_owned();
    let stream_name = parts.next().ok_or_else(invalid)?.to_owned();
    sluice_log::validate_name(&stream_name).map_err(|_| invalid())?;
    if now_ms.saturating_sub(issued_ms) > LIST_SHARDS_TOKEN_TTL_MS {
        return Err(AwsError::client(
            "ExpiredNextTokenException",
            "The NextToken has expired: tokens are valid for 300 seconds.",
        ));
    }
    Ok(ListShardsToken {
        stream_name,
        stream_created_ms,
        exclusive_start_shard_id,
        issued_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_log::{LogOptions, ManualClock};

    const START_MS: u64 = 1_700_000_000_000;

    struct Fixture {
        service: KinesisService,
        clock: Arc<ManualClock>,
        _directory: tempfile::TempDir,
    }

    fn fixture_with(in_flight_calls_max: usize) -> Fixture {
        let directory = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(START_MS));
        let log = Log::open(
            directory.path(),
            LogOptions {
                clock: clock.clone(),
                ..LogOptions::default()
            },
        )
        .unwrap();
        let service = KinesisService::with_options(
            Arc::new(log),
            KinesisOptions {
                clock: clock.clone(),
                shard_iterator_ttl_ms: 1000,
                in_flight_calls_max,
            },
        );
        Fixture {
            service,
            clock,
            _directory: directory,
        }
    }

    fn fixture() -> Fixture {
        fixture_with(IN_FLIGHT_CALLS_MAX)
    }

    impl Fixture {
        async fn call(&self, operation: &str, body: Value) -> Result<Value, AwsError> {
            self.service.call(operation, body).await
        }

        async fn ok(&self, operation: &str, body: Value) -> Value {
            match self.call(operation, body).await {
                Ok(value) => value,
                Err(error) => panic!("{operation} failed: {} {}", error.kind, error.message),
            }
        }

        async fn err(&self, operation: &str, body: Value) -> AwsError {
            match self.call(operation, body).await {
                Ok(value) => panic!("{operation} succeeded: {value}"),
                Err(error) => error,
            }
        }

        async fn iterator(&self, stream: &str, shard: &str, start: Value) -> String {
            let mut body = json!({"StreamName": stream, "ShardId": shard});
            for (key, value) in start.as_object().unwrap() {
                body[key] = value.clone();
            }
            self.ok("GetShardIterator", body).await["ShardIterator"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    }

    #[test]
    fn shard_iterators_round_trip_and_reject_tampering() {
        let iterator = ShardIterator {
            stream_name: "orders.v1".to_owned(),
            stream_created_ms: START_MS,
            position: ShardPosition {
                shard_index: 3,
                next_record_offset: 77,
            },
            issued_ms: START_MS + 5,
        };
        let text = iterator.encode();
        assert!(text.len() <= SHARD_ITERATOR_CHARS_MAX);
        assert_eq!(ShardIterator::decode(&text).unwrap(), iterator);

        let longest = ShardIterator {
            stream_name: "n".repeat(128),
            ..iterator.clone()
        };
        assert!(longest.encode().len() <= SHARD_ITERATOR_CHARS_MAX);
        assert_eq!(ShardIterator::decode(&longest.encode()).unwrap(), longest);

        let mut bytes = BASE64.decode(&text).unwrap();
        bytes[10] ^= 1;
        let tampered = BASE64.encode(&bytes);
        for bad in [
            "",
            "!!!",
            "AAAA",
            tampered.as_str(),
            &text[..text.len() - 4],
        ] {
            let error = ShardIterator::decode(bad).unwrap_err();
            assert_eq!(error.kind, "InvalidArgumentException", "{bad}");
            assert_eq!(error.message, "Invalid ShardIterator.");
        }
    }

    #[test]
    fn shard_iterators_expire_after_their_lifetime() {
        let iterator = ShardIterator {
            stream_name: "s".to_owned(),
            stream_created_ms: 0,
            position: ShardPosition {
                shard_index: 0,
                next_record_offset: 0,
            },
            issued_ms: START_MS,
        };
        let ttl = SHARD_ITERATOR_TTL_MS_DEFAULT;
        assert!(iterator.check_not_expired(START_MS, ttl).is_ok());
        assert!(iterator.check_not_expired(START_MS + ttl, ttl).is_ok());
        let error = iterator
            .check_not_expired(START_MS + ttl + 1, ttl)
            .unwrap_err();
        assert_eq!(error.kind, "ExpiredIteratorException");
        assert!(error.message.starts_with("Iterator expired."));
        // A clock that went backwards does not expire anything.
        assert!(iterator.check_not_expired(START_MS - 10, ttl).is_ok());
    }

    #[test]
    fn stream_arns_parse() {
        assert_eq!(parse_stream_arn(&stream_arn("a-b.c_d")), Some("a-b.c_d"));
        assert_eq!(
            parse_stream_arn("arn:aws-cn:kinesis:cn-north-1:123456789012:stream/x"),
            Some("x")
        );
        for bad in [
            "",
            "arn:aws:kinesis:us-east-1:000000000000:stream/",
            "arn:aws:firehose:us-east-1:000000000000:stream/x",
            "arn:aws:kinesis:us-east-1:0000:stream/x",
            "arn:aws:kinesis:us-east-1:000000000000:deliverystream/x",
        ] {
            assert_eq!(parse_stream_arn(bad), None, "{bad}");
        }
        assert_eq!(shard_id(7), "shardId-000000000007");
        assert_eq!(parse_shard_id("shardId-000000000007"), Some(7));
        assert_eq!(parse_shard_id("shardId-7"), Some(7));
        assert_eq!(parse_shard_id("shardId-"), None);
        assert_eq!(parse_shard_id("7"), None);
        assert_eq!(parse_shard_id("shardId-99999999999999"), None);
    }

    #[test]
    fn list_tokens_round_trip_and_expire() {
        assert_eq!(
            decode_list_streams_token(&encode_list_streams_token("abc")).unwrap(),
            "abc"
        );
        assert!(decode_list_streams_token("bm9wZQ==").is_err());
        let token = ListShardsToken {
            stream_name: "s".to_owned(),
            stream_created_ms: 5,
            exclusive_start_shard_id: shard_id(1),
            issued_ms: START_MS,
        };
        let text = encode_list_shards_token(&token);
        assert_eq!(decode_list_shards_token(&text, START_MS).unwrap(), token);
        let expired = decode_list_shards_token(&text, START_MS + LIST_SHARDS_TOKEN_TTL_MS + 1);
        assert_eq!(expired.unwrap_err().kind, "ExpiredNextTokenException");
        assert_eq!(
            decode_list_shards_token("garbage", START_MS)
                .unwrap_err()
                .kind,
            "InvalidArgumentException"
        );
    }

    #[tokio::test]
    async fn requests_are_validated_with_kinesis_messages() {
        let f = fixture();
        let error = f.err("CreateStream", json!({})).await;
        assert_eq!(error.kind, "ValidationException");
        assert_eq!(
            error.message,
            "1 validation error detected: Value null at 'streamName' failed to satisfy constraint: Member must not be null"
        );
        let error = f
            .err(
                "CreateStream",
                json!({"StreamName": "bad name", "ShardCount": 0}),
            )
            .await;
        assert_eq!(error.kind, "ValidationException");
        assert!(
            error.message.starts_with("2 validation errors detected: "),
            "{}",
            error.message
        );
        assert!(error.message.contains("Value 'bad name' at 'streamName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+"));
        assert!(error.message.contains("Value '0' at 'shardCount'"));
        let error = f
            .err(
                "CreateStream",
                json!({"StreamName": "x".repeat(129), "ShardCount": 1}),
            )
            .await;
        assert!(
            error
                .message
                .contains("Member must have length less than or equal to 128")
        );
        let error = f
            .err(
                "CreateStream",
                json!({"StreamName": "s", "ShardCount": "1"}),
            )
            .await;
        assert_eq!(error.kind, "SerializationException");
        let error = f
            .err(
                "CreateStream",
                json!({"StreamName": "s", "StreamModeDetails": {"StreamMode": "FAST"}}),
            )
            .await;
        assert!(error.message.contains("at 'streamModeDetails.streamMode'"));
        let error = f
            .err(
                "CreateStream",
                json!({"StreamName": "s", "ShardCount": 2000}),
            )
            .await;
        assert_eq!(error.kind, "LimitExceededException");
        let error = f.err("ListStreams", json!({"Limit": 10001})).await;
        assert!(
            error
                .message
                .contains("Member must have value less than or equal to 10000")
        );
        let error = f.err("NoSuchThing", json!({})).await;
        assert_eq!(error.kind, "UnknownOperationException");
        let error = f.err("GetRecords", json!({})).await;
        assert!(error.message.contains("at 'shardIterator'"));
        let error = f
            .err(
                "PutRecord",
                json!({"StreamName": "s", "Data": "%%%", "PartitionKey": "k"}),
            )
            .await;
        assert_eq!(error.kind, "SerializationException");
        let error = f
            .err("PutRecord", json!({"StreamName": "s", "Data": "", "PartitionKey": "k".repeat(257), "ExplicitHashKey": "01"}))
            .await;
        assert!(
            error.message.starts_with("2 validation errors detected"),
            "{}",
            error.message
        );
        let error = f
            .err("PutRecord", json!({"StreamName": "s", "Data": "", "PartitionKey": "k", "ExplicitHashKey": "9".repeat(39)}))
            .await;
        assert_eq!(error.kind, "InvalidArgumentException");
        let error = f
            .err(
                "PutRecord",
                json!({"StreamName": "missing", "Data": "", "PartitionKey": "k"}),
            )
            .await;
        assert_eq!(error.kind, "ResourceNotFoundException");
        assert_eq!(
            error.message,
            "Stream missing under account 000000000000 not found."
        );
    }

    #[tokio::test]
    async fn streams_are_created_described_listed_and_deleted() {
        let f = fixture();
        f.ok("CreateStream", json!({"StreamName": "b", "ShardCount": 2}))
            .await;
        f.ok(
            "CreateStream",
            json!({"StreamName": "a", "StreamModeDetails": {"StreamMode": "ON_DEMAND"}}),
        )
        .await;
        let error = f
            .err("CreateStream", json!({"StreamName": "a", "ShardCount": 1}))
            .await;
        assert_eq!(error.kind, "ResourceInUseException");
        assert_eq!(
            error.message,
            "Stream a under account 000000000000 already exists."
        );

        let description = f.ok("DescribeStream", json!({"StreamName": "a"})).await;
        let description = &description["StreamDescription"];
        assert_eq!(
            description["StreamARN"],
            "arn:aws:kinesis:us-east-1:000000000000:stream/a"
        );
        assert_eq!(description["StreamModeDetails"]["StreamMode"], "ON_DEMAND");
        assert_eq!(description["Shards"].as_array().unwrap().len(), 4);
        assert_eq!(
            description["Shards"][3]["HashKeyRange"]["EndingHashKey"],
            u128::MAX.to_string()
        );
        assert_eq!(description["RetentionPeriodHours"], 24);
        assert_eq!(description["HasMoreShards"], false);

        let page = f
            .ok("DescribeStream", json!({"StreamName": "a", "Limit": 3}))
            .await;
        assert_eq!(page["StreamDescription"]["HasMoreShards"], true);
        let page = f
            .ok("DescribeStream", json!({"StreamARN": stream_arn("a"), "ExclusiveStartShardId": "shardId-000000000002"}))
            .await;
        assert_eq!(
            page["StreamDescription"]["Shards"][0]["ShardId"],
            "shardId-000000000003"
        );

        let listed = f.ok("ListStreams", json!({"Limit": 1})).await;
        assert_eq!(listed["StreamNames"], json!(["a"]));
        assert_eq!(listed["HasMoreStreams"], true);
        let token = listed["NextToken"].as_str().unwrap().to_owned();
        let listed = f.ok("ListStreams", json!({"NextToken": token})).await;
        assert_eq!(listed["StreamNames"], json!(["b"]));
        assert_eq!(listed["HasMoreStreams"], false);
        let listed = f
            .ok("ListStreams", json!({"ExclusiveStartStreamName": "a"}))
            .await;
        assert_eq!(
            listed["StreamSummaries"][0]["StreamModeDetails"]["StreamMode"],
            "PROVISIONED"
        );

        let shards = f
            .ok("ListShards", json!({"StreamName": "a", "MaxResults": 3}))
            .await;
        assert_eq!(shards["Shards"].as_array().unwrap().len(), 3);
        let token = shards["NextToken"].as_str().unwrap().to_owned();
        let error = f
            .err(
                "ListShards",
                json!({"StreamName": "b", "NextToken": token.clone()}),
            )
            .await;
        assert_eq!(error.kind, "InvalidArgumentException");
        let same = f
            .ok(
                "ListShards",
                json!({"StreamName": "a", "NextToken": token.clone()}),
            )
            .await;
        assert_eq!(same["Shards"].as_array().unwrap().len(), 1);
        let rest = f.ok("ListShards", json!({"NextToken": token})).await;
        assert_eq!(rest["Shards"][0]["ShardId"], "shardId-000000000003");
        assert!(rest.get("NextToken").is_none());

        let summary = f
            .ok("DescribeStreamSummary", json!({"StreamName": "b"}))
            .await;
        assert_eq!(summary["StreamDescriptionSummary"]["OpenShardCount"], 2);

        f.ok("DeleteStream", json!({"StreamName": "a"})).await;
        let error = f.err("DescribeStream", json!({"StreamName": "a"})).await;
        assert_eq!(error.kind, "ResourceNotFoundException");
    }

    #[tokio::test]
    async fn records_round_trip_with_every_iterator_type() {
        let f = fixture();
        f.ok("CreateStream", json!({"StreamName": "s", "ShardCount": 1}))
            .await;
        let first = f
            .ok(
                "PutRecord",
                json!({"StreamName": "s", "Data": BASE64.encode("one"), "PartitionKey": "k"}),
            )
            .await;
        assert_eq!(first["ShardId"], "shardId-000000000000");
        let first_sequence = first["SequenceNumber"].as_str().unwrap().to_owned();
        let latest = f
            .iterator(
                "s",
                "shardId-000000000000",
                json!({"ShardIteratorType": "LATEST"}),
            )
            .await;
        f.clock.advance_ms(100);
        let put = f
            .ok(
                "PutRecords",
                json!({"StreamName": "s", "Records": [
                    {"Data": BASE64.encode("two"), "PartitionKey": "k"},
                    {"Data": BASE64.encode("three"), "PartitionKey": "k", "ExplicitHashKey": "0"},
                ]}),
            )
            .await;
        assert_eq!(put["FailedRecordCount"], 0);

        let read = |iterator: String, limit: Option<u64>| {
            let mut body = json!({"ShardIterator": iterator});
            if let Some(limit) = limit {
                body["Limit"] = json!(limit);
            }
            f.ok("GetRecords", body)
        };
        let data = |response: &Value| -> Vec<String> {
            response["Records"]
                .as_array()
                .unwrap()
                .iter()
                .map(|record| {
                    String::from_utf8(BASE64.decode(record["Data"].as_str().unwrap()).unwrap())
                        .unwrap()
                })
                .collect()
        };

        let trim = f
            .iterator(
                "s",
                "shardId-000000000000",
                json!({"ShardIteratorType": "TRIM_HORIZON"}),
            )
            .await;
        let page = read(trim, Some(1)).await;
        assert_eq!(data(&page), ["one"]);
        assert_eq!(page["MillisBehindLatest"], 100);
        assert_eq!(
            page["Records"][0]["ApproximateArrivalTimestamp"],
            json!(1_700_000_000.0)
        );
        let page = read(page["NextShardIterator"].as_str().unwrap().to_owned(), None).await;
        assert_eq!(data(&page), ["two", "three"]);
        assert_eq!(page["MillisBehindLatest"], 0);
        let empty = read(page["NextShardIterator"].as_str().unwrap().to_owned(), None).await;
        assert_eq!(data(&empty), Vec::<String>::new());

        assert_eq!(data(&read(latest, None).await), ["two", "three"]);
        let at = f
            .iterator("s", "shardId-000000000000", json!({"ShardIteratorType": "AT_SEQUENCE_NUMBER", "StartingSequenceNumber": first_sequence}))
            .await;
        assert_eq!(data(&read(at, None).await), ["one", "two", "three"]);
        let after = f
            .iterator("s", "shardId-000000000000", json!({"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "StartingSequenceNumber": first_sequence}))
            .await;
        assert_eq!(data(&read(after, None).await), ["two", "three"]);
        let at_time = f
            .iterator("s", "shardId-000000000000", json!({"ShardIteratorType": "AT_TIMESTAMP", "Timestamp": (START_MS + 50) as f64 / 1000.0}))
            .await;
        assert_eq!(data(&read(at_time, None).await), ["two", "three"]);

        let error = f
            .err("GetShardIterator", json!({"StreamName": "s", "ShardId": "shardId-000000000001", "ShardIteratorType": "LATEST"}))
            .await;
        assert_eq!(error.kind, "ResourceNotFoundException");
        let error = f
            .err("GetShardIterator", json!({"StreamName": "s", "ShardId": "shardId-000000000000", "ShardIteratorType": "AT_SEQUENCE_NUMBER"}))
            .await;
        assert_eq!(error.kind, "InvalidArgumentException");
        let error = f
            .err("GetShardIterator", json!({"StreamName": "s", "ShardId": "shardId-000000000000", "ShardIteratorType": "AT_SEQUENCE_NUMBER", "StartingSequenceNumber": "999"}))
            .await;
        assert_eq!(error.kind, "InvalidArgumentException");
    }

    #[tokio::test]
    async fn iterators_expire_on_the_injected_clock() {
        let f = fixture();
        f.ok("CreateStream", json!({"StreamName": "s", "ShardCount": 1}))
            .await;
        let iterator = f
            .iterator(
                "s",
                "shardId-000000000000",
                json!({"ShardIteratorType": "TRIM_HORIZON"}),
            )
            .await;
        f.clock.advance_ms(1000);
        let page = f
            .ok("GetRecords", json!({"ShardIterator": iterator.clone()}))
            .await;
        f.clock.advance_ms(1);
        let error = f
            .err("GetRecords", json!({"ShardIterator": iterator}))
            .await;
        assert_eq!(error.kind, "ExpiredIteratorException");
        // The next iterator was issued at the time of the read, so it is still fresh.
        let next = page["NextShardIterator"].as_str().unwrap().to_owned();
        f.ok("GetRecords", json!({"ShardIterator": next})).await;
        let error = f
            .err(
                "GetRecords",
                json!({"ShardIterator": "bm90IGFuIGl0ZXJhdG9y"}),
            )
            .await;
        assert_eq!(error.kind, "InvalidArgumentException");
    }

    #[tokio::test]
    async fn an_iterator_of_a_deleted_and_recreated_stream_is_refused() {
        let f = fixture();
        f.ok("CreateStream", json!({"StreamName": "s", "ShardCount": 1}))
            .await;
        let iterator = f
            .iterator(
                "s",
                "shardId-000000000000",
                json!({"ShardIteratorType": "TRIM_HORIZON"}),
            )
            .await;
        f.ok("DeleteStream", json!({"StreamName": "s"})).await;
        f.clock.advance_ms(1);
        f.ok("CreateStream", json!({"StreamName": "s", "ShardCount": 1}))
            .await;
        let error = f
            .err("GetRecords", json!({"ShardIterator": iterator}))
            .await;
        assert_eq!(error.kind, "ResourceNotFoundException");
    }

    #[tokio::test]
    async fn batch_limits_are_enforced() {
        let f = fixture();
        f.ok("CreateStream", json!({"StreamName": "s", "ShardCount": 2}))
            .await;
        let record = json!({"Data": BASE64.encode("x"), "PartitionKey": "k"});
        let error = f
            .err(
                "PutRecords",
                json!({"StreamName": "s", "Records": vec![record.clone(); 501]}),
            )
            .await;
        assert_eq!(error.kind, "ValidationException");
        assert!(
            error
                .message
                .contains("Member must have length less than or equal to 500")
        );
        let error = f
            .err("PutRecords", json!({"StreamName": "s", "Records": []}))
            .await;
        assert_eq!(error.kind, "ValidationException");
        let big = BASE64.encode(vec![0u8; RECORD_BYTES_MAX]);
        let error = f
            .err(
                "PutRecords",
                json!({"StreamName": "s", "Records": [{"Data": big, "PartitionKey": "k"}]}),
            )
            .await;
        assert_eq!(error.kind, "InvalidArgumentException");
        let too_big = BASE64.encode(vec![0u8; RECORD_BYTES_MAX + 1]);
        let error = f
            .err(
                "PutRecord",
                json!({"StreamName": "s", "Data": too_big, "PartitionKey": "k"}),
            )
            .await;
        assert_eq!(error.kind, "ValidationException");
        let nearly_mib = BASE64.encode(vec![0u8; RECORD_BYTES_MAX - 1]);
        let records = vec![json!({"Data": nearly_mib, "PartitionKey": "k"}); 6];
        let error = f
            .err("PutRecords", json!({"StreamName": "s", "Records": records}))
            .await;
        assert_eq!(error.kind, "InvalidArgumentException");
        assert!(error.message.starts_with("Records size exceeds 5 MB limit"));
        let error = f
            .err("PutRecords", json!({"StreamName": "s", "Records": [{"Data": "", "PartitionKey": "k"}, {"PartitionKey": "k"}]}))
            .await;
        assert!(
            error.message.contains("at 'records.2.member.data'"),
            "{}",
            error.message
        );
        let ok = f
            .ok(
                "PutRecords",
                json!({"StreamName": "s", "Records": vec![record; 500]}),
            )
            .await;
        assert_eq!(ok["Records"].as_array().unwrap().len(), 500);
    }

    #[tokio::test]
    async fn retention_changes_are_checked_like_kinesis() {
        let f = fixture();
        f.ok("CreateStream", json!({"StreamName": "s", "ShardCount": 1}))
            .await;
        let increase = |hours: i64| {
            f.call(
                "IncreaseStreamRetentionPeriod",
                json!({"StreamName": "s", "RetentionPeriodHours": hours}),
            )
        };
        let error = increase(23).await.unwrap_err();
        assert_eq!(
            error.message,
            "Minimum allowed retention period is 24 hours. Requested retention period (23 hours) is too short."
        );
        let error = increase(8761).await.unwrap_err();
        assert_eq!(
            error.message,
            "Maximum allowed retention period is 8760 hours. Requested retention period (8761 hours) is too long."
        );
        increase(48).await.unwrap();
        let error = increase(36).await.unwrap_err();
        assert_eq!(error.kind, "InvalidArgumentException");
        assert!(
            error
                .message
                .contains("can not be shorter than existing retention period (48 hours)")
        );
        let error = f
            .err(
                "DecreaseStreamRetentionPeriod",
                json!({"StreamName": "s", "RetentionPeriodHours": 72}),
            )
            .await;
        assert!(
            error
                .message
                .contains("can not be longer than existing retention period (48 hours)")
        );
        f.ok(
            "DecreaseStreamRetentionPeriod",
            json!({"StreamName": "s", "RetentionPeriodHours": 36}),
        )
        .await;
        let summary = f
            .ok("DescribeStreamSummary", json!({"StreamName": "s"}))
            .await;
        assert_eq!(
            summary["StreamDescriptionSummary"]["RetentionPeriodHours"],
            36
        );
    }

    #[tokio::test]
    async fn calls_beyond_the_in_flight_bound_are_throttled() {
        let f = fixture_with(0);
        let error = f
            .err("CreateStream", json!({"StreamName": "s", "ShardCount": 1}))
            .await;
        assert_eq!(error.kind, "LimitExceededException");
        let f = fixture();
        f.ok("CreateStream", json!({"StreamName": "s", "ShardCount": 1}))
            .await;
        let throttled = KinesisService::with_options(
            Arc::clone(&f.service.log),
            KinesisOptions {
                clock: f.clock.clone(),
                shard_iterator_ttl_ms: 1000,
                in_flight_calls_max: 0,
            },
        );
        let error = throttled
            .call(
                "PutRecord",
                json!({"StreamName": "s", "Data": "", "PartitionKey": "k"}),
            )
            .await
            .unwrap_err();
        assert_eq!(error.kind, "ProvisionedThroughputExceededException");
    }
}
