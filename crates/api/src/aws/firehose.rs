//! The Firehose-compatible API (`Firehose_20150804.*`, AWS JSON 1.1) over the node's delivery
//! streams, and `GET /metrics` (Prometheus text) with their counters. Request members are read
//! here, turned into `sluice_delivery` configs, and every `DeliveryError` maps to Firehose's
//! exception in [`delivery_error`]. A search destination with a `ClusterEndpoint` delivers into
//! that external Elasticsearch/OpenSearch cluster (its credentials and CA are the `--config`
//! file's `search_clusters`, never members of the API); a `DomainARN` resolves through the
//! same configuration, or names Sluice's own index when it is of Sluice's own account.
//!
//! An S3 configuration (of an ExtendedS3 destination, or a search destination's backup) may
//! carry the Sluice member [`S3_EXTENSION_MEMBER`] naming its own S3 service; Firehose's
//! `KMSEncryptionConfig` asks for SSE-KMS. Otherwise the bucket goes where the node's
//! `object_store` configuration says (the local directory unless it lists the bucket). A stream
//! whose batches cannot be written says so as `FailureDescription` until one is.
//!
//! A Lambda processor that fails (it cannot start, raises, times out) shows in
//! DescribeDeliveryStream as `FailureDescription` `{Type: UNKNOWN_ERROR, Details}` until its next
//! successful invocation, while `DeliveryStreamStatus` stays `ACTIVE`: real Firehose keeps a
//! stream active through processing failures (records go to `processing-failed/`), and none of
//! its failure types but `UNKNOWN_ERROR` is about anything but KMS or networking. `/metrics`
//! counts the failures per stream, function and error code. A stream whose worker could not
//! start is described the same way, `CREATING_FAILED` when that was at its creation (see
//! [`status`]).

use std::fmt::Write as _;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hyper::{Method, StatusCode};
use serde_json::{Map, Value, json};
use sluice_delivery::{
    BackupMode, BufferingHints, DeliveryError, DeliveryFailure, DeliveryStream,
    DeliveryStreamConfig, Destination, DocumentIdOption, IndexRotation, LambdaProcessor,
    ProcessingFailure, S3Destination, S3Location, SearchDestination, SearchFlavor, Source,
    StartFailure, StartPhase, lambda_function_name, limits,
};
use sluice_node::Node;
use sluice_objects::{Encryption, S3Target};

use super::{
    ACCOUNT_ID, AwsError, BoxFuture, Format, JsonService, Operation, REGION, RestRoute, RestService,
};
use crate::http::{Request, Response};

/// The `X-Amz-Target` prefix of Firehose.
pub const TARGET_PREFIX: &str = "Firehose_20150804";

/// Every operation served (record data is base64, parsed only when delivered, by the stream).
pub const OPERATIONS: &[Operation] = &[
    Operation {
        name: "CreateDeliveryStream",
        formats: &[Format::Json],
    },
    Operation {
        name: "DescribeDeliveryStream",
        formats: &[Format::Json],
    },
    Operation {
        name: "ListDeliveryStreams",
        formats: &[Format::Json],
    },
    Operation {
        name: "DeleteDeliveryStream",
        formats: &[Format::Json],
    },
    Operation {
        name: "PutRecord",
        formats: &[Format::Json],
    },
    Operation {
        name: "PutRecordBatch",
        formats: &[Format::Json],
    },
];

/// The routes of [`MetricsService`].
pub const METRICS_ROUTES: &[RestRoute] = &[RestRoute {
    method: "GET",
    path: "/metrics",
    action: "firehose:GetMetrics",
    formats: &[],
}];

pub struct FirehoseService {
    node: Arc<Node>,
}

impl FirehoseService {
    pub fn new(node: Arc<Node>) -> FirehoseService {
        FirehoseService { node }
    }
}

fn invalid(message: impl Into<String>) -> AwsError {
    AwsError::client("InvalidArgumentException", message)
}

fn not_found(name: &str) -> AwsError {
    AwsError::client(
        "ResourceNotFoundException",
        format!("Firehose {name} under account {ACCOUNT_ID} not found."),
    )
}

/// The one place delivery errors become Firehose exceptions.
fn delivery_error(error: DeliveryError) -> AwsError {
    match error {
        DeliveryError::NotFound(name) => not_found(&name),
        DeliveryError::AlreadyExists(name) => AwsError::client(
            "ResourceInUseException",
            format!("Firehose {name} under accountId {ACCOUNT_ID} already exists"),
        ),
        DeliveryError::InvalidArgument(message) => invalid(message),
        DeliveryError::LimitExceeded(message) => AwsError::client("ValidationException", message),
        DeliveryError::Throttled(message) => {
            AwsError::client("ServiceUnavailableException", message)
        }
        other => AwsError::internal(other.to_string()),
    }
}

fn missing(path: &str) -> AwsError {
    AwsError::validation(format!(
        "1 validation error detected: Value null at '{path}' failed to satisfy constraint: Member must not be null"
    ))
}

fn string<'a>(object: &'a Value, member: &str) -> Result<Option<&'a str>, AwsError> {
    match object.get(member) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(AwsError::client(
            "SerializationException",
            format!("{member} must be a string"),
        )),
    }
}

fn required<'a>(object: &'a Value, member: &str) -> Result<&'a str, AwsError> {
    string(object, member)?.ok_or_else(|| missing(member))
}

fn number(object: &Value, member: &str) -> Result<Option<u64>, AwsError> {
    match object.get(member) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value.as_u64().map(Some).ok_or_else(|| {
            AwsError::client(
                "SerializationException",
                format!("{member} must be a non-negative integer"),
            )
        }),
    }
}

fn buffering(destination: &Value) -> Result<BufferingHints, AwsError> {
    let hints = destination.get("BufferingHints").unwrap_or(&Value::Null);
    BufferingHints::from_firehose(
        number(hints, "SizeInMBs")?.unwrap_or(limits::BUFFER_SIZE_MB_DEFAULT),
        number(hints, "IntervalInSeconds")?.unwrap_or(limits::BUFFER_INTERVAL_S_DEFAULT),
    )
    .map_err(delivery_error)
}

