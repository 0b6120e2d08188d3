//! The QLDB control plane (REST-JSON, as boto3's `qldb` client and the AWS CLI call it):
//! CreateLedger, ListLedgers, DescribeLedger, UpdateLedger, DeleteLedger, GetDigest, GetBlock,
//! GetRevision, ExportJournalToS3 and DescribeJournalS3Export, and the journal streams:
//! StreamJournalToKinesis, DescribeJournalKinesisStream, ListJournalKinesisStreamsForLedger and
//! CancelJournalKinesisStream, whose destination is a Sluice stream named by its Kinesis ARN
//! (`RoleArn` is required, as in QLDB, and kept, not checked). DeleteLedger refuses a ledger
//! with active journal streams (`ResourceInUseException`): cancel them first.
//!
//! ExportJournalToS3 writes into `data_dir/s3/<Bucket>/<Prefix>` by default, in the layout of
//! QLDB's S3 exports (`<ledger>/<exportId>/…`), and answers with that directory as the Sluice
//! extension field `ExportDirectory`. A bucket that the node's `object_store` configuration
//! lists goes to real S3 instead: the export is written into a staging directory, uploaded with
//! the same keys (the completed manifest last, so its presence still means the export is
//! whole), its `EncryptionConfiguration` (`SSE_S3`, `SSE_KMS` with `KmsKeyArn`) passed on as
//! S3's server-side encryption, and answered with `ExportS3Uri` instead.
//!
//! Sluice extensions, on the same port and in the same style:
//! - `POST /ledgers/{name}/restore`: creates ledger `name` from a journal export of Sluice (every
//!   hash re-verified; the digest equals the source's);
//! - `POST /ledgers/{name}/import`: creates ledger `name` from an Amazon QLDB S3 journal export
//!   downloaded locally;
//! - `POST /ledgers/{name}/replica`: makes ledger `name` (created when missing) a replica of
//!   `{"SourceLedgerName", "KinesisStreamName", "SourceEndpoint", "SettlingWindowMs"}`: a ledger
//!   of this node read in-process without `KinesisStreamName`, else the journal stream records in
//!   that Kinesis stream, of this node or of the Sluice at `SourceEndpoint`. Kept in the data
//!   directory, so it resumes after a restart; declaring the same again changes nothing, another
//!   source for the same target is `ResourceInUseException`. `GET /ledgers/{name}/replica`
//!   describes it (`{"Replica": {…, "NextSequenceNo", "LagBlocks"}}`).
//!
//! Both name their source as `{"S3ExportConfiguration": {"Bucket", "Prefix"}}`, the export's
//! objects in the data directory's s3 store (`Prefix` is the export's own prefix,
//! `<prefix>/<ledger>/<exportId>` for what ExportJournalToS3 wrote), or as
//! `{"ExportDirectory": "/path"}` inside the s3 store or an `--import-dir` (a relative path is
//! read inside an `--import-dir`). Anything else is `AccessDeniedException` (403), the same
//! answer whether the path exists or not. Both answer like DescribeLedger; when the server stops
//! during one, it answers `ServiceUnavailableException` (503) and creates nothing.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use hyper::{Method, StatusCode};
use serde_json::{Value, json};
use sluice_ledger::{
    BlockAddress, CancelToken, ExportFormat, ExportLocation, ImportRoots, LedgerDescription,
    LedgerError, Ledgers, PermissionsMode,
};
use sluice_node::journal_streams::{
    JournalStreamDescription, JournalStreamError, JournalStreamRequest,
};
use sluice_node::replica::{ReplicaConfig, ReplicaDescription, ReplicaError};
use sluice_node::{JournalStreams, Replicas};
use sluice_objects::{Encryption, ObjectStores, Placement};
use time::OffsetDateTime;

use super::{
    ACCOUNT_ID, AwsError, BoxFuture, Format, REGION, RestRoute, RestService, aws_response,
    error_response, parse_body,
};
use crate::http::{Request, Response};

