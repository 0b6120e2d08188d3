//! The DynamoDB API (AWS JSON 1.0, `X-Amz-Target: DynamoDB_20120810.*`) over `sluice-tables`:
//! tables with local and global secondary indexes (CreateTable, DescribeTable, ListTables,
//! UpdateTable, DeleteTable), items (PutItem, GetItem, UpdateItem, DeleteItem, the batch and
//! transaction calls) with DynamoDB's typed attribute values (`{"S": …}`, `{"N": "…"}`, base64
//! `B`, sets, `M`, `L`) and its error types and texts, Scan (paged by `Limit`,
//! `ExclusiveStartKey` and 1 MB, parallel `Segment`s, `Select`) and Query
//! (`KeyConditionExpression` on the table's or an index's keys, `ScanIndexForward`), both with
//! `FilterExpression`. Expressions (`sluice_tables::expression`) take document paths, nested
//! ones included; conditions are checked inside the commit. Members not served are refused with
//! a `ValidationException` saying so, never ignored.
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hyper::StatusCode;
use serde_json::{Map, Value, json};
use sluice_tables::expression::{
    Comparator, Condition, Operand, Parser, PathElement, UpdateAction, evaluate,
};
use sluice_tables::{
    AttributeValue, CreateTable, IndexRequest, IndexUpdate, Item, KeyAttribute, KeySchema,
    LIST_TABLES_PAGE_MAX, Number, Projection, ProjectionType, QueryRequest, SCAN_SEGMENTS_MAX,
    SEARCH_INDEX_TAG, ScalarType, ScanRequest, SecondaryIndex, StreamViewType, Submitted,
    TableDefinition, TableDescription, Tables, TablesError, Write, WriteOutcome,
};
use tokio::sync::Semaphore;

use super::{ACCOUNT_ID, AwsError, BoxFuture, Format, JsonService, LeadTurn, Operation, REGION};

pub const TARGET_PREFIX: &str = "DynamoDB_20120810";

/// Every operation served; each reads a JSON body.
pub const OPERATIONS: &[Operation] = &[
    Operation {
        name: "CreateTable",
        formats: &[Format::Json],
    },
    Operation {
        name: "DescribeTable",
        formats: &[Format::Json],
    },
    Operation {
        name: "ListTables",
        formats: &[Format::Json],
    },
    Operation {
        name: "DeleteTable",
        formats: &[Format::Json],
    },
    Operation {
        name: "UpdateTable",
        formats: &[Format::Json],
    },
    Operation {
        name: "PutItem",
        formats: &[Format::Json],
    },
    Operation {
        name: "GetItem",
        formats: &[Format::Json],
    },
    Operation {
        name: "DeleteItem",
        formats: &[Format::Json],
    },
    Operation {
        name: "Scan",
        formats: &[Format::Json],
    },
    Operation {
        name: "Query",
        formats: &[Format::Json],
    },
    Operation {
        name: "UpdateItem",
        formats: &[Format::Json],
    },
    Operation {
        name: "BatchWriteItem",
        formats: &[Format::Json],
    },
    Operation {
        name: "BatchGetItem",
        formats: &[Format::Json],
    },
    Operation {
        name: "TransactWriteItems",
        formats: &[Format::Json],
    },
    Operation {
        name: "TransactGetItems",
        formats: &[Format::Json],
    },
    Operation {
        name: "UpdateTimeToLive",
        formats: &[Format::Json],
    },
    Operation {
        name: "DescribeTimeToLive",
        formats: &[Format::Json],
    },
    Operation {
        name: "TagResource",
        formats: &[Format::Json],
    },
    Operation {
        name: "UntagResource",
        formats: &[Format::Json],
    },
    Operation {
        name: "ListTagsOfResource",
        formats: &[Format::Json],
    },
];

/// `Tags` of CreateTable or TagResource: `[{Key, Value}]`.
fn tags(body: &Value, required: bool) -> Result<BTreeMap<String, String>, AwsError> {
    let path = if required { "tags" } else { "" };
    let mut tags = BTreeMap::new();
    for tag in list_member(body, "Tags", path)?.unwrap_or_default() {
        let key = string_member(&tag, "Key")?.ok_or_else(|| missing("tags.member.key"))?;
        let value = string_member(&tag, "Value")?.ok_or_else(|| missing("tags.member.value"))?;
        tags.insert(key.to_owned(), value.to_owned());
    }
    Ok(tags)
}

/// Refuses a `sluice:search-index` tag that cannot work: a bad index name, or a table whose
/// stream does not carry new images (the indexing follows the stream).
fn check_search_tag(
    tags: &BTreeMap<String, String>,
    stream: Option<StreamViewType>,
) -> Result<(), AwsError> {
    let Some(index) = tags.get(SEARCH_INDEX_TAG) else {
        return Ok(());
    };
    if !index.is_empty() && index != "true" {
        sluice_search::validate_index_name(index).map_err(|error| {
            validation(format!(
                "The {SEARCH_INDEX_TAG} tag names a bad index: {error}"
            ))
        })?;
    }
    if !stream.is_some_and(StreamViewType::keeps_new) {
        return Err(validation(format!(
            "The {SEARCH_INDEX_TAG} tag needs a stream with NEW_IMAGE or NEW_AND_OLD_IMAGES: the index follows it"
        )));
    }
    Ok(())
}

/// The table a `ResourceArn` names.
fn arn_table(body: &Value) -> Result<String, AwsError> {
    let arn = string_member(body, "ResourceArn")?.ok_or_else(|| missing("resourceArn"))?;
    arn.split_once(":table/")
        .map(|(_, name)| name.to_owned())
        .filter(|name| !name.is_empty() && !name.contains('/'))
        .ok_or_else(|| {
            validation(format!(
                "Invalid TableArn: Invalid ResourceArn provided as input {arn}"
            ))
        })
}

/// Most members of one TransactWriteItems or TransactGetItems (DynamoDB's 100).
pub const TRANSACT_ITEMS_MAX: usize = 100;

/// Most writes in one BatchWriteItem (DynamoDB's 25).
pub const BATCH_WRITE_ITEMS_MAX: usize = 25;
/// Most keys in one BatchGetItem (DynamoDB's 100).
pub const BATCH_GET_KEYS_MAX: usize = 100;
/// Most item bytes one BatchGetItem answers (DynamoDB's 16 MB); keys past it are answered as
/// `UnprocessedKeys`, for the client to ask again.
pub const BATCH_GET_BYTES_MAX: usize = 16 * 1024 * 1024;

/// Most DynamoDB calls running blocking table work at once (writes waiting for their group's
/// fsync, reads, catalog changes). When full, a call is refused at once with
/// `ProvisionedThroughputExceededException`, which the AWS SDKs retry with backoff; nothing
/// queues without bound.
pub const IN_FLIGHT_CALLS_MAX: usize = 256;

const VALIDATION: &str = "com.amazon.coral.validate#ValidationException";
const NOT_FOUND: &str = "com.amazonaws.dynamodb.v20120810#ResourceNotFoundException";
const IN_USE: &str = "com.amazonaws.dynamodb.v20120810#ResourceInUseException";
const CONDITION_FAILED: &str = "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException";
const LIMIT_EXCEEDED: &str = "com.amazonaws.dynamodb.v20120810#LimitExceededException";
const THROUGHPUT_EXCEEDED: &str =
    "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException";
const INTERNAL: &str = "com.amazonaws.dynamodb.v20120810#InternalServerError";
const TRANSACTION_CANCELED: &str = "com.amazonaws.dynamodb.v20120810#TransactionCanceledException";

fn validation(message: impl Into<String>) -> AwsError {
    AwsError::client(VALIDATION, message)
}

/// DynamoDB's answer when a call cannot be taken now; the AWS SDKs retry it with backoff.
fn throughput_exceeded() -> AwsError {
    AwsError::client(
        THROUGHPUT_EXCEEDED,
        "The level of configured provisioned throughput for the table was exceeded. Consider increasing your provisioning level with the UpdateTable API.",
    )
}

fn invalid_parameter(message: impl std::fmt::Display) -> AwsError {
    validation(format!(
        "One or more parameter values were invalid: {message}"
    ))
}

/// The one map from engine errors to DynamoDB's.
fn tables_error(error: TablesError) -> AwsError {
    match error {
        TablesError::Validation(message) => validation(message),
        TablesError::NotFound(message) => AwsError::client(NOT_FOUND, message),
        TablesError::InUse(message) => AwsError::client(IN_USE, message),
        TablesError::ConditionFailed { .. } => {
            AwsError::client(CONDITION_FAILED, "The conditional request failed")
        }
        TablesError::LimitExceeded(message) => AwsError::client(LIMIT_EXCEEDED, message),
        TablesError::Throttled => throughput_exceeded(),
        TablesError::TransactionCanceled { reasons } => {
            let message = TablesError::TransactionCanceled {
                reasons: reasons.clone(),
            }
            .to_string();
            let reasons: Vec<Value> = reasons
                .iter()
                .map(|reason| {
                    let mut shown = json!({"Code": reason.code});
                    if let Some(message) = &reason.message {
                        shown["Message"] = json!(message);
                    }
                    if let Some(item) = &reason.item {
                        shown["Item"] = item_json(item);
                    }
                    shown
                })
                .collect();
            let mut error = AwsError::client(TRANSACTION_CANCELED, message);
            let mut extra = Map::new();
            extra.insert("CancellationReasons".to_owned(), Value::Array(reasons));
            error.extra = Some(Box::new(extra));
            error
        }
        error @ (TablesError::Storage(_) | TablesError::Corrupt(_)) => {
            tracing::error!(%error, "dynamodb call failed");
            AwsError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                INTERNAL,
                error.to_string(),
            )
        }
    }
}

