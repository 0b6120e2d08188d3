//! The Lambda contract of a Firehose transformation: the event Firehose sends, the response it
//! expects, and the strict check of that response.
//!
//! A response that breaks the contract (not JSON, a record answered twice or not at all, an id
//! the event never had, bad base64, an unknown result) fails the whole invocation with the
//! error code Firehose would write, as Firehose does; it never half-applies.

use std::collections::{BTreeMap, HashMap};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, firehose_codes};

/// The event a transformation function receives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FirehoseTransformationEvent {
    /// Unique per invocation.
    pub invocation_id: String,
    /// ARN of the delivery stream the records come from.
    pub delivery_stream_arn: String,
    /// Region of the delivery stream.
    pub region: String,
    /// The records, in order.
    pub records: Vec<FirehoseEventRecord>,
}

/// One record of a [`FirehoseTransformationEvent`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FirehoseEventRecord {
    /// Unique within the event; the response must answer it exactly once.
    pub record_id: String,
    /// When the record reached the delivery stream, in milliseconds since the Unix epoch.
    pub approximate_arrival_timestamp: i64,
    /// The record's bytes (base64 on the wire).
    #[serde(with = "base64_bytes")]
    pub data: Vec<u8>,
}

/// What the function did with one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FirehoseRecordResult {
    /// Transformed; deliver `data`.
    Ok,
    /// Dropped on purpose; counts as processed.
    Dropped,
    /// Could not be transformed; goes to the failed-records backup.
    ProcessingFailed,
}

/// Per-record metadata a function may return: the keys of dynamic partitioning.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FirehoseRecordMetadata {
    /// Partition key name → value.
    #[serde(default)]
    pub partition_keys: BTreeMap<String, String>,
}

/// The validated answer for one record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FirehoseTransformedRecord {
    /// The id of the event record this answers.
    pub record_id: String,
    /// Ok, Dropped or ProcessingFailed.
    pub result: FirehoseRecordResult,
    /// The transformed bytes (base64 on the wire); empty when a Dropped or ProcessingFailed
    /// answer carries no data.
    #[serde(with = "base64_bytes")]
    pub data: Vec<u8>,
    /// Dynamic partitioning keys, when the function returned them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<FirehoseRecordMetadata>,
}

/// A validated response: exactly one answer per event record, in the event's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirehoseTransformationResponse {
    /// One answer per event record, in the event's order.
    pub records: Vec<FirehoseTransformedRecord>,
}

/// The response as a function may write it, before the checks.
#[derive(Deserialize)]
struct WireResponse {
    records: Vec<WireRecord>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireRecord {
    record_id: Option<String>,
    result: Option<String>,
    data: Option<String>,
    #[serde(default)]
    metadata: Option<FirehoseRecordMetadata>,
}

impl FirehoseTransformationResponse {
    /// Checks `response` (the function's JSON) against `event` and returns the answers in the
    /// event's order. `function_name` only goes into error messages.
    pub fn validate(
        function_name: &str,
        event: &FirehoseTransformationEvent,
        response: serde_json::Value,
    ) -> Result<Self> {
        let breach = |code: &'static str, reason: String| Error::InvalidOutput {
            name: function_name.to_owned(),
            code,
            reason,
        };
        let wire: WireResponse = serde_json::from_value(response).map_err(|error| {
            breach(
                firehose_codes::JSON_PROCESSING_EXCEPTION,
                format!("response is not {{\"records\": [...]}}: {error}"),
            )
        })?;

        let mut position_by_id: HashMap<&str, usize> = HashMap::with_capacity(event.records.len());
        for (position, record) in event.records.iter().enumerate() {
            position_by_id.insert(record.record_id.as_str(), position);
        }
        let mut answers: Vec<Option<FirehoseTransformedRecord>> = vec![None; event.records.len()];

        for (index, record) in wire.records.into_iter().enumerate() {
            let record_id = record.record_id.ok_or_else(|| {
                breach(
                    firehose_codes::MISSING_RECORD_ID,
                    format!("response record {index} has no recordId"),
                )
            })?;
            let result = match record.result.as_deref() {
                Some("Ok") => FirehoseRecordResult::Ok,
                Some("Dropped") => FirehoseRecordResult::Dropped,
                Some("ProcessingFailed") => FirehoseRecordResult::ProcessingFailed,
                Some(other) => {
                    return Err(breach(
                        firehose_codes::JSON_PROCESSING_EXCEPTION,
                        format!(
                            "record {record_id} has result {other:?}; expected Ok, Dropped or ProcessingFailed"
                        ),
                    ));
                }
                None => {
                    return Err(breach(
                        firehose_codes::JSON_PROCESSING_EXCEPTION,
                        format!("record {record_id} has no result"),
                    ));
                }
            };
            let data = match (record.data, result) {
                (Some(text), _) => BASE64.decode(text.as_bytes()).map_err(|error| {
                    breach(
                        firehose_codes::JSON_PROCESSING_EXCEPTION,
                        format!("record {record_id} has data that is not valid base64: {error}"),
                    )
                })?,
                (None, FirehoseRecordResult::Ok) => {
                    return Err(breach(
                        firehose_codes::JSON_PROCESSING_EXCEPTION,
                        format!("record {record_id} has result Ok but no data"),
                    ));
                }
                (None, _) => Vec::new(),
            };
            let Some(&position) = position_by_id.get(record_id.as_str()) else {
                return Err(breach(
                    firehose_codes::MISSING_RECORD_ID,
                    format!("response answers record {record_id}, which the event did not carry"),
                ));
            };
            let slot = answers.get_mut(position).ok_or_else(|| {
                breach(
                    firehose_codes::MISSING_RECORD_ID,
                    format!("record {record_id} has no slot"),
                )
            })?;
            if slot.is_some() {
                return Err(breach(
                    firehose_codes::DUPLICATED_RECORD_ID,
                    format!("record {record_id} is answered more than once"),
                ));
            }
            *slot = Some(FirehoseTransformedRecord {
                record_id,
                result,
                data,
                metadata: record.metadata,
            });
        }

