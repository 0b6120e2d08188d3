//! What a mapping is: its source, its function, and Lambda's options for stream sources,
//! persisted in the catalog exactly as this struct serializes.

use serde::{Deserialize, Serialize};

use crate::error::{MappingError, Result};
use crate::filter;
use crate::limits::{
    BATCH_SIZE_DEFAULT, BATCH_SIZE_MAX, BATCHING_WINDOW_S_MAX, PARALLELIZATION_FACTOR_MAX,
    RECORD_AGE_S_MAX, RECORD_AGE_S_MIN, RETRY_ATTEMPTS_MAX,
};

/// Where a mapping reads, resolved from its `EventSourceArn` by the API layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum SourceSpec {
    /// A Kinesis-like stream of the log, every shard.
    Stream {
        stream: String,
        /// The stream is the copy of an external Kinesis stream, which its Kinesis source fills
        /// from the mapping's starting position on: the mapping reads it from its start.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        copy: bool,
    },
    /// The stream of a table (`Tables::read_stream`), one shard.
    TableStream {
        stream_id: u64,
        table: String,
        /// `NEW_IMAGE`, `KEYS_ONLY`, … as the events' `StreamViewType`.
        view_type: String,
    },
}

/// Where a new mapping starts reading when it has no checkpoint yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE", deny_unknown_fields)]
pub enum StartingPosition {
    TrimHorizon,
    Latest,
    /// The first record that arrived at or after this time (ms since the epoch).
    AtTimestamp {
        timestamp_ms: u64,
    },
}

impl StartingPosition {
    pub fn as_str(self) -> &'static str {
        match self {
            StartingPosition::TrimHorizon => "TRIM_HORIZON",
            StartingPosition::Latest => "LATEST",
            StartingPosition::AtTimestamp { .. } => "AT_TIMESTAMP",
        }
    }
}

/// One event-source mapping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingConfig {
    /// Its id, a UUID chosen at create.
    pub uuid: String,
    /// The source's ARN as the client gave it; events carry it as `eventSourceARN`.
    pub event_source_arn: String,
    pub source: SourceSpec,
    /// The function's ARN.
    pub function_arn: String,
    pub enabled: bool,
    pub batch_size: u32,
    pub starting_position: StartingPosition,
    pub maximum_batching_window_s: u32,
    /// Batches of one shard processed at once, records of one partition key kept in order.
    pub parallelization_factor: u32,
    /// `-1`: until the record expires.
    pub maximum_retry_attempts: i32,
    /// `-1`: never.
    pub maximum_record_age_s: i32,
    pub bisect_batch_on_function_error: bool,
    /// `FunctionResponseTypes` holds `ReportBatchItemFailures`.
    pub report_batch_item_failures: bool,
    /// `DestinationConfig.OnFailure.Destination`: a Kinesis-like stream's ARN.
    pub on_failure_destination: Option<String>,
    /// The stream the destination names, resolved by the API layer.
    pub on_failure_stream: Option<String>,
    /// `FilterCriteria.Filters[].Pattern`, as JSON text.
    pub filters: Vec<String>,
    /// When it was created or last updated, ms since the epoch.
    pub last_modified_ms: u64,
}

impl MappingConfig {
    /// A mapping with Lambda's defaults for stream sources.
    pub fn new(
        uuid: String,
        event_source_arn: String,
        source: SourceSpec,
        function_arn: String,
        starting_position: StartingPosition,
    ) -> MappingConfig {
        MappingConfig {
            uuid,
            event_source_arn,
            source,
            function_arn,
            enabled: true,
            batch_size: BATCH_SIZE_DEFAULT,
            starting_position,
            maximum_batching_window_s: 0,
            parallelization_factor: 1,
            maximum_retry_attempts: -1,
            maximum_record_age_s: -1,
            bisect_batch_on_function_error: false,
            report_batch_item_failures: false,
            on_failure_destination: None,
            on_failure_stream: None,
            filters: Vec::new(),
            last_modified_ms: 0,
        }
    }

