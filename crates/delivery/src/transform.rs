//! The processor contract as this crate sees it: a batch of records in, one answer per record
//! out. The node adapts the function host (Lambda handlers run out of process) to this trait, so
//! delivery stays synchronous, testable and ignorant of how functions run.

/// One record sent to a transformation; `record_id` is derived from its log position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransformInput {
    pub record_id: String,
    pub arrival_time_ms: u64,
    pub data: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransformResult {
    Ok,
    Dropped,
    ProcessingFailed,
}

/// The answer for one input, in the input's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransformOutput {
    pub record_id: String,
    pub result: TransformResult,
    pub data: Vec<u8>,
}

/// A whole invocation failed after its retries: every record of it is ProcessingFailed with
/// this Firehose error code (`Lambda.FunctionError`, `Lambda.InvokeLimitExceeded`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransformFailure {
    pub error_code: String,
    pub error_message: String,
    pub attempts: u32,
}

/// Runs a Lambda transformation. Blocking: called from a delivery worker thread.
pub trait Transformer: Send + Sync + std::fmt::Debug {
    /// Sends `records` to the function `lambda_arn`, retrying `number_of_retries` times, and
    /// returns exactly one answer per record in order, or the failure of the whole call.
    fn transform(
        &self,
        delivery_stream_arn: &str,
        lambda_arn: &str,
        number_of_retries: u32,
        records: &[TransformInput],
    ) -> Result<Vec<TransformOutput>, TransformFailure>;
}

/// A host without functions: every processor invocation fails as an unknown function would.
#[derive(Debug, Default)]
pub struct NoFunctions;

impl Transformer for NoFunctions {
    fn transform(
        &self,
        _delivery_stream_arn: &str,
        lambda_arn: &str,
        _number_of_retries: u32,
        _records: &[TransformInput],
    ) -> Result<Vec<TransformOutput>, TransformFailure> {
        Err(TransformFailure {
            error_code: "Lambda.FunctionNotFound".to_owned(),
            error_message: format!("no function is registered for {lambda_arn}"),
            attempts: 1,
        })
    }
}
