//! One worker: reads one source in order, batches, filters, invokes the function and moves the
//! checkpoint. The invariant: the checkpoint moves past a record only after the function
//! succeeded on it, it was filtered out, or it went to the OnFailure destination (or was given
//! up on with none configured), so a crash at any point redelivers and never skips.
//!
//! Failures follow Lambda's rules for stream sources: a failed batch is retried whole, after a
//! growing pause; with `BisectBatchOnFunctionError` it is split in two halves retried in order;
//! with `ReportBatchItemFailures` the records before the first reported one are done and the
//! retry starts at it (a failure reported on the first record counts as a failed batch, so
//! bisecting isolates it); past `MaximumRetryAttempts`, or `MaximumRecordAgeInSeconds`, the
//! batch's description goes to the OnFailure stream and the worker moves on.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sluice_log::{AppendRecord, Clock, Log};

use crate::config::MappingConfig;
use crate::error::Result;
use crate::filter::{self, Pattern};
use crate::limits::{POLL_INTERVAL, RETRY_BACKOFF_INITIAL, RETRY_BACKOFF_MAX};
use crate::source::{EventSource, SourceRecord};

/// How a failed invocation failed: the function's error type and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvokeFailure {
    pub error_type: String,
    pub message: String,
    /// The function did not run: it does not exist (yet), it is throttled, or the host is
    /// stopping. Such a batch is retried without counting against `MaximumRetryAttempts`, so
    /// records are never given up on because of the host.
    pub function_did_not_run: bool,
}

/// Runs the mapped function; `node` adapts the function host to it, tests use closures, so
/// this crate does not depend on how functions run.
pub trait Invoker: Send + Sync + std::fmt::Debug {
    /// Invokes `function_arn` once with `event` and returns its answer.
    fn invoke(&self, function_arn: &str, event: &Value) -> Result<Value, InvokeFailure>;
}

/// Tells a worker (and its lanes) to stop; every pause of theirs ends as soon as it is set.
#[derive(Debug, Default)]
pub(crate) struct StopSignal {
    stopped: Mutex<bool>,
    changed: Condvar,
}

impl StopSignal {
    pub(crate) fn request(&self) {
        if let Ok(mut stopped) = self.stopped.lock() {
            *stopped = true;
        }
        self.changed.notify_all();
    }

    /// Waits `duration` or until a stop is requested; true when it was.
    pub(crate) fn wait(&self, duration: Duration) -> bool {
        let Ok(stopped) = self.stopped.lock() else {
            return true;
        };
        match self
            .changed
            .wait_timeout_while(stopped, duration, |stopped| !*stopped)
        {
            Ok((stopped, _)) => *stopped,
            Err(_) => true,
        }
    }
}

/// A checkpoint callback: the single-lane worker moves its source's checkpoint, lanes of a
/// parallelized batch do not (the worker moves it once every lane is done).
type Checkpoint<'c> = dyn FnMut(&SourceRecord) -> Result<()> + 'c;

/// Why a worker stopped processing a batch before it was done.
enum Stop {
    Requested,
    Failed(crate::error::MappingError),
}

impl From<crate::error::MappingError> for Stop {
    fn from(error: crate::error::MappingError) -> Self {
        Stop::Failed(error)
    }
}

/// One worker: its source and what handles its batches.
pub(crate) struct Worker<'a> {
    source: Box<dyn EventSource>,
    runner: Runner<'a>,
}

/// Everything a batch needs but the source; shared by the lanes of a parallelized batch.
struct Runner<'a> {
    config: MappingConfig,
    invoker: Arc<dyn Invoker>,
    log: Arc<Log>,
    clock: Arc<dyn Clock>,
    stop: &'a StopSignal,
    filters: Vec<Pattern>,
    shard_id: String,
    batch_info_member: &'static str,
}