    /// Checks every option against Lambda's rules, with Lambda's wording of the bounds.
    pub fn validate(&self) -> Result<()> {
        let invalid = |message: String| Err(MappingError::InvalidParameter(message));
        if !(1..=BATCH_SIZE_MAX).contains(&self.batch_size) {
            return invalid(format!(
                "1 validation error detected: Value '{}' at 'batchSize' failed to satisfy constraint: Member must have value between 1 and {BATCH_SIZE_MAX}",
                self.batch_size
            ));
        }
        if self.maximum_batching_window_s > BATCHING_WINDOW_S_MAX {
            return invalid(format!(
                "1 validation error detected: Value '{}' at 'maximumBatchingWindowInSeconds' failed to satisfy constraint: Member must have value less than or equal to {BATCHING_WINDOW_S_MAX}",
                self.maximum_batching_window_s
            ));
        }
        if !(1..=PARALLELIZATION_FACTOR_MAX).contains(&self.parallelization_factor) {
            return invalid(format!(
                "1 validation error detected: Value '{}' at 'parallelizationFactor' failed to satisfy constraint: Member must have value between 1 and {PARALLELIZATION_FACTOR_MAX}",
                self.parallelization_factor
            ));
        }
        if !(-1..=RETRY_ATTEMPTS_MAX).contains(&self.maximum_retry_attempts) {
            return invalid(format!(
                "1 validation error detected: Value '{}' at 'maximumRetryAttempts' failed to satisfy constraint: Member must have value between -1 and {RETRY_ATTEMPTS_MAX}",
                self.maximum_retry_attempts
            ));
        }
        if self.maximum_record_age_s != -1
            && !(RECORD_AGE_S_MIN..=RECORD_AGE_S_MAX).contains(&self.maximum_record_age_s)
        {
            return invalid(format!(
                "1 validation error detected: Value '{}' at 'maximumRecordAgeInSeconds' failed to satisfy constraint: Member must be -1 or between {RECORD_AGE_S_MIN} and {RECORD_AGE_S_MAX}",
                self.maximum_record_age_s
            ));
        }
        if self.on_failure_destination.is_some() != self.on_failure_stream.is_some() {
            return invalid("the OnFailure destination must be a Kinesis stream".to_owned());
        }
        filter::compile_all(&self.filters).map_err(MappingError::InvalidParameter)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping() -> MappingConfig {
        MappingConfig::new(
            "u".into(),
            "arn:aws:kinesis:us-east-1:000000000000:stream/s".into(),
            SourceSpec::Stream {
                stream: "s".into(),
                copy: false,
            },
            "arn:aws:lambda:us-east-1:000000000000:function:f".into(),
            StartingPosition::TrimHorizon,
        )
    }

    #[test]
    fn defaults_pass_and_each_bound_is_checked() {
        mapping().validate().unwrap();
        let mut bad = mapping();
        bad.batch_size = BATCH_SIZE_MAX + 1;
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("batchSize")
        );
        let mut bad = mapping();
        bad.parallelization_factor = 11;
        assert!(bad.validate().is_err());
        let mut bad = mapping();
        bad.maximum_record_age_s = 10;
        assert!(bad.validate().is_err());
        let mut bad = mapping();
        bad.maximum_retry_attempts = -2;
        assert!(bad.validate().is_err());
        let mut bad = mapping();
        bad.filters = vec!["[]".into()];
        assert!(bad.validate().is_err());
    }

    #[test]
    fn round_trips_through_json() {
        let mut config = mapping();
        config.starting_position = StartingPosition::AtTimestamp { timestamp_ms: 5 };
        let text = serde_json::to_string(&config).unwrap();
        assert_eq!(
            serde_json::from_str::<MappingConfig>(&text).unwrap(),
            config
        );
    }
}