/// The Sluice extension member of an S3 configuration that names its own S3 service:
/// `{"EndpointURL", "Region", "VirtualHostedStyle", "ServerSideEncryption", "SSEKMSKeyId"}`.
/// Without it, a bucket the node's `object_store` configuration lists goes to S3 and any other
/// to the local directory.
pub const S3_EXTENSION_MEMBER: &str = "SluiceS3";

/// Firehose's `EncryptionConfiguration` and the extension's encryption, as one choice.
fn s3_encryption(
    configuration: &Value,
    extension: Option<&Value>,
) -> Result<Option<Encryption>, AwsError> {
    let kms_key = match configuration.get("EncryptionConfiguration") {
        None | Some(Value::Null) => None,
        Some(encryption) => match encryption.get("KMSEncryptionConfig") {
            None | Some(Value::Null) => None,
            Some(kms) => Some(required(kms, "AWSKMSKeyARN")?.to_owned()),
        },
    };
    let extension_encryption = match extension {
        None => None,
        Some(extension) => {
            let header = string(extension, "ServerSideEncryption")?;
            let key_id = string(extension, "SSEKMSKeyId")?;
            if header.is_none() && key_id.is_none() {
                None
            } else {
                Some(
                    Encryption::from_header(header, key_id)
                        .map_err(|error| invalid(format!("{S3_EXTENSION_MEMBER}: {error}")))?,
                )
            }
        }
    };
    match (kms_key, extension_encryption) {
        (Some(_), Some(_)) => Err(invalid(format!(
            "give either EncryptionConfiguration.KMSEncryptionConfig or {S3_EXTENSION_MEMBER}.ServerSideEncryption, not both"
        ))),
        (Some(key), None) => Ok(Some(Encryption::Kms { key_id: Some(key) })),
        (None, encryption) => Ok(encryption),
    }
}

fn s3_target(extension: Option<&Value>) -> Result<Option<S3Target>, AwsError> {
    let Some(extension) = extension else {
        return Ok(None);
    };
    if !extension.is_object() {
        return Err(invalid(format!("{S3_EXTENSION_MEMBER} must be an object")));
    }
    if let Some(object) = extension.as_object()
        && let Some(unknown) = object.keys().find(|key| {
            ![
                "EndpointURL",
                "Region",
                "VirtualHostedStyle",
                "ServerSideEncryption",
                "SSEKMSKeyId",
            ]
            .contains(&key.as_str())
        })
    {
        return Err(invalid(format!(
            "{S3_EXTENSION_MEMBER}.{unknown} is not a member; it takes EndpointURL, Region, VirtualHostedStyle, ServerSideEncryption and SSEKMSKeyId"
        )));
    }
    let virtual_hosted_style = match extension.get("VirtualHostedStyle") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(flag)) => *flag,
        Some(_) => {
            return Err(AwsError::client(
                "SerializationException",
                "VirtualHostedStyle must be a boolean",
            ));
        }
    };
    Ok(Some(S3Target {
        endpoint_url: string(extension, "EndpointURL")?.map(str::to_owned),
        region: string(extension, "Region")?.map(str::to_owned),
        virtual_hosted_style,
    }))
}

fn s3_location(configuration: &Value, path: &str) -> Result<S3Location, AwsError> {
    let extension = configuration.get(S3_EXTENSION_MEMBER);
    Ok(S3Location {
        s3: s3_target(extension)?,
        encryption: s3_encryption(configuration, extension)?,
        bucket_arn: string(configuration, "BucketARN")?
            .ok_or_else(|| missing(&format!("{path}.bucketARN")))?
            .to_owned(),
        prefix: string(configuration, "Prefix")?
            .unwrap_or_default()
            .to_owned(),
        error_output_prefix: string(configuration, "ErrorOutputPrefix")?.map(str::to_owned),
        role_arn: string(configuration, "RoleARN")?.map(str::to_owned),
    })
}

fn processors(destination: &Value) -> Result<Vec<LambdaProcessor>, AwsError> {
    let Some(processing) = destination.get("ProcessingConfiguration") else {
        return Ok(Vec::new());
    };
    if processing.get("Enabled") == Some(&Value::Bool(false)) {
        return Ok(Vec::new());
    }
    let mut found = Vec::new();
    for processor in processing
        .get("Processors")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let kind = required(processor, "Type")?;
        if kind != "Lambda" {
            return Err(invalid(format!(
                "processor type {kind} is not supported; Sluice runs Lambda processors"
            )));
        }
        let mut lambda_arn = None;
        let mut number_of_retries = limits::PROCESSOR_RETRIES_DEFAULT;
        let mut buffer_size_bytes = limits::PROCESSOR_BUFFER_BYTES_DEFAULT;
        let mut buffer_interval_s = 60;
        for parameter in processor
            .get("Parameters")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            let name = required(parameter, "ParameterName")?;
            let value = required(parameter, "ParameterValue")?;
            let bad = || {
                invalid(format!(
                    "processor parameter {name} has an invalid value {value}"
                ))
            };
            match name {
                "LambdaArn" => lambda_arn = Some(value.to_owned()),
                "NumberOfRetries" => number_of_retries = value.parse().map_err(|_| bad())?,
                "BufferSizeInMBs" => {
                    let mb: f64 = value.parse().map_err(|_| bad())?;
                    if !(0.2..=3.0).contains(&mb) {
                        return Err(bad());
                    }
                    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                    {
                        buffer_size_bytes = (mb * 1024.0 * 1024.0) as u64;
                    }
                }
                "BufferIntervalInSeconds" => {
                    buffer_interval_s = value.parse().map_err(|_| bad())?;
                    if !(60..=900).contains(&buffer_interval_s) {
                        return Err(bad());
                    }
                }
                "RoleArn" => {}
                other => {
                    return Err(invalid(format!(
                        "processor parameter {other} is not supported"
                    )));
                }
            }
        }
        found.push(LambdaProcessor {
            lambda_arn: lambda_arn
                .ok_or_else(|| invalid("a Lambda processor needs the LambdaArn parameter"))?,
            number_of_retries,
            buffer_size_bytes,
            buffer_interval_s,
        });
    }
    Ok(found)
}

