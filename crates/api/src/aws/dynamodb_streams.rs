//! The DynamoDB Streams API (AWS JSON 1.0, `X-Amz-Target: DynamoDBStreams_20120810.*`) over
//! the table streams of `sluice-tables`: ListStreams, DescribeStream, GetShardIterator (all four
//! types) and GetRecords, with records in DynamoDB's shape (`eventName`, `dynamodb.Keys`,
//! `NewImage`/`OldImage` per view type, `SequenceNumber`, `SizeBytes`,
//! `ApproximateCreationDateTime`).
//!
//! Each stream has one shard, which keeps every change of a table in commit order (so in order
//! per item). Sequence numbers are the stream's record numbers written as 21 zero-padded
//! digits, so they compare the same as text and as numbers. A shard iterator names a stream, the
//! sequence number to read from and when it was issued: as in DynamoDB, it expires
//! [`SHARD_ITERATOR_TTL_MS`] after that, and GetRecords with it answers
//! `ExpiredIteratorException` (each GetRecords hands out a fresh `NextShardIterator`).

use std::sync::Arc;

use serde_json::{Value, json};
use sluice_tables::{STREAM_READ_MAX, StreamRecord, StreamSummary, Tables, TablesError};

use super::dynamodb::{item_json, stream_arn, stream_label};
use super::{AwsError, BoxFuture, Format, JsonService, Operation, REGION};

pub const TARGET_PREFIX: &str = "DynamoDBStreams_20120810";

/// How long a shard iterator stays valid after it was issued: 15 minutes, as in DynamoDB
/// Streams. An older one gets `ExpiredIteratorException`, which consumers answer by asking for a
/// new iterator at their checkpoint.
pub const SHARD_ITERATOR_TTL_MS: u64 = 15 * 60 * 1000;

/// Every operation served; each reads a JSON body.
pub const OPERATIONS: &[Operation] = &[
    Operation {
        name: "ListStreams",
        formats: &[Format::Json],
    },
    Operation {
        name: "DescribeStream",
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
];

/// Most streams in one ListStreams page (DynamoDB Streams' `Limit` maximum).
pub const LIST_STREAMS_PAGE_MAX: usize = 100;
/// Digits of a sequence number as written on the wire.
pub const SEQUENCE_NUMBER_DIGITS: usize = 21;

const VALIDATION: &str = "com.amazon.coral.validate#ValidationException";
const NOT_FOUND: &str = "com.amazonaws.dynamodb.v20120810#ResourceNotFoundException";
const INTERNAL: &str = "com.amazonaws.dynamodb.v20120810#InternalServerError";
const ITERATOR_PREFIX: &str = "sluice-ddb-stream";

fn validation(message: impl Into<String>) -> AwsError {
    AwsError::client(VALIDATION, message)
}

fn tables_error(error: TablesError) -> AwsError {
    match error {
        TablesError::NotFound(message) => AwsError::client(NOT_FOUND, message),
        TablesError::Validation(message) => validation(message),
        error => {
            tracing::error!(%error, "dynamodb streams call failed");
            AwsError::new(
                hyper::StatusCode::INTERNAL_SERVER_ERROR,
                INTERNAL,
                error.to_string(),
            )
        }
    }
}

fn string_member<'a>(body: &'a Value, name: &str) -> Result<Option<&'a str>, AwsError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(AwsError::client(
            "SerializationException",
            format!("{name} must be a string"),
        )),
    }
}

fn required<'a>(body: &'a Value, name: &str, path: &str) -> Result<&'a str, AwsError> {
    string_member(body, name)?.ok_or_else(|| {
        validation(format!(
            "1 validation error detected: Value null at '{path}' failed to satisfy constraint: Member must not be null"
        ))
    })
}

fn limit(body: &Value, max: usize) -> Result<usize, AwsError> {
    match body.get("Limit") {
        None | Some(Value::Null) => Ok(max),
        Some(limit) => limit
            .as_u64()
            .filter(|limit| (1..=max as u64).contains(limit))
            .map(|limit| limit as usize)
            .ok_or_else(|| {
                validation(format!(
                    "1 validation error detected: Value at 'limit' failed to satisfy constraint: Member must have value less than or equal to {max} and greater than or equal to 1"
                ))
            }),
    }
}

