//! One delivery stream: its source and consumer checkpoint, its buffer, and the flush that
//! processes, delivers, retries and backs up a batch. [`DeliveryStream::pump`] is one step of the
//! worker loop; tests call it directly with a manual clock.
//!
//! The invariant: a batch's checkpoint is written only after the destination and every backup
//! acknowledged the whole batch. Until then the batch stays in the source log, so a crash (or a
//! stop during retries) redelivers it; ids derived from log positions make that idempotent.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};
use sluice_cluster::bulk::cut;
use sluice_cluster::{BulkAction, BulkOperation, ClusterClient, Clusters, ItemOutcome};
use sluice_log::{
    AppendRecord, Clock, IteratorStart, Record, SequenceNumber, ShardPosition, Stream,
    limits::{READ_BYTES_MAX, READ_RECORDS_MAX},
};
use sluice_objects::ObjectStores;
use sluice_search::{Indices, SearchError, WriteRequest, version::Condition};

use crate::backup::{object_key, object_uuid};
use crate::config::{
    BackupMode, DeliveryStreamConfig, Destination, DocumentIdOption, LambdaProcessor,
    S3Destination, SearchDestination, Source,
};
use crate::error::{DeliveryError, Result};
use crate::ids::document_id;
use crate::limits::{
    BUFFER_RECORDS_MAX, PROCESSING_FAILURE_MESSAGE_BYTES_MAX, PUT_BATCH_BYTES_MAX,
    PUT_BATCH_RECORDS_MAX, RECORD_BYTES_MAX, RETRY_BACKOFF_MS_FIRST, RETRY_BACKOFF_MS_MAX,
};
use crate::metrics::Metrics;
use crate::rotation::rotated_index_name;
use crate::transform::{TransformInput, TransformResult, Transformer};

/// The log stream that holds a DirectPut delivery stream's records.
pub fn log_stream_name(delivery_stream_name: &str) -> String {
    format!("firehose.{delivery_stream_name}")
}

/// The consumer name under which a delivery stream checkpoints its source.
pub(crate) fn consumer_name(delivery_stream_name: &str) -> String {
    format!("delivery.{delivery_stream_name}")
}

/// Waits between retries. `false` means the worker was asked to stop: the batch in flight is
/// abandoned (its checkpoint not moved) and redelivered on the next start.
pub trait Pause {
    fn pause(&self, duration_ms: u64) -> bool;
}

/// What one [`DeliveryStream::pump`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PumpOutcome {
    /// Records of the batch flushed (0 when the buffer was not due).
    pub flushed_records: usize,
    /// Records left in the buffer.
    pub buffered_records: usize,
}

/// The result of one record of a put: its record id, or a Firehose error code and message.
pub type PutOutcome = std::result::Result<String, (&'static str, String)>;

/// A Lambda processor whose invocations have failed since it last succeeded: what
/// DescribeDeliveryStream shows until the next successful invocation clears it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessingFailure {
    /// The processor's function.
    pub lambda_arn: String,
    /// Firehose's code of the last failure, as in the `processing-failed/` records.
    pub error_code: String,
    /// The last failure's message (cut at [`PROCESSING_FAILURE_MESSAGE_BYTES_MAX`]).
    pub error_message: String,
    /// When the first failure of this burst ended, by the stream's clock.
    pub first_failed_ms: u64,
    /// When the last one ended.
    pub last_failed_ms: u64,
    /// Invocations that failed (after their retries) in this burst.
    pub failed_invocations: u64,
    /// Records those invocations sent to `processing-failed/`.
    pub failed_records: u64,
}

/// A batch that could not be delivered or backed up (its destination or backup write failed):
/// what DescribeDeliveryStream shows until a batch is delivered again. The batch stays in the
/// source and is retried with a growing pause; nothing is lost or skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryFailure {
    /// The last error (cut at [`PROCESSING_FAILURE_MESSAGE_BYTES_MAX`]).
    pub error_message: String,
    /// When the first failure of this burst happened, by the stream's clock.
    pub first_failed_ms: u64,
    /// When the last one did.
    pub last_failed_ms: u64,
    /// Failed attempts in this burst.
    pub failed_attempts: u64,
}

struct BufferState {
    positions: Vec<ShardPosition>,
    buffer: Vec<Record>,
    buffer_bytes: u64,
}

/// One document on its way to the destination.
#[derive(Debug, Clone)]
struct Document {
    sequence_number: SequenceNumber,
    arrival_time_ms: u64,
    data: Vec<u8>,
}

/// What one attempt did with one document.
enum Attempt {
    Delivered,
    /// Not delivered; worth another attempt until the retry duration ends. `(errorCode,
    /// errorMessage)` as Firehose reports them.
    Retry((String, String)),
    /// Not delivered, and another attempt would fail the same way: backed up at once.
    Failed((String, String)),
}

