//! redb, brought up to the write-ahead log off the answer's path.
//!
//! A write group is durable once its log record is on disk, and its leader answers it then.
//! The leader never writes redb: it computes the group's rows against a redb snapshot and the
//! rows logged but not yet in redb (`store.rs`'s `Pending`), and hands the record to this
//! thread. The thread applies every record handed over since its last turn in one redb write
//! transaction and commits it without an fsync (`Durability::None`), so redb's copy-on-write of
//! the touched B-tree pages and its commit run while the answers travel and the next group's
//! log record is written. Readers keep seeing every acknowledged write: a reader first waits
//! until every record handed over before it began is committed ([`Applier::wait_visible`]).
//!
//! A record handed over with a checkpoint (the log moved to its other file) makes the commit
//! that applies it durable (`Durability::Immediate`), which frees the file left behind for
//! reuse. Writers go on meanwhile; readers of records handed over after it wait for it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;

use redb::Database;

use crate::error::{Result, TablesError};
use crate::store::{apply_logged, lock};

/// A log record handed to the applier: its number and its rows.
pub(crate) type Logged = (u64, Vec<u8>);

#[derive(Default)]
struct State {
    /// Records on disk and not yet taken for redb, in log order.
    queue: Vec<Logged>,
    /// Whether some thread is applying records it took: only one at a time, so redb gets the
    /// records in log order.
    applying: bool,
    /// The last record handed over, the last one committed to redb, and the last one
    /// committed durably.
    logged: u64,
    applied: u64,
    durable: u64,
    /// A record whose commit must be durable: a checkpoint asked for and not yet taken.
    checkpoint_at: Option<u64>,
    /// Readers waiting in [`Applier::wait_visible`].
    readers_waiting: usize,
    /// Why applying failed: nothing handed over later becomes visible until the tables are
    /// reopened (which applies the log).
    failed: Option<String>,
    closing: bool,
    /// Tests hold the records back to see what readers and a crash see meanwhile.
    #[cfg(test)]
    held: bool,
    /// Tests make the next commit fail.
    #[cfg(test)]
    fail_next: bool,
}

struct Shared {
    database: Arc<Database>,
    state: Mutex<State>,
    /// The thread waits here for records (or for closing).
    handed: Condvar,
    /// Readers wait here for the commits they must see.
    committed: Condvar,
}

