//! The redb commit of a logged write group, off the answer's path.
//!
//! A group is durable once its write-ahead log record is on disk; redb's commit of it (without
//! an fsync, about 30 µs) only makes it visible to readers. So the leader answers the group as
//! soon as the record is on disk and hands the still-open transaction to this thread, which
//! commits it while the answers travel. Readers keep seeing every acknowledged write: a reader
//! first waits until every transaction handed over before it began has committed ([`Committer::
//! wait_visible`]). That wait is short and rare: redb lets one write transaction live at a
//! time, so at most one is ever handed over and not yet committed, and the next group's leader
//! waits for it in `begin_write` anyway.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;

use crate::error::{Result, TablesError};
use crate::store::lock;

#[derive(Default)]
struct State {
    /// A transaction whose log record is on disk, waiting for its redb commit. At most one:
    /// the next one can only begin once this one has committed.
    handed: Option<redb::WriteTransaction>,
    /// Transactions handed over so far, and of those, committed so far.
    handed_count: u64,
    committed_count: u64,
    /// Readers waiting in [`Committer::wait_visible`].
    readers_waiting: usize,
    /// Why a commit failed: nothing handed over later becomes visible until the tables are
    /// reopened (which applies the log).
    failed: Option<String>,
    closing: bool,
    /// Tests hold commits back to see what readers and a crash see meanwhile.
    #[cfg(test)]
    held: bool,
    /// Tests make the next commit fail.
    #[cfg(test)]
    fail_next: bool,
}

struct Shared {
    state: Mutex<State>,
    /// The thread waits here for a transaction (or for closing).
    handed: Condvar,
    /// Readers wait here for the commits they must see.
    committed: Condvar,
}

/// The committing thread and what it shares with the leader and the readers.
pub(crate) struct Committer {
    shared: Arc<Shared>,
    poisoned: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Committer {
    /// Starts the thread. A commit that fails sets `poisoned`: the tables refuse writes.
    pub(crate) fn start(poisoned: Arc<AtomicBool>) -> Result<Committer> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            handed: Condvar::new(),
            committed: Condvar::new(),
        });
        let thread = std::thread::Builder::new()
            .name("sluice-tables-commit".to_owned())
            .spawn({
                let shared = shared.clone();
                let poisoned = poisoned.clone();
                move || run(&shared, &poisoned)
            })?;
        Ok(Committer {
            shared,
            poisoned,
            thread: Some(thread),
        })
    }

    /// Hands over a transaction whose log record is on disk. Readers that begin after this
    /// call see it.
    pub(crate) fn hand_over(&self, write: redb::WriteTransaction) {
        {
            let mut state = lock(&self.shared.state);
            // redb's write lock, held by `handed` until it commits, keeps this slot free.
            debug_assert!(state.handed.is_none());
            state.handed = Some(write);
            state.handed_count += 1;
        }
        self.shared.handed.notify_one();
    }

    /// Returns once every transaction handed over before this call is visible in redb, so a
    /// snapshot begun next holds every acknowledged write. A transaction the thread has not
    /// taken yet is committed here rather than waited for.
    pub(crate) fn wait_visible(&self) -> Result<()> {
        let mut state = lock(&self.shared.state);
        let target = state.handed_count;
        loop {
            // After a failed commit redb lacks acknowledged writes (the log has them), and a
            // later commit would make the count below look complete: every read fails.
            if let Some(reason) = &state.failed {
                return Err(TablesError::Storage(format!(
                    "a commit failed earlier ({reason}); tables must be reopened"
                )));
            }
            if state.committed_count >= target {
                return Ok(());
            }
            if let Some(write) = take(&mut state) {
                drop(state);
                commit(&self.shared, &self.poisoned, write);
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

    /// Commits the handed-over transaction here if the thread has not taken it yet: a writer
    /// calls this before `begin_write`, which would otherwise wait for the thread to wake.
    pub(crate) fn help(&self) {
        let write = take(&mut lock(&self.shared.state));
        if let Some(write) = write {
            commit(&self.shared, &self.poisoned, write);
        }
    }

    /// Commits what was handed over and stops the thread.
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
impl Committer {
    /// Holds commits back (`true`) or lets them go on (`false`).
    pub(crate) fn hold(&self, held: bool) {
        lock(&self.shared.state).held = held;
        self.shared.handed.notify_one();
    }

    /// Makes the next commit panic, as a failing redb would.
    pub(crate) fn fail_next(&self) {
        lock(&self.shared.state).fail_next = true;
    }

    /// Transactions handed over and not yet committed.
    pub(crate) fn uncommitted(&self) -> u64 {
        let state = lock(&self.shared.state);
        state.handed_count - state.committed_count
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The handed-over transaction, unless tests hold it back.
fn take(state: &mut State) -> Option<redb::WriteTransaction> {
    #[cfg(test)]
    if state.held {
        return None;
    }
    state.handed.take()
}

fn run(shared: &Shared, poisoned: &AtomicBool) {
    loop {
        let write = {
            let mut state = lock(&shared.state);
            loop {
                if let Some(write) = take(&mut state) {
                    break write;
                }
                if state.closing {
                    return;
                }
                state = shared
                    .handed
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        };
        commit(shared, poisoned, write);
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

/// Commits a handed-over transaction and tells the readers waiting for it.
fn commit(shared: &Shared, poisoned: &AtomicBool, write: redb::WriteTransaction) {
    let inject_failure = {
        let mut state = lock(&shared.state);
        if state.failed.is_some() {
            // Committing past a failed commit would put a later group in redb without the
            // earlier one; the log replays both when the tables are reopened.
            drop(state);
            drop(write);
            return;
        }
        injected_failure(&mut state)
    };
    // A panic inside redb must not leave readers waiting for a commit that never comes.
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        assert!(!inject_failure, "an injected commit failure");
        write.commit()
    }))
    .unwrap_or_else(|_| {
        Err(redb::CommitError::Storage(redb::StorageError::Io(
            std::io::Error::other("the commit panicked"),
        )))
    });
    let wake = {
        let mut state = lock(&shared.state);
        match result {
            Ok(()) => state.committed_count += 1,
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
}