pub struct DeliveryStream {
    config: DeliveryStreamConfig,
    arn: String,
    source: Arc<Stream>,
    consumer: String,
    indices: Arc<Indices>,
    /// The external cluster of a search destination with a ClusterEndpoint.
    cluster: Option<Arc<ClusterClient>>,
    /// Set once the cluster's configured index templates are on it (each worker start puts
    /// them again, before its first bulk request).
    templates_installed: std::sync::atomic::AtomicBool,
    objects: Arc<ObjectStores>,
    transformer: Arc<dyn Transformer>,
    /// With security on, what the stream's role may write into Sluice's own search.
    index_authorizer: Option<Arc<dyn crate::manager::IndexAuthorizer>>,
    clock: Arc<dyn Clock>,
    metrics: Metrics,
    /// Set while flushes fail (an unreachable S3, a full disk), cleared by the next success.
    delivery_failure: Mutex<Option<DeliveryFailure>>,
    /// Offset after the last checkpointed record of shard 0 (DirectPut streams have one shard);
    /// the backlog is the log's end minus this.
    delivered_next_offset: AtomicU64,
    /// Undelivered records at which puts are throttled ([`crate::limits::BACKLOG_RECORDS_MAX`]).
    backlog_records_max: u64,
    state: Mutex<BufferState>,
    /// Processors failing since their last success, by Lambda ARN; at most one per processor.
    processing_failures: Mutex<BTreeMap<String, ProcessingFailure>>,
}

impl std::fmt::Debug for DeliveryStream {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("DeliveryStream")
            .field("name", &self.config.name)
            .finish_non_exhaustive()
    }
}

/// Firehose's ARN of a delivery stream (account and region are fixed on one machine).
pub(crate) fn delivery_stream_arn(name: &str) -> String {
    format!("arn:aws:firehose:us-east-1:000000000000:deliverystream/{name}")
}

