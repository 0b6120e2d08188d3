//! The configuration of a delivery stream, as engines see it (no wire shapes): where records come
//! from, how they are buffered and processed, and where they go. Serialized as JSON in the
//! catalog, so every field change keeps reading old catalogs (serde defaults).

use serde::{Deserialize, Serialize};
use sluice_objects::{Encryption, S3Target};

use crate::error::{DeliveryError, Result};
use crate::limits::{
    BUFFER_INTERVAL_S_MAX, BUFFER_SIZE_MB_MAX, BUFFER_SIZE_MB_MIN, NAME_CHARS_MAX,
    PROCESSOR_BUFFER_BYTES_MAX, PROCESSOR_RETRIES_MAX, RETRY_DURATION_S_MAX,
};
use crate::rotation::IndexRotation;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryStreamConfig {
    pub name: String,
    pub source: Source,
    pub buffering: BufferingHints,
    #[serde(default)]
    pub processors: Vec<LambdaProcessor>,
    pub destination: Destination,
    /// Set by [`crate::DeliveryStreams::create`].
    #[serde(default)]
    pub created_time_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Source {
    /// Producers call PutRecord(Batch); records go to the stream's own log stream first.
    DirectPut,
    /// Records are read from an existing log stream (a Kinesis-like stream).
    KinesisStream {
        stream_arn: String,
        /// The log stream read: the ARN's stream, or the copy of an external stream that a
        /// Kinesis source of the node keeps (`sluice_node::kinesis_sources`).
        stream_name: String,
        #[serde(default)]
        role_arn: Option<String>,
    },
}

/// Flush when the buffer holds `size_bytes`, or `interval_ms` after its first record arrived,
/// whichever comes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BufferingHints {
    pub size_bytes: u64,
    pub interval_ms: u64,
}

impl BufferingHints {
    pub fn from_firehose(size_mb: u64, interval_s: u64) -> Result<Self> {
        if !(BUFFER_SIZE_MB_MIN..=BUFFER_SIZE_MB_MAX).contains(&size_mb) {
            return Err(DeliveryError::invalid(format!(
                "BufferingHints.SizeInMBs must be between {BUFFER_SIZE_MB_MIN} and {BUFFER_SIZE_MB_MAX}, not {size_mb}"
            )));
        }
        if interval_s > BUFFER_INTERVAL_S_MAX {
            return Err(DeliveryError::invalid(format!(
                "BufferingHints.IntervalInSeconds must be between 0 and {BUFFER_INTERVAL_S_MAX}, not {interval_s}"
            )));
        }
        Ok(BufferingHints {
            size_bytes: size_mb * 1024 * 1024,
            interval_ms: interval_s * 1000,
        })
    }
}

/// A Lambda transformation in the processing chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LambdaProcessor {
    pub lambda_arn: String,
    pub number_of_retries: u32,
    /// Largest payload of one invocation; a buffer is split into invocations of at most this.
    pub buffer_size_bytes: u64,
    /// Accepted and reported; the delivery buffer's interval decides when records flow.
    pub buffer_interval_s: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Destination {
    Search(SearchDestination),
    S3(S3Destination),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SearchFlavor {
    Elasticsearch,
    OpenSearch,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DocumentIdOption {
    /// `_id` derived from the record's log position: redelivery overwrites, never duplicates.
    FirehoseDefault,
    /// The index generates ids: a redelivery after a crash may duplicate documents.
    NoDocumentId,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BackupMode {
    FailedDocumentsOnly,
    AllDocuments,
}

/// A search index as destination: Sluice's own (no `cluster_endpoint`), or an external
/// Elasticsearch/OpenSearch cluster (Firehose's ClusterEndpoint, or a DomainARN the node's
/// `search_clusters` configuration resolves to one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchDestination {
    pub flavor: SearchFlavor,
    #[serde(default)]
    pub domain_arn: Option<String>,
    /// The external cluster's URL; `None` is Sluice's own index. How to authenticate and which
    /// CA to trust are the node's configuration for this endpoint (never in the catalog).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_endpoint: Option<String>,
    #[serde(default)]
    pub role_arn: Option<String>,
    pub index_name: String,
    #[serde(default)]
    pub type_name: Option<String>,
    pub rotation: IndexRotation,
    pub document_id: DocumentIdOption,
    pub retry_duration_s: u64,
    pub backup_mode: BackupMode,
    pub backup: S3Location,
}

/// An S3 bucket and prefix: `<s3 root>/<bucket>/<prefix>` on local disk by default, or a real
/// S3 bucket when the node's object-store configuration lists the bucket or the location names
/// its own S3 endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct S3Location {
    pub bucket_arn: String,
    #[serde(default)]
    pub prefix: String,
    #[serde(default)]
    pub error_output_prefix: Option<String>,
    #[serde(default)]
    pub role_arn: Option<String>,
    /// This location's own S3 service (a Sluice extension of the Firehose API): its objects go
    /// there whatever the node's configuration says about the bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Target>,
    /// Server-side encryption asked for this location's objects (Firehose's
    /// `KMSEncryptionConfig`, or the extension's); `None` leaves the bucket's configured one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<Encryption>,
}

impl S3Location {
    pub fn bucket(&self) -> Result<&str> {
        bucket_name_from_arn(&self.bucket_arn)
    }
}

/// ExtendedS3 destination: records (after processing) concatenated into objects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct S3Destination {
    pub location: S3Location,
}

/// The account of every ARN Sluice hands out (one machine, one account).
pub const LOCAL_ACCOUNT_ID: &str = "000000000000";