fn search_destination(
    configuration: &Value,
    flavor: SearchFlavor,
    member: &str,
) -> Result<(SearchDestination, BufferingHints, Vec<LambdaProcessor>), AwsError> {
    let cluster_endpoint = string(configuration, "ClusterEndpoint")?;
    let domain_arn = string(configuration, "DomainARN")?;
    if cluster_endpoint.is_some() && domain_arn.is_some() {
        return Err(invalid(format!(
            "{member}: give either ClusterEndpoint or DomainARN, not both"
        )));
    }
    let index_name = string(configuration, "IndexName")?
        .ok_or_else(|| missing(&format!("{member}.indexName")))?;
    let rotation = match string(configuration, "IndexRotationPeriod")? {
        None => IndexRotation::OneDay,
        Some(name) => IndexRotation::parse(name)
            .ok_or_else(|| invalid(format!("IndexRotationPeriod {name} is not valid")))?,
    };
    let retry_duration_s = match configuration.get("RetryOptions") {
        Some(options) => {
            number(options, "DurationInSeconds")?.unwrap_or(limits::RETRY_DURATION_S_DEFAULT)
        }
        None => limits::RETRY_DURATION_S_DEFAULT,
    };
    let backup_mode = match string(configuration, "S3BackupMode")? {
        None | Some("FailedDocumentsOnly") => BackupMode::FailedDocumentsOnly,
        Some("AllDocuments") => BackupMode::AllDocuments,
        Some(other) => return Err(invalid(format!("S3BackupMode {other} is not valid"))),
    };
    let document_id = match configuration
        .get("DocumentIdOptions")
        .map(|options| string(options, "DefaultDocumentIdFormat"))
        .transpose()?
        .flatten()
    {
        None | Some("FIREHOSE_DEFAULT") => DocumentIdOption::FirehoseDefault,
        Some("NO_DOCUMENT_ID") => DocumentIdOption::NoDocumentId,
        Some(other) => {
            return Err(invalid(format!(
                "DefaultDocumentIdFormat {other} is not valid"
            )));
        }
    };
    let s3 = configuration
        .get("S3Configuration")
        .ok_or_else(|| missing(&format!("{member}.s3Configuration")))?;
    let destination = SearchDestination {
        flavor,
        domain_arn: domain_arn.map(str::to_owned),
        cluster_endpoint: cluster_endpoint
            .map(|endpoint| endpoint.trim_end_matches('/').to_owned()),
        role_arn: string(configuration, "RoleARN")?.map(str::to_owned),
        index_name: index_name.to_owned(),
        type_name: string(configuration, "TypeName")?.map(str::to_owned),
        rotation,
        document_id,
        retry_duration_s,
        backup_mode,
        backup: s3_location(s3, &format!("{member}.s3Configuration"))?,
    };
    Ok((
        destination,
        buffering(configuration)?,
        processors(configuration)?,
    ))
}

/// CreateDeliveryStream's request as a delivery config.
pub fn create_request_config(body: &Value) -> Result<DeliveryStreamConfig, AwsError> {
    let name = required(body, "DeliveryStreamName")?;
    let source = match string(body, "DeliveryStreamType")?.unwrap_or("DirectPut") {
        "DirectPut" => Source::DirectPut,
        "KinesisStreamAsSource" => {
            let configuration = body
                .get("KinesisStreamSourceConfiguration")
                .ok_or_else(|| {
                    invalid(
                        "KinesisStreamSourceConfiguration is required for KinesisStreamAsSource",
                    )
                })?;
            let stream_arn = required(configuration, "KinesisStreamARN")?;
            Source::KinesisStream {
                stream_arn: stream_arn.to_owned(),
                stream_name: sluice_delivery::stream_name_from_arn(stream_arn)
                    .map_err(delivery_error)?
                    .to_owned(),
                role_arn: string(configuration, "RoleARN")?.map(str::to_owned),
            }
        }
        other => {
            return Err(invalid(format!(
                "DeliveryStreamType {other} is not supported"
            )));
        }
    };
    let mut destinations = Vec::new();
    if let Some(configuration) = body.get("ElasticsearchDestinationConfiguration") {
        destinations.push(search_destination(
            configuration,
            SearchFlavor::Elasticsearch,
            "elasticsearchDestinationConfiguration",
        )?);
    }
    if let Some(configuration) = body.get("AmazonopensearchserviceDestinationConfiguration") {
        destinations.push(search_destination(
            configuration,
            SearchFlavor::OpenSearch,
            "amazonopensearchserviceDestinationConfiguration",
        )?);
    }
    let mut s3 = None;
    if let Some(configuration) = body
        .get("ExtendedS3DestinationConfiguration")
        .or_else(|| body.get("S3DestinationConfiguration"))
    {
        s3 = Some((
            S3Destination {
                location: s3_location(configuration, "extendedS3DestinationConfiguration")?,
            },
            buffering(configuration)?,
            processors(configuration)?,
        ));
    }
    for unsupported in [
        "RedshiftDestinationConfiguration",
        "SplunkDestinationConfiguration",
        "HttpEndpointDestinationConfiguration",
        "AmazonOpenSearchServerlessDestinationConfiguration",
        "SnowflakeDestinationConfiguration",
        "IcebergDestinationConfiguration",
    ] {
        if body.get(unsupported).is_some() {
            return Err(invalid(format!("{unsupported} is not supported")));
        }
    }
    let (destination, buffering, processors) = match (destinations.pop(), s3) {
        (Some(search), None) if destinations.is_empty() => {
            (Destination::Search(search.0), search.1, search.2)
        }
        (None, Some(s3)) => (Destination::S3(s3.0), s3.1, s3.2),
        (None, None) => {
            return Err(invalid(
                "a delivery stream needs exactly one destination configuration",
            ));
        }
        _ => return Err(invalid("Only one destination configuration is allowed")),
    };
    Ok(DeliveryStreamConfig {
        name: name.to_owned(),
        source,
        buffering,
        processors,
        destination,
        created_time_ms: 0,
    })
}