/// Most ledgers in one ListLedgers page (QLDB's `MaxResults` maximum is 100).
pub const LIST_LEDGERS_PAGE_MAX: usize = 100;
/// Most journal streams in one ListJournalKinesisStreamsForLedger page (QLDB's `MaxResults`
/// maximum is 100).
pub const LIST_JOURNAL_STREAMS_PAGE_MAX: usize = 100;
/// Most tags on a journal stream, QLDB's limit; more is `InvalidParameterException`.
pub const STREAM_TAGS_MAX: usize = 200;
/// Most export descriptions remembered for DescribeJournalS3Export; the oldest is forgotten
/// first (its files stay).
pub const EXPORT_DESCRIPTIONS_MAX: usize = 1_000;
/// Every route served. Each reads a JSON body when one is sent; GetBlock and GetRevision read
/// Ion text block addresses, restore and import read the Ion files of a directory.
pub const ROUTES: &[RestRoute] = &[
    RestRoute {
        method: "POST",
        path: "/ledgers",
        action: "qldb:CreateLedger",
        formats: &[Format::Json],
    },
    RestRoute {
        method: "GET",
        path: "/ledgers",
        action: "qldb:ListLedgers",
        formats: &[Format::Json],
    },
    RestRoute {
        method: "GET",
        path: "/ledgers/{name}",
        action: "qldb:DescribeLedger",
        formats: &[Format::Json],
    },
    RestRoute {
        method: "PATCH",
        path: "/ledgers/{name}",
        action: "qldb:UpdateLedger",
        formats: &[Format::Json],
    },
    RestRoute {
        method: "PATCH",
        path: "/ledgers/{name}/permissions-mode",
        action: "qldb:UpdateLedgerPermissionsMode",
        formats: &[Format::Json],
    },
    RestRoute {
        method: "DELETE",
        path: "/ledgers/{name}",
        action: "qldb:DeleteLedger",
        formats: &[Format::Json],
    },
    RestRoute {
        method: "POST",
        path: "/ledgers/{name}/digest",
        action: "qldb:GetDigest",
        formats: &[Format::Json],
    },
    RestRoute {
        method: "POST",
        path: "/ledgers/{name}/block",
        action: "qldb:GetBlock",
        formats: &[
            Format::Json,
            Format::IonTextMember("BlockAddress"),
            Format::IonTextMember("DigestTipAddress"),
        ],
    },
    RestRoute {
        method: "POST",
        path: "/ledgers/{name}/revision",
        action: "qldb:GetRevision",
        formats: &[
            Format::Json,
            Format::IonTextMember("BlockAddress"),
            Format::IonTextMember("DigestTipAddress"),
        ],
    },
    RestRoute {
        method: "POST",
        path: "/ledgers/{name}/journal-s3-exports",
        action: "qldb:ExportJournalToS3",
        formats: &[Format::Json],
    },
    RestRoute {
        method: "GET",
        path: "/ledgers/{name}/journal-s3-exports/{export_id}",
        action: "qldb:DescribeJournalS3Export",
        formats: &[Format::Json],
    },
    RestRoute {
        method: "POST",
        path: "/ledgers/{name}/journal-kinesis-streams",
        action: "qldb:StreamJournalToKinesis",
        formats: &[Format::Json],
    },
    RestRoute {
        method: "GET",
        path: "/ledgers/{name}/journal-kinesis-streams",
        action: "qldb:ListJournalKinesisStreamsForLedger",
        formats: &[Format::Json],
    },
    RestRoute {
        method: "GET",
        path: "/ledgers/{name}/journal-kinesis-streams/{stream_id}",
        action: "qldb:DescribeJournalKinesisStream",
        formats: &[Format::Json],
    },
    RestRoute {
        method: "DELETE",
        path: "/ledgers/{name}/journal-kinesis-streams/{stream_id}",
        action: "qldb:CancelJournalKinesisStream",
        formats: &[Format::Json],
    },
    RestRoute {
        method: "POST",
        path: "/ledgers/{name}/restore",
        action: "qldb:RestoreLedger",
        formats: &[Format::Json, Format::IonExportDirectory("ExportDirectory")],
    },
    RestRoute {
        method: "POST",
        path: "/ledgers/{name}/import",
        action: "qldb:ImportLedger",
        formats: &[Format::Json, Format::IonExportDirectory("ExportDirectory")],
    },
    RestRoute {
        method: "POST",
        path: "/ledgers/{name}/replica",
        action: "qldb:CreateReplica",
        formats: &[Format::Json],
    },
    RestRoute {
        method: "GET",
        path: "/ledgers/{name}/replica",
        action: "qldb:DescribeReplica",
        formats: &[Format::Json],
    },
];
const CONTENT_TYPE: &str = "application/json";

/// The control plane over the node's ledgers.
pub struct QldbService {
    ledgers: Arc<Ledgers>,
    journal_streams: Arc<JournalStreams>,
    /// The s3 store (`data_dir/s3`: every ExportJournalToS3 bucket) and the import directories:
    /// the only places restores and imports read.
    roots: ImportRoots,
    /// Set when the server stops: exports, restores and imports in flight end at once.
    cancel: CancelToken,
    exports: Mutex<VecDeque<(String, String, Value)>>,
    /// Where exports go when their bucket lives in S3, and where they are staged first; `None`
    /// writes every export into the local s3 store.
    objects: Option<(Arc<ObjectStores>, PathBuf)>,
    /// The node's replicas, for the replica routes; `None` answers them not found.
    replicas: Option<Arc<Replicas>>,
}

impl QldbService {
    pub fn new(
        ledgers: Arc<Ledgers>,
        journal_streams: Arc<JournalStreams>,
        roots: ImportRoots,
        cancel: CancelToken,
    ) -> QldbService {
        QldbService {
            ledgers,
            journal_streams,
            roots,
            cancel,
            exports: Mutex::new(VecDeque::new()),
            objects: None,
            replicas: None,
        }
    }

    /// Serves the replica routes over `replicas`.
    pub fn with_replicas(mut self, replicas: Arc<Replicas>) -> QldbService {
        self.replicas = Some(replicas);
        self
    }

    /// Sends exports to the buckets of `objects` that live in S3, staged in a fresh directory
    /// under `staging_dir`.
    pub fn with_object_stores(
        mut self,
        objects: Arc<ObjectStores>,
        staging_dir: PathBuf,
    ) -> QldbService {
        self.objects = Some((objects, staging_dir));
        self
    }
}

/// The one place where engine errors become QLDB control-plane errors.
fn control_error(error: LedgerError) -> AwsError {
    match error {
        LedgerError::NotFound(message) => {
            AwsError::new(StatusCode::NOT_FOUND, "ResourceNotFoundException", message)
        }
        LedgerError::AlreadyExists(message) => AwsError::new(
            StatusCode::CONFLICT,
            "ResourceAlreadyExistsException",
            message,
        ),
        LedgerError::PreconditionFailed(message) => AwsError::new(
            StatusCode::PRECONDITION_FAILED,
            "ResourcePreconditionNotMetException",
            message,
        ),
        LedgerError::LimitExceeded(message) => AwsError::client("LimitExceededException", message),
        LedgerError::AccessDenied(message) => {
            AwsError::new(StatusCode::FORBIDDEN, "AccessDeniedException", message)
        }
        LedgerError::Cancelled(message) => AwsError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailableException",
            message,
        ),
        LedgerError::BadRequest(_)
        | LedgerError::Syntax { .. }
        | LedgerError::OccConflict(_)
        | LedgerError::TransactionExpired(_) => invalid_parameter(error.to_string()),
        other @ (LedgerError::VerificationFailed(_)
        | LedgerError::Storage(_)
        | LedgerError::Io(_)
        | LedgerError::Internal(_)) => AwsError::internal(other.to_string()),
    }
}