        let mut records = Vec::with_capacity(answers.len());
        for (answer, event_record) in answers.into_iter().zip(&event.records) {
            match answer {
                Some(answer) => records.push(answer),
                None => {
                    return Err(breach(
                        firehose_codes::MISSING_RECORD_ID,
                        format!("record {} has no answer", event_record.record_id),
                    ));
                }
            }
        }
        Ok(FirehoseTransformationResponse { records })
    }
}

impl FirehoseTransformationEvent {
    /// Checks what a caller builds: record ids must be unique, or answers could not be matched.
    pub fn check_record_ids_unique(&self) -> std::result::Result<(), String> {
        let mut seen = std::collections::HashSet::with_capacity(self.records.len());
        for record in &self.records {
            if !seen.insert(record.record_id.as_str()) {
                return Err(format!("record id {} appears twice", record.record_id));
            }
        }
        Ok(())
    }
}

mod base64_bytes {
    //! Bytes as standard padded base64 strings, as the Lambda contract carries them.
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as BASE64;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&BASE64.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        BASE64
            .decode(text.as_bytes())
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event() -> FirehoseTransformationEvent {
        FirehoseTransformationEvent {
            invocation_id: "inv".into(),
            delivery_stream_arn: "arn:aws:firehose:us-east-1:000000000000:deliverystream/s".into(),
            region: "us-east-1".into(),
            records: vec![
                FirehoseEventRecord {
                    record_id: "a".into(),
                    approximate_arrival_timestamp: 1,
                    data: b"one".to_vec(),
                },
                FirehoseEventRecord {
                    record_id: "b".into(),
                    approximate_arrival_timestamp: 2,
                    data: b"two".to_vec(),
                },
            ],
        }
    }

    fn code(response: serde_json::Value) -> &'static str {
        FirehoseTransformationResponse::validate("f", &event(), response)
            .unwrap_err()
            .firehose_error_code()
    }

    #[test]
    fn event_wire_shape() {
        let value = serde_json::to_value(event()).unwrap();
        assert_eq!(value["invocationId"], "inv");
        assert_eq!(value["records"][0]["recordId"], "a");
        assert_eq!(value["records"][0]["approximateArrivalTimestamp"], 1);
        assert_eq!(value["records"][0]["data"], "b25l");
    }

    #[test]
    fn answers_come_back_in_event_order() {
        let response = json!({"records": [
            {"recordId": "b", "result": "Dropped"},
            {"recordId": "a", "result": "Ok", "data": "T05F", "metadata": {"partitionKeys": {"k": "v"}}},
        ]});
        let validated = FirehoseTransformationResponse::validate("f", &event(), response).unwrap();
        assert_eq!(validated.records[0].record_id, "a");
        assert_eq!(validated.records[0].data, b"ONE");
        assert_eq!(
            validated.records[0]
                .metadata
                .as_ref()
                .unwrap()
                .partition_keys["k"],
            "v"
        );
        assert_eq!(validated.records[1].result, FirehoseRecordResult::Dropped);
        assert!(validated.records[1].data.is_empty());
    }

    #[test]
    fn breaches_fail_with_firehose_codes() {
        let ok = |id: &str| json!({"recordId": id, "result": "Ok", "data": "eA=="});
        assert_eq!(code(json!([])), firehose_codes::JSON_PROCESSING_EXCEPTION);
        assert_eq!(
            code(json!({"records": [ok("a")]})),
            firehose_codes::MISSING_RECORD_ID
        );
        assert_eq!(
            code(json!({"records": [ok("a"), ok("b"), ok("zzz")]})),
            firehose_codes::MISSING_RECORD_ID
        );
        assert_eq!(
            code(json!({"records": [ok("a"), ok("a"), ok("b")]})),
            firehose_codes::DUPLICATED_RECORD_ID
        );
        assert_eq!(
            code(json!({"records": [ok("a"), {"recordId": "b", "result": "Ok", "data": "%%%"}]})),
            firehose_codes::JSON_PROCESSING_EXCEPTION
        );
        assert_eq!(
            code(
                json!({"records": [ok("a"), {"recordId": "b", "result": "Fine", "data": "eA=="}]})
            ),
            firehose_codes::JSON_PROCESSING_EXCEPTION
        );
        assert_eq!(
            code(json!({"records": [ok("a"), {"recordId": "b", "result": "Ok"}]})),
            firehose_codes::JSON_PROCESSING_EXCEPTION
        );
        assert_eq!(
            code(json!({"records": [ok("a"), {"result": "Ok", "data": "eA=="}]})),
            firehose_codes::MISSING_RECORD_ID
        );
    }
}