pub fn sequence_number(sequence: u64) -> String {
    format!("{sequence:0width$}", width = SEQUENCE_NUMBER_DIGITS)
}

fn parse_sequence_number(text: &str) -> Result<u64, AwsError> {
    text.parse::<u64>()
        .map_err(|_| validation(format!("Invalid SequenceNumber: {text}")))
}

fn shard_id(stream: &StreamSummary) -> String {
    format!("shardId-{:020}-{:08x}", stream.created_ms, stream.stream_id)
}

fn arn_of(stream: &StreamSummary) -> String {
    stream_arn(&stream.table_name, stream.created_ms)
}

fn summary_json(stream: &StreamSummary) -> Value {
    json!({
        "StreamArn": arn_of(stream),
        "TableName": stream.table_name,
        "StreamLabel": stream_label(stream.created_ms),
    })
}

fn record_json(stream: &StreamSummary, record: &StreamRecord) -> Value {
    let mut dynamodb = json!({
        "ApproximateCreationDateTime": record.created_ms / 1000,
        "Keys": item_json(&record.keys),
        "SequenceNumber": sequence_number(record.sequence),
        "SizeBytes": record.size_bytes,
        "StreamViewType": stream.view_type.as_str(),
    });
    if let Some(image) = &record.new_image {
        dynamodb["NewImage"] = item_json(image);
    }
    if let Some(image) = &record.old_image {
        dynamodb["OldImage"] = item_json(image);
    }
    let mut answer = json!({
        "eventID": format!("{:08x}-{:016x}", stream.stream_id, record.sequence),
        "eventName": record.event_name.as_str(),
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": REGION,
        "dynamodb": dynamodb,
    });
    if record.by_service {
        answer["userIdentity"] =
            json!({"Type": "Service", "PrincipalId": "dynamodb.amazonaws.com"});
    }
    answer
}

/// A shard iterator: the stream and the sequence number to read from.
fn iterator(stream_id: u64, from: u64, issued_ms: u64) -> String {
    format!("{ITERATOR_PREFIX}:{stream_id}:{from}:{issued_ms}")
}

/// A shard iterator read back: the stream, the sequence to read from, and when it was issued.
struct ShardIterator {
    stream_id: u64,
    from: u64,
    issued_ms: u64,
}

fn parse_iterator(text: &str) -> Result<ShardIterator, AwsError> {
    let invalid = || validation("Invalid ShardIterator");
    let mut parts = text.split(':');
    let (Some(ITERATOR_PREFIX), Some(stream_id), Some(from), Some(issued_ms), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(invalid());
    };
    Ok(ShardIterator {
        stream_id: stream_id.parse().map_err(|_| invalid())?,
        from: from.parse().map_err(|_| invalid())?,
        issued_ms: issued_ms.parse().map_err(|_| invalid())?,
    })
}

impl ShardIterator {
    fn check_not_expired(&self, now_ms: u64) -> Result<(), AwsError> {
        super::check_iterator_age(self.issued_ms, now_ms, SHARD_ITERATOR_TTL_MS)
    }
}

/// The DynamoDB Streams API over the node's tables.
pub struct DynamoDbStreamsService {
    tables: Arc<Tables>,
}

impl DynamoDbStreamsService {
    pub fn new(tables: Arc<Tables>) -> DynamoDbStreamsService {
        DynamoDbStreamsService { tables }
    }

    fn find(&self, arn: &str) -> Result<StreamSummary, AwsError> {
        self.tables
            .streams()
            .map_err(tables_error)?
            .into_iter()
            .find(|stream| arn_of(stream) == arn)
            .ok_or_else(|| {
                AwsError::client(
                    NOT_FOUND,
                    format!("Requested resource not found: Stream: {arn} not found"),
                )
            })
    }