/// DynamoDB's text for a missing required member.
fn missing(member: &str) -> AwsError {
    validation(format!(
        "1 validation error detected: Value null at '{member}' failed to satisfy constraint: Member must not be null"
    ))
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

fn table_name(body: &Value) -> Result<String, AwsError> {
    let name = string_member(body, "TableName")?.ok_or_else(|| missing("tableName"))?;
    sluice_tables::validate_table_name(name).map_err(tables_error)?;
    Ok(name.to_owned())
}

/// Refuses members this slice does not read yet, so no request is half-understood.
fn refuse_unsupported(body: &Value, members: &[&str]) -> Result<(), AwsError> {
    for member in members {
        if body.get(*member).is_some_and(|value| !value.is_null()) {
            return Err(validation(format!(
                "{member} is not supported by Sluice yet"
            )));
        }
    }
    Ok(())
}

/// Converts DynamoDB's JSON for one attribute value. The JSON parser bounded nesting already;
/// the engine bounds it to DynamoDB's 32 levels before storing.
pub fn attribute_value(json: &Value) -> Result<AttributeValue, AwsError> {
    let Value::Object(members) = json else {
        return Err(AwsError::client(
            "SerializationException",
            "an attribute value must be an object",
        ));
    };
    let mut set = members.iter().filter(|(_, value)| !value.is_null());
    let (Some((type_name, value)), None) = (set.next(), set.next()) else {
        let message = if members.values().all(Value::is_null) {
            "Supplied AttributeValue is empty, must contain exactly one of the supported datatypes"
        } else {
            "Supplied AttributeValue has more than one datatypes set, must contain exactly one of the supported datatypes"
        };
        return Err(validation(message));
    };
    let serialization = |what: &str| {
        AwsError::client(
            "SerializationException",
            format!("{type_name} must be {what}"),
        )
    };
    fn as_text<'v>(value: &'v Value, type_name: &str) -> Result<&'v str, AwsError> {
        value.as_str().ok_or_else(|| {
            AwsError::client(
                "SerializationException",
                format!("{type_name} must be a string"),
            )
        })
    }
    let text = |value: &Value| as_text(value, type_name).map(str::to_owned);
    let number =
        |value: &Value| Number::parse(&text(value)?).map_err(|error| validation(error.to_string()));
    let binary = |value: &Value| {
        BASE64
            .decode(text(value)?)
            .map_err(|_| serialization("base64"))
    };
    fn as_array<'v>(value: &'v Value, type_name: &str) -> Result<&'v Vec<Value>, AwsError> {
        value.as_array().ok_or_else(|| {
            AwsError::client(
                "SerializationException",
                format!("{type_name} must be a list"),
            )
        })
    }
    let array = |value| as_array(value, type_name);
    Ok(match type_name.as_str() {
        "S" => AttributeValue::S(text(value)?),
        "N" => AttributeValue::N(number(value)?),
        "B" => AttributeValue::B(binary(value)?),
        "BOOL" => AttributeValue::Bool(value.as_bool().ok_or_else(|| serialization("a boolean"))?),
        "NULL" => match value.as_bool() {
            Some(true) => AttributeValue::Null,
            Some(false) => {
                return Err(invalid_parameter(
                    "Null attribute value types must have the value of true",
                ));
            }
            None => return Err(serialization("a boolean")),
        },
        "M" => AttributeValue::M(item(value)?),
        "L" => AttributeValue::L(
            array(value)?
                .iter()
                .map(attribute_value)
                .collect::<Result<_, _>>()?,
        ),
        "SS" => {
            let elements: Vec<String> = array(value)?.iter().map(text).collect::<Result<_, _>>()?;
            AttributeValue::Ss(set_of(elements, "An string set ", |text| text.clone())?)
        }
        "NS" => {
            let elements: Vec<Number> =
                array(value)?.iter().map(number).collect::<Result<_, _>>()?;
            AttributeValue::Ns(set_of(elements, "An number set ", Number::to_string)?)
        }
        "BS" => {
            let elements: Vec<Vec<u8>> =
                array(value)?.iter().map(binary).collect::<Result<_, _>>()?;
            AttributeValue::Bs(set_of(
                elements,
                "Binary sets should not be empty",
                |bytes| BASE64.encode(bytes),
            )?)
        }
        other => {
            return Err(AwsError::client(
                "SerializationException",
                format!("unknown attribute value type {other}"),
            ));
        }
    })
}

/// A set from a list: DynamoDB refuses empty sets and duplicates, naming them.
fn set_of<T: Ord + Clone>(
    elements: Vec<T>,
    empty_subject: &str,
    show: impl Fn(&T) -> String,
) -> Result<BTreeSet<T>, AwsError> {
    if elements.is_empty() {
        return Err(invalid_parameter(if empty_subject.ends_with("empty") {
            empty_subject.to_owned()
        } else {
            format!("{empty_subject} may not be empty")
        }));
    }
    let count = elements.len();
    let set: BTreeSet<T> = elements.iter().cloned().collect();
    if set.len() != count {
        let shown: Vec<String> = elements.iter().map(show).collect();
        return Err(invalid_parameter(format!(
            "Input collection [{}] contains duplicates.",
            shown.join(", ")
        )));
    }
    Ok(set)
}

/// Converts a JSON object of attribute values (an item, a key, an `M`).
pub fn item(json: &Value) -> Result<Item, AwsError> {
    let Value::Object(members) = json else {
        return Err(AwsError::client(
            "SerializationException",
            "an item must be an object",
        ));
    };
    members
        .iter()
        .map(|(name, value)| Ok((name.clone(), attribute_value(value)?)))
        .collect()
}

/// DynamoDB's JSON for one attribute value.
pub fn attribute_value_json(value: &AttributeValue) -> Value {
    match value {
        AttributeValue::S(text) => json!({"S": text}),
        AttributeValue::N(number) => json!({"N": number.to_string()}),
        AttributeValue::B(bytes) => json!({"B": BASE64.encode(bytes)}),
        AttributeValue::Bool(flag) => json!({"BOOL": flag}),
        AttributeValue::Null => json!({"NULL": true}),
        AttributeValue::M(map) => json!({"M": item_json(map)}),
        AttributeValue::L(list) => {
            json!({"L": list.iter().map(attribute_value_json).collect::<Vec<_>>()})
        }
        AttributeValue::Ss(set) => json!({"SS": set}),
        AttributeValue::Ns(set) => {
            json!({"NS": set.iter().map(Number::to_string).collect::<Vec<_>>()})
        }
        AttributeValue::Bs(set) => {
            json!({"BS": set.iter().map(|bytes| BASE64.encode(bytes)).collect::<Vec<_>>()})
        }
    }
}

/// DynamoDB's JSON for an item.
pub fn item_json(item: &BTreeMap<String, AttributeValue>) -> Value {
    Value::Object(
        item.iter()
            .map(|(name, value)| (name.clone(), attribute_value_json(value)))
            .collect::<Map<String, Value>>(),
    )
}

fn required_item(body: &Value, member: &str, path: &str) -> Result<Item, AwsError> {
    item(body.get(member).ok_or_else(|| missing(path))?)
}

/// `#name` placeholders to attribute names, and `:value` placeholders to values.
type Placeholders = (BTreeMap<String, String>, BTreeMap<String, AttributeValue>);

/// `ExpressionAttributeNames` and `ExpressionAttributeValues` of a request.
fn placeholders(body: &Value) -> Result<Placeholders, AwsError> {
    let mut names = BTreeMap::new();
    if let Some(Value::Object(members)) = body.get("ExpressionAttributeNames") {
        for (placeholder, name) in members {
            let name = name.as_str().ok_or_else(|| {
                AwsError::client(
                    "SerializationException",
                    "ExpressionAttributeNames values must be strings",
                )
            })?;
            names.insert(placeholder.clone(), name.to_owned());
        }
    }
    let mut values = BTreeMap::new();
    if let Some(Value::Object(members)) = body.get("ExpressionAttributeValues") {
        for (placeholder, value) in members {
            values.insert(placeholder.clone(), attribute_value(value)?);
        }
    }
    Ok((names, values))
}

/// A write's `ConditionExpression` as a check run inside the commit, with DynamoDB's checks of
/// unused placeholders.
fn condition_check(body: &Value) -> Result<Option<sluice_tables::Check>, AwsError> {
    condition_check_with(body, &BTreeSet::new(), &BTreeSet::new())
}