fn stream_name(body: &Value) -> Result<&str, AwsError> {
    required(body, "DeliveryStreamName")
}

fn decode_record(record: &Value) -> Result<Vec<u8>, AwsError> {
    let data = string(record, "Data")?.ok_or_else(|| missing("record.data"))?;
    BASE64
        .decode(data)
        .map_err(|_| AwsError::client("SerializationException", "Record.Data is not valid base64"))
}

fn s3_description(location: &S3Location, buffering: Option<BufferingHints>) -> Value {
    let mut description = json!({
        "RoleARN": location.role_arn.clone().unwrap_or_default(),
        "BucketARN": location.bucket_arn,
        "Prefix": location.prefix,
        "CompressionFormat": "UNCOMPRESSED",
        "EncryptionConfiguration": match &location.encryption {
            Some(Encryption::Kms { key_id: Some(key) }) => {
                json!({"KMSEncryptionConfig": {"AWSKMSKeyARN": key}})
            }
            _ => json!({"NoEncryptionConfig": "NoEncryption"}),
        },
        "BufferingHints": {"SizeInMBs": 5, "IntervalInSeconds": 300},
    });
    if let Some(prefix) = &location.error_output_prefix {
        description["ErrorOutputPrefix"] = json!(prefix);
    }
    if location.s3.is_some() || location.encryption.is_some() {
        let mut extension = Map::new();
        if let Some(target) = &location.s3 {
            if let Some(endpoint) = &target.endpoint_url {
                extension.insert("EndpointURL".into(), json!(endpoint));
            }
            if let Some(region) = &target.region {
                extension.insert("Region".into(), json!(region));
            }
            extension.insert(
                "VirtualHostedStyle".into(),
                json!(target.virtual_hosted_style),
            );
        }
        if let Some(encryption) = &location.encryption {
            if let Some(header) = encryption.header() {
                extension.insert("ServerSideEncryption".into(), json!(header));
            }
            if let Encryption::Kms { key_id: Some(key) } = encryption {
                extension.insert("SSEKMSKeyId".into(), json!(key));
            }
        }
        description[S3_EXTENSION_MEMBER] = Value::Object(extension);
    }
    if let Some(hints) = buffering {
        description["BufferingHints"] = buffering_description(hints);
    }
    description
}

fn buffering_description(hints: BufferingHints) -> Value {
    json!({
        "SizeInMBs": hints.size_bytes / (1024 * 1024),
        "IntervalInSeconds": hints.interval_ms / 1000,
    })
}

fn processing_description(processors: &[LambdaProcessor]) -> Value {
    json!({
        "Enabled": !processors.is_empty(),
        "Processors": processors.iter().map(|processor| json!({
            "Type": "Lambda",
            "Parameters": [
                {"ParameterName": "LambdaArn", "ParameterValue": processor.lambda_arn},
                {"ParameterName": "NumberOfRetries", "ParameterValue": processor.number_of_retries.to_string()},
                {"ParameterName": "BufferSizeInMBs", "ParameterValue": format!("{}", processor.buffer_size_bytes as f64 / (1024.0 * 1024.0))},
                {"ParameterName": "BufferIntervalInSeconds", "ParameterValue": processor.buffer_interval_s.to_string()},
            ],
        })).collect::<Vec<_>>(),
    })
}

fn metrics_description(stream: &DeliveryStream) -> Value {
    let m = stream.metrics().snapshot();
    json!({
        "IncomingRecords": m.incoming_records,
        "IncomingBytes": m.incoming_bytes,
        "IncomingPutRequests": m.incoming_put_requests,
        "ThrottledRecords": m.throttled_records,
        "DeliveryToElasticsearch.Records": m.delivery_records,
        "DeliveryToElasticsearch.Bytes": m.delivery_bytes,
        "DeliveryToElasticsearch.Success": m.delivery_success,
        "DeliveryToElasticsearch.DataFreshness": m.data_freshness_s,
        "FailedDocuments": m.failed_documents,
        "DeliveryRetries": m.delivery_retries,
        "ExecuteProcessing.Success.Records": m.processing_ok_records,
        "ProcessingFailedRecords": m.processing_failed_records,
        "DroppedRecords": m.dropped_records,
        "BackupToS3.Records": m.backup_records,
        "DeliveryFailures": m.delivery_failures,
    })
}

/// Firehose's failure type for a failure that is not about KMS keys, ENIs or VPC endpoints.
const FAILURE_TYPE_UNKNOWN: &str = "UNKNOWN_ERROR";

/// An instant of the delivery clock as RFC 3339, as Firehose writes times.
fn rfc3339(epoch_ms: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(epoch_ms) * 1_000_000)
        .ok()
        .and_then(|at| {
            at.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("{epoch_ms} ms after the epoch"))
}

/// A failing processor as DescribeDeliveryStream's `FailureDescription`: its function, how
/// long and how often it has failed, where the records went, and the last error as Firehose
/// writes it into `processing-failed/` records (`errorCode: errorMessage`).
fn failure_description(failure: &ProcessingFailure) -> Value {
    json!({
        "Type": FAILURE_TYPE_UNKNOWN,
        "Details": format!(
            "Lambda function {} failed {} invocations since {}, their {} records went to processing-failed/; last error {}: {}",
            failure.lambda_arn,
            failure.failed_invocations,
            rfc3339(failure.first_failed_ms),
            failure.failed_records,
            failure.error_code,
            failure.error_message
        ),
    })
}

/// A batch that keeps failing to be written (an unreachable S3 bucket, a full disk) as
/// DescribeDeliveryStream's `FailureDescription`: nothing is lost, the batch is retried.
fn delivery_failure_description(failure: &DeliveryFailure) -> Value {
    json!({
        "Type": FAILURE_TYPE_UNKNOWN,
        "Details": format!(
            "delivery failed {} times since {}; the records are kept and retried with a growing pause; last error: {}",
            failure.failed_attempts,
            rfc3339(failure.first_failed_ms),
            failure.error_message
        ),
    })
}

