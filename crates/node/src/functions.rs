//! Adapts the function host (`sluice-functions`, async, out of process) to the delivery crate's
//! blocking [`Transformer`]: a delivery worker thread blocks on the host's runtime for the
//! duration of one Firehose transformation; and to the mappings' [`Invoker`], the same way.

use sluice_delivery::{
    TransformFailure, TransformInput, TransformOutput, TransformResult, Transformer,
};
use sluice_functions::{
    FirehoseEventRecord, FirehoseRecordResult, FirehoseTransformationEvent, FunctionRegistry,
    InvokeOptions,
};
use sluice_mappings::{InvokeFailure, Invoker};
use std::sync::atomic::{AtomicU64, Ordering};

/// Runs transformations with a [`FunctionRegistry`] on a tokio runtime.
#[derive(Debug)]
pub struct FunctionsTransformer {
    registry: FunctionRegistry,
    runtime: tokio::runtime::Handle,
    invocations: AtomicU64,
}

impl FunctionsTransformer {
    /// `runtime` must outlive the node; delivery workers are plain threads, never its workers.
    pub fn new(registry: FunctionRegistry, runtime: tokio::runtime::Handle) -> Self {
        FunctionsTransformer {
            registry,
            runtime,
            invocations: AtomicU64::new(0),
        }
    }
}

impl Transformer for FunctionsTransformer {
    fn transform(
        &self,
        delivery_stream_arn: &str,
        lambda_arn: &str,
        number_of_retries: u32,
        records: &[TransformInput],
    ) -> Result<Vec<TransformOutput>, TransformFailure> {
        let n = self.invocations.fetch_add(1, Ordering::Relaxed);
        let event = FirehoseTransformationEvent {
            invocation_id: format!("00000000-0000-4000-9000-{n:012x}"),
            delivery_stream_arn: delivery_stream_arn.to_owned(),
            region: "us-east-1".to_owned(),
            records: records
                .iter()
                .map(|record| FirehoseEventRecord {
                    record_id: record.record_id.clone(),
                    approximate_arrival_timestamp: i64::try_from(record.arrival_time_ms)
                        .unwrap_or(i64::MAX),
                    data: record.data.clone(),
                })
                .collect(),
        };
        let options = InvokeOptions { number_of_retries };
        let answer = self.runtime.block_on(
            self.registry
                .transform_firehose(lambda_arn, &event, &options),
        );
        match answer {
            Ok(invocation) => Ok(invocation
                .response
                .records
                .into_iter()
                .map(|record| TransformOutput {
                    record_id: record.record_id,
                    result: match record.result {
                        FirehoseRecordResult::Ok => TransformResult::Ok,
                        FirehoseRecordResult::Dropped => TransformResult::Dropped,
                        FirehoseRecordResult::ProcessingFailed => TransformResult::ProcessingFailed,
                    },
                    data: record.data,
                })
                .collect()),
            Err(error) => Err(TransformFailure {
                error_code: error.firehose_error_code().to_owned(),
                error_message: error.to_string(),
                attempts: match &error {
                    sluice_functions::Error::RetriesExhausted { attempts, .. } => *attempts,
                    _ => 1,
                },
            }),
        }
    }
}

/// Runs the functions of event-source mappings with a [`FunctionRegistry`]: one attempt per
/// call, since the mapping worker owns the retry policy (`MaximumRetryAttempts`, bisecting).
#[derive(Debug)]
pub struct FunctionsInvoker {
    registry: FunctionRegistry,
    runtime: tokio::runtime::Handle,
}

impl FunctionsInvoker {
    /// `runtime` must outlive the node; mapping workers are plain threads, never its workers.
    pub fn new(registry: FunctionRegistry, runtime: tokio::runtime::Handle) -> Self {
        FunctionsInvoker { registry, runtime }
    }
}

impl Invoker for FunctionsInvoker {
    fn invoke(
        &self,
        function_arn: &str,
        event: &serde_json::Value,
    ) -> Result<serde_json::Value, InvokeFailure> {
        let options = InvokeOptions {
            number_of_retries: 0,
        };
        let answer =
            self.runtime
                .block_on(self.registry.invoke_with(function_arn, event, &options));
        match answer {
            Ok(invocation) => Ok(invocation.response),
            Err(error) => Err(match error.last_attempt() {
                sluice_functions::Error::FunctionError {
                    error_type,
                    message,
                    ..
                } => InvokeFailure {
                    error_type: error_type.clone(),
                    message: message.clone(),
                    function_did_not_run: false,
                },
                other => InvokeFailure {
                    error_type: "Sluice.InvocationFailed".to_owned(),
                    message: other.to_string(),
                    function_did_not_run: !other.is_the_functions_own(),
                },
            }),
        }
    }
}