/// The one place where journal-stream errors become QLDB control-plane errors.
fn journal_stream_error(error: JournalStreamError) -> AwsError {
    match error {
        JournalStreamError::InvalidParameter(message) => invalid_parameter(message),
        JournalStreamError::NotFound(message) => {
            AwsError::new(StatusCode::NOT_FOUND, "ResourceNotFoundException", message)
        }
        JournalStreamError::PreconditionNotMet(message) => AwsError::new(
            StatusCode::PRECONDITION_FAILED,
            "ResourcePreconditionNotMetException",
            message,
        ),
        JournalStreamError::InUse(message) => {
            AwsError::new(StatusCode::CONFLICT, "ResourceInUseException", message)
        }
        JournalStreamError::LimitExceeded(message) => {
            AwsError::client("LimitExceededException", message)
        }
        JournalStreamError::Ledger(error) => control_error(error),
        JournalStreamError::Storage(message) => AwsError::internal(message),
    }
}

/// The one place where replica errors become QLDB control-plane errors.
fn replica_error(error: ReplicaError) -> AwsError {
    match error {
        ReplicaError::Config(message) => invalid_parameter(message),
        ReplicaError::InUse(message) => {
            AwsError::new(StatusCode::CONFLICT, "ResourceInUseException", message)
        }
        ReplicaError::Ledger(error) => control_error(error),
        other => AwsError::internal(other.to_string()),
    }
}

/// A replica declaration's body.
fn replica_request(target: &str, body: &Value) -> Result<ReplicaConfig, AwsError> {
    let optional = |name: &str| -> Result<Option<String>, AwsError> {
        match body.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) if !text.is_empty() => Ok(Some(text.clone())),
            Some(_) => Err(invalid_parameter(format!(
                "{name} must be a non-empty string"
            ))),
        }
    };
    let settling_window_ms = match body.get("SettlingWindowMs") {
        None | Some(Value::Null) => None,
        Some(value) => Some(value.as_u64().ok_or_else(|| {
            invalid_parameter("SettlingWindowMs must be a whole number of milliseconds")
        })?),
    };
    Ok(ReplicaConfig {
        source: required_string(body, "SourceLedgerName")?.to_owned(),
        target: target.to_owned(),
        stream: optional("KinesisStreamName")?,
        endpoint: optional("SourceEndpoint")?,
        settling_window_ms,
    })
}

/// A replica as `GET /ledgers/{name}/replica` answers it.
fn replica_json(description: &ReplicaDescription) -> Value {
    let config = &description.config;
    let mut result = json!({
        "LedgerName": config.target,
        "SourceLedgerName": config.source,
        "SettlingWindowMs": u64::try_from(config.settling_window().as_millis()).unwrap_or(u64::MAX),
        "Configured": description.configured,
        "NextSequenceNo": description.next_sequence_no,
    });
    if let Some(stream) = &config.stream {
        result["KinesisStreamName"] = json!(stream);
    }
    if let Some(endpoint) = &config.endpoint {
        result["SourceEndpoint"] = json!(endpoint);
    }
    if let Some(lag) = description.lag_blocks {
        result["LagBlocks"] = json!(lag);
    }
    result
}

fn stream_arn(ledger_name: &str, stream_id: &str) -> String {
    format!("arn:aws:qldb:{REGION}:{ACCOUNT_ID}:stream/{ledger_name}/{stream_id}")
}

fn epoch_seconds(epoch_ms: i64) -> Value {
    json!(epoch_ms as f64 / 1000.0)
}

/// A `JournalKinesisStreamDescription`.
fn stream_json(description: &JournalStreamDescription) -> Value {
    let definition = &description.definition;
    let mut result = json!({
        "LedgerName": definition.ledger_name,
        "CreationTime": epoch_seconds(definition.creation_time_ms),
        "InclusiveStartTime": epoch_seconds(definition.inclusive_start_time_ms),
        "RoleArn": definition.role_arn,
        "StreamId": definition.stream_id,
        "Arn": definition.arn,
        "Status": description.status.as_str(),
        "KinesisConfiguration": {
            "StreamArn": definition.destination_arn,
            "AggregationEnabled": definition.aggregation_enabled,
        },
        "StreamName": definition.stream_name,
    });
    if let Some(end) = definition.exclusive_end_time_ms {
        result["ExclusiveEndTime"] = epoch_seconds(end);
    }
    if let Some(cause) = &description.error_cause {
        result["ErrorCause"] = json!(cause);
    }
    result
}

/// A required string member of a request.
fn required_string<'a>(body: &'a Value, name: &str) -> Result<&'a str, AwsError> {
    match body.get(name) {
        Some(Value::String(text)) if !text.is_empty() => Ok(text),
        None | Some(Value::Null) => Err(invalid_parameter(format!("{name} is required"))),
        Some(_) => Err(invalid_parameter(format!(
            "{name} must be a non-empty string"
        ))),
    }
}