/// A delivery stream without a worker as DescribeDeliveryStream's `FailureDescription`: it
/// delivers nothing, and the details say why and what to do.
fn start_failure_description(failure: &StartFailure) -> Value {
    let details = match failure.phase {
        StartPhase::Create => format!(
            "the delivery stream could not be created at {}: {}; delete it and create it again",
            rfc3339(failure.failed_ms),
            failure.reason
        ),
        StartPhase::Resume => format!(
            "the delivery stream delivers nothing since {}, when it could not be resumed: {}; remove the cause and restart the server, or delete it",
            rfc3339(failure.failed_ms),
            failure.reason
        ),
    };
    json!({"Type": FAILURE_TYPE_UNKNOWN, "Details": details})
}

/// Firehose's `DeliveryStreamStatus` of a stream of the catalog: `ACTIVE` while it runs, and
/// also when it stopped running after it had (as Firehose keeps a stream whose source went away
/// active, with a `FailureDescription`); `CREATING_FAILED` when it never started; `CREATING`
/// in the moment between its catalog entry and its worker.
fn status(stream: Option<&DeliveryStream>, start_failure: Option<&StartFailure>) -> &'static str {
    match (stream, start_failure) {
        (Some(_), _) => "ACTIVE",
        (None, Some(failure)) if failure.phase == StartPhase::Create => "CREATING_FAILED",
        (None, Some(_)) => "ACTIVE",
        (None, None) => "CREATING",
    }
}

fn describe(
    config: &DeliveryStreamConfig,
    stream: Option<&DeliveryStream>,
    start_failure: Option<&StartFailure>,
) -> Value {
    let arn = format!(
        "arn:aws:firehose:{REGION}:{ACCOUNT_ID}:deliverystream/{}",
        config.name
    );
    #[allow(clippy::cast_precision_loss)]
    let created_s = config.created_time_ms as f64 / 1000.0;
    let mut destination = Map::new();
    destination.insert("DestinationId".into(), json!("destinationId-000000000001"));
    match &config.destination {
        Destination::Search(search) => {
            let member = match search.flavor {
                SearchFlavor::Elasticsearch => "ElasticsearchDestinationDescription",
                SearchFlavor::OpenSearch => "AmazonopensearchserviceDestinationDescription",
            };
            let mut description = json!({
                "RoleARN": search.role_arn.clone().unwrap_or_default(),
                "IndexName": search.index_name,
                "IndexRotationPeriod": search.rotation.name(),
                "BufferingHints": buffering_description(config.buffering),
                "RetryOptions": {"DurationInSeconds": search.retry_duration_s},
                "S3BackupMode": match search.backup_mode {
                    BackupMode::AllDocuments => "AllDocuments",
                    BackupMode::FailedDocumentsOnly => "FailedDocumentsOnly",
                },
                "S3DestinationDescription": s3_description(&search.backup, None),
                "ProcessingConfiguration": processing_description(&config.processors),
                "DocumentIdOptions": {"DefaultDocumentIdFormat": match search.document_id {
                    DocumentIdOption::FirehoseDefault => "FIREHOSE_DEFAULT",
                    DocumentIdOption::NoDocumentId => "NO_DOCUMENT_ID",
                }},
            });
            if let Some(domain) = &search.domain_arn {
                description["DomainARN"] = json!(domain);
            }
            if let Some(endpoint) = &search.cluster_endpoint {
                description["ClusterEndpoint"] = json!(endpoint);
            }
            if let Some(type_name) = &search.type_name {
                description["TypeName"] = json!(type_name);
            }
            destination.insert(member.into(), description);
        }
        Destination::S3(s3) => {
            let mut description = s3_description(&s3.location, Some(config.buffering));
            description["ProcessingConfiguration"] = processing_description(&config.processors);
            description["S3BackupMode"] = json!("Disabled");
            destination.insert(
                "ExtendedS3DestinationDescription".into(),
                description.clone(),
            );
            destination.insert(
                "S3DestinationDescription".into(),
                s3_description(&s3.location, Some(config.buffering)),
            );
        }
    }
    let mut description = json!({
        "DeliveryStreamName": config.name,
        "DeliveryStreamARN": arn,
        "DeliveryStreamStatus": status(stream, start_failure),
        "DeliveryStreamEncryptionConfiguration": {"Status": "DISABLED"},
        "DeliveryStreamType": match config.source {
            Source::DirectPut => "DirectPut",
            Source::KinesisStream { .. } => "KinesisStreamAsSource",
        },
        "VersionId": "1",
        "CreateTimestamp": created_s,
        "Destinations": [Value::Object(destination)],
        "HasMoreDestinations": false,
    });
    if let Source::KinesisStream {
        stream_arn,
        role_arn,
        ..
    } = &config.source
    {
        description["Source"] = json!({"KinesisStreamSourceDescription": {
            "KinesisStreamARN": stream_arn,
            "RoleARN": role_arn.clone().unwrap_or_default(),
            "DeliveryStartTimestamp": created_s,
        }});
    }
    if let Some(stream) = stream {
        // A Sluice extension: CloudWatch's per-stream metrics, as counters since start.
        description["SluiceMetrics"] = metrics_description(stream);
        // One failure is described: a batch that cannot be delivered first (nothing moves
        // until it is), else the first failing processor in ARN order.
        if let Some(failure) = stream.delivery_failure() {
            description["FailureDescription"] = delivery_failure_description(&failure);
        } else if let Some(failure) = stream.processing_failures().first() {
            description["FailureDescription"] = failure_description(failure);
        }
    } else if let Some(failure) = start_failure {
        description["FailureDescription"] = start_failure_description(failure);
    }
    json!({"DeliveryStreamDescription": description})
}