impl<'a> Worker<'a> {
    pub(crate) fn new(
        config: MappingConfig,
        source: Box<dyn EventSource>,
        invoker: Arc<dyn Invoker>,
        log: Arc<Log>,
        clock: Arc<dyn Clock>,
        stop: &'a StopSignal,
    ) -> Worker<'a> {
        // Validated at create; a pattern that no longer compiles filters nothing out.
        let filters = filter::compile_all(&config.filters).unwrap_or_default();
        let runner = Runner {
            config,
            invoker,
            log,
            clock,
            stop,
            filters,
            shard_id: source.shard_id(),
            batch_info_member: source.batch_info_member(),
        };
        Worker { source, runner }
    }

    /// Runs until asked to stop (true) or until it fails (false): then the checkpoint did not
    /// move past anything unhandled, and the caller starts over from it.
    pub(crate) fn run(mut self) -> bool {
        let mut buffer: Vec<SourceRecord> = Vec::new();
        let mut first_buffered: Option<Instant> = None;
        let batch_size = usize::try_from(self.runner.config.batch_size)
            .unwrap_or(1)
            .max(1);
        let lanes = usize::try_from(self.runner.config.parallelization_factor)
            .unwrap_or(1)
            .max(1);
        // With a ParallelizationFactor of N, up to N batches of one shard run at once.
        let group_size = batch_size.saturating_mul(lanes);
        let window = Duration::from_secs(u64::from(self.runner.config.maximum_batching_window_s));
        loop {
            if buffer.len() < group_size {
                match self.source.read(group_size - buffer.len()) {
                    Ok(records) => buffer.extend(records),
                    Err(error) => {
                        tracing::warn!(mapping = %self.runner.config.uuid, %error, "reading the source failed");
                        return false;
                    }
                }
            }
            if buffer.is_empty() {
                if self.runner.stop.wait(POLL_INTERVAL) {
                    return true;
                }
                continue;
            }
            let started = *first_buffered.get_or_insert_with(Instant::now);
            if buffer.len() < group_size && started.elapsed() < window {
                if self.runner.stop.wait(POLL_INTERVAL) {
                    return true;
                }
                continue;
            }
            let batch: Vec<SourceRecord> = buffer.drain(..buffer.len().min(group_size)).collect();
            first_buffered = None;
            let outcome = if lanes == 1 {
                let source = &mut self.source;
                self.runner
                    .process(batch, &mut |record| source.checkpoint(record))
            } else {
                self.process_in_lanes(batch, batch_size, lanes)
            };
            match outcome {
                Ok(()) => {}
                Err(Stop::Requested) => return true,
                Err(Stop::Failed(error)) => {
                    tracing::error!(mapping = %self.runner.config.uuid, %error, "event source mapping failed; it resumes from its checkpoint");
                    return false;
                }
            }
        }
    }

    /// A group of up to `lanes` batches: records go to a lane by their partition key, so one
    /// key's records stay in order; the lanes run at once, each batch by batch, and the
    /// checkpoint moves past the group only when every lane is done (a crash redoes the group).
    fn process_in_lanes(
        &mut self,
        group: Vec<SourceRecord>,
        batch_size: usize,
        lanes: usize,
    ) -> Result<(), Stop> {
        let Some(last) = group.last().cloned() else {
            return Ok(());
        };
        let mut by_lane: Vec<Vec<SourceRecord>> = vec![Vec::new(); lanes];
        for record in group {
            let lane = lane_of(&record.partition_key, lanes);
            if let Some(records) = by_lane.get_mut(lane) {
                records.push(record);
            }
        }
        let runner = &self.runner;
        let outcomes: Vec<Result<(), Stop>> = std::thread::scope(|scope| {
            let handles: Vec<_> = by_lane
                .into_iter()
                .filter(|records| !records.is_empty())
                .map(|records| {
                    scope.spawn(move || {
                        for batch in records.chunks(batch_size) {
                            runner.process(batch.to_vec(), &mut |_| Ok(()))?;
                        }
                        Ok(())
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|handle| {
                    handle.join().unwrap_or_else(|_| {
                        Err(Stop::Failed(crate::error::MappingError::InvalidParameter(
                            "a lane of the mapping panicked".to_owned(),
                        )))
                    })
                })
                .collect()
        });
        for outcome in outcomes {
            outcome?;
        }
        self.source.checkpoint(&last)?;
        Ok(())
    }
}

/// The lane of a partition key: FNV-1a, so a key always lands in the same lane.
fn lane_of(partition_key: &str, lanes: usize) -> usize {
    let hash = partition_key
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        });
    usize::try_from(hash % u64::try_from(lanes.max(1)).unwrap_or(1)).unwrap_or(0)
}

