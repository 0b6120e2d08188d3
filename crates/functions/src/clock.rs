//! The wall clock behind a trait, so tests control the deadlines the Runtime API reports.

use std::time::{SystemTime, UNIX_EPOCH};

/// Wall-clock time as the handler contract reports it (`Lambda-Runtime-Deadline-Ms`).
/// Timeouts themselves run on tokio's timer, which tests pause and advance.
pub trait Clock: Send + Sync + 'static {
    /// Milliseconds since the Unix epoch.
    fn now_epoch_ms(&self) -> u64;
}

/// The system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_epoch_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }
}