/// Whether `domain_arn` names a domain of Sluice's own account
/// (`arn:aws:es:REGION:000000000000:domain/NAME`): Sluice's own index, as before external
/// clusters existed.
pub fn is_local_domain_arn(domain_arn: &str) -> bool {
    let mut parts = domain_arn.splitn(6, ':');
    matches!(
        (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next()
        ),
        (Some("arn"), Some(_), Some("es"), Some(_), Some(LOCAL_ACCOUNT_ID), Some(resource))
            if resource.starts_with("domain/")
    )
}

/// `arn:aws:s3:::NAME` → `NAME`, checked against S3's bucket naming rules so it is a safe
/// directory name.
pub fn bucket_name_from_arn(arn: &str) -> Result<&str> {
    let name = arn.strip_prefix("arn:aws:s3:::").ok_or_else(|| {
        DeliveryError::invalid(format!("BucketARN {arn} is not an S3 bucket ARN"))
    })?;
    let valid = (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && !name.starts_with('.')
        && !name.contains("..");
    if valid {
        Ok(name)
    } else {
        Err(DeliveryError::invalid(format!(
            "BucketARN {arn} does not name a valid bucket"
        )))
    }
}

/// `arn:aws:kinesis:REGION:ACCOUNT:stream/NAME` → `NAME`.
pub fn stream_name_from_arn(arn: &str) -> Result<&str> {
    stream_arn_parts(arn)
        .map(|(_, _, name)| name)
        .ok_or_else(|| {
            DeliveryError::invalid(format!(
                "KinesisStreamARN {arn} is not a Kinesis stream ARN"
            ))
        })
}

/// The region, account and stream name of `arn:<partition>:kinesis:<region>:<account>:stream/<name>`.
pub fn stream_arn_parts(arn: &str) -> Option<(&str, &str, &str)> {
    let mut parts = arn.splitn(6, ':');
    let (Some("arn"), Some(_), Some("kinesis"), Some(region), Some(account), Some(resource)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    let name = resource
        .strip_prefix("stream/")
        .filter(|name| !name.is_empty())?;
    Some((region, account, name))
}

fn validate_prefix(what: &str, prefix: &str) -> Result<()> {
    let bad = prefix.len() > 1024
        || prefix.starts_with('/')
        || prefix.split('/').any(|part| part == ".." || part == ".")
        || prefix.contains("//")
        || prefix.contains('\0')
        || prefix.contains('\\');
    if bad {
        Err(DeliveryError::invalid(format!(
            "{what} {prefix:?} must be a relative key prefix without empty, '.' or '..' parts"
        )))
    } else {
        Ok(())
    }
}

impl S3Location {
    fn validate(&self) -> Result<()> {
        self.bucket()?;
        validate_prefix("Prefix", &self.prefix)?;
        if let Some(prefix) = &self.error_output_prefix {
            validate_prefix("ErrorOutputPrefix", prefix)?;
        }
        if let Some(target) = &self.s3 {
            sluice_objects::validate_target(target)
                .map_err(|error| DeliveryError::invalid(error.to_string()))?;
        }
        Ok(())
    }
}

/// Firehose's delivery stream names: 1–64 of `[a-zA-Z0-9_.-]`.
pub fn validate_stream_name(name: &str) -> Result<()> {
    let valid = (1..=NAME_CHARS_MAX).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(DeliveryError::invalid(format!(
            "1 validation error detected: Value '{name}' at 'deliveryStreamName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+ and have length between 1 and {NAME_CHARS_MAX}"
        )))
    }
}

impl DeliveryStreamConfig {
    pub fn validate(&self) -> Result<()> {
        validate_stream_name(&self.name)?;
        if self.buffering.size_bytes == 0 {
            return Err(DeliveryError::invalid(
                "BufferingHints.SizeInMBs must be positive",
            ));
        }
        if let Source::KinesisStream { stream_arn, .. } = &self.source {
            stream_name_from_arn(stream_arn)?;
        }
        for processor in &self.processors {
            if processor.number_of_retries > PROCESSOR_RETRIES_MAX {
                return Err(DeliveryError::invalid(format!(
                    "NumberOfRetries must be between 0 and {PROCESSOR_RETRIES_MAX}"
                )));
            }
            if processor.buffer_size_bytes == 0
                || processor.buffer_size_bytes > PROCESSOR_BUFFER_BYTES_MAX
            {
                return Err(DeliveryError::invalid(
                    "BufferSizeInMBs of a Lambda processor must be between 0.2 and 3",
                ));
            }
            if !processor.lambda_arn.starts_with("arn:aws:lambda:") {
                return Err(DeliveryError::invalid(format!(
                    "LambdaArn {} is not a Lambda function ARN",
                    processor.lambda_arn
                )));
            }
        }
        match &self.destination {
            Destination::Search(search) => {
                sluice_search::validate_index_name(&search.index_name)
                    .map_err(|error| DeliveryError::invalid(format!("IndexName: {error}")))?;
                if let Some(endpoint) = &search.cluster_endpoint {
                    sluice_cluster::parse_endpoint(endpoint)
                        .map_err(|error| DeliveryError::invalid(error.to_string()))?;
                }
                if search.retry_duration_s > RETRY_DURATION_S_MAX {
                    return Err(DeliveryError::invalid(format!(
                        "RetryOptions.DurationInSeconds must be between 0 and {RETRY_DURATION_S_MAX}"
                    )));
                }
                search.backup.validate()
            }
            Destination::S3(s3) => s3.location.validate(),
        }
    }
}