/// StreamJournalToKinesis's body, checked as QLDB checks it.
fn journal_stream_request(
    ledger_name: &str,
    body: &Value,
) -> Result<JournalStreamRequest, AwsError> {
    let role_arn = required_string(body, "RoleArn")?;
    let stream_name = required_string(body, "StreamName")?;
    let inclusive_start_time = timestamp_field(body, "InclusiveStartTime")?
        .ok_or_else(|| invalid_parameter("InclusiveStartTime is required"))?;
    let exclusive_end_time = timestamp_field(body, "ExclusiveEndTime")?;
    let configuration = match body.get("KinesisConfiguration") {
        Some(configuration @ Value::Object(_)) => configuration,
        None | Some(Value::Null) => {
            return Err(invalid_parameter("KinesisConfiguration is required"));
        }
        Some(_) => {
            return Err(invalid_parameter(
                "KinesisConfiguration must be an object with StreamArn and AggregationEnabled",
            ));
        }
    };
    let destination_arn = required_string(configuration, "StreamArn")
        .map_err(|_| invalid_parameter("KinesisConfiguration.StreamArn is required"))?;
    let destination_stream = super::kinesis::parse_stream_arn(destination_arn)
        .filter(|name| !super::kinesis::is_internal_log(name))
        .ok_or_else(|| {
            invalid_parameter(format!(
                "KinesisConfiguration.StreamArn {destination_arn:?} is not the ARN of a Kinesis stream"
            ))
        })?;
    // QLDB's default: aggregation on.
    let aggregation_enabled = match configuration.get("AggregationEnabled") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(enabled)) => *enabled,
        Some(_) => {
            return Err(invalid_parameter(
                "KinesisConfiguration.AggregationEnabled must be a boolean",
            ));
        }
    };
    let mut tags = std::collections::BTreeMap::new();
    match body.get("Tags") {
        None | Some(Value::Null) => {}
        Some(Value::Object(members)) => {
            if members.len() > STREAM_TAGS_MAX {
                return Err(invalid_parameter(format!(
                    "a journal stream has at most {STREAM_TAGS_MAX} tags"
                )));
            }
            for (key, value) in members {
                let value = match value {
                    Value::String(text) => text.clone(),
                    Value::Null => String::new(),
                    _ => return Err(invalid_parameter(format!("tag {key:?} must be a string"))),
                };
                tags.insert(key.clone(), value);
            }
        }
        Some(_) => return Err(invalid_parameter("Tags must be an object")),
    }
    Ok(JournalStreamRequest {
        ledger_name: ledger_name.to_owned(),
        stream_name: stream_name.to_owned(),
        role_arn: role_arn.to_owned(),
        destination_arn: destination_arn.to_owned(),
        destination_stream: destination_stream.to_owned(),
        aggregation_enabled,
        inclusive_start_time,
        exclusive_end_time,
        tags,
    })
}

/// The `PermissionsMode` of a CreateLedger or UpdateLedgerPermissionsMode body (required, as
/// in QLDB).
fn permissions_mode_of(body: &Value) -> Result<PermissionsMode, AwsError> {
    let given = body.get("PermissionsMode").and_then(Value::as_str);
    given.and_then(PermissionsMode::parse).ok_or_else(|| {
        AwsError::client(
            "ValidationException",
            format!(
                "1 validation error detected: Value {} at 'permissionsMode' failed to satisfy constraint: Member must satisfy enum value set: [ALLOW_ALL, STANDARD]",
                given.map_or_else(|| "null".to_owned(), |mode| format!("'{mode}'"))
            ),
        )
    })
}

fn invalid_parameter(message: impl Into<String>) -> AwsError {
    AwsError::client("InvalidParameterException", message)
}

fn arn(name: &str) -> String {
    format!("arn:aws:qldb:{REGION}:{ACCOUNT_ID}:ledger/{name}")
}

fn describe_json(description: &LedgerDescription) -> Value {
    json!({
        "Name": description.name,
        "Arn": arn(&description.name),
        "State": "ACTIVE",
        "PermissionsMode": description.permissions_mode.name(),
        "DeletionProtection": description.deletion_protection,
    })
}

fn ion_text_field(body: &Value, name: &str) -> Result<Option<String>, AwsError> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(holder) => holder
            .get("IonText")
            .and_then(Value::as_str)
            .map(|text| Some(text.to_owned()))
            .ok_or_else(|| invalid_parameter(format!("{name} needs IonText"))),
    }
}

fn block_address_field(body: &Value, name: &str) -> Result<Option<BlockAddress>, AwsError> {
    ion_text_field(body, name)?
        .map(|text| BlockAddress::parse_ion_text(&text).map_err(control_error))
        .transpose()
}

/// A REST-JSON timestamp (epoch seconds, possibly fractional, or an ISO 8601 string).
fn timestamp_field(body: &Value, name: &str) -> Result<Option<OffsetDateTime>, AwsError> {
    let invalid = || invalid_parameter(format!("{name} is not a timestamp"));
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(number)) => {
            let seconds = number.as_f64().ok_or_else(invalid)?;
            let nanos = (seconds * 1e9).round();
            if !nanos.is_finite() || nanos.abs() > 1e20 {
                return Err(invalid());
            }
            OffsetDateTime::from_unix_timestamp_nanos(nanos as i128)
                .map(Some)
                .map_err(|_| invalid())
        }
        Some(Value::String(text)) => {
            OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                .map(Some)
                .map_err(|_| invalid())
        }
        Some(_) => Err(invalid()),
    }
}

/// A string member of `S3ExportConfiguration`; `None` when absent.
fn s3_member<'a>(configuration: &'a Value, name: &str) -> Result<Option<&'a str>, AwsError> {
    match configuration.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(invalid_parameter(format!(
            "S3ExportConfiguration.{name} must be a string"
        ))),
    }
}

/// QLDB's `S3ExportConfiguration.EncryptionConfiguration` as S3 server-side encryption;
/// `NO_ENCRYPTION` (or none) leaves the bucket's configured encryption.
fn export_encryption(configuration: &Value) -> Result<Option<Encryption>, AwsError> {
    let Some(encryption) = configuration.get("EncryptionConfiguration") else {
        return Ok(None);
    };
    let member = |name: &str| -> Result<Option<&str>, AwsError> {
        match encryption.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(_) => Err(invalid_parameter(format!(
                "EncryptionConfiguration.{name} must be a string"
            ))),
        }
    };
    let key = member("KmsKeyArn")?;
    match member("ObjectEncryptionType")? {
        None | Some("NO_ENCRYPTION") => Ok(None),
        Some("SSE_S3") => Ok(Some(Encryption::Aes256)),
        Some("SSE_KMS") => match key {
            Some(key) => Ok(Some(Encryption::Kms {
                key_id: Some(key.to_owned()),
            })),
            None => Err(invalid_parameter(
                "EncryptionConfiguration.KmsKeyArn is required with SSE_KMS",
            )),
        },
        Some(other) => Err(invalid_parameter(format!(
            "EncryptionConfiguration.ObjectEncryptionType {other} is not one of SSE_KMS, SSE_S3, NO_ENCRYPTION"
        ))),
    }
}