/// The applying thread and what it shares with the leaders and the readers.
pub(crate) struct Applier {
    shared: Arc<Shared>,
    poisoned: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Applier {
    /// Starts the thread over a database that holds every record up to `applied`. A failure to
    /// apply sets `poisoned`: the tables refuse writes.
    pub(crate) fn start(
        database: Arc<Database>,
        applied: u64,
        poisoned: Arc<AtomicBool>,
    ) -> Result<Applier> {
        let shared = Arc::new(Shared {
            database,
            state: Mutex::new(State {
                logged: applied,
                applied,
                durable: applied,
                ..State::default()
            }),
            handed: Condvar::new(),
            committed: Condvar::new(),
        });
        let thread = std::thread::Builder::new()
            .name("sluice-tables-apply".to_owned())
            .spawn({
                let shared = shared.clone();
                let poisoned = poisoned.clone();
                move || run(&shared, &poisoned)
            })?;
        Ok(Applier {
            shared,
            poisoned,
            thread: Some(thread),
        })
    }

    /// Hands over record `lsn`, which is on disk; records come in log order. Readers that begin
    /// after this call see it. With `checkpoint`, the commit that applies it is durable.
    pub(crate) fn hand_over(&self, lsn: u64, rows: Vec<u8>, checkpoint: bool) {
        {
            let mut state = lock(&self.shared.state);
            debug_assert!(lsn > state.logged);
            state.queue.push((lsn, rows));
            state.logged = lsn;
            if checkpoint {
                state.checkpoint_at = Some(lsn);
            }
        }
        self.shared.handed.notify_one();
    }

    /// The last record redb holds durably.
    pub(crate) fn durable(&self) -> u64 {
        lock(&self.shared.state).durable
    }

    /// Notes that redb holds every record handed over durably: a durable commit made directly,
    /// after [`Applier::wait_visible`], under the write side.
    pub(crate) fn mark_durable(&self) {
        let mut state = lock(&self.shared.state);
        state.durable = state.logged;
        state.checkpoint_at = None;
    }

    /// The last record redb holds: a snapshot begun after this call holds it and every earlier
    /// one.
    pub(crate) fn applied(&self) -> u64 {
        lock(&self.shared.state).applied
    }

    /// Returns once every record handed over before this call is committed to redb, so a
    /// snapshot begun next holds every acknowledged write. Records the thread has not taken yet
    /// are applied here rather than waited for.
    pub(crate) fn wait_visible(&self) -> Result<()> {
        let mut state = lock(&self.shared.state);
        let target = state.logged;
        loop {
            // After a failed commit redb lacks acknowledged writes (the log has them), and a
            // later commit would make the count below look complete: every read fails.
            if let Some(reason) = &state.failed {
                return Err(TablesError::Storage(format!(
                    "a commit failed earlier ({reason}); tables must be reopened"
                )));
            }
            if state.applied >= target {
                return Ok(());
            }
            if let Some(taken) = take(&mut state) {
                drop(state);
                apply(&self.shared, &self.poisoned, taken);
                state = lock(&self.shared.state);
                continue;
            }
            state.readers_waiting += 1;
            state = self
                .shared
                .committed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
            state.readers_waiting -= 1;
        }
    }

    /// Applies what was handed over and stops the thread.
    pub(crate) fn stop(&mut self) {
        {
            let mut state = lock(&self.shared.state);
            state.closing = true;
            #[cfg(test)]
            {
                state.held = false;
            }
        }
        self.shared.handed.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
impl Applier {
    /// Holds records back from redb (`true`) or lets them go on (`false`).
    pub(crate) fn hold(&self, held: bool) {
        lock(&self.shared.state).held = held;
        self.shared.handed.notify_one();
    }

    /// Makes the next commit panic, as a failing redb would.
    pub(crate) fn fail_next(&self) {
        lock(&self.shared.state).fail_next = true;
    }

    /// Records handed over and not yet committed to redb.
    pub(crate) fn unapplied(&self) -> u64 {
        let state = lock(&self.shared.state);
        state.logged - state.applied
    }
}

impl Drop for Applier {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Records taken to apply in one commit, and whether that commit must be durable.
struct Taken {
    records: Vec<Logged>,
    durable: bool,
}

/// The records waiting, for the caller to apply, unless another thread is applying or tests
/// hold them back.
fn take(state: &mut State) -> Option<Taken> {
    #[cfg(test)]
    if state.held {
        return None;
    }
    if state.applying || state.queue.is_empty() {
        return None;
    }
    state.applying = true;
    let records = std::mem::take(&mut state.queue);
    let last = records.last().map_or(0, |(lsn, _)| *lsn);
    let durable = state.checkpoint_at.is_some_and(|at| at <= last);
    if durable {
        state.checkpoint_at = None;
    }
    Some(Taken { records, durable })
}

fn run(shared: &Shared, poisoned: &AtomicBool) {
    loop {
        let taken = {
            let mut state = lock(&shared.state);
            loop {
                if let Some(taken) = take(&mut state) {
                    break taken;
                }
                if state.closing && (state.queue.is_empty() || state.failed.is_some()) {
                    return;
                }
                state = shared
                    .handed
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        };
        apply(shared, poisoned, taken);
    }
}

#[cfg(test)]
fn injected_failure(state: &mut State) -> bool {
    std::mem::take(&mut state.fail_next)
}

#[cfg(not(test))]
fn injected_failure(_: &mut State) -> bool {
    false
}

/// Applies taken records in one redb commit and tells the readers waiting for them.
fn apply(shared: &Shared, poisoned: &AtomicBool, Taken { records, durable }: Taken) {
    let Some(&(last, _)) = records.last() else {
        lock(&shared.state).applying = false;
        return;
    };
    let inject_failure = {
        let mut state = lock(&shared.state);
        if state.failed.is_some() {
            // Committing past a failed commit would put later records in redb without the
            // earlier ones; the log replays them all when the tables are reopened.
            state.applying = false;
            drop(state);
            shared.committed.notify_all();
            return;
        }
        injected_failure(&mut state)
    };
    // A panic inside redb must not leave readers waiting for a commit that never comes.
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        assert!(!inject_failure, "an injected commit failure");
        apply_logged(&shared.database, &records, durable)
    }))
    .unwrap_or_else(|_| Err(TablesError::Storage("applying the log panicked".to_owned())));
    let wake = {
        let mut state = lock(&shared.state);
        state.applying = false;
        match result {
            Ok(()) => {
                state.applied = last;
                if durable {
                    state.durable = last;
                }
            }
            Err(error) => {
                poisoned.store(true, Ordering::SeqCst);
                tracing::error!(%error, "tables commit failed; writes refused until reopened");
                state.failed = Some(error.to_string());
            }
        }
        state.readers_waiting > 0 || state.failed.is_some()
    };
    if wake {
        shared.committed.notify_all();
    }
    // Records handed over meanwhile wait for the thread, which a reader may have taken the
    // turn from.
    shared.handed.notify_one();
}
