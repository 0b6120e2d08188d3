//! The lifecycle the node's followers share (the ledger indexer, the table indexer and the
//! ledger replicas): one named thread that makes passes over its units (ledgers, tables,
//! replica pairs) until it is told to stop, pausing between passes by what the last one did.
//!
//! Each unit's pass is independent: one that fails is retried after [`RETRY_INTERVAL`] and
//! logged once per failing spell, without holding back the others.

use std::collections::BTreeSet;
use std::fmt::Display;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long a worker waits when no unit had anything new, or every unit that moved took all
/// there was.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Pause before a unit whose pass failed (an index refusing writes, a ledger being deleted) is
/// tried again.
pub const RETRY_INTERVAL: Duration = Duration::from_millis(1_000);

/// Locks a mutex whose data stays consistent even if a holder panicked (counters, positions).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running (or idle) follower thread; dropping it stops the thread and waits for it.
pub(crate) struct Worker {
    name: &'static str,
    stop: Mutex<Option<Sender<()>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Worker")
            .field("name", &self.name)
            .field("running", &lock(&self.thread).is_some())
            .finish()
    }
}

/// The worker's side of the stop signal.
pub(crate) struct Stop(Receiver<()>);

impl Stop {
    /// Waits up to `pause`; false once the worker is told to stop.
    fn wait(&self, pause: Duration) -> bool {
        matches!(self.0.recv_timeout(pause), Err(RecvTimeoutError::Timeout))
    }
}

impl Worker {
    /// A worker with no thread, for a follower that configuration turned off.
    pub fn idle(name: &'static str) -> Worker {
        Worker {
            name,
            stop: Mutex::new(None),
            thread: Mutex::new(None),
        }
    }