/// The `S3ExportConfiguration` of a request: its bucket (required) and prefix (default empty).
fn s3_configuration(body: &Value) -> Result<Option<(&str, &str)>, AwsError> {
    let Some(configuration) = body.get("S3ExportConfiguration") else {
        return Ok(None);
    };
    if !configuration.is_object() {
        return Err(invalid_parameter(
            "S3ExportConfiguration must be an object with Bucket and Prefix",
        ));
    }
    let bucket = s3_member(configuration, "Bucket")?
        .filter(|bucket| !bucket.is_empty())
        .ok_or_else(|| invalid_parameter("S3ExportConfiguration.Bucket is required"))?;
    let prefix = s3_member(configuration, "Prefix")?.unwrap_or("");
    Ok(Some((bucket, prefix)))
}

impl QldbService {
    /// Blocking: runs one control-plane operation.
    fn operation(
        &self,
        method: &Method,
        segments: &[&str],
        query: &std::collections::HashMap<String, String>,
        body: &Value,
    ) -> Result<Value, AwsError> {
        let ledgers = &self.ledgers;
        match (method, segments) {
            (&Method::POST, ["ledgers"]) => {
                let name = body
                    .get("Name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid_parameter("Name is required"))?;
                let deletion_protection = body
                    .get("DeletionProtection")
                    .and_then(Value::as_bool)
                    .unwrap_or(sluice_ledger::ledger::DELETION_PROTECTION_DEFAULT);
                let permissions_mode = permissions_mode_of(body)?;
                let ledger = ledgers
                    .create_ledger_with_mode(name, deletion_protection, permissions_mode)
                    .map_err(control_error)?;
                let mut description = describe_json(&ledger.describe().map_err(control_error)?);
                description["CreationDateTime"] = json!(OffsetDateTime::now_utc().unix_timestamp());
                Ok(description)
            }
            (&Method::GET, ["ledgers"]) => {
                let page_max = query
                    .get("max_results")
                    .and_then(|text| text.parse::<usize>().ok())
                    .unwrap_or(LIST_LEDGERS_PAGE_MAX)
                    .clamp(1, LIST_LEDGERS_PAGE_MAX);
                let after = query.get("next_token").cloned().unwrap_or_default();
                let names = ledgers.list_ledgers().map_err(control_error)?;
                let page: Vec<&String> = names
                    .iter()
                    .filter(|name| name.as_str() > after.as_str())
                    .take(page_max)
                    .collect();
                let mut result = json!({"Ledgers": page
                    .iter()
                    .map(|name| json!({"Name": name, "State": "ACTIVE"}))
                    .collect::<Vec<_>>()});
                if let Some(last) = page.last()
                    && names.last().is_some_and(|final_name| final_name > *last)
                {
                    result["NextToken"] = json!(last);
                }
                Ok(result)
            }
            (&Method::GET, ["ledgers", name]) => Ok(describe_json(
                &ledgers.describe_ledger(name).map_err(control_error)?,
            )),
            (&Method::PATCH, ["ledgers", name]) => {
                let description = match body.get("DeletionProtection").and_then(Value::as_bool) {
                    Some(protection) => ledgers.update_ledger(name, protection),
                    None => ledgers.describe_ledger(name),
                }
                .map_err(control_error)?;
                Ok(describe_json(&description))
            }
            (&Method::PATCH, ["ledgers", name, "permissions-mode"]) => {
                let description = ledgers
                    .update_permissions_mode(name, permissions_mode_of(body)?)
                    .map_err(control_error)?;
                Ok(json!({
                    "Name": description.name,
                    "Arn": arn(&description.name),
                    "PermissionsMode": description.permissions_mode.name(),
                }))
            }
            (&Method::DELETE, ["ledgers", name]) => {
                self.journal_streams
                    .delete_ledger(name)
                    .map_err(journal_stream_error)?;
                Ok(json!({}))
            }
            (&Method::POST, ["ledgers", name, "journal-kinesis-streams"]) => {
                let request = journal_stream_request(name, body)?;
                let ledger_name = name.to_string();
                let stream_id = self
                    .journal_streams
                    .create(request, |stream_id| stream_arn(&ledger_name, stream_id))
                    .map_err(journal_stream_error)?;
                Ok(json!({"StreamId": stream_id}))
            }
            (&Method::GET, ["ledgers", name, "journal-kinesis-streams"]) => {
                let page_max = query
                    .get("max_results")
                    .and_then(|text| text.parse::<usize>().ok())
                    .unwrap_or(LIST_JOURNAL_STREAMS_PAGE_MAX)
                    .clamp(1, LIST_JOURNAL_STREAMS_PAGE_MAX);
                let streams = self
                    .journal_streams
                    .list(name)
                    .map_err(journal_stream_error)?;
                // The token is the id of the last stream of the page before; streams are listed
                // oldest first, so one created meanwhile comes on a later page.
                let start = match query.get("next_token") {
                    None => 0,
                    Some(token) => streams
                        .iter()
                        .position(|stream| &stream.definition.stream_id == token)
                        .map(|index| index + 1)
                        .ok_or_else(|| invalid_parameter("NextToken is not valid"))?,
                };
                let page: Vec<&JournalStreamDescription> =
                    streams.iter().skip(start).take(page_max).collect();
                let mut result = json!({"Streams": page.iter().map(|stream| stream_json(stream)).collect::<Vec<_>>()});
                if start + page.len() < streams.len()
                    && let Some(last) = page.last()
                {
                    result["NextToken"] = json!(last.definition.stream_id);
                }
                Ok(result)
            }
            (&Method::GET, ["ledgers", name, "journal-kinesis-streams", stream_id]) => {
                let description = self
                    .journal_streams
                    .describe(name, stream_id)
                    .map_err(journal_stream_error)?;
                Ok(json!({"Stream": stream_json(&description)}))
            }
            (&Method::DELETE, ["ledgers", name, "journal-kinesis-streams", stream_id]) => {
                self.journal_streams
                    .cancel(name, stream_id)
                    .map_err(journal_stream_error)?;
                Ok(json!({"StreamId": stream_id}))
            }
            (&Method::POST, ["ledgers", name, "digest"]) => {
                let digest = ledgers
                    .ledger(name)
                    .and_then(|ledger| ledger.digest())
                    .map_err(control_error)?
                    .ok_or_else(|| {
                        control_error(LedgerError::PreconditionFailed(format!(
                            "ledger {name} has no block yet"
                        )))
                    })?;
                Ok(json!({
                    "Digest": sluice_ledger::hash::to_base64(&digest.digest),
                    "DigestTipAddress": {"IonText": digest.digest_tip_address.to_ion_text()},
                }))
            }
            (&Method::POST, ["ledgers", name, "block"]) => {
                let address = block_address_field(body, "BlockAddress")?
                    .ok_or_else(|| invalid_parameter("BlockAddress is required"))?;
                let tip = block_address_field(body, "DigestTipAddress")?;
                let block = ledgers
                    .ledger(name)
                    .and_then(|ledger| ledger.block(&address, tip.as_ref()))
                    .map_err(control_error)?;
                let text =
                    sluice_ledger::model::encode_text(&block.block).map_err(control_error)?;
                let mut result = json!({"Block": {"IonText": text}});
                if let Some(proof) = block.proof {
                    result["Proof"] =
                        json!({"IonText": sluice_ledger::hash::proof_to_ion_text(&proof)});
                }
                Ok(result)
            }
            (&Method::POST, ["ledgers", name, "revision"]) => {
                let address = block_address_field(body, "BlockAddress")?
                    .ok_or_else(|| invalid_parameter("BlockAddress is required"))?;
                let document_id = body
                    .get("DocumentId")
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid_parameter("DocumentId is required"))?;
                let tip = block_address_field(body, "DigestTipAddress")?;
                let revision = ledgers
                    .ledger(name)
                    .and_then(|ledger| ledger.revision(&address, document_id, tip.as_ref()))
                    .map_err(control_error)?;
                let text = sluice_ledger::model::encode_text(&revision.revision.to_element())
                    .map_err(control_error)?;
                let mut result = json!({"Revision": {"IonText": text}});
                if let Some(proof) = revision.proof {
                    result["Proof"] =
                        json!({"IonText": sluice_ledger::hash::proof_to_ion_text(&proof)});
                }
                Ok(result)
            }
            (&Method::POST, ["ledgers", name, "journal-s3-exports"]) => {
                self.export_journal(name, body)
            }
            (&Method::GET, ["ledgers", name, "journal-s3-exports", export_id]) => {
                let exports = self
                    .exports
                    .lock()
                    .map_err(|_| AwsError::internal("export list lock poisoned"))?;
                exports
                    .iter()
                    .find(|(ledger, id, _)| ledger == name && id == export_id)
                    .map(|(_, _, description)| json!({"ExportDescription": description}))
                    .ok_or_else(|| {
                        control_error(LedgerError::NotFound(format!("export {export_id}")))
                    })
            }
            (&Method::POST, ["ledgers", name, "restore"]) => {
                let location = self.export_location(body)?;
                let ledger = ledgers
                    .restore_ledger(name, &location, &self.cancel)
                    .map_err(control_error)?;
                Ok(describe_json(&ledger.describe().map_err(control_error)?))
            }
            (&Method::POST, ["ledgers", name, "import"]) => {
                let location = self.export_location(body)?;
                let ledger = ledgers
                    .import_qldb_export(name, &location, &self.cancel)
                    .map_err(control_error)?;
                Ok(describe_json(&ledger.describe().map_err(control_error)?))
            }
            (&Method::POST, ["ledgers", name, "replica"]) => {
                let replicas = self.replicas()?;
                replicas
                    .declare(replica_request(name, body)?)
                    .map_err(replica_error)?;
                let description = replicas
                    .describe(name)
                    .ok_or_else(|| AwsError::internal(format!("the replica {name} vanished")))?;
                Ok(json!({"Replica": replica_json(&description)}))
            }
            (&Method::GET, ["ledgers", name, "replica"]) => {
                let description = self.replicas()?.describe(name).ok_or_else(|| {
                    AwsError::new(
                        StatusCode::NOT_FOUND,
                        "ResourceNotFoundException",
                        format!("ledger {name} is not a replica"),
                    )
                })?;
                Ok(json!({"Replica": replica_json(&description)}))
            }
            _ => Err(AwsError::new(
                StatusCode::NOT_FOUND,
                "UnknownOperationException",
                format!("no QLDB operation {method} /{}", segments.join("/")),
            )),
        }
    }