    fn call_blocking(&self, operation: &str, body: &Value) -> Result<Value, AwsError> {
        match operation {
            "ListStreams" => {
                let limit = limit(body, LIST_STREAMS_PAGE_MAX)?;
                let table = string_member(body, "TableName")?;
                let start = string_member(body, "ExclusiveStartStreamArn")?;
                let streams: Vec<StreamSummary> = self
                    .tables
                    .streams()
                    .map_err(tables_error)?
                    .into_iter()
                    .filter(|stream| table.is_none_or(|table| stream.table_name == table))
                    .collect();
                let skip = match start {
                    Some(start) => streams
                        .iter()
                        .position(|stream| arn_of(stream) == start)
                        .map_or(0, |at| at + 1),
                    None => 0,
                };
                let page: Vec<&StreamSummary> = streams.iter().skip(skip).take(limit).collect();
                let mut answer = json!({"Streams": page.iter().map(|stream| summary_json(stream)).collect::<Vec<_>>()});
                if streams.len() > skip + page.len()
                    && let Some(last) = page.last()
                {
                    answer["LastEvaluatedStreamArn"] = json!(arn_of(last));
                }
                Ok(answer)
            }
            "DescribeStream" => {
                let stream = self.find(required(body, "StreamArn", "streamArn")?)?;
                let bounds = self
                    .tables
                    .stream_bounds(stream.stream_id)
                    .map_err(tables_error)?;
                let next = self
                    .tables
                    .stream_next_sequence(stream.stream_id)
                    .map_err(tables_error)?;
                let mut range = json!({
                    "StartingSequenceNumber": sequence_number(bounds.map_or(next, |(first, _)| first)),
                });
                if stream.disabled_ms.is_some() {
                    range["EndingSequenceNumber"] = json!(sequence_number(next.saturating_sub(1)));
                }
                let mut key_schema = Vec::new();
                if let Some(schema) = &stream.key_schema {
                    key_schema
                        .push(json!({"AttributeName": schema.partition.name, "KeyType": "HASH"}));
                    if let Some(sort) = &schema.sort {
                        key_schema.push(json!({"AttributeName": sort.name, "KeyType": "RANGE"}));
                    }
                }
                Ok(json!({"StreamDescription": {
                    "StreamArn": arn_of(&stream),
                    "StreamLabel": stream_label(stream.created_ms),
                    "StreamStatus": if stream.disabled_ms.is_some() { "DISABLED" } else { "ENABLED" },
                    "StreamViewType": stream.view_type.as_str(),
                    "CreationRequestDateTime": stream.created_ms as f64 / 1000.0,
                    "TableName": stream.table_name,
                    "KeySchema": key_schema,
                    "Shards": [{
                        "ShardId": shard_id(&stream),
                        "SequenceNumberRange": range,
                    }],
                }}))
            }
            "GetShardIterator" => {
                let stream = self.find(required(body, "StreamArn", "streamArn")?)?;
                let shard = required(body, "ShardId", "shardId")?;
                if shard != shard_id(&stream) {
                    return Err(AwsError::client(
                        NOT_FOUND,
                        format!("Requested resource not found: Shard does not exist: {shard}"),
                    ));
                }
                let kind = required(body, "ShardIteratorType", "shardIteratorType")?;
                let sequence = string_member(body, "SequenceNumber")?;
                let from = match (kind, sequence) {
                    ("TRIM_HORIZON", _) => 0,
                    ("LATEST", _) => self
                        .tables
                        .stream_next_sequence(stream.stream_id)
                        .map_err(tables_error)?,
                    ("AT_SEQUENCE_NUMBER", Some(sequence)) => parse_sequence_number(sequence)?,
                    ("AFTER_SEQUENCE_NUMBER", Some(sequence)) => {
                        parse_sequence_number(sequence)?.saturating_add(1)
                    }
                    ("AT_SEQUENCE_NUMBER" | "AFTER_SEQUENCE_NUMBER", None) => {
                        return Err(validation(
                            "Must specify a sequence number with iterator type AT_SEQUENCE_NUMBER or AFTER_SEQUENCE_NUMBER",
                        ));
                    }
                    (other, _) => {
                        return Err(validation(format!(
                            "1 validation error detected: Value '{other}' at 'shardIteratorType' failed to satisfy constraint: Member must satisfy enum value set: [AFTER_SEQUENCE_NUMBER, LATEST, AT_SEQUENCE_NUMBER, TRIM_HORIZON]"
                        )));
                    }
                };
                let issued_ms = self.tables.now_ms();
                Ok(json!({"ShardIterator": iterator(stream.stream_id, from, issued_ms)}))
            }
            "GetRecords" => {
                let shard_iterator =
                    parse_iterator(required(body, "ShardIterator", "shardIterator")?)?;
                shard_iterator.check_not_expired(self.tables.now_ms())?;
                let ShardIterator {
                    stream_id, from, ..
                } = shard_iterator;
                let limit = limit(body, STREAM_READ_MAX)?;
                let stream = self.tables.stream(stream_id).map_err(|_| {
                    AwsError::client(
                        NOT_FOUND,
                        "Requested resource not found: the iterator's stream no longer exists",
                    )
                })?;
                let records = self
                    .tables
                    .read_stream(stream_id, from, limit)
                    .map_err(tables_error)?;
                let next_from = records.last().map_or(from, |record| record.sequence + 1);
                let mut answer = json!({
                    "Records": records.iter().map(|record| record_json(&stream, record)).collect::<Vec<_>>(),
                });
                // A disabled stream's shard is closed: once read to its end, no next iterator.
                let next = self
                    .tables
                    .stream_next_sequence(stream_id)
                    .map_err(tables_error)?;
                if stream.disabled_ms.is_none() || next_from < next {
                    let issued_ms = self.tables.now_ms();
                    answer["NextShardIterator"] = json!(iterator(stream_id, next_from, issued_ms));
                }
                Ok(answer)
            }
            other => Err(AwsError::client(
                "UnknownOperationException",
                format!("unknown operation {other}"),
            )),
        }
    }
}