    /// Starts the thread `name` (with `stack_bytes` of stack when given) running `body`, which
    /// returns once [`Stop`] says so (see [`run_passes`]).
    pub fn spawn(
        name: &'static str,
        stack_bytes: Option<usize>,
        body: impl FnOnce(Stop) + Send + 'static,
    ) -> std::io::Result<Worker> {
        let (stop, stopped) = mpsc::channel();
        let mut builder = std::thread::Builder::new().name(name.into());
        if let Some(bytes) = stack_bytes {
            builder = builder.stack_size(bytes);
        }
        let thread = builder.spawn(move || body(Stop(stopped)))?;
        Ok(Worker {
            name,
            stop: Mutex::new(Some(stop)),
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Whether its thread was started and not yet stopped.
    pub fn is_running(&self) -> bool {
        lock(&self.thread).is_some()
    }

    /// Stops the thread and waits for it; a pass in flight finishes or is abandoned by its own
    /// rules before the thread ends. Idempotent.
    pub fn shutdown(&self) {
        lock(&self.stop).take();
        let thread = lock(&self.thread).take();
        if let Some(thread) = thread
            && thread.join().is_err()
        {
            tracing::error!(worker = self.name, "a background worker panicked");
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// What one pass over a unit did, which decides the pause before the next round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Progress {
    /// Nothing new.
    Idle,
    /// Moved, and took everything there was. The next round waits [`POLL_INTERVAL`] as after an
    /// idle one, so what arrives meanwhile goes in one batch: a follower that ran again at once
    /// would pay its writes' fsyncs for every single commit it follows, on the disk those
    /// commits wait for.
    CaughtUp,
    /// Moved, and more is waiting: the next round starts at once.
    Behind,
}

impl Progress {
    /// A pass that only knows whether it moved: moving counts as [`Progress::Behind`].
    pub(crate) fn moved(moved: bool) -> Progress {
        if moved {
            Progress::Behind
        } else {
            Progress::Idle
        }
    }
}

/// The follower loop: each round lists the units, runs `pass` on each, and pauses not at all
/// when a unit is [`Progress::Behind`], [`RETRY_INTERVAL`] after a failure, else
/// [`POLL_INTERVAL`]. Returns when the worker is told to stop.
pub(crate) fn run_passes<U, E>(
    worker: &'static str,
    stop: &Stop,
    mut units: impl FnMut() -> Vec<U>,
    mut pass: impl FnMut(&U) -> Result<Progress, E>,
) where
    U: Ord + Display,
    E: Display,
{
    let mut failing: BTreeSet<U> = BTreeSet::new();
    loop {
        let mut behind = false;
        let mut failed = false;
        for unit in units() {
            match pass(&unit) {
                Ok(progress) => {
                    behind |= progress == Progress::Behind;
                    if failing.remove(&unit) {
                        tracing::info!(worker, unit = %unit, "recovered");
                    }
                }
                Err(error) => {
                    failed = true;
                    if !failing.contains(&unit) {
                        tracing::warn!(worker, unit = %unit, %error, "a pass failed; retrying");
                        failing.insert(unit);
                    }
                }
            }
        }
        let pause = if behind {
            Duration::ZERO
        } else if failed {
            RETRY_INTERVAL
        } else {
            POLL_INTERVAL
        };
        if !stop.wait(pause) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[test]
    fn passes_run_until_shutdown_and_a_failing_unit_does_not_stop_the_others() {
        let passes = Arc::new(AtomicU64::new(0));
        let (seen, observed) = mpsc::channel();
        let counter = passes.clone();
        let worker = Worker::spawn("test-worker", None, move |stop| {
            run_passes(
                "test-worker",
                &stop,
                || vec!["bad".to_owned(), "good".to_owned()],
                |unit: &String| {
                    if unit == "bad" {
                        return Err("refused");
                    }
                    // Progress on the first ten passes, then idle polling.
                    let n = counter.fetch_add(1, Ordering::SeqCst);
                    let _ = seen.send(n);
                    Ok(Progress::moved(n < 10))
                },
            )
        })
        .expect("spawn");
        // The good unit keeps being passed although the bad one fails every round.
        for expected in 0..3 {
            assert_eq!(observed.recv().expect("a pass"), expected);
        }
        worker.shutdown();
        let after = passes.load(Ordering::SeqCst);
        // After shutdown returns, the thread is gone: no pass runs any more.
        worker.shutdown();
        assert_eq!(passes.load(Ordering::SeqCst), after);
    }

    /// Starts a worker whose one unit reports `progress` on its first `passes` passes and is
    /// idle after them; returns when it made them all, with the time they took.
    fn time_passes(passes: u64, progress: Progress) -> Duration {
        let (done, finished) = mpsc::channel();
        let counter = Arc::new(AtomicU64::new(0));
        let started = std::time::Instant::now();
        let worker = Worker::spawn("test-worker", None, move |stop| {
            run_passes(
                "test-worker",
                &stop,
                || vec!["unit".to_owned()],
                |_: &String| {
                    let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                    if n == passes {
                        let _ = done.send(());
                    }
                    Ok::<_, String>(if n <= passes {
                        progress
                    } else {
                        Progress::Idle
                    })
                },
            )
        })
        .expect("spawn");
        finished.recv().expect("the passes");
        let took = started.elapsed();
        worker.shutdown();
        took
    }

    #[test]
    fn a_unit_that_caught_up_waits_a_poll_interval_and_one_behind_goes_on_at_once() {
        // Caught up: a poll interval between passes, so what commits meanwhile is taken in one
        // batch (a lower bound: a slow machine only makes it longer).
        let caught_up = time_passes(5, Progress::CaughtUp);
        assert!(caught_up >= POLL_INTERVAL * 4, "{caught_up:?}");
        // Behind: no pause; twenty passes that waited would take a second.
        let behind = time_passes(20, Progress::Behind);
        assert!(behind < POLL_INTERVAL * 20, "{behind:?}");
    }

    #[test]
    fn an_idle_worker_shuts_down_at_once() {
        let worker = Worker::idle("idle");
        worker.shutdown();
        drop(worker);
    }
}