    fn replicas(&self) -> Result<&Arc<Replicas>, AwsError> {
        self.replicas.as_ref().ok_or_else(|| {
            AwsError::new(
                StatusCode::NOT_FOUND,
                "UnknownOperationException",
                "this server runs no replicas",
            )
        })
    }

    /// Where a restore or import reads: checked against the roots before anything is opened.
    fn export_location(&self, body: &Value) -> Result<ExportLocation, AwsError> {
        let configuration = s3_configuration(body)?;
        let location = match (body.get("ExportDirectory"), configuration) {
            (Some(_), Some(_)) => {
                return Err(invalid_parameter(
                    "give either S3ExportConfiguration or ExportDirectory, not both",
                ));
            }
            (Some(Value::String(directory)), None) => self.roots.locate_directory(directory),
            (Some(_), None) => return Err(invalid_parameter("ExportDirectory must be a string")),
            (None, Some((bucket, prefix))) => self.roots.locate_s3(bucket, prefix),
            (None, None) => {
                return Err(invalid_parameter(
                    "S3ExportConfiguration {Bucket, Prefix} or ExportDirectory is required",
                ));
            }
        };
        location.map_err(control_error)
    }

    fn export_journal(&self, name: &str, body: &Value) -> Result<Value, AwsError> {
        let configuration = body
            .get("S3ExportConfiguration")
            .ok_or_else(|| invalid_parameter("S3ExportConfiguration is required"))?;
        let (bucket, prefix) = s3_configuration(body)?
            .ok_or_else(|| invalid_parameter("S3ExportConfiguration is required"))?;
        let root = self.roots.s3_path(bucket, prefix).map_err(control_error)?;
        let format = match body.get("OutputFormat").and_then(Value::as_str) {
            None | Some("ION_BINARY") => ExportFormat::IonBinary,
            Some("ION_TEXT") => ExportFormat::IonText,
            Some("JSON") => ExportFormat::JsonLines,
            Some(other) => {
                return Err(invalid_parameter(format!(
                    "OutputFormat {other} is not one of ION_BINARY, ION_TEXT, JSON"
                )));
            }
        };
        let start = timestamp_field(body, "InclusiveStartTime")?;
        let end = timestamp_field(body, "ExclusiveEndTime")?;
        let encryption = export_encryption(configuration)?;
        let ledger = self.ledgers.ledger(name).map_err(control_error)?;
        let placement = self.objects.as_ref().map(|(objects, staging)| {
            (
                objects,
                staging,
                objects.placement(bucket, None, encryption.as_ref()),
            )
        });
        let (export, location) = match placement {
            Some((objects, staging, placement @ Placement::S3 { .. })) => {
                // The key prefix exactly as the local store lays it out under the bucket.
                let local_bucket = self.roots.s3_path(bucket, "").map_err(control_error)?;
                let relative = root
                    .strip_prefix(&local_bucket)
                    .map_err(|_| AwsError::internal("export prefix outside its bucket"))?
                    .to_path_buf();
                let staged = staging.join(sluice_ledger::model::new_id());
                let export = ledger
                    .export_journal(&staged.join(&relative), format, start, end, &self.cancel)
                    .map_err(control_error);
                let uploaded = export.and_then(|export| {
                    objects
                        .put_directory(&placement, bucket, "", &staged, ".completed.manifest")
                        .map_err(|error| {
                            AwsError::new(
                                StatusCode::SERVICE_UNAVAILABLE,
                                "ServiceUnavailableException",
                                format!("uploading the export failed: {error}"),
                            )
                        })?;
                    Ok(export)
                });
                if let Err(error) = std::fs::remove_dir_all(&staged) {
                    tracing::warn!(%error, staged = %staged.display(), "removing a staged export failed");
                }
                let export = uploaded?;
                let key = export
                    .directory
                    .strip_prefix(&staged)
                    .map(|path| path.display().to_string())
                    .unwrap_or_default();
                (
                    export,
                    json!({"ExportS3Uri": format!("s3://{bucket}/{key}")}),
                )
            }
            _ => {
                let export = ledger
                    .export_journal(&root, format, start, end, &self.cancel)
                    .map_err(control_error)?;
                let directory = export.directory.display().to_string();
                (export, json!({"ExportDirectory": directory}))
            }
        };
        let description = json!({
            "LedgerName": name,
            "ExportId": export.export_id,
            "ExportCreationTime": OffsetDateTime::now_utc().unix_timestamp(),
            "Status": "COMPLETED",
            "InclusiveStartTime": start.map_or(0, OffsetDateTime::unix_timestamp),
            "ExclusiveEndTime": end.map_or(0, OffsetDateTime::unix_timestamp),
            "S3ExportConfiguration": configuration,
            "RoleArn": body.get("RoleArn").cloned().unwrap_or(Value::Null),
            "OutputFormat": body.get("OutputFormat").cloned().unwrap_or(json!("ION_BINARY")),
        });
        let mut exports = self
            .exports
            .lock()
            .map_err(|_| AwsError::internal("export list lock poisoned"))?;
        if exports.len() >= EXPORT_DESCRIPTIONS_MAX {
            exports.pop_front();
        }
        exports.push_back((name.to_owned(), export.export_id.clone(), description));
        let mut answer = json!({
            "ExportId": export.export_id,
            "BlocksExported": export.blocks_exported,
        });
        if let (Some(answer), Value::Object(location)) = (answer.as_object_mut(), location) {
            answer.extend(location);
        }
        Ok(answer)
    }
}