/// Creates a delivery stream. One whose source is a stream outside this node (the `--config`
/// file's `kinesis_endpoints`) reads it through a Kinesis source of the node, which copies the
/// stream from the delivery stream's creation on (Firehose reads a new source from `LATEST`),
/// starts once the delivery stream exists, and is deleted with it.
fn create_delivery_stream(
    node: &Node,
    mut config: DeliveryStreamConfig,
) -> Result<Arc<sluice_delivery::DeliveryStream>, AwsError> {
    let external = match &config.source {
        Source::KinesisStream { stream_arn, .. } => node
            .kinesis_endpoints()
            .resolve(stream_arn)
            .map(|endpoint| (stream_arn.clone(), endpoint.clone())),
        Source::DirectPut => None,
    };
    let Some((stream_arn, endpoint)) = external else {
        return node.delivery().create(config).map_err(delivery_error);
    };
    let now_ms = sluice_node::kinesis_client::now_ms();
    node.kinesis_sources().create_with_consumer(
        &format!("firehose/{}", config.name),
        &stream_arn,
        &endpoint,
        sluice_node::kinesis_sources::SourceStart::AtTimestamp {
            timestamp_ms: now_ms,
        },
        now_ms,
        |copy_stream| {
            if let Source::KinesisStream { stream_name, .. } = &mut config.source {
                *stream_name = copy_stream;
            }
            node.delivery().create(config).map_err(delivery_error)
        },
        invalid,
    )
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, AwsError> + Send + 'static,
) -> Result<T, AwsError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| AwsError::internal(format!("worker failed: {error}")))?
}

impl FirehoseService {
    async fn dispatch(&self, operation: &str, body: Value) -> Result<Value, AwsError> {
        let delivery = self.node.delivery().clone();
        match operation {
            "CreateDeliveryStream" => {
                let config = create_request_config(&body)?;
                let node = self.node.clone();
                let stream = blocking(move || create_delivery_stream(&node, config)).await?;
                Ok(json!({"DeliveryStreamARN": stream.arn()}))
            }
            "DescribeDeliveryStream" => {
                let name = stream_name(&body)?;
                let config = delivery.config(name).map_err(delivery_error)?;
                let stream = delivery.get(name).ok();
                let start_failure = delivery.start_failure(name);
                Ok(describe(&config, stream.as_deref(), start_failure.as_ref()))
            }
            "ListDeliveryStreams" => {
                let limit = number(&body, "Limit")?.unwrap_or(10).clamp(1, 10_000);
                let kind = string(&body, "DeliveryStreamType")?;
                let start = string(&body, "ExclusiveStartDeliveryStreamName")?;
                let names: Vec<String> = delivery
                    .configs()
                    .into_iter()
                    .filter(|config| match kind {
                        Some("DirectPut") => matches!(config.source, Source::DirectPut),
                        Some("KinesisStreamAsSource") => {
                            matches!(config.source, Source::KinesisStream { .. })
                        }
                        _ => true,
                    })
                    .map(|config| config.name)
                    .filter(|name| start.is_none_or(|start| name.as_str() > start))
                    .collect();
                let limit = usize::try_from(limit).unwrap_or(usize::MAX);
                Ok(json!({
                    "DeliveryStreamNames": names.iter().take(limit).collect::<Vec<_>>(),
                    "HasMoreDeliveryStreams": names.len() > limit,
                }))
            }
            "DeleteDeliveryStream" => {
                let name = stream_name(&body)?.to_owned();
                let node = self.node.clone();
                blocking(move || {
                    delivery.delete(&name).map_err(delivery_error)?;
                    node.kinesis_sources()
                        .delete_of_owner(&format!("firehose/{name}"));
                    Ok(())
                })
                .await?;
                Ok(json!({}))
            }
            "PutRecord" => {
                let name = stream_name(&body)?;
                let record = body.get("Record").ok_or_else(|| missing("record"))?;
                let data = decode_record(record)?;
                let stream = delivery.get(name).map_err(delivery_error)?;
                let mut outcomes =
                    blocking(move || stream.put_records(&[data]).map_err(delivery_error)).await?;
                match outcomes.pop() {
                    Some(Ok(record_id)) => Ok(json!({"RecordId": record_id, "Encrypted": false})),
                    Some(Err((code, message))) => Err(AwsError::client(code, message)),
                    None => Err(AwsError::internal("no outcome for the record")),
                }
            }
            "PutRecordBatch" => {
                let name = stream_name(&body)?;
                let records = body
                    .get("Records")
                    .and_then(Value::as_array)
                    .ok_or_else(|| missing("records"))?;
                if records.len() > limits::PUT_BATCH_RECORDS_MAX {
                    return Err(AwsError::validation(format!(
                        "1 validation error detected: Value '{}' at 'records' failed to satisfy constraint: Member must have length less than or equal to {}",
                        records.len(),
                        limits::PUT_BATCH_RECORDS_MAX
                    )));
                }
                let data = records
                    .iter()
                    .map(decode_record)
                    .collect::<Result<Vec<_>, _>>()?;
                let stream = delivery.get(name).map_err(delivery_error)?;
                let outcomes =
                    blocking(move || stream.put_records(&data).map_err(delivery_error)).await?;
                let failed = outcomes.iter().filter(|outcome| outcome.is_err()).count();
                let responses: Vec<Value> = outcomes
                    .into_iter()
                    .map(|outcome| match outcome {
                        Ok(record_id) => json!({"RecordId": record_id}),
                        Err((code, message)) => json!({"ErrorCode": code, "ErrorMessage": message}),
                    })
                    .collect();
                Ok(json!({
                    "FailedPutCount": failed,
                    "Encrypted": false,
                    "RequestResponses": responses,
                }))
            }
            other => Err(AwsError::client(
                "UnknownOperationException",
                format!("Firehose operation {other} is not supported"),
            )),
        }
    }
}

impl JsonService for FirehoseService {
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

/// `GET /metrics`: every delivery stream's counters in Prometheus text format.
pub struct MetricsService {
    node: Arc<Node>,
    /// With security on, whose audit counters `/metrics` shows too.
    authenticator: Option<Arc<crate::security::Authenticator>>,
}

impl MetricsService {
    pub fn new(node: Arc<Node>) -> MetricsService {
        MetricsService {
            node,
            authenticator: None,
        }
    }