impl DeliveryStream {
    /// Opens the stream over `source`, resuming after its checkpoint (or from the trim horizon).
    pub(crate) fn open(
        config: DeliveryStreamConfig,
        source: Arc<Stream>,
        indices: Arc<Indices>,
        objects: Arc<ObjectStores>,
        clusters: &Clusters,
        options: &crate::manager::DeliveryStreamsOptions,
    ) -> Result<DeliveryStream> {
        let transformer = options.transformer.clone();
        let clock = options.clock.clone();
        let backlog_records_max = options.backlog_records_max;
        let consumer = consumer_name(&config.name);
        let cluster = match &config.destination {
            Destination::Search(SearchDestination {
                cluster_endpoint: Some(endpoint),
                ..
            }) => Some(clusters.client(endpoint)?),
            _ => None,
        };
        let mut positions = Vec::new();
        let mut delivered_next_offset = 0;
        for shard in source.shards() {
            let start = match source.read_checkpoint(&consumer, shard.shard_index())? {
                Some(sequence_number) => IteratorStart::AfterSequenceNumber(sequence_number),
                None => IteratorStart::TrimHorizon,
            };
            let position = shard.position_for(start)?;
            if shard.shard_index() == 0 {
                delivered_next_offset = position.next_record_offset;
            }
            positions.push(position);
        }
        Ok(DeliveryStream {
            arn: delivery_stream_arn(&config.name),
            config,
            source,
            consumer,
            indices,
            cluster,
            templates_installed: std::sync::atomic::AtomicBool::new(false),
            objects,
            transformer,
            index_authorizer: options.index_authorizer.clone(),
            clock,
            metrics: Metrics::default(),
            delivery_failure: Mutex::new(None),
            delivered_next_offset: AtomicU64::new(delivered_next_offset),
            backlog_records_max,
            state: Mutex::new(BufferState {
                positions,
                buffer: Vec::new(),
                buffer_bytes: 0,
            }),
            processing_failures: Mutex::new(BTreeMap::new()),
        })
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    pub fn arn(&self) -> &str {
        &self.arn
    }

    pub fn config(&self) -> &DeliveryStreamConfig {
        &self.config
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The processors whose invocations fail since they last succeeded, by Lambda ARN.
    pub fn processing_failures(&self) -> Vec<ProcessingFailure> {
        self.processing_failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }

    /// Records a processor invocation that failed after its retries. The first failure of a
    /// burst is logged as a warning with the whole message (the function host's names the
    /// command and its stderr); later ones at debug level, so a function that cannot start
    /// logs once, not once per batch or record.
    fn processing_failed(
        &self,
        processor: &LambdaProcessor,
        error_code: &str,
        error_message: &str,
        n_records: usize,
    ) {
        let now_ms = self.clock.now_ms();
        let error_message = cut(error_message, PROCESSING_FAILURE_MESSAGE_BYTES_MAX);
        self.metrics
            .add_processing_failure(lambda_function_name(&processor.lambda_arn), error_code);
        let mut failures = self
            .processing_failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match failures.get_mut(&processor.lambda_arn) {
            Some(failure) => {
                failure.error_code = error_code.to_owned();
                failure.error_message = error_message;
                failure.last_failed_ms = now_ms;
                failure.failed_invocations += 1;
                failure.failed_records += n_records as u64;
                tracing::debug!(
                    delivery_stream = %self.config.name,
                    lambda = %processor.lambda_arn,
                    code = %error_code,
                    message = %failure.error_message,
                    "transformation failed again"
                );
            }
            None => {
                tracing::warn!(
                    delivery_stream = %self.config.name,
                    lambda = %processor.lambda_arn,
                    code = %error_code,
                    "transformation failed, its {n_records} records go to processing-failed/: {error_message} (further failures are logged at debug level until the function answers again)"
                );
                failures.insert(
                    processor.lambda_arn.clone(),
                    ProcessingFailure {
                        lambda_arn: processor.lambda_arn.clone(),
                        error_code: error_code.to_owned(),
                        error_message,
                        first_failed_ms: now_ms,
                        last_failed_ms: now_ms,
                        failed_invocations: 1,
                        failed_records: n_records as u64,
                    },
                );
            }
        }
    }

    /// Why batches fail to be delivered since the last one that was, if they do.
    pub fn delivery_failure(&self) -> Option<DeliveryFailure> {
        self.delivery_failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn delivery_failed(&self, error: &DeliveryError) {
        let now_ms = self.clock.now_ms();
        let error_message = cut(&error.to_string(), PROCESSING_FAILURE_MESSAGE_BYTES_MAX);
        Metrics::add(&self.metrics.delivery_failures, 1);
        let mut failure = self
            .delivery_failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match failure.as_mut() {
            Some(failure) => {
                failure.error_message = error_message;
                failure.last_failed_ms = now_ms;
                failure.failed_attempts += 1;
            }
            None => {
                *failure = Some(DeliveryFailure {
                    error_message,
                    first_failed_ms: now_ms,
                    last_failed_ms: now_ms,
                    failed_attempts: 1,
                });
            }
        }
    }

    fn delivery_succeeded(&self) {
        let cleared = self
            .delivery_failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(failure) = cleared {
            tracing::info!(
                delivery_stream = %self.config.name,
                "delivery works again after {} failed attempts",
                failure.failed_attempts
            );
        }
    }

    /// Records a processor invocation that succeeded: a failure shown for it is cleared.
    fn processing_succeeded(&self, processor: &LambdaProcessor) {
        let cleared = self
            .processing_failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&processor.lambda_arn);
        if let Some(failure) = cleared {
            tracing::info!(
                delivery_stream = %self.config.name,
                lambda = %processor.lambda_arn,
                "transformation works again after {} failed invocations",
                failure.failed_invocations
            );
        }
    }

    /// The log stream this delivery stream reads.
    pub fn source_stream(&self) -> &Arc<Stream> {
        &self.source
    }

    /// PutRecord / PutRecordBatch: appends the records to the stream's own log and returns once
    /// they are durable, one outcome per record. The outer error refuses the whole call.
    pub fn put_records(&self, records: &[Vec<u8>]) -> Result<Vec<PutOutcome>> {
        if !matches!(self.config.source, Source::DirectPut) {
            return Err(DeliveryError::invalid(
                "This operation is not permitted on KinesisStreamAsSource delivery stream type.",
            ));
        }
        if records.is_empty() || records.len() > PUT_BATCH_RECORDS_MAX {
            return Err(DeliveryError::LimitExceeded(format!(
                "1 validation error detected: Value at 'records' failed to satisfy constraint: Member must have length between 1 and {PUT_BATCH_RECORDS_MAX}"
            )));
        }
        let mut total_bytes = 0;
        for record in records {
            if record.len() > RECORD_BYTES_MAX {
                return Err(DeliveryError::LimitExceeded(format!(
                    "1 validation error detected: Value at 'record.data' failed to satisfy constraint: Member must have length less than or equal to {RECORD_BYTES_MAX}"
                )));
            }
            total_bytes += record.len();
        }
        if total_bytes > PUT_BATCH_BYTES_MAX {
            return Err(DeliveryError::LimitExceeded(format!(
                "records total {total_bytes} bytes, more than the {PUT_BATCH_BYTES_MAX} bytes a PutRecordBatch call may carry"
            )));
        }
        self.metrics
            .incoming_put_requests
            .fetch_add(1, Ordering::Relaxed);
        let shard = self.source.shard(0)?;
        let end = shard
            .position_for(IteratorStart::Latest)?
            .next_record_offset;
        let backlog = end.saturating_sub(self.delivered_next_offset.load(Ordering::Acquire));
        if backlog + records.len() as u64 > self.backlog_records_max {
            Metrics::add(&self.metrics.throttled_records, records.len() as u64);
            return Err(DeliveryError::Throttled(format!(
                "Slow down. Delivery stream {} has {backlog} records not yet delivered (limit {}).",
                self.config.name, self.backlog_records_max
            )));
        }
        let appends: Vec<AppendRecord> = records
            .iter()
            .map(|data| AppendRecord::new("firehose", data.clone()))
            .collect();
        let results = self.source.append_batch(&appends)?;
        let mut outcomes = Vec::with_capacity(results.len());
        for (result, data) in results.into_iter().zip(records) {
            outcomes.push(match result {
                Ok(appended) => {
                    Metrics::add(&self.metrics.incoming_records, 1);
                    Metrics::add(&self.metrics.incoming_bytes, data.len() as u64);
                    Ok(document_id(appended.sequence_number))
                }
                Err(error) => Err(("ServiceUnavailableException", error.to_string())),
            });
        }
        Ok(outcomes)
    }

    /// One step of the worker: reads what the buffer has room for, and flushes the buffer when
    /// it is due (size, record count or interval). On success the checkpoint has moved past the
    /// flushed batch.
    pub fn pump(&self, pause: &dyn Pause) -> Result<PumpOutcome> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        self.fill(&mut state)?;
        if state.buffer.is_empty() {
            return Ok(PumpOutcome::default());
        }
        let now_ms = self.clock.now_ms();
        let first_arrival_ms = state
            .buffer
            .iter()
            .map(|record| record.arrival_time_ms)
            .min()
            .unwrap_or(now_ms);
        let due = state.buffer_bytes >= self.config.buffering.size_bytes
            || state.buffer.len() >= BUFFER_RECORDS_MAX
            || now_ms.saturating_sub(first_arrival_ms) >= self.config.buffering.interval_ms;
        if !due {
            return Ok(PumpOutcome {
                flushed_records: 0,
                buffered_records: state.buffer.len(),
            });
        }
        match self.flush(&state.buffer, pause) {
            Ok(()) => self.delivery_succeeded(),
            Err(error @ DeliveryError::Stopping(_)) => return Err(error),
            Err(error) => {
                self.delivery_failed(&error);
                return Err(error);
            }
        }
        self.checkpoint(&state.buffer)?;
        let flushed_records = state.buffer.len();
        state.buffer.clear();
        state.buffer_bytes = 0;
        Ok(PumpOutcome {
            flushed_records,
            buffered_records: 0,
        })
    }

    fn fill(&self, state: &mut BufferState) -> Result<()> {
        let count_incoming = !matches!(self.config.source, Source::DirectPut);
        for index in 0..state.positions.len() {
            // Read until the buffer is full or the shard has nothing more: the last read takes
            // at least one record, so a full buffer may pass its size hint by one read.
            loop {
                let room_records = BUFFER_RECORDS_MAX.saturating_sub(state.buffer.len());
                let room_bytes = self
                    .config
                    .buffering
                    .size_bytes
                    .saturating_sub(state.buffer_bytes);
                if room_records == 0 || room_bytes == 0 {
                    return Ok(());
                }
                let Some(position) = state.positions.get(index).copied() else {
                    return Ok(());
                };
                let shard = self.source.shard(position.shard_index)?;
                let batch = shard.read(
                    position,
                    room_records.min(READ_RECORDS_MAX),
                    usize::try_from(room_bytes)
                        .unwrap_or(usize::MAX)
                        .clamp(1, READ_BYTES_MAX),
                )?;
                if let Some(slot) = state.positions.get_mut(index) {
                    *slot = batch.next_position;
                }
                let batch_was_empty = batch.records.is_empty();
                for record in batch.records {
                    let bytes = record.data.len() as u64;
                    if count_incoming {
                        Metrics::add(&self.metrics.incoming_records, 1);
                        Metrics::add(&self.metrics.incoming_bytes, bytes);
                    }
                    state.buffer_bytes += bytes;
                    state.buffer.push(record);
                }
                if batch_was_empty {
                    break;
                }
            }
        }
        Ok(())
    }

    fn checkpoint(&self, batch: &[Record]) -> Result<()> {
        let mut last_by_shard: BTreeMap<u32, SequenceNumber> = BTreeMap::new();
        for record in batch {
            let sequence_number = record.sequence_number;
            let entry = last_by_shard
                .entry(sequence_number.shard_index())
                .or_insert(sequence_number);
            *entry = (*entry).max(sequence_number);
        }
        for (shard_index, sequence_number) in last_by_shard {
            self.source
                .write_checkpoint(&self.consumer, shard_index, sequence_number)?;
            if shard_index == 0 {
                self.delivered_next_offset
                    .store(sequence_number.record_offset() + 1, Ordering::Release);
            }
        }
        Ok(())
    }

    /// Processes, delivers and backs up one batch; returns only when all of it is acknowledged
    /// (delivered, or backed up as failed).
    fn flush(&self, batch: &[Record], pause: &dyn Pause) -> Result<()> {
        let mut documents: Vec<Document> = batch
            .iter()
            .map(|record| Document {
                sequence_number: record.sequence_number,
                arrival_time_ms: record.arrival_time_ms,
                data: record.data.clone(),
            })
            .collect();
        let mut processing_failed: Vec<Value> = Vec::new();
        for processor in &self.config.processors {
            documents = self.process(processor, documents, &mut processing_failed);
        }
        let batch_key = batch_key(batch);
        match &self.config.destination {
            Destination::Search(search) => {
                self.deliver_to_search(search, &documents, &batch_key, pause)?;
                if !processing_failed.is_empty() {
                    self.write_processing_failed(&search.backup, &processing_failed, &batch_key)?;
                }
            }
            Destination::S3(s3) => {
                self.deliver_to_s3(s3, &documents, &batch_key)?;
                if !processing_failed.is_empty() {
                    self.write_processing_failed(&s3.location, &processing_failed, &batch_key)?;
                }
            }
        }
        Ok(())
    }

    fn process(
        &self,
        processor: &LambdaProcessor,
        documents: Vec<Document>,
        processing_failed: &mut Vec<Value>,
    ) -> Vec<Document> {
        let mut kept = Vec::with_capacity(documents.len());
        let mut chunk: Vec<Document> = Vec::new();
        let mut chunk_bytes = 0u64;
        let mut chunks = Vec::new();
        for document in documents {
            // Data travels base64-encoded: 4 bytes for every 3.
            let bytes = (document.data.len() as u64).div_ceil(3) * 4 + 128;
            if !chunk.is_empty() && chunk_bytes + bytes > processor.buffer_size_bytes {
                chunks.push(std::mem::take(&mut chunk));
                chunk_bytes = 0;
            }
            chunk_bytes += bytes;
            chunk.push(document);
        }
        if !chunk.is_empty() {
            chunks.push(chunk);
        }
        for chunk in chunks {
            let inputs: Vec<TransformInput> = chunk
                .iter()
                .map(|document| TransformInput {
                    record_id: document_id(document.sequence_number),
                    arrival_time_ms: document.arrival_time_ms,
                    data: document.data.clone(),
                })
                .collect();
            let answer = self.transformer.transform(
                &self.arn,
                &processor.lambda_arn,
                processor.number_of_retries,
                &inputs,
            );
            let now_ms = self.clock.now_ms();
            let failed = |document: &Document, code: &str, message: &str, attempts: u32| {
                json!({
                    "attemptsMade": attempts,
                    "arrivalTimestamp": document.arrival_time_ms,
                    "errorCode": code,
                    "errorMessage": message,
                    "attemptEndingTimestamp": now_ms,
                    "rawData": BASE64.encode(&document.data),
                    "lambdaArn": processor.lambda_arn,
                })
            };
            match answer {
                Ok(outputs) if outputs.len() == chunk.len() => {
                    self.processing_succeeded(processor);
                    for (document, output) in chunk.into_iter().zip(outputs) {
                        match output.result {
                            TransformResult::Ok => {
                                Metrics::add(&self.metrics.processing_ok_records, 1);
                                kept.push(Document {
                                    data: output.data,
                                    ..document
                                });
                            }
                            TransformResult::Dropped => {
                                Metrics::add(&self.metrics.dropped_records, 1);
                            }
                            TransformResult::ProcessingFailed => {
                                Metrics::add(&self.metrics.processing_failed_records, 1);
                                processing_failed.push(failed(
                                    &document,
                                    "Lambda.ProcessingFailed",
                                    "The function marked the record ProcessingFailed.",
                                    1,
                                ));
                            }
                        }
                    }
                }
                Ok(outputs) => {
                    let message = format!(
                        "the function answered {} records for {} sent",
                        outputs.len(),
                        chunk.len()
                    );
                    self.processing_failed(
                        processor,
                        "Lambda.MissingRecordId",
                        &message,
                        chunk.len(),
                    );
                    for document in &chunk {
                        Metrics::add(&self.metrics.processing_failed_records, 1);
                        processing_failed.push(failed(
                            document,
                            "Lambda.MissingRecordId",
                            &message,
                            1,
                        ));
                    }
                }
                Err(failure) => {
                    self.processing_failed(
                        processor,
                        &failure.error_code,
                        &failure.error_message,
                        chunk.len(),
                    );
                    for document in &chunk {
                        Metrics::add(&self.metrics.processing_failed_records, 1);
                        processing_failed.push(failed(
                            document,
                            &failure.error_code,
                            &failure.error_message,
                            failure.attempts,
                        ));
                    }
                }
            }
        }
        kept
    }

    fn deliver_to_search(
        &self,
        destination: &SearchDestination,
        documents: &[Document],
        batch_key: &[String; 2],
        pause: &dyn Pause,
    ) -> Result<()> {
        let first_attempt_ms = self.clock.now_ms();
        let deadline_ms = first_attempt_ms + destination.retry_duration_s * 1000;
        let targets: Vec<(String, Option<String>)> = documents
            .iter()
            .map(|document| {
                let index = rotated_index_name(
                    &destination.index_name,
                    destination.rotation,
                    document.arrival_time_ms,
                );
                let id = match destination.document_id {
                    DocumentIdOption::FirehoseDefault => {
                        Some(document_id(document.sequence_number))
                    }
                    DocumentIdOption::NoDocumentId => None,
                };
                (index, id)
            })
            .collect();
        Metrics::add(
            &self.metrics.delivery_attempted_records,
            documents.len() as u64,
        );
        if let Some(cluster) = &self.cluster {
            self.install_index_templates(cluster)?;
        }
        // Positions (in `documents`) still to deliver, given up on, and the last error of each
        // with the attempts it took.
        let mut pending: Vec<usize> = (0..documents.len()).collect();
        let mut given_up: Vec<usize> = Vec::new();
        let mut last_errors: BTreeMap<usize, (String, String, u32)> = BTreeMap::new();
        let mut attempts = 0u32;
        let mut backoff_ms = RETRY_BACKOFF_MS_FIRST;
        loop {
            attempts += 1;
            let outcomes: Vec<(usize, Attempt)> = match &self.cluster {
                // One bulk request carries every index; the client splits it by size.
                Some(cluster) => {
                    let attempted =
                        self.write_to_cluster(cluster, destination, documents, &targets, &pending);
                    pending.iter().copied().zip(attempted).collect()
                }
                None => {
                    let mut by_index: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
                    for &position in &pending {
                        if let Some((index, _)) = targets.get(position) {
                            by_index.entry(index.as_str()).or_default().push(position);
                        }
                    }
                    let mut outcomes = Vec::with_capacity(pending.len());
                    for (index_name, positions) in by_index {
                        let attempted =
                            self.write_documents(index_name, documents, &targets, &positions);
                        outcomes.extend(positions.into_iter().zip(attempted));
                    }
                    outcomes
                }
            };
            let mut still_failing = Vec::new();
            for (position, outcome) in outcomes {
                match outcome {
                    Attempt::Delivered => {
                        last_errors.remove(&position);
                        if let Some(document) = documents.get(position) {
                            Metrics::add(&self.metrics.delivery_records, 1);
                            Metrics::add(&self.metrics.delivery_bytes, document.data.len() as u64);
                        }
                    }
                    Attempt::Retry((code, message)) => {
                        last_errors.insert(position, (code, message, attempts));
                        still_failing.push(position);
                    }
                    Attempt::Failed((code, message)) => {
                        last_errors.insert(position, (code, message, attempts));
                        given_up.push(position);
                    }
                }
            }
            pending = still_failing;
            if pending.is_empty() || self.clock.now_ms() >= deadline_ms {
                break;
            }
            Metrics::add(&self.metrics.delivery_retries, 1);
            if !pause.pause(with_jitter(backoff_ms)) {
                return Err(DeliveryError::Stopping(self.config.name.clone()));
            }
            backoff_ms = (backoff_ms * 2).min(RETRY_BACKOFF_MS_MAX);
        }
        if let Some(cluster) = &self.cluster {
            self.drop_applied(cluster, &targets, &mut pending, &mut last_errors);
        }
        pending.extend(given_up);
        pending.sort_unstable();
        let now_ms = self.clock.now_ms();
        if let Some(oldest) = documents.iter().map(|d| d.arrival_time_ms).min() {
            self.metrics
                .data_freshness_ms
                .store(now_ms.saturating_sub(oldest), Ordering::Relaxed);
        }
        if !pending.is_empty() {
            let mut lines = Vec::new();
            for &position in &pending {
                let (Some(document), Some((index, id))) =
                    (documents.get(position), targets.get(position))
                else {
                    continue;
                };
                let (code, message, attempts_made) = last_errors
                    .get(&position)
                    .cloned()
                    .unwrap_or_else(|| ("500".to_owned(), "unknown failure".to_owned(), attempts));
                let line = json!({
                    "attemptsMade": attempts_made,
                    "arrivalTimestamp": document.arrival_time_ms,
                    "errorCode": code,
                    "errorMessage": message,
                    "attemptEndingTimestamp": now_ms,
                    "esDocumentId": id,
                    "esIndexName": index,
                    "esTypeName": destination.type_name.clone().unwrap_or_default(),
                    "rawData": BASE64.encode(&document.data),
                });
                lines.push(line);
            }
            let prefix = match &destination.backup.error_output_prefix {
                Some(prefix) => prefix.clone(),
                None => format!("{}elasticsearch_failed/", destination.backup.prefix),
            };
            self.put_json_lines(&destination.backup, &prefix, &lines, batch_key, "failed")?;
            Metrics::add(&self.metrics.failed_documents, pending.len() as u64);
        }
        if destination.backup_mode == BackupMode::AllDocuments && !documents.is_empty() {
            let bytes: Vec<u8> = documents
                .iter()
                .flat_map(|document| document.data.iter().copied())
                .collect();
            self.put_object(
                &destination.backup,
                &destination.backup.prefix,
                &bytes,
                batch_key,
                "all",
            )?;
            Metrics::add(&self.metrics.backup_records, documents.len() as u64);
        }
        Ok(())
    }

    /// One attempt at writing the documents at `positions` into Sluice's own `index_name`.
    /// Every failure of its own index is retried until the retry duration ends (a full disk, a
    /// mapping that another write may change), as before external clusters existed.
    fn write_documents(
        &self,
        index_name: &str,
        documents: &[Document],
        targets: &[(String, Option<String>)],
        positions: &[usize],
    ) -> Vec<Attempt> {
        self.write_documents_locally(index_name, documents, targets, positions)
            .into_iter()
            .map(|result| match result {
                Ok(()) => Attempt::Delivered,
                Err(error) => Attempt::Retry(error),
            })
            .collect()
    }

    /// One attempt at writing the documents at `positions` into the external cluster: one
    /// outcome per position, in order. Ids are the same as in Sluice's own index, so a
    /// document retried after a request whose answer was lost overwrites itself.
    fn write_to_cluster(
        &self,
        cluster: &ClusterClient,
        destination: &SearchDestination,
        documents: &[Document],
        targets: &[(String, Option<String>)],
        positions: &[usize],
    ) -> Vec<Attempt> {
        let operations: Vec<BulkOperation> = positions
            .iter()
            .map(|&position| {
                let (index, id) = targets.get(position).cloned().unwrap_or_default();
                BulkOperation {
                    index,
                    id,
                    version: None,
                    action: BulkAction::Index {
                        source: documents
                            .get(position)
                            .map(|document| document.data.clone())
                            .unwrap_or_default(),
                    },
                }
            })
            .collect();
        cluster
            .bulk(&operations, destination.type_name.as_deref())
            .into_iter()
            .map(|outcome| match outcome {
                ItemOutcome::Applied => Attempt::Delivered,
                ItemOutcome::Retry(error) => Attempt::Retry((error.code, error.message)),
                ItemOutcome::Failed(error) => Attempt::Failed((error.code, error.message)),
            })
            .collect()
    }

    /// Removes from `pending` (documents still failing when the retry time ended) those the
    /// cluster holds: a request whose answer was lost (a dropped connection, a timeout, a
    /// gateway's 5xx) may have been applied, and such a document must not also be backed up.
    /// When the cluster cannot say, every one is backed up (it may then be in both, never in
    /// neither). Documents without an id (the cluster chose it) cannot be asked about.
    fn drop_applied(
        &self,
        cluster: &ClusterClient,
        targets: &[(String, Option<String>)],
        pending: &mut Vec<usize>,
        last_errors: &mut BTreeMap<usize, (String, String, u32)>,
    ) {
        let asked: Vec<(usize, (&str, &str))> = pending
            .iter()
            .filter_map(|&position| match targets.get(position) {
                Some((index, Some(id))) => Some((position, (index.as_str(), id.as_str()))),
                _ => None,
            })
            .collect();
        if asked.is_empty() {
            return;
        }
        let documents: Vec<(&str, &str)> = asked.iter().map(|(_, document)| *document).collect();
        match cluster.existing_documents(&documents) {
            Ok(held) => {
                let applied: std::collections::BTreeSet<usize> = asked
                    .iter()
                    .zip(held)
                    .filter(|(_, held)| *held)
                    .map(|((position, _), _)| *position)
                    .collect();
                pending.retain(|position| !applied.contains(position));
                for position in &applied {
                    last_errors.remove(position);
                }
                Metrics::add(&self.metrics.delivery_records, applied.len() as u64);
            }
            Err(error) => tracing::warn!(
                stream = %self.config.name,
                error = %error.message,
                "the cluster could not say which failed documents it holds; all are backed up"
            ),
        }
    }

    /// Puts the cluster's configured index templates on it once per worker start, before
    /// the first bulk request: an index rotation creates indices that must take them. A
    /// failure fails the flush (its batch stays in the source and is tried again).
    fn install_index_templates(&self, cluster: &ClusterClient) -> Result<()> {
        if !cluster.has_index_templates() || self.templates_installed.load(Ordering::Acquire) {
            return Ok(());
        }
        cluster
            .install_index_templates()
            .map_err(|error| DeliveryError::IndexTemplates {
                endpoint: cluster.endpoint().to_owned(),
                code: error.code,
                message: error.message,
            })?;
        self.templates_installed.store(true, Ordering::Release);
        Ok(())
    }

    /// [`Self::write_documents`]' attempt; an error is `(errorCode, errorMessage)` as Firehose
    /// reports them (HTTP status, Elasticsearch error).
    fn write_documents_locally(
        &self,
        index_name: &str,
        documents: &[Document],
        targets: &[(String, Option<String>)],
        positions: &[usize],
    ) -> Vec<std::result::Result<(), (String, String)>> {
        if let (Some(authorizer), Destination::Search(destination)) =
            (&self.index_authorizer, &self.config.destination)
        {
            let exists = self.indices.exists(index_name)
                || !self.indices.catalog().alias_indices(index_name).is_empty();
            if let Err(reason) =
                authorizer.may_index(destination.role_arn.as_deref(), index_name, exists)
            {
                let failure = error_pair(403, "security_exception", &reason);
                return positions.iter().map(|_| Err(failure.clone())).collect();
            }
        }
        let index = match self.indices.get_or_create(index_name) {
            Ok(index) => index,
            Err(error) => {
                let failure = search_error(&error);
                return positions.iter().map(|_| Err(failure.clone())).collect();
            }
        };
        let mut results: Vec<std::result::Result<(), (String, String)>> =
            Vec::with_capacity(positions.len());
        let mut requests = Vec::new();
        let mut request_slots = Vec::new();
        for &position in positions {
            let (Some(document), Some((_, id))) = (documents.get(position), targets.get(position))
            else {
                results.push(Err(("500".to_owned(), "document out of range".to_owned())));
                continue;
            };
            match serde_json::from_slice::<Value>(&document.data) {
                Ok(parsed @ Value::Object(_)) => {
                    request_slots.push(results.len());
                    results.push(Ok(()));
                    requests.push(WriteRequest::Index {
                        id: id.clone(),
                        source: Arc::from(document.data.as_slice()),
                        document: parsed,
                        condition: Condition::None,
                    });
                }
                Ok(_) | Err(_) => results.push(Err(error_pair(
                    400,
                    "mapper_parsing_exception",
                    "failed to parse: the record is not a JSON object",
                ))),
            }
        }
        for (slot, outcome) in request_slots.into_iter().zip(index.write(requests)) {
            if let (Some(result), Err(error)) = (results.get_mut(slot), outcome) {
                *result = Err(search_error(&error));
            }
        }
        results
    }

    fn deliver_to_s3(
        &self,
        destination: &S3Destination,
        documents: &[Document],
        batch_key: &[String; 2],
    ) -> Result<()> {
        Metrics::add(
            &self.metrics.delivery_attempted_records,
            documents.len() as u64,
        );
        if documents.is_empty() {
            return Ok(());
        }
        let bytes: Vec<u8> = documents
            .iter()
            .flat_map(|document| document.data.iter().copied())
            .collect();
        self.put_object(
            &destination.location,
            &destination.location.prefix,
            &bytes,
            batch_key,
            "data",
        )?;
        Metrics::add(&self.metrics.delivery_records, documents.len() as u64);
        Metrics::add(&self.metrics.delivery_bytes, bytes.len() as u64);
        if let Some(oldest) = documents.iter().map(|d| d.arrival_time_ms).min() {
            self.metrics.data_freshness_ms.store(
                self.clock.now_ms().saturating_sub(oldest),
                Ordering::Relaxed,
            );
        }
        Ok(())
    }

    fn write_processing_failed(
        &self,
        location: &crate::config::S3Location,
        lines: &[Value],
        batch_key: &[String; 2],
    ) -> Result<()> {
        let prefix = match &location.error_output_prefix {
            Some(prefix) => format!("{prefix}processing-failed/"),
            None => format!("{}processing-failed/", location.prefix),
        };
        self.put_json_lines(location, &prefix, lines, batch_key, "processing-failed")
    }

    fn put_json_lines(
        &self,
        location: &crate::config::S3Location,
        prefix: &str,
        lines: &[Value],
        batch_key: &[String; 2],
        kind: &str,
    ) -> Result<()> {
        let mut bytes = Vec::new();
        for line in lines {
            bytes.extend_from_slice(line.to_string().as_bytes());
            bytes.push(b'\n');
        }
        self.put_object(location, prefix, &bytes, batch_key, kind)
    }

    fn put_object(
        &self,
        location: &crate::config::S3Location,
        prefix: &str,
        bytes: &[u8],
        batch_key: &[String; 2],
        kind: &str,
    ) -> Result<()> {
        let bucket = location.bucket()?;
        let [first, last] = batch_key;
        let uuid = object_uuid(&[&self.config.name, first, last, kind]);
        let key = object_key(prefix, &self.config.name, self.clock.now_ms(), &uuid);
        let placement =
            self.objects
                .placement(bucket, location.s3.as_ref(), location.encryption.as_ref());
        self.objects.put(&placement, bucket, &key, bytes)?;
        Ok(())
    }
}

/// The function's name in a Lambda ARN (`arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]`),
/// or the whole text when it is not shaped so.
pub fn lambda_function_name(lambda_arn: &str) -> &str {
    match lambda_arn.split(':').collect::<Vec<_>>().as_slice() {
        ["arn", _, "lambda", _, _, "function", name, ..] if !name.is_empty() => name,
        _ => lambda_arn,
    }
}

/// A pause of `backoff_ms` with jitter: between half of it and all of it ("equal jitter"), so
/// streams retrying against one busy cluster spread out instead of returning together.
fn with_jitter(backoff_ms: u64) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    // A fresh `RandomState` is seeded from the process's random keys and a counter: random
    // enough to spread retries, with no dependency for it.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(backoff_ms);
    let half = backoff_ms / 2;
    half + hasher.finish() % (backoff_ms - half + 1)
}