/// [`condition_check`] when another expression of the request (UpdateItem's) used some
/// placeholders already.
fn condition_check_with(
    body: &Value,
    used_names_elsewhere: &BTreeSet<String>,
    used_values_elsewhere: &BTreeSet<String>,
) -> Result<Option<sluice_tables::Check>, AwsError> {
    let (names, values) = placeholders(body)?;
    let Some(text) = string_member(body, "ConditionExpression")? else {
        let unused_names: Vec<&String> = names
            .keys()
            .filter(|name| !used_names_elsewhere.contains(*name))
            .collect();
        let unused_values: Vec<&String> = values
            .keys()
            .filter(|value| !used_values_elsewhere.contains(*value))
            .collect();
        if !used_names_elsewhere.is_empty() || !used_values_elsewhere.is_empty() {
            if !unused_names.is_empty() {
                return Err(validation(format!(
                    "Value provided in ExpressionAttributeNames unused in expressions: keys: {{{}}}",
                    unused_names
                        .iter()
                        .map(|name| name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            if !unused_values.is_empty() {
                return Err(validation(format!(
                    "Value provided in ExpressionAttributeValues unused in expressions: keys: {{{}}}",
                    unused_values
                        .iter()
                        .map(|value| value.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            return Ok(None);
        }
        if !names.is_empty() {
            return Err(validation(
                "ExpressionAttributeNames can only be specified when using expressions",
            ));
        }
        if !values.is_empty() {
            return Err(validation(
                "ExpressionAttributeValues can only be specified when using expressions: ConditionExpression is null",
            ));
        }
        return Ok(None);
    };
    let mut parser = Parser::new(text, &names, &values).map_err(tables_error)?;
    let condition = parser.condition().map_err(tables_error)?;
    parser
        .used_names
        .extend(used_names_elsewhere.iter().cloned());
    parser
        .used_values
        .extend(used_values_elsewhere.iter().cloned());
    let unused = |all: Vec<&String>, used: &BTreeSet<String>| -> Vec<String> {
        all.into_iter()
            .filter(|placeholder| !used.contains(*placeholder))
            .cloned()
            .collect()
    };
    let unused_names = unused(names.keys().collect(), &parser.used_names);
    if !unused_names.is_empty() {
        return Err(validation(format!(
            "Value provided in ExpressionAttributeNames unused in expressions: keys: {{{}}}",
            unused_names.join(", ")
        )));
    }
    let unused_values = unused(values.keys().collect(), &parser.used_values);
    if !unused_values.is_empty() {
        return Err(validation(format!(
            "Value provided in ExpressionAttributeValues unused in expressions: keys: {{{}}}",
            unused_values.join(", ")
        )));
    }
    Ok(Some(Box::new(move |current: Option<&Item>| {
        if evaluate(&condition, current) {
            Ok(())
        } else {
            Err(TablesError::ConditionFailed {
                item: current.map(|item| Box::new(item.clone())),
            })
        }
    })))
}

/// `ReturnValues` of PutItem and DeleteItem: whether to answer the old item.
fn returns_old(body: &Value, operation: &str) -> Result<bool, AwsError> {
    match string_member(body, "ReturnValues")? {
        None | Some("NONE") => Ok(false),
        Some("ALL_OLD") => Ok(true),
        Some(other) => Err(validation(format!(
            "ReturnValues can only be ALL_OLD or NONE for {operation}, got {other}"
        ))),
    }
}

/// Milliseconds as DynamoDB's epoch-seconds timestamps.
fn epoch_seconds(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

/// A stream's label: its creation time in ISO 8601 with milliseconds, as DynamoDB labels.
pub fn stream_label(created_ms: u64) -> String {
    let nanos = i128::from(created_ms) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|at| {
            at.format(time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]"
            ))
            .ok()
        })
        .unwrap_or_default()
}

pub fn table_arn(name: &str) -> String {
    format!("arn:aws:dynamodb:{REGION}:{ACCOUNT_ID}:table/{name}")
}

pub fn stream_arn(table: &str, created_ms: u64) -> String {
    format!("{}/stream/{}", table_arn(table), stream_label(created_ms))
}

/// DescribeTable's `Table` (and CreateTable's and DeleteTable's `TableDescription`).
/// A `KeySchema` as DescribeTable prints it.
fn key_schema_json(key: &KeySchema) -> Value {
    let mut key_schema = vec![json!({"AttributeName": key.partition.name, "KeyType": "HASH"})];
    if let Some(sort) = &key.sort {
        key_schema.push(json!({"AttributeName": sort.name, "KeyType": "RANGE"}));
    }
    Value::Array(key_schema)
}

/// One index as DescribeTable prints it, with its entry count and bytes.
fn index_json(table: &str, index: &SecondaryIndex, (count, bytes): (u64, u64)) -> Value {
    let mut projection = json!({"ProjectionType": index.projection.kind.as_str()});
    if index.projection.kind == ProjectionType::Include {
        projection["NonKeyAttributes"] = json!(index.projection.non_key_attributes);
    }
    let mut described = json!({
        "IndexName": index.name,
        "KeySchema": key_schema_json(&index.key_schema),
        "Projection": projection,
        "IndexSizeBytes": bytes,
        "ItemCount": count,
        "IndexArn": format!("{}/index/{}", table_arn(table), index.name),
    });
    if index.global {
        let (read, write) = index.provisioned_throughput.unwrap_or((0, 0));
        described["IndexStatus"] = json!("ACTIVE");
        described["ProvisionedThroughput"] = json!({
            "NumberOfDecreasesToday": 0,
            "ReadCapacityUnits": read,
            "WriteCapacityUnits": write,
        });
    }
    described
}

fn describe(description: &TableDescription, status: &str) -> Value {
    let definition = &description.definition;
    let key_schema = key_schema_json(&definition.key_schema);
    let (read, write) = definition.provisioned_throughput.unwrap_or((0, 0));
    let mut table = json!({
        "TableName": definition.name,
        "TableStatus": status,
        "TableArn": table_arn(&definition.name),
        "TableId": format!("00000000-0000-4000-8000-{:012x}", definition.table_id),
        "CreationDateTime": epoch_seconds(definition.created_ms),
        "AttributeDefinitions": definition.attribute_definitions.iter().map(|attribute| json!({
            "AttributeName": attribute.name,
            "AttributeType": attribute.scalar_type.as_str(),
        })).collect::<Vec<_>>(),
        "KeySchema": key_schema,
        "ProvisionedThroughput": {
            "NumberOfDecreasesToday": 0,
            "ReadCapacityUnits": read,
            "WriteCapacityUnits": write,
        },
        "TableSizeBytes": description.size_bytes,
        "ItemCount": description.item_count,
        "DeletionProtectionEnabled": false,
    });
    if definition.billing_mode == "PAY_PER_REQUEST" {
        table["BillingModeSummary"] = json!({"BillingMode": "PAY_PER_REQUEST"});
    }
    if let Some(stream) = &definition.stream {
        table["StreamSpecification"] =
            json!({"StreamEnabled": true, "StreamViewType": stream.view_type.as_str()});
        table["LatestStreamLabel"] = json!(stream_label(stream.created_ms));
        table["LatestStreamArn"] = json!(stream_arn(&definition.name, stream.created_ms));
    }
    for (member, global) in [
        ("LocalSecondaryIndexes", false),
        ("GlobalSecondaryIndexes", true),
    ] {
        let indexes: Vec<Value> = (definition.indexes.iter())
            .zip(&description.index_counts)
            .filter(|(index, _)| index.global == global)
            .map(|(index, counts)| index_json(&definition.name, index, *counts))
            .collect();
        if !indexes.is_empty() {
            table[member] = Value::Array(indexes);
        }
    }
    table
}

/// UpdateTable's `GlobalSecondaryIndexUpdates`, with the request's `AttributeDefinitions`.
fn index_updates(body: &Value, definition: &TableDefinition) -> Result<Vec<IndexUpdate>, AwsError> {
    let given = attribute_definitions(body, false)?;
    // A new index's keys are typed by the request's definitions, else by the table's.
    let mut known = given.clone();
    known.extend(
        (definition.attribute_definitions.iter())
            .filter(|attribute| !given.iter().any(|new| new.name == attribute.name))
            .cloned(),
    );
    let mut updates = Vec::new();
    for update in list_member(body, "GlobalSecondaryIndexUpdates", "")?.unwrap_or_default() {
        let actions: Vec<(&String, &Value)> = match &update {
            Value::Object(actions) => actions
                .iter()
                .filter(|(_, value)| !value.is_null())
                .collect(),
            _ => Vec::new(),
        };
        let [(action, details)] = actions.as_slice() else {
            return Err(validation(
                "One or more parameter values were invalid: One of GlobalSecondaryIndexUpdate.Create, GlobalSecondaryIndexUpdate.Update, or GlobalSecondaryIndexUpdate.Delete must be specified",
            ));
        };
        let index_name = || -> Result<String, AwsError> {
            Ok(string_member(details, "IndexName")?
                .ok_or_else(|| missing("globalSecondaryIndexUpdates.member.indexName"))?
                .to_owned())
        };
        updates.push(match action.as_str() {
            "Create" => IndexUpdate::Create {
                index: index_request(details, true, &known, &definition.billing_mode)?,
                attribute_definitions: given.clone(),
            },
            "Delete" => IndexUpdate::Delete(index_name()?),
            "Update" => {
                let throughput = details
                    .get("ProvisionedThroughput")
                    .filter(|throughput| !throughput.is_null())
                    .ok_or_else(|| {
                        missing("globalSecondaryIndexUpdates.member.update.provisionedThroughput")
                    })?;
                IndexUpdate::Update {
                    name: index_name()?,
                    provisioned_throughput: capacity_units(
                        throughput,
                        "globalSecondaryIndexUpdates.member.update.provisionedThroughput",
                    )?,
                }
            }
            other => {
                return Err(AwsError::client(
                    "SerializationException",
                    format!("unknown GlobalSecondaryIndexUpdate member {other}"),
                ));
            }
        });
    }
    if updates.is_empty() && !given.is_empty() {
        return Err(invalid_parameter(
            "AttributeDefinitions are given only with a GlobalSecondaryIndexUpdates Create",
        ));
    }
    Ok(updates)
}

/// A `StreamSpecification`: None when absent, `Some(None)` to disable, `Some(Some(view))` to
/// enable with that view type.
fn stream_specification(body: &Value) -> Result<Option<Option<StreamViewType>>, AwsError> {
    Ok(match body.get("StreamSpecification") {
        None | Some(Value::Null) => None,
        Some(specification) => {
            let enabled = specification
                .get("StreamEnabled")
                .and_then(Value::as_bool)
                .ok_or_else(|| missing("streamSpecification.streamEnabled"))?;
            let view_type = string_member(specification, "StreamViewType")?;
            Some(match (enabled, view_type) {
                (false, None) => None,
                (false, Some(_)) => {
                    return Err(invalid_parameter(
                        "StreamSpecification: StreamViewType cannot be specified when StreamEnabled is false",
                    ));
                }
                (true, None) => {
                    return Err(invalid_parameter(
                        "StreamSpecification: StreamViewType is required when StreamEnabled is true",
                    ));
                }
                (true, Some(view_type)) => Some(StreamViewType::parse(view_type).ok_or_else(|| {
                    validation(format!(
                        "1 validation error detected: Value '{view_type}' at 'streamSpecification.streamViewType' failed to satisfy constraint: Member must satisfy enum value set: [NEW_IMAGE, OLD_IMAGE, NEW_AND_OLD_IMAGES, KEYS_ONLY]"
                    ))
                })?),
            })
        }
    })
}

/// UpdateTimeToLive's `TimeToLiveSpecification`: the attribute name and whether TTL is to be
/// enabled.
fn time_to_live_specification(body: &Value) -> Result<(String, bool), AwsError> {
    let specification = match body.get("TimeToLiveSpecification") {
        None | Some(Value::Null) => return Err(missing("timeToLiveSpecification")),
        Some(specification @ Value::Object(_)) => specification,
        Some(_) => {
            return Err(AwsError::client(
                "SerializationException",
                "TimeToLiveSpecification must be an object",
            ));
        }
    };
    let attribute = string_member(specification, "AttributeName")?
        .ok_or_else(|| missing("timeToLiveSpecification.attributeName"))?;
    let enabled = match specification.get("Enabled") {
        None | Some(Value::Null) => return Err(missing("timeToLiveSpecification.enabled")),
        Some(Value::Bool(enabled)) => *enabled,
        Some(_) => {
            return Err(AwsError::client(
                "SerializationException",
                "Enabled must be a boolean",
            ));
        }
    };
    Ok((attribute.to_owned(), enabled))
}

/// DescribeTimeToLive's description of a table's TTL setting.
fn time_to_live_description(ttl_attribute: Option<&str>) -> Value {
    match ttl_attribute {
        Some(attribute) => json!({"TimeToLiveStatus": "ENABLED", "AttributeName": attribute}),
        None => json!({"TimeToLiveStatus": "DISABLED"}),
    }
}

/// A list member of a request: `Err(missing)` when absent and required.
fn list_member(body: &Value, member: &str, path: &str) -> Result<Option<Vec<Value>>, AwsError> {
    match body.get(member) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(elements)) => Ok(Some(elements.clone())),
        Some(_) => Err(AwsError::client(
            "SerializationException",
            format!("{member} must be a list"),
        )),
    }
    .and_then(|list| {
        if list.is_none() && !path.is_empty() {
            Err(missing(path))
        } else {
            Ok(list)
        }
    })
}

/// `AttributeDefinitions` of CreateTable or UpdateTable.
fn attribute_definitions(body: &Value, required: bool) -> Result<Vec<KeyAttribute>, AwsError> {
    let path = if required { "attributeDefinitions" } else { "" };
    let mut definitions = Vec::new();
    for definition in list_member(body, "AttributeDefinitions", path)?.unwrap_or_default() {
        let name = string_member(&definition, "AttributeName")?
            .ok_or_else(|| missing("attributeDefinitions.member.attributeName"))?;
        let type_name = string_member(&definition, "AttributeType")?
            .ok_or_else(|| missing("attributeDefinitions.member.attributeType"))?;
        let scalar_type = ScalarType::parse(type_name).ok_or_else(|| {
            validation(format!(
                "1 validation error detected: Value '{type_name}' at 'attributeDefinitions.1.member.attributeType' failed to satisfy constraint: Member must satisfy enum value set: [B, N, S]"
            ))
        })?;
        definitions.push(KeyAttribute {
            name: name.to_owned(),
            scalar_type,
        });
    }
    Ok(definitions)
}

/// A `KeySchema` (the table's or an index's), each attribute typed by its definition.
fn key_schema(
    elements: &[Value],
    definitions: &[KeyAttribute],
    path: &str,
) -> Result<KeySchema, AwsError> {
    if elements.is_empty() || elements.len() > 2 {
        return Err(validation(format!(
            "1 validation error detected: Value at '{path}' failed to satisfy constraint: Member must have length less than or equal to 2 and greater than or equal to 1"
        )));
    }
    let mut partition = None;
    let mut sort = None;
    for element in elements {
        let attribute = string_member(element, "AttributeName")?
            .ok_or_else(|| missing(&format!("{path}.member.attributeName")))?;
        let scalar_type = definitions
            .iter()
            .find(|definition| definition.name == attribute)
            .map(|definition| definition.scalar_type);
        let Some(scalar_type) = scalar_type else {
            return Err(invalid_parameter(format!(
                "Some index key attributes are not defined in AttributeDefinitions. Keys: [{attribute}], AttributeDefinitions: [{}]",
                definitions
                    .iter()
                    .map(|definition| definition.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        };
        let key = KeyAttribute {
            name: attribute.to_owned(),
            scalar_type,
        };
        match string_member(element, "KeyType")? {
            Some("HASH") if partition.is_none() => partition = Some(key),
            Some("RANGE") if sort.is_none() => sort = Some(key),
            Some("HASH" | "RANGE") => {
                return Err(invalid_parameter(
                    "Invalid KeySchema: Some index key attribute have no definition",
                ));
            }
            _ => {
                return Err(validation(format!(
                    "1 validation error detected: Value at '{path}.member.keyType' failed to satisfy constraint: Member must satisfy enum value set: [HASH, RANGE]"
                )));
            }
        }
    }
    let Some(partition) = partition else {
        return Err(invalid_parameter(
            "Invalid KeySchema: The first KeySchemaElement is not a HASH key type",
        ));
    };
    Ok(KeySchema { partition, sort })
}

/// Provisioned capacity `{ReadCapacityUnits, WriteCapacityUnits}`, each at least 1.
fn capacity_units(throughput: &Value, path: &str) -> Result<(u64, u64), AwsError> {
    let units = |member: &str| -> Result<u64, AwsError> {
        throughput
            .get(member)
            .and_then(Value::as_u64)
            .filter(|units| *units >= 1)
            .ok_or_else(|| {
                validation(format!(
                    "1 validation error detected: Value at '{path}.{member}' failed to satisfy constraint: Member must have value greater than or equal to 1"
                ))
            })
    };
    Ok((units("ReadCapacityUnits")?, units("WriteCapacityUnits")?))
}

/// One index of `LocalSecondaryIndexes`, `GlobalSecondaryIndexes` or a `Create` update.
fn index_request(
    index: &Value,
    global: bool,
    definitions: &[KeyAttribute],
    billing_mode: &str,
) -> Result<IndexRequest, AwsError> {
    let path = if global {
        "globalSecondaryIndexes.member"
    } else {
        "localSecondaryIndexes.member"
    };
    let name = string_member(index, "IndexName")?
        .ok_or_else(|| missing(&format!("{path}.indexName")))?
        .to_owned();
    let elements =
        list_member(index, "KeySchema", &format!("{path}.keySchema"))?.unwrap_or_default();
    let key_schema = key_schema(&elements, definitions, &format!("{path}.keySchema"))?;
    let projection = index
        .get("Projection")
        .filter(|projection| !projection.is_null())
        .ok_or_else(|| missing(&format!("{path}.projection")))?;
    let kind = match string_member(projection, "ProjectionType")? {
        Some(text) => ProjectionType::parse(text).ok_or_else(|| {
            validation(format!(
                "1 validation error detected: Value '{text}' at '{path}.projection.projectionType' failed to satisfy constraint: Member must satisfy enum value set: [ALL, INCLUDE, KEYS_ONLY]"
            ))
        })?,
        None => {
            return Err(invalid_parameter(
                "Unknown ProjectionType: null",
            ));
        }
    };
    let mut non_key_attributes = Vec::new();
    for attribute in list_member(projection, "NonKeyAttributes", "")?.unwrap_or_default() {
        let attribute = attribute.as_str().ok_or_else(|| {
            AwsError::client("SerializationException", "NonKeyAttributes must be strings")
        })?;
        non_key_attributes.push(attribute.to_owned());
    }
    let provisioned_throughput = match (index.get("ProvisionedThroughput"), global) {
        (None | Some(Value::Null), _) => None,
        (Some(_), false) => {
            return Err(invalid_parameter(
                "ProvisionedThroughput should not be specified for a local secondary index",
            ));
        }
        (Some(_), true) if billing_mode == "PAY_PER_REQUEST" => {
            return Err(invalid_parameter(
                "ProvisionedThroughput should not be specified for index: {name} when BillingMode is PAY_PER_REQUEST".replace("{name}", &name),
            ));
        }
        (Some(throughput), true) => Some(capacity_units(
            throughput,
            "globalSecondaryIndexes.member.provisionedThroughput",
        )?),
    };
    if global && billing_mode == "PROVISIONED" && provisioned_throughput.is_none() {
        return Err(invalid_parameter(format!(
            "ProvisionedThroughput must be specified for index: {name}"
        )));
    }
    Ok(IndexRequest {
        name,
        global,
        key_schema,
        projection: Projection {
            kind,
            non_key_attributes,
        },
        provisioned_throughput,
    })
}

/// CreateTable's request, checked as DynamoDB checks it.
fn create_request(body: &Value) -> Result<CreateTable, AwsError> {
    refuse_unsupported(body, &["SSESpecification"])?;
    let name = table_name(body)?;
    let attribute_definitions = attribute_definitions(body, true)?;
    let elements = list_member(body, "KeySchema", "keySchema")?.unwrap_or_default();
    let KeySchema { partition, sort } = key_schema(&elements, &attribute_definitions, "keySchema")?;
    let billing_mode = string_member(body, "BillingMode")?
        .unwrap_or("PROVISIONED")
        .to_owned();
    if billing_mode != "PROVISIONED" && billing_mode != "PAY_PER_REQUEST" {
        return Err(validation(format!(
            "1 validation error detected: Value '{billing_mode}' at 'billingMode' failed to satisfy constraint: Member must satisfy enum value set: [PROVISIONED, PAY_PER_REQUEST]"
        )));
    }
    let provisioned_throughput = match (body.get("ProvisionedThroughput"), billing_mode.as_str()) {
        (Some(throughput), "PROVISIONED") if !throughput.is_null() => {
            Some(capacity_units(throughput, "provisionedThroughput")?)
        }
        (None | Some(Value::Null), "PROVISIONED") => {
            return Err(invalid_parameter(
                "ReadCapacityUnits and WriteCapacityUnits must both be specified when BillingMode is PROVISIONED",
            ));
        }
        (Some(throughput), _) if !throughput.is_null() => {
            return Err(invalid_parameter(
                "Neither ReadCapacityUnits nor WriteCapacityUnits can be specified when BillingMode is PAY_PER_REQUEST",
            ));
        }
        _ => None,
    };
    let stream_view_type = stream_specification(body)?.flatten();
    let tags = tags(body, false)?;
    check_search_tag(&tags, stream_view_type)?;
    let mut indexes = Vec::new();
    for (member, global) in [
        ("LocalSecondaryIndexes", false),
        ("GlobalSecondaryIndexes", true),
    ] {
        for index in list_member(body, member, "")?.unwrap_or_default() {
            indexes.push(index_request(
                &index,
                global,
                &attribute_definitions,
                &billing_mode,
            )?);
        }
    }
    Ok(CreateTable {
        name,
        key_schema: KeySchema { partition, sort },
        attribute_definitions,
        billing_mode,
        provisioned_throughput,
        stream_view_type,
        indexes,
        tags,
    })
}

/// A `ProjectionExpression`: document paths (nested ones too), `#name` placeholders resolved.
fn projection(body: &Value) -> Result<Option<Vec<Vec<PathElement>>>, AwsError> {
    let Some(text) = string_member(body, "ProjectionExpression")? else {
        return Ok(None);
    };
    let (names, values) = placeholders(body)?;
    let rename = |error: TablesError| match error {
        TablesError::Validation(message) => validation(message.replacen(
            "Invalid ConditionExpression",
            "Invalid ProjectionExpression",
            1,
        )),
        other => tables_error(other),
    };
    let mut parser = Parser::new(text, &names, &values).map_err(rename)?;
    parser.projection().map(Some).map_err(rename)
}

/// `item` cut down to a projection, when there is one.
fn projected(item: Item, paths: Option<&[Vec<PathElement>]>) -> Item {
    match paths {
        Some(paths) => sluice_tables::expression::project(&item, paths),
        None => item,
    }
}

/// Parses one expression member (`FilterExpression`, `KeyConditionExpression`), its errors
/// naming that member as DynamoDB's do.
fn expression(body: &Value, member: &str) -> Result<Option<Condition>, AwsError> {
    let Some(text) = string_member(body, member)? else {
        return Ok(None);
    };
    let (names, values) = placeholders(body)?;
    let rename = |error: TablesError| match error {
        TablesError::Validation(message) => validation(message.replacen(
            "Invalid ConditionExpression",
            &format!("Invalid {member}"),
            1,
        )),
        other => tables_error(other),
    };
    let mut parser = Parser::new(text, &names, &values).map_err(rename)?;
    parser.condition().map(Some).map_err(rename)
}

/// Splits a `KeyConditionExpression` into the partition key's value and the sort key's
/// condition, refusing any other shape as DynamoDB does.
fn key_condition(
    condition: Condition,
    schema: &KeySchema,
) -> Result<(AttributeValue, Option<Condition>), AwsError> {
    let parts = match condition {
        Condition::And(left, right) => vec![*left, *right],
        single => vec![single],
    };
    let is_key = |path: &[PathElement], name: &str| matches!(path, [PathElement::Name(found)] if found == name);
    let mut partition = None;
    let mut sort = None;
    for part in parts {
        let partition_value = match &part {
            Condition::Compare(Operand::Path(path), Comparator::Eq, Operand::Value(value))
            | Condition::Compare(Operand::Value(value), Comparator::Eq, Operand::Path(path))
                if is_key(path, &schema.partition.name) =>
            {
                Some(value.clone())
            }
            _ => None,
        };
        if let Some(value) = partition_value {
            if partition.is_some() {
                return Err(validation(
                    "Invalid KeyConditionExpression: The key condition names the partition key twice",
                ));
            }
            if value.scalar_type() != Some(schema.partition.scalar_type) {
                return Err(invalid_parameter(
                    "Condition parameter type does not match schema type",
                ));
            }
            partition = Some(value);
            continue;
        }
        let Some(sort_key) = &schema.sort else {
            return Err(validation("Query key condition not supported"));
        };
        let on_sort_key = match &part {
            Condition::Compare(Operand::Path(path), comparator, Operand::Value(value)) => {
                *comparator != Comparator::Ne
                    && is_key(path, &sort_key.name)
                    && value.scalar_type() == Some(sort_key.scalar_type)
            }
            Condition::Between(Operand::Path(path), Operand::Value(low), Operand::Value(high)) => {
                is_key(path, &sort_key.name)
                    && low.scalar_type() == Some(sort_key.scalar_type)
                    && high.scalar_type() == Some(sort_key.scalar_type)
            }
            Condition::BeginsWith(Operand::Path(path), Operand::Value(prefix)) => {
                is_key(path, &sort_key.name)
                    && sort_key.scalar_type != sluice_tables::ScalarType::N
                    && prefix.scalar_type() == Some(sort_key.scalar_type)
            }
            _ => false,
        };
        if !on_sort_key || sort.is_some() {
            return Err(validation("Query key condition not supported"));
        }
        sort = Some(part);
    }
    let partition = partition.ok_or_else(|| {
        validation(format!(
            "Query condition missed key schema element: {}",
            schema.partition.name
        ))
    })?;
    Ok((partition, sort))
}

fn request_items(body: &Value) -> Result<&Map<String, Value>, AwsError> {
    match body.get("RequestItems") {
        Some(Value::Object(tables)) if !tables.is_empty() => Ok(tables),
        Some(Value::Object(_)) => Err(validation(
            "1 validation error detected: Value '{}' at 'requestItems' failed to satisfy constraint: Member must have length greater than or equal to 1",
        )),
        None | Some(Value::Null) => Err(missing("requestItems")),
        Some(_) => Err(AwsError::client(
            "SerializationException",
            "RequestItems must be a map",
        )),
    }
}

fn duplicates() -> AwsError {
    validation("Provided list of item keys contains duplicates")
}

/// BatchWriteItem's writes, in order, each with the request it came from (to hand back in
/// `UnprocessedItems`), refused whole as DynamoDB refuses them.
fn batch_writes(body: &Value) -> Result<Vec<(Write, Value)>, AwsError> {
    let mut writes = Vec::new();
    for (table, requests) in request_items(body)? {
        sluice_tables::validate_table_name(table).map_err(tables_error)?;
        let requests = requests.as_array().ok_or_else(|| {
            AwsError::client(
                "SerializationException",
                "each table's requests must be a list",
            )
        })?;
        for request in requests {
            let put = request.get("PutRequest").filter(|put| !put.is_null());
            let delete = request
                .get("DeleteRequest")
                .filter(|delete| !delete.is_null());
            let write = match (put, delete) {
                (Some(put), None) => Write::put(table.clone(), required_item(put, "Item", "item")?),
                (None, Some(delete)) => {
                    Write::delete(table.clone(), required_item(delete, "Key", "key")?)
                }
                _ => {
                    return Err(validation(
                        "A WriteRequest must contain exactly one of PutRequest and DeleteRequest",
                    ));
                }
            };
            writes.push((write, request.clone()));
            if writes.len() > BATCH_WRITE_ITEMS_MAX {
                return Err(validation(
                    "Too many items requested for the BatchWriteItem call",
                ));
            }
        }
    }
    Ok(writes)
}

/// BatchWriteItem's answer: the writes the full queue refused go back in `UnprocessedItems`,
/// under their table, as they were asked; when it refused every one, the call fails with
/// `ProvisionedThroughputExceededException`, as DynamoDB's does. Any other failure fails the
/// call (BatchWriteItem's puts and deletes are unconditional, so asking again is safe).
fn batch_write_answer(
    outcomes: impl IntoIterator<Item = ((String, Value), sluice_tables::Result<WriteOutcome>)>,
) -> Result<Value, AwsError> {
    let mut unprocessed = Map::new();
    let mut written = 0;
    for ((table, request), outcome) in outcomes {
        match outcome {
            Ok(_) => written += 1,
            Err(TablesError::Throttled) => {
                let requests = unprocessed
                    .entry(table)
                    .or_insert_with(|| Value::Array(Vec::new()));
                if let Value::Array(requests) = requests {
                    requests.push(request);
                }
            }
            Err(error) => return Err(tables_error(error)),
        }
    }
    if written == 0 && !unprocessed.is_empty() {
        return Err(throughput_exceeded());
    }
    Ok(json!({"UnprocessedItems": unprocessed}))
}

/// An update's actions, the top-level attributes they touch, and its condition.
type ParsedUpdate = (
    Vec<UpdateAction>,
    BTreeSet<String>,
    Option<sluice_tables::Check>,
);

/// UpdateItem's `UpdateExpression` (and `ConditionExpression`, sharing the placeholders): the
/// actions, the top-level attributes they touch, and the condition as a check. Actions on key
/// attributes are refused.
fn parse_update(body: &Value, schema: &KeySchema) -> Result<ParsedUpdate, AwsError> {
    let text = string_member(body, "UpdateExpression")?.ok_or_else(|| {
        validation(
            "Sluice needs an UpdateExpression in UpdateItem (AttributeUpdates is not supported)",
        )
    })?;
    let (names, values) = placeholders(body)?;
    let rename = |error: TablesError| match error {
        TablesError::Validation(message) => validation(message.replacen(
            "Invalid ConditionExpression",
            "Invalid UpdateExpression",
            1,
        )),
        other => tables_error(other),
    };
    let mut parser = Parser::new(text, &names, &values).map_err(rename)?;
    let actions = parser.update().map_err(rename)?;
    let mut touched = BTreeSet::new();
    for action in &actions {
        let (UpdateAction::Set(path, _)
        | UpdateAction::Remove(path)
        | UpdateAction::Add(path, _)
        | UpdateAction::Delete(path, _)) = action;
        if let Some(PathElement::Name(top)) = path.first() {
            if *top == schema.partition.name
                || schema.sort.as_ref().is_some_and(|sort| sort.name == *top)
            {
                return Err(invalid_parameter(format!(
                    "Cannot update attribute {top}. This attribute is part of the key"
                )));
            }
            touched.insert(top.clone());
        }
    }
    let check = condition_check_with(body, &parser.used_names, &parser.used_values)?;
    Ok((actions, touched, check))
}

/// TransactItems of TransactWriteItems and TransactGetItems, bounded.
fn transact_items(body: &Value) -> Result<&Vec<Value>, AwsError> {
    let items = body
        .get("TransactItems")
        .and_then(Value::as_array)
        .ok_or_else(|| missing("transactItems"))?;
    if items.is_empty() || items.len() > TRANSACT_ITEMS_MAX {
        return Err(validation(format!(
            "1 validation error detected: Value at 'transactItems' failed to satisfy constraint: Member must have length less than or equal to {TRANSACT_ITEMS_MAX} and greater than or equal to 1"
        )));
    }
    Ok(items)
}

/// One member of TransactWriteItems as a write.
fn transact_write(member: &Value, tables: &Tables) -> Result<Write, AwsError> {
    let Value::Object(kinds) = member else {
        return Err(AwsError::client(
            "SerializationException",
            "a TransactItem must be an object",
        ));
    };
    let mut present = kinds.iter().filter(|(_, value)| !value.is_null());
    let (Some((kind, request)), None) = (present.next(), present.next()) else {
        return Err(validation(
            "TransactItems can only contain one of Check, Put, Update or Delete",
        ));
    };
    refuse_unsupported(request, &["ReturnValuesOnConditionCheckFailure"])?;
    let table = table_name(request)?;
    Ok(match kind.as_str() {
        "Put" => {
            let mut write = Write::put(table, required_item(request, "Item", "item")?);
            write.check = condition_check(request)?;
            write
        }
        "Delete" => {
            let mut write = Write::delete(table, required_item(request, "Key", "key")?);
            write.check = condition_check(request)?;
            write
        }
        "ConditionCheck" => {
            let check = condition_check(request)?.ok_or_else(|| missing("conditionExpression"))?;
            Write {
                table,
                key: required_item(request, "Key", "key")?,
                change: sluice_tables::Change::ConditionCheck,
                check: Some(check),
            }
        }
        "Update" => {
            let key = required_item(request, "Key", "key")?;
            let schema = tables
                .definition(&table)
                .map_err(tables_error)?
                .key_schema
                .clone();
            let (actions, _, check) = parse_update(request, &schema)?;
            Write {
                table,
                key,
                change: sluice_tables::Change::Update(actions),
                check,
            }
        }
        other => {
            return Err(AwsError::client(
                "SerializationException",
                format!("unknown TransactItem kind {other}"),
            ));
        }
    })
}

/// What a Scan or Query answers of each item (`Select`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Select {
    AllAttributes,
    AllProjected,
    Specific,
    Count,
}

/// Scan's request: paging, parallel segments, the index, and `Select` (checked against the
/// index by [`resolve_index`]).
fn scan_request(body: &Value) -> Result<(ScanRequest, Option<Select>), AwsError> {
    refuse_unsupported(
        body,
        &["ScanFilter", "AttributesToGet", "ConditionalOperator"],
    )?;
    let integer = |member: &str| -> Result<Option<u64>, AwsError> {
        match body.get(member) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => value.as_u64().map(Some).ok_or_else(|| {
                AwsError::client(
                    "SerializationException",
                    format!("{member} must be a non-negative integer"),
                )
            }),
        }
    };
    let limit = match integer("Limit")? {
        Some(0) => {
            return Err(validation(
                "1 validation error detected: Value '0' at 'limit' failed to satisfy constraint: Member must have value greater than or equal to 1",
            ));
        }
        limit => limit.map(|limit| usize::try_from(limit).unwrap_or(usize::MAX)),
    };
    let segment = match (integer("Segment")?, integer("TotalSegments")?) {
        (None, None) => None,
        (Some(_), None) => {
            return Err(validation(
                "The TotalSegments parameter is required but was not present in the request when Segment parameter is present",
            ));
        }
        (None, Some(_)) => {
            return Err(validation(
                "The Segment parameter is required but was not present in the request when parameter TotalSegments is present",
            ));
        }
        (Some(_), Some(total)) if total == 0 || total > u64::from(SCAN_SEGMENTS_MAX) => {
            return Err(validation(format!(
                "1 validation error detected: Value '{total}' at 'totalSegments' failed to satisfy constraint: Member must have value less than or equal to {SCAN_SEGMENTS_MAX} and greater than or equal to 1"
            )));
        }
        (Some(segment), Some(total)) if segment >= total => {
            return Err(validation(format!(
                "The Segment parameter is zero-based and must be less than parameter TotalSegments: Segment: {segment} is not less than TotalSegments: {total}"
            )));
        }
        // Both bounded by SCAN_SEGMENTS_MAX above.
        (Some(segment), Some(total)) => Some((segment as u32, total as u32)),
    };
    let select = match string_member(body, "Select")? {
        None => None,
        Some("ALL_ATTRIBUTES") => Some(Select::AllAttributes),
        Some("ALL_PROJECTED_ATTRIBUTES") => Some(Select::AllProjected),
        Some("SPECIFIC_ATTRIBUTES") => Some(Select::Specific),
        Some("COUNT") => Some(Select::Count),
        Some(other) => {
            return Err(validation(format!(
                "1 validation error detected: Value '{other}' at 'select' failed to satisfy constraint: Member must satisfy enum value set: [SPECIFIC_ATTRIBUTES, COUNT, ALL_ATTRIBUTES, ALL_PROJECTED_ATTRIBUTES]"
            )));
        }
    };
    let exclusive_start_key = match body.get("ExclusiveStartKey") {
        None | Some(Value::Null) => None,
        Some(key) => Some(item(key)?),
    };
    let index = string_member(body, "IndexName")?.map(str::to_owned);
    Ok((
        ScanRequest {
            exclusive_start_key,
            limit,
            segment,
            filter: expression(body, "FilterExpression")?,
            index,
            fetch_items: false,
        },
        select,
    ))
}

/// Checks a Scan's or Query's `IndexName`, `Select`, `ConsistentRead` and projection against
/// the table as DynamoDB does, and decides whether a local index must read whole items from
/// the table. Answers whether only a count is asked.
fn resolve_index(
    body: &Value,
    definition: &TableDefinition,
    scan: &mut ScanRequest,
    select: Option<Select>,
    projected: Option<&[Vec<PathElement>]>,
) -> Result<bool, AwsError> {
    let consistent = matches!(body.get("ConsistentRead"), Some(Value::Bool(true)));
    let Some(name) = &scan.index else {
        if select == Some(Select::AllProjected) {
            return Err(validation(
                "One or more parameter values were invalid: Select type ALL_PROJECTED_ATTRIBUTES is not supported for a table; it is for an IndexName",
            ));
        }
        return Ok(select == Some(Select::Count));
    };
    let index = definition.index(name).map_err(tables_error)?;
    if index.global && consistent {
        return Err(validation(
            "Consistent reads are not supported on global secondary indexes",
        ));
    }
    let projects_all = index.projection.kind == ProjectionType::All;
    if select == Some(Select::AllAttributes) && index.global && !projects_all {
        return Err(validation(format!(
            "One or more parameter values were invalid: Select type ALL_ATTRIBUTES is not supported for global secondary index {name} because its projection type is not ALL"
        )));
    }
    if !index.global && !projects_all {
        // A local index reads what its projection lacks from the table, as DynamoDB does.
        let in_projection = |path: &Vec<PathElement>| {
            let Some(PathElement::Name(attribute)) = path.first() else {
                return false;
            };
            index.projection.non_key_attributes.contains(attribute)
                || [&definition.key_schema, &index.key_schema]
                    .iter()
                    .any(|schema| {
                        schema.partition.name == *attribute
                            || schema
                                .sort
                                .as_ref()
                                .is_some_and(|sort| sort.name == *attribute)
                    })
        };
        scan.fetch_items = select == Some(Select::AllAttributes)
            || projected.is_some_and(|paths| !paths.iter().all(in_projection));
    }
    Ok(select == Some(Select::Count))
}

/// The DynamoDB API over the node's tables.
pub struct DynamoDbService {
    tables: Arc<Tables>,
    in_flight: Arc<Semaphore>,
}

impl DynamoDbService {
    pub fn new(tables: Arc<Tables>) -> DynamoDbService {
        DynamoDbService {
            tables,
            in_flight: Arc::new(Semaphore::new(IN_FLIGHT_CALLS_MAX)),
        }
    }

    /// Runs table work on a blocking thread, within the in-flight bound.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Tables) -> Result<T, TablesError> + Send + 'static,
    ) -> Result<T, AwsError> {
        let permit = self
            .in_flight
            .clone()
            .try_acquire_owned()
            .map_err(|_| throughput_exceeded())?;
        let tables = self.tables.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work(&tables)
        })
        .await
        .map_err(|error| AwsError::internal(format!("worker failed: {error}")))?
        .map_err(tables_error)
    }

    /// Applies writes through the tables' group commit, within the in-flight bound, and answers
    /// each one's outcome in order (see [`Tables::write_batch`]).
    ///
    /// A call that waits for a group holds no thread: its outcomes come back through a channel.
    /// A call that finds nobody committing leads: it commits one group, its own, on this
    /// worker's thread, so an idle table's write pays no thread hand-off before its log write
    /// or after it. `block_in_place` first hands the worker's other tasks to another thread
    /// (13 µs p50 per call): the group waits for the disk, and tokio polls the sockets only from
    /// a worker that parks, so a worker waiting on a write would leave every connection of every
    /// service unread until the disk answered. Writes that queued meanwhile are then committed
    /// on a blocking-pool thread, so this call answers without waiting for them.
    async fn write_batch(
        &self,
        writes: Vec<Write>,
    ) -> Result<Vec<Result<WriteOutcome, TablesError>>, AwsError> {
        let permit = self
            .in_flight
            .clone()
            .try_acquire_owned()
            .map_err(|_| throughput_exceeded())?;
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let deliver: sluice_tables::Deliver = Box::new(move |outcomes| {
            // A caller that went away (its client disconnected) no longer wants them.
            let _ = sender.send(outcomes);
        });
        // Checking and encoding the writes is CPU work of a few microseconds: done here.
        let submitted = self.tables.submit(writes, deliver).map_err(tables_error)?;
        if submitted == Submitted::Lead {
            LeadTurn::new(self.tables.clone(), Tables::lead).lead_one_group();
        }
        let outcomes = receiver
            .await
            .map_err(|_| AwsError::internal("a write lost its outcome"))?;
        drop(permit);
        Ok(outcomes)
    }

    /// One write through [`DynamoDbService::write_batch`].
    async fn write(&self, write: Write) -> Result<WriteOutcome, AwsError> {
        self.write_batch(vec![write])
            .await?
            .pop()
            .unwrap_or_else(|| Err(TablesError::Storage("a write lost its outcome".to_owned())))
            .map_err(tables_error)
    }

    async fn dispatch(&self, operation: &str, body: Value) -> Result<Value, AwsError> {
        match operation {
            "CreateTable" => {
                let request = create_request(&body)?;
                let description = self
                    .blocking(move |tables| tables.create_table(request))
                    .await?;
                Ok(json!({"TableDescription": describe(&description, "ACTIVE")}))
            }
            "DescribeTable" => {
                let name = table_name(&body)?;
                let lookup = name.clone();
                let description = self
                    .blocking(move |tables| tables.describe_table(&lookup))
                    .await
                    .map_err(|error| {
                        if error.kind == NOT_FOUND {
                            AwsError::client(
                                NOT_FOUND,
                                format!("Requested resource not found: Table: {name} not found"),
                            )
                        } else {
                            error
                        }
                    })?;
                Ok(json!({"Table": describe(&description, "ACTIVE")}))
            }
            "ListTables" => {
                let limit = match body.get("Limit") {
                    None | Some(Value::Null) => LIST_TABLES_PAGE_MAX,
                    Some(limit) => limit
                        .as_u64()
                        .filter(|limit| (1..=LIST_TABLES_PAGE_MAX as u64).contains(limit))
                        .ok_or_else(|| {
                            validation(
                                "1 validation error detected: Value at 'limit' failed to satisfy constraint: Member must have value less than or equal to 100 and greater than or equal to 1",
                            )
                        })? as usize,
                };
                let start = string_member(&body, "ExclusiveStartTableName")?;
                let (names, last) = self.tables.list_tables(start, limit);
                let mut answer = json!({"TableNames": names});
                if let Some(last) = last {
                    answer["LastEvaluatedTableName"] = json!(last);
                }
                Ok(answer)
            }
            "UpdateTable" => {
                refuse_unsupported(
                    &body,
                    &[
                        "ProvisionedThroughput",
                        "BillingMode",
                        "SSESpecification",
                        "ReplicaUpdates",
                    ],
                )?;
                let name = table_name(&body)?;
                let definition = self.tables.definition(&name).map_err(tables_error)?;
                let index_updates = index_updates(&body, &definition)?;
                let view_type = stream_specification(&body)?;
                if view_type.is_none() && index_updates.is_empty() {
                    return Err(validation(
                        "At least one of ProvisionedThroughput, BillingMode, UpdateStreamEnabled, GlobalSecondaryIndexUpdates or SSESpecification or ReplicaUpdates is required",
                    ));
                }
                let description = self
                    .blocking(move |tables| {
                        let mut description = None;
                        if !index_updates.is_empty() {
                            description = Some(tables.update_indexes(&name, index_updates)?);
                        }
                        match view_type {
                            Some(view_type) => tables.update_stream(&name, view_type),
                            None => description.map_or_else(|| tables.describe_table(&name), Ok),
                        }
                    })
                    .await?;
                Ok(json!({"TableDescription": describe(&description, "ACTIVE")}))
            }
            "TagResource" => {
                let name = arn_table(&body)?;
                let set = tags(&body, true)?;
                let definition = self.tables.definition(&name).map_err(tables_error)?;
                check_search_tag(
                    &set,
                    definition.stream.as_ref().map(|stream| stream.view_type),
                )?;
                self.blocking(move |tables| tables.update_tags(&name, set, &[]))
                    .await?;
                Ok(json!({}))
            }
            "UntagResource" => {
                let name = arn_table(&body)?;
                let keys = list_member(&body, "TagKeys", "tagKeys")?.unwrap_or_default();
                let keys: Vec<String> = keys
                    .iter()
                    .map(|key| key.as_str().map(str::to_owned))
                    .collect::<Option<_>>()
                    .ok_or_else(|| {
                        AwsError::client("SerializationException", "TagKeys must be strings")
                    })?;
                self.blocking(move |tables| tables.update_tags(&name, BTreeMap::new(), &keys))
                    .await?;
                Ok(json!({}))
            }
            "ListTagsOfResource" => {
                let name = arn_table(&body)?;
                let definition = self.tables.definition(&name).map_err(tables_error)?;
                let tags: Vec<Value> = (definition.tags.iter())
                    .map(|(key, value)| json!({"Key": key, "Value": value}))
                    .collect();
                Ok(json!({"Tags": tags}))
            }
            "UpdateTimeToLive" => {
                let name = table_name(&body)?;
                let (attribute, enabled) = time_to_live_specification(&body)?;
                let answer = json!({"TimeToLiveSpecification": {
                    "AttributeName": attribute,
                    "Enabled": enabled,
                }});
                self.blocking(move |tables| tables.update_time_to_live(&name, &attribute, enabled))
                    .await?;
                Ok(answer)
            }
            "DescribeTimeToLive" => {
                let name = table_name(&body)?;
                let definition = self.tables.definition(&name).map_err(tables_error)?;
                Ok(json!({
                    "TimeToLiveDescription":
                        time_to_live_description(definition.ttl_attribute.as_deref()),
                }))
            }
            "DeleteTable" => {
                let name = table_name(&body)?;
                let description = self
                    .blocking(move |tables| tables.delete_table(&name))
                    .await?;
                Ok(json!({"TableDescription": describe(&description, "DELETING")}))
            }
            "PutItem" => {
                refuse_unsupported(&body, &["Expected", "ConditionalOperator"])?;
                let name = table_name(&body)?;
                let item = required_item(&body, "Item", "item")?;
                let return_old = returns_old(&body, "PutItem")?;
                let mut write = Write::put(name, item);
                write.check = condition_check(&body)?;
                let outcome = self.write(write).await?;
                Ok(match outcome.old {
                    Some(old) if return_old => json!({"Attributes": item_json(&old)}),
                    _ => json!({}),
                })
            }
            "GetItem" => {
                refuse_unsupported(&body, &["AttributesToGet"])?;
                let name = table_name(&body)?;
                let key = required_item(&body, "Key", "key")?;
                let paths = projection(&body)?;
                // One item by its key: a B-tree lookup of a few microseconds, read on this
                // worker. A hop to the blocking pool and back cost more than the read.
                let found = self.tables.get_item(&name, &key).map_err(tables_error)?;
                Ok(match found {
                    None => json!({}),
                    Some(item) => {
                        json!({"Item": item_json(&projected(item, paths.as_deref()))})
                    }
                })
            }
            "DeleteItem" => {
                refuse_unsupported(&body, &["Expected", "ConditionalOperator"])?;
                let name = table_name(&body)?;
                let key = required_item(&body, "Key", "key")?;
                let return_old = returns_old(&body, "DeleteItem")?;
                let mut write = Write::delete(name, key);
                write.check = condition_check(&body)?;
                let outcome = self.write(write).await?;
                Ok(match outcome.old {
                    Some(old) if return_old => json!({"Attributes": item_json(&old)}),
                    _ => json!({}),
                })
            }
            "Scan" | "Query" => {
                let name = table_name(&body)?;
                let (mut scan, select) = scan_request(&body)?;
                let paths = projection(&body)?;
                let definition = self.tables.definition(&name).map_err(tables_error)?;
                let count_only =
                    resolve_index(&body, &definition, &mut scan, select, paths.as_deref())?;
                let page = if operation == "Scan" {
                    self.blocking(move |tables| tables.scan(&name, &scan))
                        .await?
                } else {
                    refuse_unsupported(&body, &["KeyConditions", "QueryFilter"])?;
                    if scan.segment.is_some() {
                        return Err(validation("Segment and TotalSegments are Scan parameters"));
                    }
                    let condition = expression(&body, "KeyConditionExpression")?.ok_or_else(|| {
                        validation("Either the KeyConditions or KeyConditionExpression parameter must be specified in the request.")
                    })?;
                    let key_schema = match &scan.index {
                        Some(index) => &definition.index(index).map_err(tables_error)?.key_schema,
                        None => &definition.key_schema,
                    };
                    let (partition, key_condition) = key_condition(condition, key_schema)?;
                    let forward = match body.get("ScanIndexForward") {
                        None | Some(Value::Null) => true,
                        Some(Value::Bool(forward)) => *forward,
                        Some(_) => {
                            return Err(AwsError::client(
                                "SerializationException",
                                "ScanIndexForward must be a boolean",
                            ));
                        }
                    };
                    let request = QueryRequest {
                        partition,
                        key_condition,
                        filter: scan.filter,
                        forward,
                        exclusive_start_key: scan.exclusive_start_key,
                        limit: scan.limit,
                        index: scan.index,
                        fetch_items: scan.fetch_items,
                    };
                    self.blocking(move |tables| tables.query(&name, &request))
                        .await?
                };
                let mut answer =
                    json!({"Count": page.items.len(), "ScannedCount": page.scanned_count});
                if !count_only {
                    answer["Items"] = page
                        .items
                        .into_iter()
                        .map(|item| item_json(&projected(item, paths.as_deref())))
                        .collect();
                }
                if let Some(key) = page.last_evaluated_key {
                    answer["LastEvaluatedKey"] = item_json(&key);
                }
                Ok(answer)
            }
            "BatchWriteItem" => {
                let (writes, requests): (Vec<Write>, Vec<Value>) =
                    batch_writes(&body)?.into_iter().unzip();
                // Two writes of one key in a batch are refused, as DynamoDB refuses them.
                let mut seen = BTreeSet::new();
                for write in &writes {
                    let definition = self.tables.definition(&write.table).map_err(tables_error)?;
                    let key = match &write.change {
                        sluice_tables::Change::Put(item) => definition.key_schema.project_key(item),
                        _ => write.key.clone(),
                    };
                    if !seen.insert((write.table.clone(), format!("{key:?}"))) {
                        return Err(duplicates());
                    }
                }
                let tables: Vec<String> = writes.iter().map(|write| write.table.clone()).collect();
                let outcomes = self.write_batch(writes).await?;
                batch_write_answer(tables.into_iter().zip(requests).zip(outcomes))
            }
            "BatchGetItem" => {
                let mut requests = Vec::new();
                let mut count = 0;
                for (table, request) in request_items(&body)? {
                    sluice_tables::validate_table_name(table).map_err(tables_error)?;
                    refuse_unsupported(request, &["AttributesToGet"])?;
                    let keys = request
                        .get("Keys")
                        .and_then(Value::as_array)
                        .ok_or_else(|| missing("requestItems.member.keys"))?;
                    count += keys.len();
                    if count > BATCH_GET_KEYS_MAX {
                        return Err(validation(
                            "Too many items requested for the BatchGetItem call",
                        ));
                    }
                    let keys: Vec<Item> = keys.iter().map(item).collect::<Result<_, _>>()?;
                    let distinct: BTreeSet<String> =
                        keys.iter().map(|key| format!("{key:?}")).collect();
                    if distinct.len() != keys.len() {
                        return Err(duplicates());
                    }
                    requests.push((table.clone(), keys, projection(request)?, request.clone()));
                }
                let found = self
                    .blocking(move |tables| {
                        let mut answers = Vec::new();
                        let mut bytes = 0;
                        for (table, keys, paths, request) in requests {
                            let mut items = Vec::new();
                            let mut unprocessed = Vec::new();
                            for key in keys {
                                if bytes >= BATCH_GET_BYTES_MAX {
                                    unprocessed.push(key);
                                    continue;
                                }
                                if let Some(item) = tables.get_item(&table, &key)? {
                                    bytes += sluice_tables::item_size_bytes(&item);
                                    items.push(projected(item, paths.as_deref()));
                                }
                            }
                            answers.push((table, items, unprocessed, request));
                        }
                        Ok(answers)
                    })
                    .await?;
                let mut responses = Map::new();
                let mut unprocessed_keys = Map::new();
                for (table, items, unprocessed, mut request) in found {
                    responses.insert(
                        table.clone(),
                        Value::Array(items.iter().map(item_json).collect()),
                    );
                    if !unprocessed.is_empty() {
                        request["Keys"] = Value::Array(unprocessed.iter().map(item_json).collect());
                        unprocessed_keys.insert(table, request);
                    }
                }
                Ok(json!({"Responses": responses, "UnprocessedKeys": unprocessed_keys}))
            }
            "TransactWriteItems" => {
                let writes: Vec<Write> = transact_items(&body)?
                    .iter()
                    .map(|member| transact_write(member, &self.tables))
                    .collect::<Result<_, _>>()?;
                self.blocking(move |tables| tables.transact_write(writes))
                    .await?;
                Ok(json!({}))
            }
            "TransactGetItems" => {
                let mut keys = Vec::new();
                let mut projections = Vec::new();
                for member in transact_items(&body)? {
                    let get = member
                        .get("Get")
                        .filter(|get| !get.is_null())
                        .ok_or_else(|| missing("transactItems.member.get"))?;
                    keys.push((table_name(get)?, required_item(get, "Key", "key")?));
                    projections.push(projection(get)?);
                }
                let found = self.blocking(move |tables| tables.get_items(&keys)).await?;
                let responses: Vec<Value> = found
                    .into_iter()
                    .zip(projections)
                    .map(|(item, paths)| match item {
                        None => json!({}),
                        Some(item) => {
                            json!({"Item": item_json(&projected(item, paths.as_deref()))})
                        }
                    })
                    .collect();
                Ok(json!({"Responses": responses}))
            }
            "UpdateItem" => {
                refuse_unsupported(
                    &body,
                    &["AttributeUpdates", "Expected", "ConditionalOperator"],
                )?;
                let name = table_name(&body)?;
                let key = required_item(&body, "Key", "key")?;
                let schema = self
                    .tables
                    .definition(&name)
                    .map_err(tables_error)?
                    .key_schema
                    .clone();
                let (actions, touched, check) = parse_update(&body, &schema)?;
                let returns = string_member(&body, "ReturnValues")?
                    .unwrap_or("NONE")
                    .to_owned();
                if !matches!(
                    returns.as_str(),
                    "NONE" | "ALL_OLD" | "UPDATED_OLD" | "ALL_NEW" | "UPDATED_NEW"
                ) {
                    return Err(validation(format!(
                        "1 validation error detected: Value '{returns}' at 'returnValues' failed to satisfy constraint: Member must satisfy enum value set: [ALL_NEW, UPDATED_OLD, ALL_OLD, NONE, UPDATED_NEW]"
                    )));
                }
                let write = sluice_tables::Write {
                    table: name,
                    key,
                    change: sluice_tables::Change::Update(actions),
                    check,
                };
                let outcome = self.write(write).await?;
                let only_touched = |item: Option<Item>| -> Option<Item> {
                    item.map(|mut item| {
                        item.retain(|name, _| touched.contains(name));
                        item
                    })
                };
                let attributes = match returns.as_str() {
                    "ALL_OLD" => outcome.old,
                    "UPDATED_OLD" => only_touched(outcome.old),
                    "ALL_NEW" => outcome.new,
                    "UPDATED_NEW" => only_touched(outcome.new),
                    _ => None,
                };
                Ok(match attributes {
                    Some(attributes) if !attributes.is_empty() => {
                        json!({"Attributes": item_json(&attributes)})
                    }
                    _ => json!({}),
                })
            }
            other => Err(AwsError::client(
                "UnknownOperationException",
                format!("unknown operation {other}"),
            )),
        }
    }
}

impl JsonService for DynamoDbService {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A request told to lead the write queue that unwinds before leading (its turn dropped
    /// unused) hands the turn to a blocking-pool thread: the writes queued behind it commit, and
    /// later writes are not left waiting for a leader that is gone.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_turn_to_lead_dropped_unused_is_handed_on() {
        let dir = tempfile::tempdir().unwrap();
        let tables = Arc::new(Tables::open(dir.path(), Arc::new(sluice_log::SystemClock)).unwrap());
        let service = DynamoDbService::new(tables.clone());
        service
            .call(
                "CreateTable",
                json!({
                    "TableName": "turns",
                    "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
                    "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
                    "BillingMode": "PAY_PER_REQUEST",
                }),
            )
            .await
            .unwrap();
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let item = Item::from([("id".to_owned(), AttributeValue::S("first".to_owned()))]);
        let submitted = tables
            .submit(
                vec![Write::put("turns", item)],
                Box::new(move |outcomes| {
                    let _ = sender.send(outcomes);
                }),
            )
            .unwrap();
        assert_eq!(submitted, Submitted::Lead);
        drop(LeadTurn::new(tables.clone(), Tables::lead));
        // A deadline only so that a lost turn fails the test instead of hanging it.
        let outcomes = tokio::time::timeout(std::time::Duration::from_secs(120), receiver)
            .await
            .expect("nobody committed the queued write")
            .unwrap();
        assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
        // The turn was given up once the queue was empty: the next write leads itself.
        service
            .call(
                "PutItem",
                json!({"TableName": "turns", "Item": {"id": {"S": "second"}}}),
            )
            .await
            .unwrap();
        for id in ["first", "second"] {
            let found = service
                .call(
                    "GetItem",
                    json!({"TableName": "turns", "Key": {"id": {"S": id}}}),
                )
                .await
                .unwrap();
            assert_eq!(found["Item"]["id"]["S"], id, "{found}");
        }
    }

    #[test]
    fn batch_writes_the_full_queue_refused_come_back_as_unprocessed_items() {
        let written = || {
            Ok(WriteOutcome {
                old: None,
                new: None,
                sequence: None,
            })
        };
        let put = |id: &str| json!({"PutRequest": {"Item": {"id": {"S": id}}}});
        let delete = |id: &str| json!({"DeleteRequest": {"Key": {"id": {"S": id}}}});
        let answer = batch_write_answer([
            (("a".to_owned(), put("1")), written()),
            (("b".to_owned(), delete("2")), written()),
            (("b".to_owned(), put("3")), Err(TablesError::Throttled)),
            (("a".to_owned(), delete("4")), Err(TablesError::Throttled)),
            (("b".to_owned(), delete("5")), Err(TablesError::Throttled)),
        ])
        .unwrap();
        assert_eq!(
            answer,
            json!({"UnprocessedItems": {
                "a": [delete("4")],
                "b": [put("3"), delete("5")],
            }})
        );
        let everything = batch_write_answer([((("a".to_owned()), put("1")), written())]).unwrap();
        assert_eq!(everything, json!({"UnprocessedItems": {}}));

        // Nothing taken: the call is throttled whole, which the SDKs retry.
        let error = batch_write_answer([
            (("a".to_owned(), put("1")), Err(TablesError::Throttled)),
            (("a".to_owned(), put("2")), Err(TablesError::Throttled)),
        ])
        .unwrap_err();
        assert_eq!(error.kind, THROUGHPUT_EXCEEDED);
        // Any other failure fails the call.
        let error = batch_write_answer([
            (("a".to_owned(), put("1")), written()),
            (
                ("a".to_owned(), put("2")),
                Err(TablesError::Storage("disk".to_owned())),
            ),
        ])
        .unwrap_err();
        assert_eq!(error.kind, INTERNAL);
    }

    #[test]
    fn attribute_values_round_trip_through_json() {
        let json = json!({
            "s": {"S": "text"}, "n": {"N": "012.50"}, "b": {"B": "AAEC"},
            "t": {"BOOL": true}, "z": {"NULL": true},
            "m": {"M": {"inner": {"L": [{"N": "1"}, {"SS": ["b", "a"]}]}}},
            "ns": {"NS": ["2", "10"]}, "bs": {"BS": ["AQ=="]},
        });
        let parsed = item(&json).unwrap();
        let back = item_json(&parsed);
        assert_eq!(back["n"], json!({"N": "12.5"}));
        assert_eq!(back["m"]["M"]["inner"]["L"][1], json!({"SS": ["a", "b"]}));
        assert_eq!(item(&back).unwrap(), parsed);
    }

    #[test]
    fn bad_attribute_values_get_dynamodbs_texts() {
        let message = |value: Value| attribute_value(&value).unwrap_err().message;
        assert!(message(json!({})).starts_with("Supplied AttributeValue is empty"));
        assert!(message(json!({"S": "a", "N": "1"})).contains("more than one datatypes"));
        assert_eq!(
            message(json!({"SS": ["a", "a"]})),
            "One or more parameter values were invalid: Input collection [a, a] contains duplicates."
        );
        assert_eq!(
            message(json!({"SS": []})),
            "One or more parameter values were invalid: An string set  may not be empty"
        );
        assert_eq!(
            message(json!({"N": "x"})),
            "A value provided cannot be converted into a number"
        );
        assert_eq!(
            message(json!({"NULL": false})),
            "One or more parameter values were invalid: Null attribute value types must have the value of true"
        );
    }

    #[test]
    fn stream_labels_are_iso_8601_with_milliseconds() {
        assert_eq!(stream_label(1_700_000_000_123), "2023-11-14T22:13:20.123");
    }
}
