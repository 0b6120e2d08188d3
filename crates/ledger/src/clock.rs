//! The injectable clock that stamps `txTime`, statement start times and transaction timeouts.

use std::sync::Mutex;

use time::OffsetDateTime;

/// A source of wall-clock time. Tests inject [`ManualClock`] to control `txTime`.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current UTC time.
    fn now(&self) -> OffsetDateTime;
}

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock that only moves when told to; every `now` returns the same instant until advanced.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<OffsetDateTime>,
}

impl ManualClock {
    /// A clock frozen at `start`.
    pub fn new(start: OffsetDateTime) -> Self {
        ManualClock {
            now: Mutex::new(start),
        }
    }

    /// Moves the clock forward by `milliseconds`.
    pub fn advance_ms(&self, milliseconds: i64) {
        if let Ok(mut now) = self.now.lock() {
            *now += time::Duration::milliseconds(milliseconds);
        }
    }

    /// Sets the clock to `instant`.
    pub fn set(&self, instant: OffsetDateTime) {
        if let Ok(mut now) = self.now.lock() {
            *now = instant;
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        self.now
            .lock()
            .map(|now| *now)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }
}