/// The first and last log positions of a batch: names its backup objects.
fn batch_key(batch: &[Record]) -> [String; 2] {
    let first = batch
        .first()
        .map(|record| record.sequence_number.to_string())
        .unwrap_or_default();
    let last = batch
        .last()
        .map(|record| record.sequence_number.to_string())
        .unwrap_or_default();
    [first, last]
}

fn error_pair(status: u16, kind: &str, reason: &str) -> (String, String) {
    (
        status.to_string(),
        json!({"type": kind, "reason": reason}).to_string(),
    )
}

/// How Firehose would report a search error: the HTTP status as `errorCode`, the
/// Elasticsearch error object as `errorMessage`.
fn search_error(error: &SearchError) -> (String, String) {
    let (status, kind) = match error {
        SearchError::DocumentParsing { .. } => (400, "mapper_parsing_exception"),
        SearchError::StrictDynamicMapping { .. } => (400, "strict_dynamic_mapping_exception"),
        SearchError::MapperParsing { .. } => (400, "mapper_parsing_exception"),
        SearchError::IllegalArgument { .. } | SearchError::Validation { .. } => {
            (400, "illegal_argument_exception")
        }
        SearchError::InvalidIndexName { .. } => (400, "invalid_index_name_exception"),
        SearchError::VersionConflict { .. } => (409, "version_conflict_engine_exception"),
        SearchError::Rejected { .. } => (429, "es_rejected_execution_exception"),
        SearchError::IndexNotFound { .. } => (404, "index_not_found_exception"),
        _ => (500, "exception"),
    };
    error_pair(status, kind, &error.to_string())
}
