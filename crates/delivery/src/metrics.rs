//! Per-stream counters, named after Firehose's CloudWatch metrics. In memory: they restart at
//! zero with the process, as a fresh CloudWatch period would.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use crate::limits::PROCESSING_FAILURE_SERIES_MAX;

/// The function and error code under which invocation failures past
/// [`PROCESSING_FAILURE_SERIES_MAX`] distinct pairs are counted.
pub const OTHER_SERIES: &str = "other";

#[derive(Debug, Default)]
pub struct Metrics {
    pub incoming_records: AtomicU64,
    pub incoming_bytes: AtomicU64,
    pub incoming_put_requests: AtomicU64,
    pub throttled_records: AtomicU64,
    /// Documents (or S3 records) the destination acknowledged.
    pub delivery_records: AtomicU64,
    pub delivery_bytes: AtomicU64,
    /// Documents attempted for the first time; `delivery_records / delivery_attempted_records`
    /// is `DeliveryToElasticsearch.Success`.
    pub delivery_attempted_records: AtomicU64,
    /// Age of the oldest record of the last delivered batch, when it was delivered.
    pub data_freshness_ms: AtomicU64,
    /// Documents that still failed after the retry duration (backed up to `elasticsearch_failed/`).
    pub failed_documents: AtomicU64,
    pub delivery_retries: AtomicU64,
    pub processing_ok_records: AtomicU64,
    pub processing_failed_records: AtomicU64,
    pub dropped_records: AtomicU64,
    pub backup_records: AtomicU64,
    /// Flushes whose destination or backup write failed (the batch was kept and retried).
    pub delivery_failures: AtomicU64,
    /// Lambda invocations that failed after their retries, by (function name, Firehose error
    /// code); their records went to `processing-failed/`.
    processing_failures: Mutex<BTreeMap<(String, String), u64>>,
}

/// A consistent-enough copy of [`Metrics`] for reporting.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricsSnapshot {
    pub incoming_records: u64,
    pub incoming_bytes: u64,
    pub incoming_put_requests: u64,
    pub throttled_records: u64,
    pub delivery_records: u64,
    pub delivery_bytes: u64,
    pub delivery_attempted_records: u64,
    pub delivery_success: f64,
    pub data_freshness_s: u64,
    pub failed_documents: u64,
    pub delivery_retries: u64,
    pub processing_ok_records: u64,
    pub processing_failed_records: u64,
    pub dropped_records: u64,
    pub backup_records: u64,
    pub delivery_failures: u64,
    /// `(function, error_code, failed invocations)`, sorted.
    pub processing_failures: Vec<(String, String, u64)>,
}

impl Metrics {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts one failed invocation of `function` with Firehose's `error_code`. The pairs are
    /// few (a stream's processors times Firehose's codes); past
    /// [`PROCESSING_FAILURE_SERIES_MAX`] of them, new pairs are counted under
    /// [`OTHER_SERIES`] so the metrics page stays bounded.
    pub(crate) fn add_processing_failure(&self, function: &str, error_code: &str) {
        let mut failures = self
            .processing_failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut key = (function.to_owned(), error_code.to_owned());
        if !failures.contains_key(&key) && failures.len() >= PROCESSING_FAILURE_SERIES_MAX {
            key = (OTHER_SERIES.to_owned(), OTHER_SERIES.to_owned());
        }
        *failures.entry(key).or_insert(0) += 1;
    }

    pub fn snapshot(&self) -> MetricsSnapshot {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let attempted = get(&self.delivery_attempted_records);
        let delivered = get(&self.delivery_records);
        #[allow(clippy::cast_precision_loss)]
        let delivery_success = if attempted == 0 {
            1.0
        } else {
            (delivered as f64 / attempted as f64).min(1.0)
        };
        MetricsSnapshot {
            incoming_records: get(&self.incoming_records),
            incoming_bytes: get(&self.incoming_bytes),
            incoming_put_requests: get(&self.incoming_put_requests),
            throttled_records: get(&self.throttled_records),
            delivery_records: delivered,
            delivery_bytes: get(&self.delivery_bytes),
            delivery_attempted_records: attempted,
            delivery_success,
            data_freshness_s: get(&self.data_freshness_ms) / 1000,
            failed_documents: get(&self.failed_documents),
            delivery_retries: get(&self.delivery_retries),
            processing_ok_records: get(&self.processing_ok_records),
            processing_failed_records: get(&self.processing_failed_records),
            dropped_records: get(&self.dropped_records),
            backup_records: get(&self.backup_records),
            delivery_failures: get(&self.delivery_failures),
            processing_failures: self
                .processing_failures
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .map(|((function, code), n)| (function.clone(), code.clone(), *n))
                .collect(),
        }
    }
}