impl RestService for Arc<QldbService> {
    fn routes(&self) -> &'static [RestRoute] {
        ROUTES
    }

    fn handle<'a>(&'a self, request: &'a Request) -> Option<BoxFuture<'a, Response>> {
        let is_ours = request.segments.first().map(String::as_str) == Some("ledgers");
        if !is_ours {
            return None;
        }
        Some(Box::pin(async move {
            let body = match parse_body(&request.body) {
                Ok(body) => body,
                Err(error) => return error_response(&error, CONTENT_TYPE),
            };
            let service = self.clone();
            let method = request.method.clone();
            let segments = request.segments.clone();
            let query = request.query.clone();
            let outcome = tokio::task::spawn_blocking(move || {
                let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
                service.operation(&method, &segments, &query, &body)
            })
            .await
            .unwrap_or_else(|error| Err(AwsError::internal(format!("operation failed: {error}"))));
            match outcome {
                Ok(body) => aws_response(StatusCode::OK, CONTENT_TYPE, &body),
                Err(error) => error_response(&error, CONTENT_TYPE),
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restore_names_exactly_one_source() {
        let dir = tempfile::tempdir().unwrap();
        let node = sluice_node::Node::open(dir.path()).unwrap();
        let roots = ImportRoots::new(&node.s3_dir(), &[]).unwrap();
        let service = QldbService::new(
            node.ledgers().clone(),
            node.journal_streams().clone(),
            roots,
            CancelToken::new(),
        );
        let kind = |body: Value| service.export_location(&body).unwrap_err().kind;
        assert_eq!(kind(json!({})), "InvalidParameterException");
        assert_eq!(
            kind(json!({"ExportDirectory": "/x", "S3ExportConfiguration": {"Bucket": "b"}})),
            "InvalidParameterException"
        );
        assert_eq!(
            kind(json!({"ExportDirectory": 3})),
            "InvalidParameterException"
        );
        assert_eq!(
            kind(json!({"S3ExportConfiguration": {"Prefix": "p"}})),
            "InvalidParameterException"
        );
        assert_eq!(
            kind(json!({"ExportDirectory": "/etc"})),
            "AccessDeniedException"
        );
        assert!(
            service
                .export_location(
                    &json!({"S3ExportConfiguration": {"Bucket": "b", "Prefix": "p/q"}})
                )
                .is_ok()
        );
    }

    #[test]
    fn errors_take_the_statuses_boto3_expects() {
        let cases = [
            (
                LedgerError::NotFound("x".into()),
                404,
                "ResourceNotFoundException",
            ),
            (
                LedgerError::AlreadyExists("x".into()),
                409,
                "ResourceAlreadyExistsException",
            ),
            (
                LedgerError::PreconditionFailed("x".into()),
                412,
                "ResourcePreconditionNotMetException",
            ),
            (
                LedgerError::BadRequest("x".into()),
                400,
                "InvalidParameterException",
            ),
            (
                LedgerError::AccessDenied("x".into()),
                403,
                "AccessDeniedException",
            ),
            (
                LedgerError::Cancelled("x".into()),
                503,
                "ServiceUnavailableException",
            ),
            (LedgerError::Internal("x".into()), 500, "InternalFailure"),
        ];
        for (error, status, kind) in cases {
            let error = control_error(error);
            assert_eq!((error.status.as_u16(), error.kind), (status, kind));
        }
    }

    #[test]
    fn stream_journal_to_kinesis_bodies_are_checked_as_qldb_checks_them() {
        let good = json!({
            "RoleArn": "arn:aws:iam::000000000000:role/r",
            "StreamName": "s",
            "InclusiveStartTime": 0,
            "KinesisConfiguration": {
                "StreamArn": "arn:aws:kinesis:us-east-1:000000000000:stream/dest"
            },
            "Tags": {"team": "ledger", "empty": null},
        });
        let request = journal_stream_request("l", &good).unwrap();
        assert_eq!(request.destination_stream, "dest");
        assert!(request.aggregation_enabled, "aggregation is on by default");
        assert_eq!(request.tags.len(), 2);
        assert!(request.exclusive_end_time.is_none());
        let refused = |change: &dyn Fn(&mut Value)| {
            let mut body = good.clone();
            change(&mut body);
            journal_stream_request("l", &body).unwrap_err().kind
        };
        for change in [
            &(|body: &mut Value| body["RoleArn"] = Value::Null) as &dyn Fn(&mut Value),
            &|body| body["StreamName"] = json!(3),
            &|body| body["InclusiveStartTime"] = Value::Null,
            &|body| body["KinesisConfiguration"] = Value::Null,
            &|body| body["KinesisConfiguration"]["StreamArn"] = json!("arn:aws:sqs:x"),
            &|body| {
                body["KinesisConfiguration"]["StreamArn"] =
                    json!("arn:aws:kinesis:us-east-1:000000000000:stream/firehose.x")
            },
            &|body| body["KinesisConfiguration"]["AggregationEnabled"] = json!("yes"),
            &|body| body["Tags"] = json!([]),
        ] {
            assert_eq!(refused(change), "InvalidParameterException");
        }
    }

    #[test]
    fn journal_stream_errors_take_qldb_statuses() {
        let cases = [
            (
                JournalStreamError::InvalidParameter("x".into()),
                400,
                "InvalidParameterException",
            ),
            (
                JournalStreamError::NotFound("x".into()),
                404,
                "ResourceNotFoundException",
            ),
            (
                JournalStreamError::PreconditionNotMet("x".into()),
                412,
                "ResourcePreconditionNotMetException",
            ),
            (
                JournalStreamError::InUse("x".into()),
                409,
                "ResourceInUseException",
            ),
            (
                JournalStreamError::LimitExceeded("x".into()),
                400,
                "LimitExceededException",
            ),
        ];
        for (error, status, kind) in cases {
            let error = journal_stream_error(error);
            assert_eq!((error.status.as_u16(), error.kind), (status, kind));
        }
    }

    #[test]
    fn timestamps_are_epoch_seconds_or_rfc3339() {
        let body = json!({"A": 1.5, "B": "2020-01-01T00:00:00Z", "C": true});
        assert_eq!(
            timestamp_field(&body, "A")
                .unwrap()
                .unwrap()
                .unix_timestamp_nanos(),
            1_500_000_000
        );
        assert_eq!(
            timestamp_field(&body, "B")
                .unwrap()
                .unwrap()
                .unix_timestamp(),
            1_577_836_800
        );
        assert!(timestamp_field(&body, "C").is_err());
        assert!(timestamp_field(&body, "D").unwrap().is_none());
    }
}