impl JsonService for DynamoDbStreamsService {
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
        Box::pin(async move {
            let tables = self.tables.clone();
            let operation = operation.to_owned();
            tokio::task::spawn_blocking(move || {
                DynamoDbStreamsService { tables }.call_blocking(&operation, &body)
            })
            .await
            .map_err(|error| AwsError::internal(format!("worker failed: {error}")))?
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iterators_round_trip_and_garbage_is_refused() {
        let parsed = parse_iterator(&iterator(7, 42, 1_000)).unwrap();
        assert_eq!(
            (parsed.stream_id, parsed.from, parsed.issued_ms),
            (7, 42, 1_000)
        );
        for bad in [
            "",
            "x",
            "sluice-ddb-stream:1",
            "sluice-ddb-stream:a:1:1",
            "sluice-ddb-stream:1:2",
            "other:1:2:3",
            "sluice-ddb-stream:1:2:3:4",
        ] {
            assert!(parse_iterator(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn iterators_expire_after_fifteen_minutes() {
        let issued = parse_iterator(&iterator(1, 0, 1_000)).unwrap();
        assert!(
            issued
                .check_not_expired(1_000 + SHARD_ITERATOR_TTL_MS)
                .is_ok()
        );
        let error = issued
            .check_not_expired(1_001 + SHARD_ITERATOR_TTL_MS)
            .unwrap_err();
        assert_eq!(error.kind, "ExpiredIteratorException");
        // A clock that went back never expires an iterator early.
        assert!(issued.check_not_expired(0).is_ok());
    }

    /// TTL end to end through both APIs: UpdateTimeToLive and DescribeTimeToLive on the
    /// DynamoDB service, expiry on the tables' manual clock, and the REMOVE record in
    /// GetRecords with the service identity DynamoDB's Streams API gives TTL deletions
    /// (`Type`/`PrincipalId`, as botocore's `Identity` shape names them).
    #[tokio::test]
    async fn expired_items_show_as_service_removals_in_get_records() {
        use crate::aws::dynamodb::DynamoDbService;
        let dir = tempfile::tempdir().unwrap();
        let now_s: u64 = 1_900_000_000;
        let clock = Arc::new(sluice_log::ManualClock::new(now_s * 1000));
        let tables = Arc::new(Tables::open(dir.path(), clock.clone()).unwrap());
        let dynamodb = DynamoDbService::new(tables.clone());
        let call = |operation: &'static str, body: Value| {
            let dynamodb = &dynamodb;
            async move { dynamodb.call(operation, body).await }
        };
        call(
            "CreateTable",
            json!({
                "TableName": "sessions",
                "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
                "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
                "BillingMode": "PAY_PER_REQUEST",
                "StreamSpecification": {"StreamEnabled": true, "StreamViewType": "KEYS_ONLY"},
            }),
        )
        .await
        .unwrap();
        let describe = json!({"TableName": "sessions"});
        assert_eq!(
            call("DescribeTimeToLive", describe.clone()).await.unwrap(),
            json!({"TimeToLiveDescription": {"TimeToLiveStatus": "DISABLED"}})
        );
        let enable = json!({
            "TableName": "sessions",
            "TimeToLiveSpecification": {"AttributeName": "expires", "Enabled": true},
        });
        assert_eq!(
            call("UpdateTimeToLive", enable.clone()).await.unwrap(),
            json!({"TimeToLiveSpecification": {"AttributeName": "expires", "Enabled": true}})
        );
        let again = call("UpdateTimeToLive", enable).await.unwrap_err();
        assert_eq!(
            (again.kind, again.message.as_str()),
            (
                "com.amazon.coral.validate#ValidationException",
                "TimeToLive is already enabled"
            )
        );
        let missing = call("UpdateTimeToLive", json!({"TableName": "sessions"}))
            .await
            .unwrap_err();
        assert!(missing.kind.ends_with("ValidationException"));
        assert_eq!(
            call("DescribeTimeToLive", describe).await.unwrap(),
            json!({"TimeToLiveDescription": {
                "TimeToLiveStatus": "ENABLED", "AttributeName": "expires",
            }})
        );
        for (id, expires) in [("old", now_s - 10), ("new", now_s + 10)] {
            call(
                "PutItem",
                json!({"TableName": "sessions", "Item": {
                    "id": {"S": id}, "expires": {"N": expires.to_string()},
                }}),
            )
            .await
            .unwrap();
        }
        assert_eq!(tables.expire_items().unwrap(), 1);

        let streams = DynamoDbStreamsService::new(tables.clone());
        let arn =
            streams.call_blocking("ListStreams", &json!({})).unwrap()["Streams"][0]["StreamArn"]
                .clone();
        let shard = streams
            .call_blocking("DescribeStream", &json!({"StreamArn": arn}))
            .unwrap()["StreamDescription"]["Shards"][0]["ShardId"]
            .clone();
        let iterator = streams
            .call_blocking(
                "GetShardIterator",
                &json!({"StreamArn": arn, "ShardId": shard, "ShardIteratorType": "TRIM_HORIZON"}),
            )
            .unwrap()["ShardIterator"]
            .clone();
        let records = streams
            .call_blocking("GetRecords", &json!({"ShardIterator": iterator}))
            .unwrap()["Records"]
            .clone();
        let records = records.as_array().unwrap();
        assert_eq!(records.len(), 3);
        for put in &records[..2] {
            assert_eq!(put["eventName"], "INSERT");
            assert!(put.get("userIdentity").is_none());
        }
        assert_eq!(records[2]["eventName"], "REMOVE");
        assert_eq!(records[2]["dynamodb"]["Keys"], json!({"id": {"S": "old"}}));
        assert_eq!(
            records[2]["userIdentity"],
            json!({"Type": "Service", "PrincipalId": "dynamodb.amazonaws.com"})
        );
    }

    #[test]
    fn sequence_numbers_are_21_digits() {
        assert_eq!(sequence_number(51), "000000000000000000051");
    }
}