    /// Shows the audit log's counters too.
    pub fn with_audit(mut self, authenticator: Arc<crate::security::Authenticator>) -> Self {
        self.authenticator = Some(authenticator);
        self
    }
}

/// The Prometheus exposition of the delivery streams' metrics.
pub fn prometheus_text(node: &Node) -> String {
    let streams = node.delivery().list();
    let snapshots: Vec<_> = streams
        .iter()
        .map(|stream| (stream.name().to_owned(), stream.metrics().snapshot()))
        .collect();
    let mut text = String::new();
    type Get = fn(&sluice_delivery::MetricsSnapshot) -> f64;
    #[allow(clippy::cast_precision_loss)]
    let families: [(&str, &str, &str, Get); 14] = [
        (
            "sluice_firehose_incoming_records_total",
            "counter",
            "IncomingRecords",
            |m| m.incoming_records as f64,
        ),
        (
            "sluice_firehose_incoming_bytes_total",
            "counter",
            "IncomingBytes",
            |m| m.incoming_bytes as f64,
        ),
        (
            "sluice_firehose_incoming_put_requests_total",
            "counter",
            "IncomingPutRequests",
            |m| m.incoming_put_requests as f64,
        ),
        (
            "sluice_firehose_throttled_records_total",
            "counter",
            "ThrottledRecords",
            |m| m.throttled_records as f64,
        ),
        (
            "sluice_firehose_delivery_to_elasticsearch_records_total",
            "counter",
            "DeliveryToElasticsearch.Records",
            |m| m.delivery_records as f64,
        ),
        (
            "sluice_firehose_delivery_to_elasticsearch_bytes_total",
            "counter",
            "DeliveryToElasticsearch.Bytes",
            |m| m.delivery_bytes as f64,
        ),
        (
            "sluice_firehose_delivery_to_elasticsearch_success",
            "gauge",
            "DeliveryToElasticsearch.Success (delivered / attempted)",
            |m| m.delivery_success,
        ),
        (
            "sluice_firehose_delivery_to_elasticsearch_data_freshness_seconds",
            "gauge",
            "DeliveryToElasticsearch.DataFreshness",
            |m| m.data_freshness_s as f64,
        ),
        (
            "sluice_firehose_failed_documents_total",
            "counter",
            "documents backed up as failed after the retry duration",
            |m| m.failed_documents as f64,
        ),
        (
            "sluice_firehose_delivery_retries_total",
            "counter",
            "delivery attempts that were retries",
            |m| m.delivery_retries as f64,
        ),
        (
            "sluice_firehose_processing_failed_records_total",
            "counter",
            "records a processor marked ProcessingFailed",
            |m| m.processing_failed_records as f64,
        ),
        (
            "sluice_firehose_dropped_records_total",
            "counter",
            "records a processor marked Dropped",
            |m| m.dropped_records as f64,
        ),
        (
            "sluice_firehose_backup_records_total",
            "counter",
            "records backed up (AllDocuments)",
            |m| m.backup_records as f64,
        ),
        (
            "sluice_firehose_delivery_failures_total",
            "counter",
            "flushes whose destination or backup write failed (the batch was kept and retried)",
            |m| m.delivery_failures as f64,
        ),
    ];
    for (name, kind, help, get) in families {
        let _ = writeln!(text, "# HELP {name} {help}");
        let _ = writeln!(text, "# TYPE {name} {kind}");
        for (stream, snapshot) in &snapshots {
            let _ = writeln!(
                text,
                "{name}{{delivery_stream=\"{stream}\"}} {}",
                get(snapshot)
            );
        }
    }
    let name = "sluice_firehose_processing_failures_total";
    let _ = writeln!(
        text,
        "# HELP {name} Lambda invocations that failed after their retries (their records went to processing-failed/), by function and Firehose error code"
    );
    let _ = writeln!(text, "# TYPE {name} counter");
    for (stream, snapshot) in &snapshots {
        for (function, code, n) in &snapshot.processing_failures {
            let _ = writeln!(
                text,
                "{name}{{delivery_stream=\"{}\",function=\"{}\",error_code=\"{}\"}} {n}",
                label(stream),
                label(function),
                label(code)
            );
        }
    }
    let name = "sluice_firehose_processor_failing";
    let _ = writeln!(
        text,
        "# HELP {name} 1 while a Lambda processor fails (since its last successful invocation; see DescribeDeliveryStream's FailureDescription), else 0"
    );
    let _ = writeln!(text, "# TYPE {name} gauge");
    for stream in &streams {
        let failing: Vec<String> = stream
            .processing_failures()
            .into_iter()
            .map(|failure| failure.lambda_arn)
            .collect();
        for processor in &stream.config().processors {
            let _ = writeln!(
                text,
                "{name}{{delivery_stream=\"{}\",function=\"{}\"}} {}",
                label(stream.name()),
                label(lambda_function_name(&processor.lambda_arn)),
                u8::from(failing.contains(&processor.lambda_arn))
            );
        }
    }
    let ledger_index = node.ledger_indexer().snapshot();
    let name = "sluice_ledger_index_lag_blocks";
    let _ = writeln!(
        text,
        "# HELP {name} blocks committed to a ledger whose revisions are not yet written into search by the built-in indexer"
    );
    let _ = writeln!(text, "# TYPE {name} gauge");
    for (ledger, lag) in &ledger_index.lag_blocks {
        let _ = writeln!(text, "{name}{{ledger=\"{}\"}} {lag}", label(ledger));
    }
    let replicas = node.replicas().snapshot();
    let name = "sluice_ledger_replica_lag_blocks";
    let _ = writeln!(
        text,
        "# HELP {name} blocks committed to a source ledger not yet applied to its replica"
    );
    let _ = writeln!(text, "# TYPE {name} gauge");
    for ((source, target), lag) in &replicas.lag_blocks {
        let _ = writeln!(
            text,
            "{name}{{source=\"{}\",target=\"{}\"}} {lag}",
            label(source),
            label(target)
        );
    }
    for (name, help, value) in [
        (
            "sluice_ledger_replica_applied_blocks_total",
            "source ledger blocks applied to replicas since start",
            replicas.applied_blocks,
        ),
        (
            "sluice_ledger_indexed_revisions_total",
            "ledger revisions the built-in indexer wrote into search (or found already written)",
            ledger_index.indexed_revisions,
        ),
        (
            "sluice_ledger_index_failed_revisions_total",
            "ledger revisions the built-in indexer could not write (refused by the index's mapping, too deep)",
            ledger_index.failed_revisions,
        ),
    ] {
        let _ = writeln!(text, "# HELP {name} {help}");
        let _ = writeln!(text, "# TYPE {name} counter");
        let _ = writeln!(text, "{name} {value}");
    }
    let table_index = node.table_indexer().snapshot();
    let name = "sluice_table_index_lag_records";
    let _ = writeln!(
        text,
        "# HELP {name} records in a table's stream not yet written into search by the built-in table indexer"
    );
    let _ = writeln!(text, "# TYPE {name} gauge");
    for (table, lag) in &table_index.lag_records {
        let _ = writeln!(text, "{name}{{table=\"{}\"}} {lag}", label(table));
    }
    let name = "sluice_table_index_refused";
    let _ = writeln!(
        text,
        "# HELP {name} 1 for a configured table skipped because its stream does not carry new images"
    );
    let _ = writeln!(text, "# TYPE {name} gauge");
    for table in &table_index.refused_tables {
        let _ = writeln!(text, "{name}{{table=\"{}\"}} 1", label(table));
    }
    for (name, help, value) in [
        (
            "sluice_table_indexed_records_total",
            "table stream records the built-in indexer wrote into search (or found already written)",
            table_index.indexed_records,
        ),
        (
            "sluice_table_index_failed_records_total",
            "table stream records the built-in indexer could not write (refused by the index's mapping)",
            table_index.failed_records,
        ),
    ] {
        let _ = writeln!(text, "# HELP {name} {help}");
        let _ = writeln!(text, "# TYPE {name} counter");
        let _ = writeln!(text, "{name} {value}");
    }
    text
}

/// A Prometheus label value with `\`, `"` and newlines escaped.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl RestService for MetricsService {
    fn routes(&self) -> &'static [RestRoute] {
        METRICS_ROUTES
    }

    fn handle<'a>(&'a self, request: &'a Request) -> Option<BoxFuture<'a, Response>> {
        if request.method != Method::GET || request.segments != ["metrics"] {
            return None;
        }
        Some(Box::pin(async move {
            // Opening a ledger not yet open, or waiting for one being created, reads the disk.
            let mut text = crate::http::off_worker(|| prometheus_text(&self.node));
            if let Some(authenticator) = &self.authenticator {
                text.push_str(&authenticator.audit().prometheus_text());
            }
            Response::new(StatusCode::OK, "text/plain; version=0.0.4", text)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_processor_is_described_in_firehose_shape() {
        let failure = ProcessingFailure {
            lambda_arn: "arn:aws:lambda:us-east-1:000000000000:function:bye".to_owned(),
            error_code: "Lambda.FunctionError".to_owned(),
            error_message: "function bye could not start `python3 -m awslambdaric h.handler`"
                .to_owned(),
            first_failed_ms: 1_456_405_200_000,
            last_failed_ms: 1_456_405_260_000,
            failed_invocations: 2,
            failed_records: 7,
        };
        assert_eq!(
            failure_description(&failure),
            json!({
                "Type": "UNKNOWN_ERROR",
                "Details": "Lambda function arn:aws:lambda:us-east-1:000000000000:function:bye failed 2 invocations since 2016-02-25T13:00:00Z, their 7 records went to processing-failed/; last error Lambda.FunctionError: function bye could not start `python3 -m awslambdaric h.handler`",
            })
        );
    }

    fn kinesis_sourced(name: &str) -> DeliveryStreamConfig {
        create_request_config(&json!({
            "DeliveryStreamName": name,
            "DeliveryStreamType": "KinesisStreamAsSource",
            "KinesisStreamSourceConfiguration": {
                "KinesisStreamARN": "arn:aws:kinesis:us-east-1:000000000000:stream/orders",
                "RoleARN": "arn:aws:iam::000000000000:role/firehose",
            },
            "ExtendedS3DestinationConfiguration": {
                "BucketARN": "arn:aws:s3:::archive",
                "RoleARN": "arn:aws:iam::000000000000:role/firehose",
            },
        }))
        .expect("a valid request")
    }

    #[test]
    fn a_stream_without_a_worker_has_a_firehose_status_and_says_why() {
        let config = kinesis_sourced("archive");
        let resumed = StartFailure {
            phase: StartPhase::Resume,
            reason: "stream orders not found".to_owned(),
            failed_ms: 1_456_405_200_000,
        };
        let described = describe(&config, None, Some(&resumed));
        let description = &described["DeliveryStreamDescription"];
        assert_eq!(description["DeliveryStreamStatus"], "ACTIVE");
        assert_eq!(
            description["FailureDescription"],
            json!({
                "Type": "UNKNOWN_ERROR",
                "Details": "the delivery stream delivers nothing since 2016-02-25T13:00:00Z, when it could not be resumed: stream orders not found; remove the cause and restart the server, or delete it",
            })
        );

        let created = StartFailure {
            phase: StartPhase::Create,
            ..resumed
        };
        let described = describe(&config, None, Some(&created));
        let description = &described["DeliveryStreamDescription"];
        assert_eq!(description["DeliveryStreamStatus"], "CREATING_FAILED");
        let details = description["FailureDescription"]["Details"]
            .as_str()
            .unwrap_or_default();
        assert!(
            details.starts_with("the delivery stream could not be created at 2016-02-25T13:00:00Z: stream orders not found;"),
            "{details}"
        );

        // Between its catalog entry and its worker, a new stream is being created.
        let described = describe(&config, None, None);
        let description = &described["DeliveryStreamDescription"];
        assert_eq!(description["DeliveryStreamStatus"], "CREATING");
        assert!(description.get("FailureDescription").is_none());
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(label("a\nb"), r"a\nb");
    }
}