impl Runner<'_> {
    /// Waits `duration` or until asked to stop; true when asked.
    fn pause(&self, duration: Duration) -> bool {
        self.stop.wait(duration)
    }

    /// Handles one batch to the end: every record done, filtered out or sent to OnFailure,
    /// each passed to `checkpoint` once it is.
    fn process(
        &self,
        batch: Vec<SourceRecord>,
        checkpoint: &mut Checkpoint<'_>,
    ) -> Result<(), Stop> {
        let Some(last) = batch.last().cloned() else {
            return Ok(());
        };
        let now_ms = self.clock.now_ms();
        let (expired, fresh): (Vec<SourceRecord>, Vec<SourceRecord>) =
            batch.into_iter().partition(|record| {
                self.config.maximum_record_age_s >= 0
                    && now_ms.saturating_sub(record.arrival_ms)
                        > u64::try_from(self.config.maximum_record_age_s).unwrap_or(0) * 1000
            });
        if !expired.is_empty() {
            self.give_up(&expired, "RecordAgeExceeded", 0, None, checkpoint)?;
        }
        let matching: Vec<SourceRecord> = fresh
            .into_iter()
            .filter(|record| {
                self.filters.is_empty()
                    || self
                        .filters
                        .iter()
                        .any(|pattern| pattern.matches(&record.filter_view))
            })
            .collect();
        let mut pieces: VecDeque<(Vec<SourceRecord>, u32)> = VecDeque::new();
        if !matching.is_empty() {
            pieces.push_back((matching, 0));
        }
        let mut backoff = RETRY_BACKOFF_INITIAL;
        while let Some((piece, attempts)) = pieces.pop_front() {
            let Some(piece_last) = piece.last().cloned() else {
                continue;
            };
            let event =
                json!({"Records": piece.iter().map(|record| &record.event).collect::<Vec<_>>()});
            let outcome = self.invoker.invoke(&self.config.function_arn, &event);
            let failure = match outcome {
                Ok(answer) => match self.first_reported_failure(&answer, &piece) {
                    Reported::None => {
                        checkpoint(&piece_last)?;
                        backoff = RETRY_BACKOFF_INITIAL;
                        continue;
                    }
                    Reported::At(index) if index > 0 => {
                        // Progress: the records before the first failure are done.
                        if let Some(done) = piece.get(index - 1) {
                            checkpoint(done)?;
                        }
                        pieces.push_front((piece.into_iter().skip(index).collect(), attempts));
                        continue;
                    }
                    Reported::At(_) => InvokeFailure {
                        error_type: "BatchItemFailure".to_owned(),
                        message: "the function reported the batch's first record as failed"
                            .to_owned(),
                        function_did_not_run: false,
                    },
                    Reported::Invalid(message) => InvokeFailure {
                        error_type: "InvalidBatchItemFailures".to_owned(),
                        message,
                        function_did_not_run: false,
                    },
                },
                Err(failure) if failure.function_did_not_run => {
                    tracing::debug!(mapping = %self.config.uuid, error_type = %failure.error_type, message = %failure.message, "the function did not run; retrying");
                    if self.pause(backoff) {
                        return Err(Stop::Requested);
                    }
                    backoff = backoff.saturating_mul(2).min(RETRY_BACKOFF_MAX);
                    pieces.push_front((piece, attempts));
                    continue;
                }
                Err(failure) => failure,
            };
            let attempts = attempts + 1;
            tracing::debug!(mapping = %self.config.uuid, attempts, error_type = %failure.error_type, message = %failure.message, "batch failed");
            let retries = self.config.maximum_retry_attempts;
            if retries >= 0 && i64::from(attempts) > i64::from(retries) {
                self.give_up(
                    &piece,
                    "RetryAttemptsExhausted",
                    attempts,
                    Some(&failure),
                    checkpoint,
                )?;
                continue;
            }
            if self.pause(backoff) {
                return Err(Stop::Requested);
            }
            backoff = backoff.saturating_mul(2).min(RETRY_BACKOFF_MAX);
            if self.config.bisect_batch_on_function_error && piece.len() > 1 {
                let mut first = piece;
                let second = first.split_off(first.len() / 2);
                pieces.push_front((second, attempts));
                pieces.push_front((first, attempts));
            } else {
                pieces.push_front((piece, attempts));
            }
        }
        checkpoint(&last)?;
        Ok(())
    }

    /// Reads `batchItemFailures` when the mapping asked for them.
    fn first_reported_failure(&self, answer: &Value, piece: &[SourceRecord]) -> Reported {
        if !self.config.report_batch_item_failures {
            return Reported::None;
        }
        let failures = match answer.get("batchItemFailures") {
            None | Some(Value::Null) => return Reported::None,
            Some(Value::Array(failures)) => failures,
            Some(_) => return Reported::Invalid("batchItemFailures is not a list".to_owned()),
        };
        let mut first: Option<usize> = None;
        for failure in failures {
            let Some(identifier) = failure.get("itemIdentifier").and_then(Value::as_str) else {
                return Reported::Invalid("a batch item failure has no itemIdentifier".to_owned());
            };
            let Some(index) = piece
                .iter()
                .position(|record| record.sequence_number == identifier)
            else {
                return Reported::Invalid(format!(
                    "itemIdentifier {identifier} is not a record of the batch"
                ));
            };
            first = Some(first.map_or(index, |first| first.min(index)));
        }
        match first {
            None => Reported::None,
            Some(index) => Reported::At(index),
        }
    }

    /// Sends the description of records the worker gives up on to the OnFailure stream, in
    /// Lambda's shape, then moves the checkpoint past them. Without a destination they are
    /// only logged.
    fn give_up(
        &self,
        records: &[SourceRecord],
        condition: &str,
        attempts: u32,
        failure: Option<&InvokeFailure>,
        checkpoint: &mut Checkpoint<'_>,
    ) -> Result<(), Stop> {
        let (Some(first), Some(last)) = (records.first(), records.last()) else {
            return Ok(());
        };
        tracing::warn!(mapping = %self.config.uuid, condition, n_records = records.len(), first = %first.sequence_number, "records given up on");
        if let Some(stream) = &self.config.on_failure_stream {
            let mut record = json!({
                "requestContext": {
                    "requestId": format!("{}-{}", self.config.uuid, first.sequence_number),
                    "functionArn": self.config.function_arn,
                    "condition": condition,
                    "approximateInvokeCount": attempts,
                },
                "responseContext": {
                    "statusCode": 200,
                    "executedVersion": "$LATEST",
                    "functionError": failure.map_or("", |failure| failure.error_type.as_str()),
                },
                "version": "1.0",
                "timestamp": iso_8601(self.clock.now_ms()),
            });
            crate::source::set_member(
                &mut record,
                self.batch_info_member,
                json!({
                    "shardId": self.shard_id,
                    "startSequenceNumber": first.sequence_number,
                    "endSequenceNumber": last.sequence_number,
                    "approximateArrivalOfFirstRecord": iso_8601(first.arrival_ms),
                    "approximateArrivalOfLastRecord": iso_8601(last.arrival_ms),
                    "batchSize": records.len(),
                    "streamArn": self.config.event_source_arn,
                }),
            );
            let bytes = serde_json::to_vec(&record).unwrap_or_default();
            let append = AppendRecord::new(self.config.uuid.clone(), bytes);
            // The failure record must be durable before the checkpoint passes the records;
            // if the stream cannot take it, the worker stops and the batch is redone later.
            self.log
                .stream(stream)
                .and_then(|stream| stream.append(&append))
                .map_err(crate::error::MappingError::from)?;
        }
        checkpoint(last)?;
        Ok(())
    }
}

enum Reported {
    None,
    At(usize),
    Invalid(String),
}

/// `2019-11-14T00:38:06.021Z`, as Lambda's failure records write times.
fn iso_8601(ms: u64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|at| {
            at.format(time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
            ))
            .ok()
        })
        .unwrap_or_default()
}
