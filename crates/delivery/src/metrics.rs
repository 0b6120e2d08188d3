//! Per-stream counters, named after Firehose's CloudWatch metrics. In memory: they restart at
//! zero with the process, as a fresh CloudWatch period would.

use std::sync::atomic::{AtomicU64, Ordering};

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
}

impl Metrics {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
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
        }
    }
}
